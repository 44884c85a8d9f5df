#!/usr/bin/env bash
# What Ctrl-C leaves running on a Ballista cluster: a scheduler and an
# executor (separate processes) run a long query from `clip-sql --ballista
# -c`; the client is interrupted after WARMUP seconds, and the executor's
# CPU time is sampled over the next WATCH seconds. An executor still
# embedding images for the cancelled query burns a core or more; one that
# stopped, next to nothing. One CSV row per binary.
#
#   benches/cluster_cancel.sh MODEL_DIR IMAGE_DIR BINARY [BINARY...]
#
# A BINARY written CLIENT:CLUSTER runs the client from one binary and the
# scheduler and executor from another (which side stops the work).
# IMAGE_DIR: a folder of images (e.g. benches/peer/make_jpegs.py's), read
# as an IMAGEFOLDER table; the query embeds each of them 50 times, one per
# forward pass.
set -euo pipefail
# Job control: without it a background command ignores SIGINT, and the
# client would not feel the Ctrl-C this script sends.
set -m
model=$1
images=$2
shift 2
warmup=${WARMUP:-3}
watch=${WATCH:-5}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# CPU seconds (user + system) process $1 has used so far.
cpu_seconds() { awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' "/proc/$1/stat"; }

fifty=$(seq -s, 1 50 | sed 's/\([0-9]*\)/(\1)/g')
echo "client:cluster,client_exit_status,client_stderr,executor_cpu_s_after_interrupt,watch_s"
for pair in "$@"; do
  bin=${pair%%:*}
  cluster=${pair#*:}
  sport=$(free_port)
  "$cluster" scheduler --port "$sport" 2>"$work/scheduler.log" &
  sched=$!
  "$cluster" executor --scheduler "localhost:$sport" --device cpu --vcores 2 \
    --port "$(free_port)" --grpc-port "$(free_port)" 2>"$work/executor.log" &
  executor=$!
  "$bin" --ballista "df://localhost:$sport" -q \
    -c "SET clip.batch_size = 1" \
    -c "CREATE EXTERNAL TABLE t STORED AS IMAGEFOLDER LOCATION '$images/'" \
    -c "SELECT count(clip_embed_image('$model', image)) FROM t CROSS JOIN (VALUES $fifty) AS copies(n)" \
    >/dev/null 2>"$work/client.log" &
  client=$!
  sleep "$warmup"
  kill -INT "$client"
  status=0
  wait "$client" || status=$?
  before=$(cpu_seconds "$executor")
  sleep "$watch"
  after=$(cpu_seconds "$executor")
  echo "$pair,$status,\"$(tr '\n' ' ' <"$work/client.log")\",$(echo "$after - $before" | bc),$watch"
  kill "$executor" "$sched"
  wait "$executor" "$sched" 2>/dev/null || true
done
