#!/usr/bin/env bash
# Trials per hour of `garmentnet tune` against the naive loop (a new `garmentnet train` process per
# trial and fold, as a shell loop over options would do), for the same trials: the options `tune`
# drew are replayed by the loop with `train --config` and `--folds/--fold`. Measured twice: a
# frozen pretrained backbone (tune computes its features once for the whole study) and fine-tuning.
# Usage: scripts/bench-tune.sh [BUILD_DIR]   (`make bench-tune` passes build/)
# Environment: BENCH_TRIALS (default 4), BENCH_EPOCHS (default 3), BENCH_FOLDS (default 3),
# BENCH_REDUCTION (tune's --reduction-factor, default 0: no pruning; the naive loop cannot prune, so
# it trains every trial whole).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
bin=$(realpath "$build/garmentnet")
trials=${BENCH_TRIALS:-4}
epochs=${BENCH_EPOCHS:-3}
folds=${BENCH_FOLDS:-3}
reduction=${BENCH_REDUCTION:-0}
out=runs/bench-tune
rm -rf "$out"
mkdir -p "$out"

"$bin" make-dataset fashion-mnist --out "$out/garments" --variants target,source \
  --train-size 1500 --source-size 1500 --test-size 50 --image-size 64 >/dev/null
"$bin" pretrain --data "$out/garments/source" --out "$out/pretrain" --epochs 1 --no-report \
  --threads 2 >"$out/pretrain.log" 2>&1

# measure NAME TRANSFER: the study, then the same trials as one process per fold.
measure() {
  local name=$1 transfer=$2
  local study=$out/$name
  local start end
  start=$(date +%s.%N)
  "$bin" tune --data "$out/garments" --out "$study" --trials "$trials" --folds "$folds" \
    --reduction-factor "$reduction" --threads 2 --fix "epochs=$epochs" --fix "transfer=$transfer" \
    --fix "backbone=$out/pretrain/backbone.pt" >"$study.log" 2>&1
  end=$(date +%s.%N)
  echo "$start $end" >"$study.tune-wall"
  start=$(date +%s.%N)
  for trial in $(seq -f %03g "$trials"); do
    # The trial's options, as `tune` drew them, over the same base options.
    /usr/bin/python3 - "$study" "$trial" >"$study/naive-$trial.json" <<'EOF'
import json, sys
study = json.load(open(f"{sys.argv[1]}/study.json"))
trial = study["trials"][int(sys.argv[2]) - 1]
base = {k: v for k, v in study["settings"]["base"].items() if v != ""}
for key in ("data", "out", "validation", "augmentation", "folds", "fold"):
    base.pop(key, None)
base.update(trial["config"])
print(json.dumps(base))
EOF
    for fold in $(seq 0 $((folds - 1))); do
      "$bin" train --data "$out/garments" --out "$study/naive/$trial-$fold" \
        --config "$study/naive-$trial.json" --folds "$folds" --fold "$fold" --no-report \
        --threads 2 >>"$study.naive.log" 2>&1
    done
  done
  end=$(date +%s.%N)
  echo "$start $end" >"$study.naive-wall"
  echo "== $name done"
}

measure frozen frozen
measure finetune finetune

/usr/bin/python3 - "$out" "$trials" <<'EOF'
import sys
out, trials = sys.argv[1], int(sys.argv[2])
def wall(file):
    start, end = map(float, open(file).read().split())
    return end - start
print(f"{'transfer':10} {'tune s':>8} {'naive s':>8} {'tune trials/h':>14} {'naive trials/h':>15} {'ratio':>6}")
for name in ("frozen", "finetune"):
    tune, naive = wall(f"{out}/{name}.tune-wall"), wall(f"{out}/{name}.naive-wall")
    print(f"{name:10} {tune:8.1f} {naive:8.1f} {trials * 3600 / tune:14.1f} "
          f"{trials * 3600 / naive:15.1f} {naive / tune:6.2f}")
EOF
