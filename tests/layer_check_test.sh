#!/usr/bin/env bash
# cmake/check_layers.cmake passes on our sources and fails, naming file, include and rule, on a
# copy with an upward include or LibTorch in a torch-free layer. Usage: layer_check_test.sh REPO
set -euo pipefail
repo=$1
check=$repo/cmake/check_layers.cmake
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cmake -DSOURCE_DIR="$repo/src" -P "$check"

expect_refusal() {  # expect_refusal FILE LINE WORDS: the check fails and says WORDS
  rm -rf "$work/src" && cp -r "$repo/src" "$work/src"
  echo "$2" >>"$work/src/$1"
  if output=$(cmake -DSOURCE_DIR="$work/src" -P "$check" 2>&1); then
    echo "FAIL: '$2' in src/$1 passed the layer check"
    exit 1
  fi
  if [[ $output != *"$3"* ]]; then
    echo "FAIL: the refusal of '$2' in src/$1 does not say '$3':"
    echo "$output"
    exit 1
  fi
}
expect_refusal eval/metrics.cpp '#include "model/backbone.h"' \
  'src/eval/metrics.cpp: #include "model/backbone.h" (layer eval may include only core, data, eval)'
expect_refusal eval/metrics.h '#include <torch/types.h>' \
  'src/eval/metrics.h: #include <torch/types.h> (layer eval is free of LibTorch)'
expect_refusal infer/evaluate.cpp '#include "train/trainer.h"' \
  'layer infer may include only core, data, eval, model, infer'
expect_refusal data/table.h '#  include <ATen/core/Tensor.h>' 'layer data is free of LibTorch'
echo "layer check: refuses all four, passes our sources"
