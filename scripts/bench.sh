#!/usr/bin/env bash
# Benchmarks the built-in model architectures on this machine and regenerates docs/benchmarks.md.
# Usage: scripts/bench.sh [BUILD_DIR]   (`make bench` passes build/)
# Trains tiny models once (weights do not change speed) under runs/bench/, reuses them after.
# Environment: BENCH_SECONDS (time per measurement, default 1), BENCH_224=1 also measures
# mobilenet_v2 at 224 px and both it and resnet18 in int8 at 224 px (slow: several minutes on 2
# cores). Also measures int8 against fp32 (`quantize`, then `bench --compare`) and training
# throughput per backbone (bench/train_step_bench).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
bin=$build/garmentnet
out=runs/bench
seconds=${BENCH_SECONDS:-1}
mkdir -p "$out"

if [[ ! -f $out/garments/data.parquet ]]; then
  "$bin" make-dataset fashion-mnist --out "$out/garments" --variants target \
    --train-size 300 --test-size 50 --image-size 64
fi

# model NAME ARCHITECTURE SIDE: a one-epoch model (speed does not depend on the weights).
model() {
  local name=$1 architecture=$2 side=$3
  if [[ ! -f $out/$name/model.gnm ]]; then
    "$bin" train --data "$out/garments" --out "$out/$name" --backbone "$architecture" \
      --transfer scratch --epochs 1 --image-size "$side" --no-report >/dev/null
  fi
  echo "$out/$name/model.gnm"
}

runs=()
bench() {  # bench NAME MODEL [extra flags]: garmentnet's passive OpenMP waiting, then spinning
  local name=$1 model_file=$2
  shift 2
  echo "== $name"
  "$bin" bench --model "$model_file" --seconds "$seconds" --json "$out/$name.json" "$@"
  echo "== $name, OMP_WAIT_POLICY=ACTIVE"
  OMP_WAIT_POLICY=ACTIVE "$bin" bench --model "$model_file" --seconds "$seconds" --quick \
    --json "$out/$name-active.json" "$@"
  runs+=("$name")
}

bench small_cnn-64 "$(model small_cnn-64 small_cnn 64)"
bench mobilenet_v2-64 "$(model mobilenet_v2-64 mobilenet_v2 64)"
if [[ ${BENCH_224:-0} == 1 ]]; then
  bench mobilenet_v2-224 "$(model mobilenet_v2-224 mobilenet_v2 224)" --batch-sizes 1,8,32 \
    --end-to-end-batch 32
fi

# int8 NAME [extra flags]: NAME's model quantized (docs/quantization.md) and benchmarked beside its
# fp32 source in one run (`bench --compare`); its figures go in docs/benchmarks.md's int8 table.
int8_runs=()
int8() {
  local name=$1
  shift
  local fp32=$out/$name/model.gnm int8=$out/$name/int8.gnm
  if [[ ! -f $int8 ]]; then
    # --force: these one-epoch models are not accurate enough for the accuracy check to mean much.
    "$bin" quantize --model "$fp32" --calibration "$out/garments" --out "$int8" \
      --calibration-images 64 --validation-rows 200 --force >/dev/null
  fi
  echo "== $name, int8 against fp32"
  "$bin" bench --model "$int8" --compare "$fp32" --quick --seconds "$seconds" \
    --json "$out/$name-int8.json" "$@"
  int8_runs+=("$name")
}

int8 small_cnn-64
int8 mobilenet_v2-64
if [[ ${BENCH_224:-0} == 1 ]]; then
  model resnet18-224 resnet18 224 >/dev/null
  for name in mobilenet_v2-224 resnet18-224; do
    int8 "$name" --batch-sizes 1,8,32 --end-to-end-batch 32
  done
fi

# Training throughput: one optimisation step per backbone at 64 and 224 px (a few minutes).
echo "== training steps"
"$build/bench/train_step_bench" --benchmark_out="$out/train_step.json" --benchmark_out_format=json

python3 scripts/benchmarks_md.py "$out" "${runs[@]}" --int8 "${int8_runs[@]}" \
  > docs/benchmarks.md.tmp
mv docs/benchmarks.md.tmp docs/benchmarks.md
echo "wrote docs/benchmarks.md"
