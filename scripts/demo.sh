#!/usr/bin/env bash
# The main job end to end on the built-in dataset: make-dataset → explore → pretrain → train.
# Usage: scripts/demo.sh [path/to/garmentnet]. Everything goes under demo/ (git-ignored).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-build/garmentnet}
out=demo
start=$(date +%s)
step() { printf '\n== %s\n' "$*"; }

step "1/4 built-in dataset (Fashion-MNIST laid out like the garment data)"
if [[ ! -f $out/garments/data.parquet ]]; then
  "$bin" make-dataset fashion-mnist --out "$out/garments"
else
  echo "reusing $out/garments"
fi

step "2/4 data exploration"
"$bin" explore --data "$out/garments" --out "$out/explore"

step "3/4 pretraining a backbone on the source split (other Fashion-MNIST classes)"
rm -rf "$out/pretrain"
"$bin" pretrain --data "$out/garments/source" --out "$out/pretrain" --epochs 6

step "4/4 training the two-head model on the target split, fine-tuning the pretrained backbone"
rm -rf "$out/train"
"$bin" train --data "$out/garments" --backbone "$out/pretrain/backbone.pt" --transfer finetune \
  --out "$out/train" --epochs 8

cat <<TXT

Demo finished in $(( $(date +%s) - start )) s.
  data report:     $out/explore/report.html
  pretraining:     $out/pretrain/report.html
  training report: $out/train/report.html
  model:           $out/train/model.gnm

Serve it (web page at http://127.0.0.1:8501/, Ctrl-C stops it; see docs/serving.md):
  $bin serve --model $out/train/model.gnm --port 8501
TXT
