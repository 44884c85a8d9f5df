#!/usr/bin/env bash
# On a GPU machine: clip-sql bench (the `cuda` binary) and its PyTorch peer,
# on the same JPEGs, then the ratios. Needs python3 with torch, pillow and
# open_clip_torch (benches/peer/requirements.txt); no Rust.
#
#   benches/peer/compare_gpu.sh [OUT_DIR]
# Environment: CLIP_SQL (binary, default target-cuda/clip-sql), MODELS (comma
# list), BATCH_SIZES (comma list, default 1,64,128,256,512), IMAGES (JPEG
# folder; 4096 500x375 JPEGs are written when missing), SECONDS_PER_FIGURE
# (default 3). A short run for the targets only:
#   MODELS=ViT-B/32,RN50 BATCH_SIZES=1,256 SECONDS_PER_FIGURE=2 benches/peer/compare_gpu.sh
set -uo pipefail
cd "$(dirname "$0")/../.."
out=${1:-bench-gpu}
bin=${CLIP_SQL:-target-cuda/clip-sql}
models=${MODELS:-RN50,RN101,ViT-B/32,ViT-B/16,ViT-L/14,ViT-L/14@336px}
images=${IMAGES:-/tmp/clip-bench-jpegs}
seconds=${SECONDS_PER_FIGURE:-3}
batch_sizes=${BATCH_SIZES:-1,64,128,256,512}
mkdir -p "$out"
if [ ! -d "$images" ]; then
  # 4096 JPEGs, written by 16 processes side by side.
  for i in $(seq 0 15); do python3 benches/peer/make_jpegs.py "$images" 256 $((i * 256)) & done
  wait
fi
# The binary loads the CUDA runtime, cuBLAS, cuRAND and NVRTC from here,
# and the driver (libcuda.so.1) from /usr/local/nvidia/lib64.
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:/usr/local/nvidia/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
# Each side runs even if the other fails; the exit status says if any did.
status=0
"$bin" bench --models "$models" --random-weights /tmp/clip-random-models \
  --images "$images" --end-to-end-model ViT-B/32 --seconds "$seconds" \
  --batch-sizes "$batch_sizes" --output "$out" --overwrite 2>&1 \
  | tee "$out/ours.log" || status=1
python3 benches/peer/clip_gpu_peer.py --models "$models" --images "$images" --seconds "$seconds" \
  --batch-sizes "$batch_sizes" --out "$out" 2>&1 | tee "$out/peer.log" || status=1
python3 benches/peer/ratios.py "$out" | tee "$out/ratios.txt" || status=1
exit $status
