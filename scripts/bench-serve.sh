#!/usr/bin/env bash
# Load benchmark of `garmentnet serve` with wrk (run by `make bench-serve`). For each backbone it
# builds a model on the built-in dataset (accuracy is irrelevant here), serves it with the
# defaults and prints a Markdown section for docs/serving-benchmarks.md:
#   - POST :predict, one base64 JPEG per request (cycling through the test images), at
#     concurrency 1, 8, 32 and 64: throughput, p50/p99 latency, errors, and the mean forward pass
#     and batch size the server measured itself (/metrics) over the same interval;
#   - served throughput at concurrency 32 over `garmentnet bench`'s end-to-end predict figure for
#     the same model and images at the server's batch size, 32 (target >= 85 %);
#   - a fixed-count memory run: BENCH_REQUESTS requests after the levels above (the warm-up), the
#     server's RSS before and after (target: growth < 10 %);
#   - the batch-1 overhead: p50 latency at concurrency 1 minus the mean forward pass (target
#     < 2 ms).
# Usage: scripts/bench-serve.sh [path/to/garmentnet]
# Environment (defaults in brackets):
#   BENCH_BACKBONES   backbones to build a model for ["small_cnn"], e.g. "small_cnn mobilenet_v2"
#   BENCH_MODEL       measure these model files (space-separated, one after the other in this run,
#                     e.g. an fp32 model and its int8 copy) instead of building one per backbone
#   BENCH_SECONDS     seconds per concurrency level [10]
#   BENCH_REQUESTS    requests of the memory run [10000]
#   BENCH_LEVELS      concurrency levels ["1 8 32 64"]; 1 and 32 are needed for the figures
#   BENCH_IMAGE_SIZE  input side of the built models [64 for small_cnn, 224 for the others]
#   BENCH_BENCH_SECONDS  seconds per `garmentnet bench` measurement [3]
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(realpath "${1:-build/garmentnet}")
backbones=${BENCH_BACKBONES:-small_cnn}
seconds=${BENCH_SECONDS:-10}
requests=${BENCH_REQUESTS:-10000}
levels=${BENCH_LEVELS:-1 8 32 64}
bench_seconds=${BENCH_BENCH_SECONDS:-3}
for tool in wrk curl python3; do
  command -v "$tool" >/dev/null || { echo "bench-serve: $tool is missing (Debian package $tool)" >&2; exit 1; }
done
work=$(mktemp -d)
server=""
load=""
stop_process() {  # stop_process PID SIGNAL: signal our own child and reap it
  if [[ -n $1 ]] && kill -0 "$1" 2>/dev/null; then kill "-$2" "$1"; wait "$1" || true; fi
}
cleanup() {
  stop_process "$load" INT
  stop_process "$server" TERM
  rm -rf "$work"
}
trap cleanup EXIT
log() { echo "bench-serve: $*" >&2; }

log "building the test images"
"$bin" make-dataset fashion-mnist --out "$work/data" --train-size 200 --test-size 64 \
  --image-size 224 --variants target >/dev/null 2>&1
