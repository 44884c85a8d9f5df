#!/usr/bin/env bash
# Everything a GPU machine should confirm, in one go (no Rust needed there):
#   1. agreement: embeddings on cuda:0 (f32, f16) against the CPU (f32),
#      for the committed tiny models, then full-size random ViT-B/32 and
#      RN50; fails below a cosine of 0.9999 (f32) or 0.99 (f16);
#   2. the efficiency table and end-to-end split next to the PyTorch peer
#      (benches/peer/compare_gpu.sh), with ratios;
#   3. the same model-only figures for ViT-B/32 and RN50 with this crate's
#      fused CUDA kernels off (CLIP_CUDA_FUSED=0: candle's ops throughout),
#      so the two paths are compared on the same machine.
#
#   scripts/gpu-check.sh OUT_DIR        (CLIP_SQL=path/to/cuda/clip-sql)
# MODELS, BATCH_SIZES and SECONDS_PER_FIGURE pass to compare_gpu.sh; with
# little device time, MODELS=ViT-B/32,RN50 BATCH_SIZES=1,256
# SECONDS_PER_FIGURE=2 measures the issue's targets only.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: scripts/gpu-check.sh OUT_DIR}
bin=${CLIP_SQL:-target-cuda/clip-sql}
mkdir -p "$out"
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:/usr/local/nvidia/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export CUDA_CACHE_PATH=${CUDA_CACHE_PATH:-/tmp/clip-cuda-cache}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"
status=0
agree() {
  echo "== agreement: $1" | tee -a "$out/agreement.txt"
  local csv
  csv=$("$bin" -q --format csv -f benches/peer/gpu_agreement.sql --param model="$2" \
    --param images=tests/fixtures/images/ 2>&1) || status=1
  echo "$csv" | tee -a "$out/agreement.txt"
  # tower,n,min_cos_f32,min_cos_f16
  echo "$csv" | awk -F, '$1 == "image" || $1 == "text" {
      if ($3 + 0 < 0.9999 || $4 + 0 < 0.99) { print "DISAGREES: " $0; bad = 1 } ; seen++ }
    END { exit (bad || seen != 2) }' || { echo "agreement check failed: $1" | tee -a "$out/agreement.txt"; status=1; }
}
agree "tiny ViT (HF layout)" tests/fixtures/models/hf_tiny
agree "tiny ResNet (open_clip layout)" tests/fixtures/models/open_clip_resnet_tiny
CLIP_SQL=$bin benches/peer/compare_gpu.sh "$out" || status=1
for m in ViT-B-32 RN50; do
  [ -d "/tmp/clip-random-models/$m-random" ] && agree "$m random, full size" "/tmp/clip-random-models/$m-random"
done
echo "== fused kernels off (CLIP_CUDA_FUSED=0)" | tee "$out/unfused.log"
mkdir -p "$out/unfused"
CLIP_CUDA_FUSED=0 "$bin" bench --models ViT-B/32,RN50 --random-weights /tmp/clip-random-models \
  --batch-sizes 1,256 --seconds 2 --output "$out/unfused" --overwrite 2>&1 | tee -a "$out/unfused.log" || status=1
exit $status
