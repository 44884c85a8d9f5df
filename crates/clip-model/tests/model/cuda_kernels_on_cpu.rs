//! The CUDA kernels of `src/ops/cuda/kernels/` run on the CPU: their f32
//! instances are compiled with the host's C++ compiler against
//! `tests/cuda_sim/cuda_sim.h` (threads and a barrier standing in for a
//! block) and checked against plain double-precision loops by
//! `tests/cuda_sim/kernels_on_cpu.cpp`. This catches indexing, tiling and
//! softmax mistakes on machines with no GPU; `scripts/gpu-check.sh` checks
//! the compiled kernels on a real one.

use std::path::Path;
use std::process::Command;

#[test]
fn cuda_kernels_match_plain_loops_on_the_cpu() {
    let sim = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cuda_sim");
    let dir = tempfile::tempdir().unwrap();
    let binary = dir.path().join("kernels_on_cpu");
    let compiler = std::env::var("CXX").unwrap_or_else(|_| "c++".into());
    let compiled = Command::new(&compiler)
        .args(["-std=c++20", "-O2", "-pthread", "-Wall", "-Werror", "-I"])
        .arg(&sim)
        .arg(sim.join("kernels_on_cpu.cpp"))
        .arg("-o")
        .arg(&binary)
        .output()
        .unwrap_or_else(|e| {
            panic!("this test needs a C++20 compiler ({compiler}, or set CXX): {e}")
        });
    assert!(
        compiled.status.success(),
        "compiling the kernels for the CPU failed:\n{}",
        String::from_utf8_lossy(&compiled.stderr)
    );

    let run = Command::new(&binary).output().unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "{stdout}");
    // 6 epilogue cases, 4 im2col, 3 average pools, 5 head sizes x 4 lengths
    // x 3 masks of attention and 1 attention over several query blocks.
    let passed = stdout.lines().filter(|l| l.starts_with("ok ")).count();
    assert_eq!(passed, 6 + 4 + 3 + 5 * 4 * 3 + 1, "{stdout}");
}
