"""Time `schema.find_violations` and `mlcycle schema-check` on a large label table, every rule on.

Generates a label table (default 1,000,000 ground-truth labels on 125,000 images, plus
100,000 predictions) with 20 classes and five attributes (bool, float, enum, string with a
pattern, int), injects a few hundred mistakes of every kind, and checks it against a
schema that enables every rule (all at severity warning, so the process exits 0).

Prints: the in-process time of ``schema.find_violations`` (median of --repeat) and of building the
annotated table, then the whole `mlcycle schema-check --annotate --report` process (wall
time and peak memory) at 1/4, 1/2 and the full size, to show memory grows linearly.

    python benchmarks/bench_schema.py                  # 1M labels
    python benchmarks/bench_schema.py --labels 200000  # quicker
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mlcycle import io  # noqa: E402
from mlcycle import schema as S  # noqa: E402
from mlcycle import table as T  # noqa: E402

CLASSES = [f"class_{i:02d}" for i in range(20)]

SCHEMA = """\
version: 1
classes:
%s
attributes:
  occluded: {type: bool, required: true}
  truncation: {type: float, min: 0, max: 1, required: [class_00, class_01], classes: [class_00, class_01, class_02]}
  pose: {type: enum, values: [front, back, left, right]}
  plate: {type: string, pattern: '[A-Z]{2}[0-9]{3}'}
  count: {type: int, min: 0, max: 9}
boxes:
  required: true
  inside_image: true
  tolerance: 0.5
  min_width: 2
  min_height: 2
  min_relative_width: 0.002
  min_relative_height: 0.002
  max_aspect_ratio: 12
  classes:
    class_03: {min_width: 4, max_aspect_ratio: 6}
samples:
  required_columns: [split, width, height]
  allowed_values: {split: [train, val, test]}
  min_labels: 2
  max_labels: 40
  allow_empty: false
dataset:
  min_examples: 100
  min_examples_per_split: %d
  max_imbalance: 1.01
  duplicate_iou: 0.9
  unique_label_ids: true
  split_overlap: true
