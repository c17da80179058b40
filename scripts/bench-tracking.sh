#!/usr/bin/env bash
# What experiment tracking costs a training run: the same run trained with TensorBoard only (every
# run writes its tensorboard/), with MLflow to a responsive tracking server, to a server that
# accepts connections and never answers, and to a file store. Prints each run's mean epoch seconds
# and whole wall time, and each against TensorBoard only (measured first and last, so drift shows).
# Then how long `runs list` takes over 100 run folders (copies of these five), through
# `garmentnet` (no LibTorch) and through `garmentnet-torch` (which loads it).
# Usage: scripts/bench-tracking.sh [BUILD_DIR]   (`make bench-tracking` passes build/)
# Environment: BENCH_EPOCHS (default 6), BENCH_WAIT (--mlflow-wait seconds, default 5).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
bin=$(realpath "$build/garmentnet")
epochs=${BENCH_EPOCHS:-6}
wait_seconds=${BENCH_WAIT:-5}
out=runs/bench-tracking
rm -rf "$out"
mkdir -p "$out"

"$bin" make-dataset fashion-mnist --out "$out/garments" --variants target --train-size 600 \
  --test-size 50 --image-size 64 >/dev/null

# A tracking server that checks MLflow's REST contract, and one that never answers: its socket
# listens (connections complete in the kernel's backlog) but nothing is ever read or written.
/usr/bin/python3 tests/python/fake_mlflow_server.py "$out/rest.port" >"$out/rest.log" 2>&1 &
rest_pid=$!
/usr/bin/python3 -c '
import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(64)
open(sys.argv[1], "w").write(str(s.getsockname()[1])); time.sleep(1e6)' "$out/silent.port" &
silent_pid=$!
trap 'kill $rest_pid $silent_pid 2>/dev/null || true' EXIT
for file in rest.port silent.port; do
  for _ in $(seq 100); do [[ -s $out/$file ]] && break; sleep 0.1; done
done

# run NAME [flags]: one training run; its wall seconds go to NAME.wall.
run() {
  local name=$1
  shift
  local start end
  start=$(date +%s.%N)
  "$bin" train --data "$out/garments" --out "$out/$name" --epochs "$epochs" --patience 0 \
    --transfer scratch --no-report --threads 2 "$@" >"$out/$name.log" 2>&1
  end=$(date +%s.%N)
  echo "$start $end" >"$out/$name.wall"
  echo "== $name done"
}

run tensorboard-only
run mlflow-responsive --mlflow-uri "http://127.0.0.1:$(cat "$out/rest.port")" \
  --mlflow-wait "$wait_seconds"
run mlflow-silent --mlflow-uri "http://127.0.0.1:$(cat "$out/silent.port")" \
  --mlflow-wait "$wait_seconds"
run mlflow-file-store --mlflow-uri "file:$out/mlruns" --mlflow-wait "$wait_seconds"
run tensorboard-only-again

names=(tensorboard-only mlflow-responsive mlflow-silent mlflow-file-store tensorboard-only-again)
/usr/bin/python3 - "$out" "${names[@]}" <<'EOF'
import json, sys
out = sys.argv[1]
names = sys.argv[2:]
rows = {}
for name in names:
    epochs = json.load(open(f"{out}/{name}/metrics.json"))
    # The first epoch pays for start-up work (allocations, caches): left out of the mean.
    seconds = [e["seconds"] for e in epochs[1:]]
    start, end = map(float, open(f"{out}/{name}.wall").read().split())
    rows[name] = (sum(seconds) / len(seconds), end - start)
base_epoch = (rows[names[0]][0] + rows[names[-1]][0]) / 2
base_wall = (rows[names[0]][1] + rows[names[-1]][1]) / 2
print(f"{'run':24} {'epoch s':>8} {'vs TB only':>10} {'wall s':>8} {'vs TB only':>10}")
for name in names:
    epoch, wall = rows[name]
    print(f"{name:24} {epoch:8.3f} {epoch - base_epoch:+10.3f} {wall:8.2f} {wall - base_wall:+10.2f}")
EOF

# 100 run folders: each of the five runs' records 20 times.
mkdir -p "$out/hundred"
for copy in $(seq 20); do
  for name in "${names[@]}"; do
    mkdir -p "$out/hundred/$name-$copy"
    cp "$out/$name"/{config.json,metrics.json,status.json} "$out/hundred/$name-$copy/"
  done
done
# median_seconds COMMAND...: the median wall time of 5 runs of the command.
median_seconds() {
  for _ in 1 2 3 4 5; do
    local start end
    start=$(date +%s.%N)
    "$@" >/dev/null
    end=$(date +%s.%N)
    awk "BEGIN { printf \"%.3f\\n\", $end - $start }"
  done | sort -n | sed -n 3p
}
rows=$("$bin" runs list "$out/hundred" | tail -1)
echo "runs list over 100 run folders ($rows), median of 5:"
echo "  garmentnet        $(median_seconds "$bin" runs list "$out/hundred") s"
echo "  garmentnet-torch  $(median_seconds "$(dirname "$bin")/garmentnet-torch" runs list "$out/hundred") s"
