#!/usr/bin/env bash
# Load benchmark of `garmentnet serve` with wrk: POST :predict with one base64 JPEG per request at
# concurrency 1, 8 and 32. Prints a Markdown table: throughput, p50/p99 latency, errors, the mean
# forward-pass time the server measured (from /metrics) and server RSS before/after.
# Usage: scripts/bench-serve.sh [garmentnet] [MODEL.gnm] [SECONDS per level]
# Without MODEL a small_cnn model is trained for 1 epoch on a tiny built-in dataset (64 px).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(realpath "${1:-build/garmentnet}")
model=${2:-}
seconds=${3:-10}
command -v wrk >/dev/null || { echo "bench-serve: wrk is missing (Debian package wrk)" >&2; exit 1; }
work=$(mktemp -d)
server=""
cleanup() {
  if [[ -n $server ]] && kill -0 "$server" 2>/dev/null; then kill -TERM "$server"; wait "$server" || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

"$bin" make-dataset fashion-mnist --out "$work/data" --train-size 300 --test-size 10 --image-size 96 \
  --variants target >/dev/null 2>&1
if [[ -z $model ]]; then
  "$bin" train --data "$work/data" --out "$work/run" --epochs 1 --image-size 64 --no-report >/dev/null 2>&1
  model=$work/run/model.gnm
fi
"$bin" serve --model "$model" --port 0 --max-batch-size 32 >"$work/serve.log" 2>&1 &
server=$!
port=""
for _ in $(seq 600); do
  port=$(grep -oP 'http://127\.0\.0\.1:\K[0-9]+' "$work/serve.log" || true)
  [[ -n $port ]] && break
  sleep 0.1
done
[[ -n $port ]] || { cat "$work/serve.log" >&2; exit 1; }
url="http://127.0.0.1:$port/v1/models/garments:predict"
python3 - "$(ls "$work/data/images"/*.jpeg | head -1)" >"$work/body.json" <<'PY'
import base64, json, sys
print(json.dumps({"instances": [{"b64": base64.b64encode(open(sys.argv[1], "rb").read()).decode()}]}))
PY
cat >"$work/post.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = io.open("$work/body.json", "rb"); wrk.body = f:read("*a"); f:close()
LUA
rss() { awk '/VmRSS/ {print $2}' "/proc/$server/status"; }
metric() { curl -s "http://127.0.0.1:$port/metrics" | awk -v name="$1" '$1 == name {print $2}'; }
curl -s -o /dev/null -d @"$work/body.json" "$url"  # one request so RSS includes the request path
rss_before=$(rss)
echo "model: $model ($(nproc) cores)"
echo
echo "| concurrency | requests/s | p50 ms | p99 ms | errors | mean forward ms | mean batch |"
echo "|---|---|---|---|---|---|---|"
total=0
for c in 1 8 32; do
  sum0=$(metric garmentnet_inference_duration_seconds_sum); n0=$(metric garmentnet_inference_duration_seconds_count)
  images0=$(metric garmentnet_batch_size_sum)
  wrk -t "$((c < 2 ? 1 : 2))" -c "$c" -d "${seconds}s" --latency -s "$work/post.lua" "$url" >"$work/wrk.txt"
  sum1=$(metric garmentnet_inference_duration_seconds_sum); n1=$(metric garmentnet_inference_duration_seconds_count)
  images1=$(metric garmentnet_batch_size_sum)
  python3 - "$work/wrk.txt" "$c" "$sum0" "$sum1" "$n0" "$n1" "$images0" "$images1" <<'PY'
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
print(f"| {c} | {rps:.0f} | {ms('50%'):.2f} | {ms('99%'):.2f} | {errors} | {1000 * (s1 - s0) / batches:.2f} | {(i1 - i0) / batches:.1f} |")
PY
done
rss_after=$(rss)
echo
echo "server RSS: $((rss_before / 1024)) MiB before, $((rss_after / 1024)) MiB after ($(metric 'garmentnet_http_requests_total{code="200",route="predict"}') requests answered)"
