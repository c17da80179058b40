#!/usr/bin/env bash
# The main job end to end on the built-in dataset:
# make-dataset → explore → pretrain → train → predict → evaluate.
# Usage: scripts/demo.sh [path/to/garmentnet]. Everything goes under demo/ (git-ignored).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-build/garmentnet}
out=demo
start=$(date +%s)
step() { printf '\n== %s\n' "$*"; }

step "1/6 built-in dataset (Fashion-MNIST laid out like the garment data)"
if [[ ! -f $out/garments/data.parquet ]]; then
  "$bin" make-dataset fashion-mnist --out "$out/garments"
else
  echo "reusing $out/garments"
fi

step "2/6 data exploration"
"$bin" explore --data "$out/garments" --out "$out/explore"

step "3/6 pretraining a backbone on the source split (other Fashion-MNIST classes)"
rm -rf "$out/pretrain"
"$bin" pretrain --data "$out/garments/source" --out "$out/pretrain" --epochs 6

step "4/6 training the two-head model on the target split, fine-tuning the pretrained backbone"
rm -rf "$out/train"
"$bin" train --data "$out/garments" --backbone "$out/pretrain/backbone.pt" --transfer finetune \
  --out "$out/train" --epochs 8

step "5/6 batch prediction of the test split (test.parquet → predictions.parquet)"
"$bin" predict --model "$out/train/model.gnm" --input "$out/garments/test.parquet" \
  --images "$out/garments/images" --output "$out/predictions.parquet" | tee "$out/predict.log"

step "6/6 evaluation on the labelled test split"
rm -rf "$out/evaluation"
"$bin" evaluate --model "$out/train/model.gnm" --labels "$out/garments/test_labels.parquet" \
  --images "$out/garments/images" --out "$out/evaluation"

headline=$(/usr/bin/python3 - "$out/evaluation/evaluation.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))["summary"]
print(f"top-1 {100 * s['top1_accuracy']:.1f}%, top-2 {100 * s['top2_accuracy']:.1f}%, "
      f"tag macro F1 {s['tags_macro_f1']:.3f}, evaluate {s['images_per_second']:.0f} images/s")
PY
)
predict_speed=$(grep -o '[0-9.]* images/s' "$out/predict.log" | tail -1)

cat <<TXT

Demo finished in $(( $(date +%s) - start )) s.
  data report:     $out/explore/report.html
  pretraining:     $out/pretrain/report.html
  training report: $out/train/report.html
  model:           $out/train/model.gnm
  predictions:     $out/predictions.parquet (predict: $predict_speed)
  evaluation:      $out/evaluation/report.html
  test split:      $headline

Serve it (web page at http://127.0.0.1:8501/, Ctrl-C stops it; see docs/serving.md):
  $bin serve --model $out/train/model.gnm --port 8501
TXT
