#!/usr/bin/env bash
# Browser test of the web page: builds a tiny model, starts `garmentnet serve` on a free port,
# drives the page in headless Debian chromium with playwright-core (tests/browser/page_test.mjs)
# and leaves a screenshot in OUT_DIR. Usage: scripts/browser-test.sh [garmentnet binary] [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(realpath "${1:-build/garmentnet}")
out=$(realpath -m "${2:-build/browser}")
mkdir -p "$out"
[[ -x /usr/bin/chromium ]] || { echo "browser-test: /usr/bin/chromium missing (Debian package chromium)" >&2; exit 1; }
if [[ ! -d tests/browser/node_modules/playwright-core ]]; then
  (cd tests/browser && npm install --no-audit --no-fund --silent)
fi

work=$(mktemp -d)
server=""
cleanup() {
  if [[ -n $server ]] && kill -0 "$server" 2>/dev/null; then
    kill -TERM "$server"
    wait "$server" || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

"$bin" make-dataset fashion-mnist --out "$work/data" --train-size 300 --test-size 10 --image-size 96 \
  --variants target >/dev/null 2>&1
"$bin" train --data "$work/data" --out "$work/run" --epochs 2 --image-size 32 --no-report >/dev/null 2>&1
"$bin" serve --model "$work/run/model.gnm" --port 0 >"$work/serve.log" 2>&1 &
server=$!
port=""
for _ in $(seq 100); do
  port=$(grep -oP 'http://127\.0\.0\.1:\K[0-9]+' "$work/serve.log" || true)
  [[ -n $port ]] && break
  sleep 0.1
done
[[ -n $port ]] || { cat "$work/serve.log" >&2; exit 1; }
images=("$work/data/images"/*.jpeg)  # not `ls | head`: under pipefail its SIGPIPE fails the script
node tests/browser/page_test.mjs "http://127.0.0.1:$port" "${images[0]}" "$out/screenshot.png"
