#!/usr/bin/env bash
# Data-parallel training on this machine's loopback (`make bench-distributed`): for each backbone,
# one epoch from scratch as 1 rank × 2 threads (batch 64) and as 2 ranks × 1 thread (batch 32
# each, the same effective batch), then prints a Markdown table: training images/s of both, step
# time split into compute and gradient averaging, and MB all-reduced per step; and the paper
# estimate of scaling efficiency to 4, 16 and 64 machines at 10 and 25 Gbit/s
# (scripts/scale_estimate.py). Figures for docs/scale-out.md.
# Usage: scripts/bench-distributed.sh [BUILD_DIR]
# Environment: BENCH_BACKBONES ["small_cnn mobilenet_v2 resnet18"], BENCH_IMAGE_SIZE [64],
#   BENCH_ROWS [512] training rows of the built-in dataset.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-build}/garmentnet
backbones=${BENCH_BACKBONES:-small_cnn mobilenet_v2 resnet18}
side=${BENCH_IMAGE_SIZE:-64}
rows=${BENCH_ROWS:-512}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$bin" make-dataset fashion-mnist --out "$work/data" --variants target --train-size "$rows" \
  --test-size 16 --image-size "$side" >/dev/null 2>&1
results=$work/results.jsonl
for backbone in $backbones; do
  common=(train --data "$work/data" --backbone "$backbone" --transfer scratch --epochs 1
          --image-size "$side" --augment none --no-report --validation-fraction 0.05)
  echo "bench-distributed: $backbone, 1 rank x 2 threads" >&2
  "$bin" "${common[@]}" --out "$work/$backbone-1" --batch-size 64 --threads 2 >/dev/null 2>&1
  echo "bench-distributed: $backbone, 2 ranks x 1 thread" >&2
  "$bin" "${common[@]}" --out "$work/$backbone-2" --batch-size 32 --threads 1 --nproc 2 \
    > "$work/$backbone-2.log" 2>&1
  /usr/bin/python3 - "$backbone" "$work" >> "$results" <<'PY'
import json, re, sys
backbone, work = sys.argv[1], sys.argv[2]
def epoch(run):
    return json.load(open(f"{work}/{run}/metrics.json"))[-1]
log = open(f"{work}/{backbone}-2.log").read()
m = re.search(r"rank 0: (\d+) steps, ([\d.]+) MB of gradients all-reduced per step, ([\d.]+) ms per step", log)
rows_line = re.search(r"each trains on (\d+) rows per epoch", log)
steps, mb, comm_ms = int(m.group(1)), float(m.group(2)), float(m.group(3))
one, two = epoch(f"{backbone}-1"), epoch(f"{backbone}-2")
rows = 2 * int(rows_line.group(1))
print(json.dumps({"backbone": backbone, "rows": rows,
                  "one_rank_images_per_s": rows / one["train_seconds"],
                  "two_ranks_images_per_s": rows / two["train_seconds"],
                  "step_ms": 1e3 * two["train_seconds"] / steps, "comm_ms": comm_ms, "mb": mb}))
PY
done
/usr/bin/python3 scripts/scale_estimate.py "$results" "$side"
