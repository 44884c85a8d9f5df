#!/usr/bin/env bash
# What running a benchmark file on a Ballista cluster costs on top of the
# work: `clip-sql -f sql/benchmarks/cifar10.sql` with a small model, in
# this process (local), on a scheduler + executor started as separate
# processes, and on `--ballista standalone`; median wall time of RUNS runs,
# for one or two clip-sql binaries side by side (e.g. before and after a
# change), over a 6-image and a 200-image WebDataset shard of 500x375 JPEGs.
#
#   benches/cluster_overhead.sh MODEL_DIR BINARY [BINARY...]
#
# MODEL_DIR: a model directory (e.g. `cargo run --release --example
# make_random_model -- /tmp/tiny-clip tiny`). Needs python3 with numpy and
# Pillow (benches/peer/requirements.txt). Prints one CSV row per
# (binary, images, mode): seconds.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
model=$1
shift
runs=${RUNS:-3}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

# Shards: N JPEGs with .cls labels, as CLIP_benchmark's mirrors hold them.
for n in 6 200; do
  python3 "$repo/benches/peer/make_jpegs.py" "$work/jpegs$n" "$n" >/dev/null
  python3 - "$work/jpegs$n" "$work/shards$n" <<'EOF'
import io, os, sys, tarfile
src, out = sys.argv[1], sys.argv[2]
os.makedirs(out, exist_ok=True)
with tarfile.open(os.path.join(out, "0.tar"), "w") as tar:
    for i, name in enumerate(sorted(os.listdir(src))):
        key = f"s{i:05d}"
        for ext, data in (("jpg", open(os.path.join(src, name), "rb").read()),
                          ("cls", str(i % 10).encode())):
            info = tarfile.TarInfo(f"{key}.{ext}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
EOF
done

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Seconds one run takes.
timed() {
  local start end
  start=$(date +%s.%N)
  "$@" >/dev/null
  end=$(date +%s.%N)
  echo "$end - $start" | bc
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

echo "binary,images,mode,seconds"
for bin in "$@"; do
  # A scheduler and an executor of this binary, as separate processes.
  sport=$(free_port)
  "$bin" scheduler --port "$sport" 2>"$work/scheduler.log" &
  sched=$!
  "$bin" executor --scheduler "localhost:$sport" --device cpu \
    --port "$(free_port)" --grpc-port "$(free_port)" 2>"$work/executor.log" &
  exec_pid=$!
  for n in 6 200; do
    args=(-q -f "$repo/sql/benchmarks/cifar10.sql" --param "data=$work/shards$n/"
          --param "model=$model" --param "sqldata=$repo/sql/data")
    for mode in local processes standalone; do
      case $mode in
        local) extra=() ;;
        processes) extra=(--ballista "df://localhost:$sport") ;;
        standalone) extra=(--ballista standalone) ;;
      esac
      # One run first, not timed: the scheduler and executor start, and
      # the files reach the page cache.
      "$bin" "${args[@]}" "${extra[@]}" >/dev/null
      seconds=$(for _ in $(seq "$runs"); do timed "$bin" "${args[@]}" "${extra[@]}"; done | median)
      echo "$bin,$n,$mode,$seconds"
    done
  done
  kill "$exec_pid" "$sched"
  wait "$exec_pid" "$sched" 2>/dev/null || true
done
