#!/usr/bin/env bash
# The whole mlcycle loop on the sample dataset shipped in the package: ingest, curate
# (merge, remap, split, diff), check, describe, compare two models, mine the failures,
# export and look at them.
# Usage: scripts/demo.sh [MLCYCLE] [OUT_DIR]
set -euo pipefail
MLCYCLE="${1:-mlcycle}"
OUT="${2:-demo-out}"
SAMPLE="$(cd "$(dirname "$0")/.." && pwd)/mlcycle/data/sample"
mkdir -p "$OUT"
step() { if [ -t 2 ]; then printf '\n\033[1m$ %s\033[0m\n' "$*" >&2; else printf '\n$ %s\n' "$*" >&2; fi; }

# ---- ingest: ground truth of both splits, and two models' predictions on val
step mlcycle ingest coco instances_train.json --split train
"$MLCYCLE" ingest coco "$SAMPLE/annotations/instances_train.json" --split train --images-root "$SAMPLE" -o "$OUT/train.parquet"
step mlcycle ingest coco instances_val.json --split val
"$MLCYCLE" ingest coco "$SAMPLE/annotations/instances_val.json" --split val --images-root "$SAMPLE" -o "$OUT/gt.parquet"
step mlcycle ingest coco-results detections_val.json --images gt.parquet --source detector
"$MLCYCLE" ingest coco-results "$SAMPLE/predictions/detections_val.json" --images "$OUT/gt.parquet" --source detector --split val -o "$OUT/preds.parquet"
step mlcycle ingest coco-results detections_weak_val.json --images gt.parquet --source weak
"$MLCYCLE" ingest coco-results "$SAMPLE/predictions/detections_weak_val.json" --images "$OUT/gt.parquet" --source weak --split val -o "$OUT/weak.parquet"

# ---- check the ground truth against its schema (it finds the planted slips: exit 3)
step mlcycle schema-check -s schema.yaml train.parquet gt.parquet --annotate
"$MLCYCLE" schema-check -s "$SAMPLE/schema.yaml" "$OUT/train.parquet" "$OUT/gt.parquet" --annotate -o "$OUT/checked.parquet" || true

# ---- curate: one dataset, the synonym `disc` folded into `circle`, a fresh stratified split
step mlcycle merge train.parquet gt.parquet -o dataset.parquet
"$MLCYCLE" merge "$OUT/train.parquet" "$OUT/gt.parquet" -o "$OUT/dataset.parquet"
step mlcycle remap dataset.parquet --map disc=circle -o remapped.parquet
"$MLCYCLE" remap "$OUT/dataset.parquet" --map disc=circle -o "$OUT/remapped.parquet"
step mlcycle diff dataset.parquet remapped.parquet
"$MLCYCLE" diff "$OUT/dataset.parquet" "$OUT/remapped.parquet" -o "$OUT/changes.parquet"
step mlcycle split remapped.parquet --ratio train=0.7,val=0.3 --stratify label --seed 1
"$MLCYCLE" split "$OUT/remapped.parquet" --ratio train=0.7,val=0.3 --stratify label --seed 1 -o "$OUT/resplit.parquet"

# ---- describe: drift between the splits, as charts too
step mlcycle stats resplit.parquet --compare split
"$MLCYCLE" stats "$OUT/resplit.parquet" --compare split --json --plot "$OUT/charts" > "$OUT/stats.json"
"$MLCYCLE" stats "$OUT/resplit.parquet" --compare split || true

# ---- compare two models on val: one evaluation, both prediction sources, detector the baseline
step mlcycle evaluate gt.parquet preds.parquet weak.parquet --baseline detector --bootstrap 200 --metrics metrics.json -o evaluated.parquet
"$MLCYCLE" evaluate "$OUT/gt.parquet" "$OUT/preds.parquet" "$OUT/weak.parquet" --baseline detector --bootstrap 200 \
  --metrics "$OUT/metrics.json" -o "$OUT/evaluated.parquet"
step mlcycle stats evaluated.parquet --plot eval-charts   # ground truth and each model counted apart
"$MLCYCLE" stats "$OUT/evaluated.parquet" --json --plot "$OUT/eval-charts" -q > "$OUT/eval-stats.json"

# ---- mine the failures worth a look (the planted mistakes come first)
step mlcycle mine-hard evaluated.parquet --source detector --top 10
"$MLCYCLE" mine-hard "$OUT/evaluated.parquet" --source detector --top 10 -o "$OUT/hard.parquet"

# ---- export: back to COCO, and the HTML report with the two models side by side
step mlcycle export coco gt.parquet
"$MLCYCLE" export coco "$OUT/gt.parquet" -o "$OUT/instances_val.roundtrip.json"
"$MLCYCLE" export coco-results "$OUT/preds.parquet" -o "$OUT/detections_val.roundtrip.json"
step mlcycle export html evaluated.parquet -o report/ --metrics metrics.json
"$MLCYCLE" export html "$OUT/evaluated.parquet" -o "$OUT/report" --images-root "$SAMPLE" --metrics "$OUT/metrics.json"
echo "report: $(cd "$OUT/report" && pwd)/index.html" >&2
echo "demo outputs in $OUT/" >&2
