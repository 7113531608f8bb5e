#!/usr/bin/env bash
# The whole mlcycle pipeline on the sample dataset shipped in the package.
# Usage: scripts/demo.sh [MLCYCLE] [OUT_DIR]
set -euo pipefail
MLCYCLE="${1:-mlcycle}"
OUT="${2:-demo-out}"
SAMPLE="$(cd "$(dirname "$0")/.." && pwd)/mlcycle/data/sample"
mkdir -p "$OUT"
step() { if [ -t 2 ]; then printf '\n\033[1m$ %s\033[0m\n' "$*" >&2; else printf '\n$ %s\n' "$*" >&2; fi; }

step mlcycle ingest coco instances_train.json --split train
"$MLCYCLE" ingest coco "$SAMPLE/annotations/instances_train.json" --split train --images-root "$SAMPLE" -o "$OUT/train.parquet"
step mlcycle ingest coco instances_val.json --split val
"$MLCYCLE" ingest coco "$SAMPLE/annotations/instances_val.json" --split val --images-root "$SAMPLE" -o "$OUT/gt.parquet"
step mlcycle ingest coco-results detections_val.json --images gt.parquet --source detector
"$MLCYCLE" ingest coco-results "$SAMPLE/predictions/detections_val.json" --images "$OUT/gt.parquet" --source detector --split val -o "$OUT/preds.parquet"

if "$MLCYCLE" schema-check --help >/dev/null 2>&1; then
  step mlcycle schema-check -s schema.yaml train.parquet gt.parquet
  "$MLCYCLE" schema-check -s "$SAMPLE/schema.yaml" "$OUT/train.parquet" "$OUT/gt.parquet" --annotate -o "$OUT/checked.parquet" || true
fi
if "$MLCYCLE" stats --help >/dev/null 2>&1; then
  step mlcycle stats train.parquet gt.parquet --compare split
  "$MLCYCLE" stats "$OUT/train.parquet" "$OUT/gt.parquet" --compare split --json --plot "$OUT/charts" > "$OUT/stats.json"
  "$MLCYCLE" stats "$OUT/train.parquet" "$OUT/gt.parquet" --compare split || true
fi
if "$MLCYCLE" evaluate --help >/dev/null 2>&1; then
  step mlcycle evaluate gt.parquet preds.parquet --metrics metrics.json -o evaluated.parquet
  "$MLCYCLE" evaluate "$OUT/gt.parquet" "$OUT/preds.parquet" --metrics "$OUT/metrics.json" -o "$OUT/evaluated.parquet"
  if "$MLCYCLE" mine-hard --help >/dev/null 2>&1; then
    step mlcycle mine-hard evaluated.parquet --top 10
    "$MLCYCLE" mine-hard "$OUT/evaluated.parquet" --top 10 -o "$OUT/hard.parquet"
  fi
fi
step mlcycle export coco gt.parquet
"$MLCYCLE" export coco "$OUT/gt.parquet" -o "$OUT/instances_val.roundtrip.json"
"$MLCYCLE" export coco-results "$OUT/preds.parquet" -o "$OUT/detections_val.roundtrip.json"
if "$MLCYCLE" export html --help >/dev/null 2>&1 && [ -f "$OUT/evaluated.parquet" ]; then
  step mlcycle export html evaluated.parquet -o report/ --metrics metrics.json
  "$MLCYCLE" export html "$OUT/evaluated.parquet" -o "$OUT/report" --images-root "$SAMPLE" --metrics "$OUT/metrics.json"
  echo "report: $(cd "$OUT/report" && pwd)/index.html" >&2
fi
echo "demo outputs in $OUT/" >&2
