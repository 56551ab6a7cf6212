#!/usr/bin/env bash
# The main demo on the real assets in ../shared/assets: set up, then export both trained teachers to
# ONNX with a parity check on real data, and show each artifact's lineage.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
ASSETS="${ASSETS:-../shared/assets}"
OUT="${DEMO_OUT:-demo-out}"
mkdir -p "$OUT"
. .venv/bin/activate
set -x
compress export-onnx "$ASSETS/teachers/minilm-l6-sst2" -o "$OUT/minilm-sst2-onnx" --force \
  --parity-data "$ASSETS/glue/SST-2/dev.tsv" --parity-samples 872
compress export-onnx "$ASSETS/teachers/gpt2-imdb" -o "$OUT/gpt2-imdb-onnx" --force \
  --parity-data "$ASSETS/wikitext-2-raw/wikitext2_raw_test_joined.txt" --parity-samples 128
compress inspect "$OUT/minilm-sst2-onnx"
compress inspect "$OUT/gpt2-imdb-onnx"
# The full chain on the SST-2 teacher: distill -> prune (+recovery) -> export-onnx -> int8 -> bench.
compress run pipelines/bert-sst2.yaml --out runs/bert-sst2 --resume
compress inspect runs/bert-sst2/pruned-int8
echo "plot: runs/bert-sst2/bench/report.png"
