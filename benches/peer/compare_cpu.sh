#!/usr/bin/env bash
# Run the Rust CPU benchmark and its PyTorch/PIL peer on the same machine,
# on the same JPEG bytes, and print images/s side by side with ratios.
#
#   pip install -r benches/peer/requirements.txt
#   benches/peer/compare_cpu.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
jpegs=${CLIP_BENCH_JPEG_DIR:-$(mktemp -d)}
python benches/peer/make_jpegs.py "$jpegs" 64
export CLIP_BENCH_JPEG_DIR=$jpegs
rust_log=$(mktemp); peer_log=$(mktemp)
cargo bench --bench clip_cpu 2>&1 | tee "$rust_log"
python benches/peer/clip_cpu_peer.py "$jpegs" | tee "$peer_log"
python - "$rust_log" "$peer_log" <<'PY'
import re, sys
rust = {}
name = None
for line in open(sys.argv[1]):
    m = re.match(r"^(\S+/\S+)(\s|$)", line)
    if m:
        name = m.group(1)
    t = re.search(r"thrpt:\s+\[\S+\s+\S+\s+(\S+)\s+(\S+)", line)
    if t and name:
        value, unit = float(t.group(1)), t.group(2)
        rust[name] = value * (1000 if unit.startswith("K") else 1)
peer = {l.split("\t")[0]: float(l.split("\t")[1]) for l in open(sys.argv[2]) if "\t" in l}
pairs = [("decode_preprocess/one_core", "decode_preprocess/one_core"),
         ("vit_b32_image_encoder/batch32", "vit_b32_image_encoder/batch32"),
         ("sql/clip_embed_image", "end_to_end/64_images"),
         ("rn50_image_encoder/batch32", "rn50_image_encoder/batch32"),
         ("rn101_image_encoder/batch32", "rn101_image_encoder/batch32")]
print(f"\n{'figure':34} {'datafusion-clip':>16} {'PyTorch/PIL':>12} {'ratio':>7}")
for ours, theirs in pairs:
    a, b = rust.get(ours), peer.get(theirs)
    if a and b:
        print(f"{ours:34} {a:13.1f}/s {b:9.1f}/s {a / b:6.2f}x")
PY
