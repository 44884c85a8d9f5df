//! With the `cuda` feature, compiles this crate's CUDA kernels
//! (`src/ops/cuda/kernels/*.cu`) to PTX with nvcc; `src/ops/cuda/launch.rs`
//! embeds them. Without it there is nothing to do: the default build needs
//! no CUDA toolkit.
//!
//! nvcc is `$CUDA_HOME/bin/nvcc` (or `$CUDA_PATH/bin/nvcc`), else the one on
//! `PATH`; the PTX targets `compute_$CUDA_COMPUTE_CAP` (default 80: every
//! GPU from A100 on can JIT it), the variable candle's own kernels read.

use std::path::PathBuf;
use std::process::Command;

const KERNELS: [&str; 3] = ["channels_last", "linear_epilogue", "packed_attention"];

fn main() {
    println!("cargo::rerun-if-changed=src/ops/cuda/kernels");
    println!("cargo::rerun-if-env-changed=CUDA_COMPUTE_CAP");
    println!("cargo::rerun-if-env-changed=CUDA_HOME");
    println!("cargo::rerun-if-env-changed=CUDA_PATH");
    if std::env::var_os("CARGO_FEATURE_CUDA").is_none() {
        return;
    }
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default());
    let nvcc = ["CUDA_HOME", "CUDA_PATH"]
        .iter()
        .filter_map(std::env::var_os)
        .map(|root| PathBuf::from(root).join("bin").join("nvcc"))
        .find(|path| path.is_file())
        .unwrap_or_else(|| PathBuf::from("nvcc"));
    let compute_cap = std::env::var("CUDA_COMPUTE_CAP").unwrap_or_else(|_| "80".into());
    for kernel in KERNELS {
        let source = PathBuf::from("src/ops/cuda/kernels").join(format!("{kernel}.cu"));
        let ptx = out_dir.join(format!("{kernel}.ptx"));
        let status = Command::new(&nvcc)
            .args(["--ptx", "-O3", "-std=c++17"])
            .arg(format!("-arch=compute_{compute_cap}"))
            .arg("-o")
            .arg(&ptx)
            .arg(&source)
            .status();
        match status {
            Ok(status) if status.success() => {}
            Ok(status) => panic!("nvcc failed on {} ({status})", source.display()),
            Err(e) => panic!(
                "cannot run {} for the `cuda` feature ({e}): install the CUDA toolkit, \
                 set CUDA_HOME, or build with scripts/build-cuda.sh",
                nvcc.display()
            ),
        }
    }
}