images=$work/images
mkdir -p "$images"
files=("$work/data/images"/*.jpeg)  # not `ls | head`: under pipefail its SIGPIPE fails the script
cp -t "$images" "${files[@]:0:64}"

# One request body per test image; the Lua script sends them in turn.
python3 - "$images" "$work/bodies.lua" <<'PY'
import base64, json, os, sys
folder, out = sys.argv[1], sys.argv[2]
with open(out, "w") as f:
    f.write("bodies = {\n")
    for name in sorted(os.listdir(folder)):
        b64 = base64.b64encode(open(os.path.join(folder, name), "rb").read()).decode()
        f.write("  %s,\n" % json.dumps(json.dumps({"instances": [{"b64": b64}]})))
    f.write("}\n")
PY
cat >"$work/post.lua" <<LUA
dofile("$work/bodies.lua")
local next_body = 0
request = function()
  next_body = next_body % #bodies + 1
  return wrk.format("POST", nil, {["Content-Type"] = "application/json"}, bodies[next_body])
end
LUA

input_size() {  # input_size BACKBONE
  if [[ -n ${BENCH_IMAGE_SIZE:-} ]]; then echo "$BENCH_IMAGE_SIZE"
  elif [[ $1 == small_cnn ]]; then echo 64
  else echo 224; fi
}

model_for() {  # model_for BACKBONE → prints the path of a freshly trained model
  local backbone=$1 size
  size=$(input_size "$backbone")
  log "training a $backbone model at $size px (1 epoch, frozen backbone)"
  "$bin" train --data "$work/data" --out "$work/run-$backbone" --backbone "$backbone" \
    --transfer frozen --epochs 1 --image-size "$size" --no-report >"$work/train-$backbone.log" 2>&1 ||
    { cat "$work/train-$backbone.log" >&2; exit 1; }
  echo "$work/run-$backbone/model.gnm"
}

rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$server/status"; }
metric() { curl -s "http://127.0.0.1:$port/metrics" | awk -v name="$1" '$1 == name {sum += $2} END {print sum + 0}'; }
answered() { metric 'garmentnet_http_requests_total{code="200",route="predict"}'; }

measure() {  # measure MODEL LABEL
  local model=$1 label=$2
  log "$label: garmentnet bench (end-to-end predict)"
  "$bin" bench --model "$model" --images "$images" --quick --seconds "$bench_seconds" \
    --end-to-end-batch 32 --latency-runs 20 --json "$work/bench.json" >"$work/bench.txt" 2>&1 ||
    { cat "$work/bench.txt" >&2; exit 1; }
  local bench_rate
  bench_rate=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["end_to_end_images_per_second"])' "$work/bench.json")

  "$bin" serve --model "$model" --port 0 >"$work/serve.log" 2>&1 &
  server=$!
  port=""
  for _ in $(seq 600); do
    port=$(grep -oP 'http://127\.0\.0\.1:\K[0-9]+' "$work/serve.log" || true)
    [[ -n $port ]] && break
    kill -0 "$server" 2>/dev/null || break
    sleep 0.1
  done
  [[ -n $port ]] || { cat "$work/serve.log" >&2; exit 1; }
  local url="http://127.0.0.1:$port/v1/models/garments:predict"
  local http_threads
  http_threads=$("$bin" serve --help | grep -oP -- '--http-threads INT=\K[0-9]+' || echo "?")
  log "$label: wrk at concurrency $levels, ${seconds} s each"

  echo "### $label"
  echo
  echo "$(nproc) cores; server defaults (--max-batch-size 32, --max-wait-us 2000, --http-threads $http_threads); one 224 px JPEG per request."
  echo
  echo "| concurrency | requests/s | p50 ms | p99 ms | errors | mean forward ms | mean batch |"
  echo "|---|---|---|---|---|---|---|"
  local c
  for c in $levels; do
    local s0 n0 i0 s1 n1 i1
    s0=$(metric garmentnet_inference_duration_seconds_sum); n0=$(metric garmentnet_inference_duration_seconds_count)
    i0=$(metric garmentnet_batch_size_sum)
    wrk -t "$((c < 2 ? 1 : 2))" -c "$c" -d "${seconds}s" --latency -s "$work/post.lua" "$url" >"$work/wrk-$c.txt"
    s1=$(metric garmentnet_inference_duration_seconds_sum); n1=$(metric garmentnet_inference_duration_seconds_count)
    i1=$(metric garmentnet_batch_size_sum)
    python3 - "$work/wrk-$c.txt" "$c" "$s0" "$s1" "$n0" "$n1" "$i0" "$i1" >>"$work/levels.txt" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
c, s0, s1, n0, n1, i0, i1 = sys.argv[2], *map(float, sys.argv[3:])
def ms(label):
    m = re.search(r"^\s*%s\s+([\d.]+)(us|ms|s)\b" % label, text, re.M)
    v = float(m.group(1)); return v / 1000 if m.group(2) == "us" else v * 1000 if m.group(2) == "s" else v
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
errors = sum(int(x) for x in re.findall(r"(?:connect|read|write|timeout) (\d+)", text))
m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
errors += int(m.group(1)) if m else 0
batches = max(n1 - n0, 1)
print(f"{c} {rps:.1f} {ms('50%'):.2f} {ms('99%'):.2f} {errors} {1000 * (s1 - s0) / batches:.2f} {(i1 - i0) / batches:.1f}")
PY
    tail -1 "$work/levels.txt" | awk '{printf "| %s | %.0f | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6, $7}'
  done

  # Fixed-count memory run: wrk cannot stop after N requests, so it runs until the server's own
  # counter shows N more answered requests and is then interrupted (it prints its summary).
  log "$label: memory run of $requests requests at concurrency 32"
  local rss_before rss_after start now stalled=0 last=-1
  rss_before=$(rss_kib)
  start=$(answered)
  wrk -t 2 -c 32 -d 1h -s "$work/post.lua" "$url" >"$work/wrk-rss.txt" &
  load=$!
  while now=$(answered); ((now - start < requests)); do
    if ((now == last)); then ((++stalled > 300)) && { log "no answers for 30 s; aborting the memory run"; break; }
    else stalled=0; last=$now; fi
    sleep 0.1
  done
  stop_process "$load" INT
  load=""
  now=$(answered)
  rss_after=$(rss_kib)
  local memory_errors
  memory_errors=$(awk '/Non-2xx or 3xx responses:/ {n += $NF} /Socket errors:/ {for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+,?$/) n += $i} END {print n + 0}' "$work/wrk-rss.txt")

  python3 - "$work/levels.txt" "$bench_rate" "$rss_before" "$rss_after" "$((now - start))" "$memory_errors" <<'PY'
import sys
rows = {int(r.split()[0]): r.split() for r in open(sys.argv[1]) if r.strip()}
bench_rate, rss_before, rss_after = float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
count, errors = int(sys.argv[5]), int(sys.argv[6])
print()
print("| figure | measured | target |")
print("|---|---|---|")
if 32 in rows:
    served = float(rows[32][1])
    ratio = served / bench_rate
    print(f"| served at concurrency 32 / `bench` end-to-end predict | {served:.0f} / {bench_rate:.0f} images/s = {100 * ratio:.0f} % | >= 85 % {'(met)' if ratio >= 0.85 else '(NOT met)'} |")
growth = 100 * (rss_after - rss_before) / rss_before
print(f"| server RSS over {count:,} requests after warm-up ({errors} errors) | {rss_before / 1024:.0f} -> {rss_after / 1024:.0f} MiB ({growth:+.1f} %) | < 10 % {'(met)' if growth < 10 else '(NOT met)'} |")
if 1 in rows:
    p50, forward = float(rows[1][2]), float(rows[1][5])
    overhead = p50 - forward
    print(f"| batch-1 overhead: p50 at concurrency 1 - mean forward | {p50:.2f} - {forward:.2f} = {overhead:.2f} ms | < 2 ms {'(met)' if overhead < 2 else '(NOT met)'} |")
PY
  echo
  rm -f "$work/levels.txt"
  stop_process "$server" TERM
  server=""
}

if [[ -n ${BENCH_MODEL:-} ]]; then
  for model in $BENCH_MODEL; do
    measure "$(realpath "$model")" "$model"
  done
else
  for backbone in $backbones; do
    model=$(model_for "$backbone")
    measure "$model" "$backbone, $(input_size "$backbone") px"
  done
fi
