#!/usr/bin/env bash
# Build the `cuda` clip-sql binary on a machine with no GPU and no CUDA
# toolkit installed: CUDA 13.0 comes from NVIDIA's PyPI wheels, and the
# driver library (libcuda.so, which no wheel ships) is replaced at link time
# by a stub with the same soname. The stub is never shipped: on the GPU
# machine the real driver's libcuda.so.1 is loaded instead.
#
#   scripts/build-cuda.sh                 # -> target-cuda/clip-sql (stripped, ~200 MB)
# A clean build takes about an hour on 2 cores; after that, ~3 minutes.
#   scripts/build-cuda.sh --check         # clippy (-D warnings) of everything the
#       `cuda` feature compiles, tests included, and nvcc of our kernels: that the
#       GPU code still builds after a change, without a GPU (2026-11-28, 2 cores:
#       about 35 minutes the first time, most of it candle's kernels; then 15-25 s)
#   CUDA_COMPUTE_CAP=80 scripts/build-cuda.sh   # PTX any sm >= 80 can JIT
#   CUDA_FEATURES=cudnn scripts/build-cuda.sh   # also cuDNN convolutions: needs
#       libcudnn.so.9 (e.g. the nvidia-cudnn-cu13 wheel's lib/) on LIBRARY_PATH
#       to link and on LD_LIBRARY_PATH to run; not yet built or measured here
#
# Needs: python3 -m pip (for `pip download`), gcc, cargo. Everything else is
# downloaded under $CUDA_WORK (default ~/.cache/datafusion-clip/cuda).
#
# At run time the binary loads libcuda.so.1 (the driver), libcudart.so.13,
# libcublas.so.13, libcublasLt.so.13, libcurand.so.10 and libnvrtc.so.13:
#   LD_LIBRARY_PATH=/usr/local/cuda/lib64:/usr/local/nvidia/lib64 ./clip-sql ...
# First use of each kernel family JIT-compiles PTX for a few seconds; set
# CUDA_CACHE_PATH to a persistent directory to keep the compiled kernels,
# and warm up before timing (clip-sql bench does).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
work=${CUDA_WORK:-$HOME/.cache/datafusion-clip/cuda}
features=${CUDA_FEATURES:-cuda}
mkdir -p "$work/wheels" "$work/stubs"

# 1. CUDA 13.0 compiler, headers and libraries from PyPI. Pinned to 13.0: a
#    newer nvcc writes PTX that driver 580 may refuse to load. (The `-cu13`
#    names on PyPI are empty placeholders; these unsuffixed wheels unpack to
#    nvidia/cu13/.)
C=$work/cuda/nvidia/cu13
if [ ! -x "$C/bin/nvcc" ]; then
  python3 -m pip download -q --no-deps -d "$work/wheels" \
    nvidia-cuda-nvcc==13.0.88 nvidia-cuda-crt==13.0.88 nvidia-nvvm==13.0.88 \
    nvidia-cuda-runtime==13.0.96 nvidia-cuda-cccl==13.0.85 nvidia-cuda-nvrtc==13.0.88 \
    nvidia-cublas==13.0.2.14 nvidia-curand==10.4.0.35
  for w in "$work"/wheels/*.whl; do unzip -q -o "$w" -d "$work/cuda" -x '*.dist-info/*'; done
  # nvcc looks for targets/x86_64-linux and lib64 the way a toolkit lays them out.
  mkdir -p "$C/targets/x86_64-linux"
  ln -sfn ../../include "$C/targets/x86_64-linux/include"
  ln -sfn ../../lib "$C/targets/x86_64-linux/lib"
  ln -sfn lib "$C/lib64"
  (cd "$C/lib" && for f in libcublas.so.13 libcublasLt.so.13 libcudart.so.13 libcurand.so.10 libnvrtc.so.13; do
     ln -sfn "$f" "${f%%.so*}.so"; done)
fi

# 2. A link-time stand-in for the driver library: one dummy function per
#    driver symbol that cudarc binds, soname libcuda.so.1.
if [ ! -f "$C/lib/stubs/libcuda.so" ]; then
  (cd "$repo" && cargo fetch -q)
  cudarc_src=$(ls -d "$HOME"/.cargo/registry/src/*/cudarc-0.19.* | tail -1)
  grep -ohE 'pub unsafe fn cu[A-Za-z0-9_]+\(' "$cudarc_src/src/driver/sys/mod.rs" \
    | sed -E 's/pub unsafe fn ([A-Za-z0-9_]+)\(/\1/' | sort -u > "$work/stubs/cuda_syms.txt"
  while read -r s; do echo "int $s(void){return 999;}"; done < "$work/stubs/cuda_syms.txt" \
    > "$work/stubs/libcuda_stub.c"
  mkdir -p "$C/lib/stubs"
  gcc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$C/lib/stubs/libcuda.so" "$work/stubs/libcuda_stub.c"
fi

# 3. The build. CUDA_COMPUTE_CAP=90 gives sm_90a PTX (H100/H200 only);
#    CUDARC_CUDA_VERSION tells cudarc which CUDA API to bind without a driver.
export CUDA_HOME=$C CUDA_PATH=$C PATH=$C/bin:$PATH
export CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-90} CUDARC_CUDA_VERSION=13000 CUDAFORGE_THREADS=1
export LIBRARY_PATH=$C/lib:$C/lib/stubs${LIBRARY_PATH:+:$LIBRARY_PATH}
export CARGO_TARGET_DIR=${CUDA_TARGET_DIR:-$HOME/.cache/datafusion-clip/target-cuda}
cd "$repo"
if [ "${1:-}" = "--check" ]; then
  exec cargo clippy --all-targets -p clip-sql -p clip-model -p datafusion-clip \
    --features "$features" -j"${JOBS:-$(nproc)}" -- -D warnings
fi
cargo build --release -p clip-sql --features "$features" -j"${JOBS:-$(nproc)}"
mkdir -p "$repo/target-cuda"
strip -o "$repo/target-cuda/clip-sql" "$CARGO_TARGET_DIR/release/clip-sql"
ls -l "$repo/target-cuda/clip-sql"