predictions: {score_required: true, classes_known: true}
severity:
%s
"""


def schema_text(n_labels: int) -> str:
    classes = "\n".join(f"  - {{name: {c}, id: {i + 1}, synonyms: [alias_{i}]"
                        + (", min_examples: 1000000000" if i == len(CLASSES) - 1 else "") + "}"
                        for i, c in enumerate(CLASSES))   # the last class: dataset.min-examples
    severity = "\n".join(f"  {r}: warning" for r in S.RULES)
    return SCHEMA % (classes, max(10, n_labels // 150), severity)


def make_table(n_labels: int, n_preds: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    n_images = max(1, n_labels // 8)
    img = np.sort(rng.integers(0, n_images, n_labels))
    W = rng.choice([640, 480, 1280], n_images)[img]
    H = rng.choice([480, 360, 720], n_images)[img]
    cls = rng.integers(0, len(CLASSES), n_labels)
    w = rng.uniform(5, 200, n_labels)
    h = rng.uniform(5, 200, n_labels)
    x = rng.uniform(0, 1, n_labels) * (W - w)
    y = rng.uniform(0, 1, n_labels) * (H - h)
    boxes = np.stack([x, y, w, h], axis=1)
    split_of_image = rng.choice(np.array(["train", "val", "test"]), n_images, p=[0.8, 0.1, 0.1])
    labels = np.array(CLASSES, dtype=object)[cls]
    trunc = np.where(cls < 3, rng.uniform(0, 1, n_labels), np.nan)
    plates = np.char.add("AB", rng.integers(100, 999, n_labels).astype(str)).astype(object)
    poses = np.array(["front", "back", "left", "right"], dtype=object)[rng.integers(0, 4, n_labels)]
    count = rng.integers(0, 10, n_labels).astype(float)
    occluded = rng.random(n_labels) < 0.3
    split = split_of_image[img].astype(object)
    # a few hundred mistakes of every kind
    k = max(1, n_labels // 5000)
    pick = lambda: rng.choice(n_labels, k, replace=False)  # noqa: E731
    labels[pick()] = "unknown_class"
    labels[pick()] = "alias_5"
    boxes[pick(), 0] = -20.0
    boxes[pick(), 2] = 0.0
    boxes[pick(), 3] = 1.0
    boxes[pick(), 1] = np.nan
    trunc[pick()] = 1.5
    plates[pick()] = "ab-1"
    poses[pick()] = "upside"
    count[pick()] = 12
    count[pick()] = 2.5                          # attr.type (int)
    extra = np.full(n_labels, None, dtype=object)
    extra[pick()] = "x"                          # attr.unknown
    occ_null = np.zeros(n_labels, bool)
    occ_null[pick()] = True                      # attr.missing
    boxes[pick()] = np.nan                       # box.missing (null box)
    size_null = np.zeros(n_labels, bool)
    size_null[pick()] = True                     # box.no-image-size
    split[pick()] = None                         # sample.missing-value
    split[pick()] = "holdout"                    # sample.value
    split[pick()] = "val"                        # dataset.split-overlap (mixed splits in an image)
    img[:45] = img[0]                            # sample.too-many-labels
    dup = pick()
    dup = dup[dup > 0]
    boxes[dup] = boxes[dup - 1]
    labels[dup] = labels[dup - 1]
    img[dup] = img[dup - 1]
    sample = np.char.add("images/", img.astype(str)).astype(object)
    import pyarrow as pa

    label_ids = np.arange(n_labels)
    label_ids[pick()] = 7                        # dataset.duplicate-label-id
    cols = {
        T.SAMPLE_ID: sample, T.SOURCE: np.full(n_labels, "gt", dtype=object),
        T.LABEL_ID: label_ids, T.LABEL: labels, T.CATEGORY_ID: cls + 1,
        T.BBOX: boxes,
        T.WIDTH: pa.array(W, pa.int32(), mask=size_null), T.HEIGHT: pa.array(H, pa.int32(), mask=size_null),
        T.SPLIT: split, "occluded": pa.array(occluded, mask=occ_null), "truncation": pa.array(trunc),
        "pose": pa.array(poses), "plate": pa.array(plates), "count": pa.array(count), "extra": pa.array(extra, pa.string()),
    }
    table = T.from_columns(cols)
    # empty samples (sample.empty) and one-label samples (sample.too-few-labels)
    n_extra = k
    empties = T.from_columns({
        T.SAMPLE_ID: [f"empty/{i}" for i in range(n_extra)] + [f"single/{i}" for i in range(n_extra)],
        T.SOURCE: ["gt"] * (2 * n_extra), T.LABEL: [None] * n_extra + ["class_00"] * n_extra,
        T.LABEL_ID: [None] * n_extra + list(range(n_labels, n_labels + n_extra)),
        T.BBOX: np.array([[np.nan] * 4] * n_extra + [[1, 1, 10, 10]] * n_extra),
        T.WIDTH: [640] * (2 * n_extra), T.HEIGHT: [480] * (2 * n_extra), T.SPLIT: ["train"] * (2 * n_extra),
        "occluded": [None] * n_extra + [False] * n_extra,
    })
    table = io.concat([table, empties])
    if n_preds:
        pi = rng.integers(0, n_labels, n_preds)
        score = rng.uniform(0, 1, n_preds)
        score[rng.choice(n_preds, k, replace=False)] = 1.5        # pred.score-range
        no_score = np.zeros(n_preds, bool)
        no_score[rng.choice(n_preds, k, replace=False)] = True    # pred.score-missing
        pl = labels[pi].copy()
        pl[rng.choice(n_preds, k, replace=False)] = "made_up"     # pred.class-unknown
        pb = boxes[pi] + 1.0
        pb[rng.choice(n_preds, k, replace=False), 2] = -1.0       # pred.box-invalid
        preds = T.from_columns({
            T.SAMPLE_ID: sample[pi], T.SOURCE: np.full(n_preds, "pred", dtype=object),
            T.LABEL_ID: np.arange(n_preds), T.LABEL: pl, T.BBOX: pb,
            T.SCORE: pa.array(score, mask=no_score),
        })
        table = io.concat([table, preds])
    return table


def _run_from_small_parent(cmd: list[str]) -> tuple[float, float]:
    """``_measure.run`` from a fresh small interpreter: a child forked from this process
    (which holds the generated table) would start with its resident pages counted in
    ``ru_maxrss``."""
    import json
    import subprocess

    here = str(Path(__file__).resolve().parent)
    code = ("import json, sys; sys.path.insert(0, sys.argv[1]); from _measure import run; "
            "print(json.dumps(run(json.loads(sys.argv[2]))))")
    out = subprocess.run([sys.executable, "-c", code, here, json.dumps(cmd)], capture_output=True, text=True, check=True)
    secs, mb = json.loads(out.stdout)
    return secs, mb


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--labels", type=int, default=1_000_000)
    ap.add_argument("--preds", type=int, default=None, help="predictions (default: labels / 10)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-process", action="store_true", help="skip the whole-process runs")
    args = ap.parse_args()
    preds = args.labels // 10 if args.preds is None else args.preds
    spec = S.loads(schema_text(args.labels), "bench.yaml")
    assert all(spec.severity_of(r) != S.OFF for r in S.RULES)

    t0 = time.perf_counter()
    table = make_table(args.labels, preds)
    print(f"generated {table.num_rows:,} rows ({args.labels:,} labels + {preds:,} predictions) "
          f"in {time.perf_counter() - t0:.1f} s")
    times, result = [], None
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        result = S.find_violations(table, spec)
        times.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    annotated = result.apply(table, annotate=True)
    t_ann = time.perf_counter() - t0
    fired = sorted({r for r in result.violations.column("rule").to_pylist()})
    print(f"schema.find_violations: {statistics.median(times):.2f} s median of {args.repeat} "
          f"({result.violations.num_rows:,} violations, {len(fired)} of {len(S.RULES)} rules fired)")
    print(f"annotate ({annotated.num_rows:,} rows): {t_ann:.2f} s")
    missing = sorted(set(S.RULES) - set(fired))
    if missing:
        print(f"rules that found nothing: {', '.join(missing)}")
    if args.no_process:
        return
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "schema.yaml").write_text(schema_text(args.labels))
        for frac in (4, 2, 1):
            n = args.labels // frac
            path = tmp / f"labels_{n}.parquet"
            io.write_table(table if frac == 1 else make_table(n, preds // frac), path)
            cmd = [sys.executable, "-m", "mlcycle", "schema-check", "-q", "-s", str(tmp / "schema.yaml"), str(path),
                   "--annotate", "-o", str(tmp / "out.parquet"), "--report", str(tmp / "report.parquet")]
            secs, mb = _run_from_small_parent(cmd)
            print(f"mlcycle schema-check --annotate --report, {n:>9,} labels (Parquet in and out): "
                  f"{secs:.2f} s, peak {mb:.0f} MB")


if __name__ == "__main__":
    main()
