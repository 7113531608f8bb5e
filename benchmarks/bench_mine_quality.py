"""Benchmark: `mine-hard` on a second planted-error generator, one the defaults were NOT tuned on.

    .venv/bin/python benchmarks/bench_mine_quality.py                     # 3 seeds x 3,000 images
    .venv/bin/python benchmarks/bench_mine_quality.py --images 1000 --seeds 0

benchmarks/bench_mine.py (the generator `--miss-weight` was chosen on) has 3 classes,
1-8 objects per image, one error in 6 % of the images (deleted / swapped / shifted) and a
detector with uniform 4 % box jitter, beta-distributed scores and low-score background
detections. This generator differs on every axis:

- **classes**: 10, in groups of look-alikes (car/truck/bus/van, bicycle/motorcycle,
  pedestrian/rider, cat/dog) with skewed frequencies (cars are common, cats rare);
- **density**: 1280x720 images, a negative-binomial object count (mean ~6, up to ~40;
  some images empty), sizes log-uniform from 10 to 400 px with per-class aspect ratios;
- **error mix**: one error in 8 % of the images, chosen among *missing* label (a real
  object's box deleted, 30 %), *wrong* label (25 %; 80 % of them to a look-alike class),
  *sloppy* box (20 %; edges moved, box grown or shrunk so that IoU with the object is
  0.35-0.65), *duplicate* label (10 %; a second box of the same class on the same object)
  and *spurious* label (15 %; a box of some class where there is no object);
- **detector noise**: detection probability and localisation noise depend on object size
  (small objects are often missed and noisily placed: edge noise std = 3 % + 0.8/sqrt(side)),
  scores come from a latent quality through an *over-confident* calibration
  (`sigmoid(z / 0.6)`), confusions go mostly to look-alike classes and often come with a
  second, lower-scored detection of the true class (class-wise NMS keeps both), duplicates
  of 5 % of detections, and Poisson(2.5) background false positives per image whose
  scores have a heavy tail (some confident hallucinations); detections below 0.05 dropped.

It ranks images with `evaluate | mine-hard --per sample` (rules, the default, and
`--method objectlab`), cleanlab's ObjectLab (cleanlab's own `get_label_quality_scores`,
images by ascending quality) and a FiftyOne-style mistakenness score (the
re-implementation in bench_mine.py: fiftyone-brain's formulas on a class-agnostic match at
IoU 0.5), and prints precision and recall at n and 2n (n = the number of planted errors =
the number of images with one) per seed and their mean.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

# class -> (group, relative frequency, aspect ratio w/h)
CLASSES = {
    "car": (0, 30, 1.6), "truck": (0, 6, 1.4), "bus": (0, 4, 1.8), "van": (0, 6, 1.3),
    "bicycle": (1, 5, 1.5), "motorcycle": (1, 4, 1.4),
    "pedestrian": (2, 25, 0.45), "rider": (2, 5, 0.55),
    "cat": (3, 2, 1.2), "dog": (3, 3, 1.3),
}
NAMES = tuple(CLASSES)
GROUP = [CLASSES[c][0] for c in NAMES]
FREQ = [CLASSES[c][1] for c in NAMES]
ASPECT = [CLASSES[c][2] for c in NAMES]
W_IMG, H_IMG = 1280.0, 720.0
ERROR_KINDS = ("missing", "wrong", "sloppy", "duplicate", "spurious")
ERROR_MIX = (0.30, 0.25, 0.20, 0.10, 0.15)


def _iou(a, b) -> float:
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def generate(n_img: int, seed: int = 0, plant_rate: float = 0.08):
    """(label table, {sample_id: kind of planted error}, {sample_id: (box [x,y,w,h], real class, annotated class)}).

    The box is the real object's for missing / wrong, the annotated box for sloppy /
    duplicate / spurious; the real class is None for spurious, the annotated class None
    for missing.

    Exactly one error per planted image; the table has gt rows (the corrupted annotation)
    and pred rows (the simulated detector, which sees the real objects).
    """
    import numpy as np

    from mlcycle import table as T

    rng = np.random.default_rng(seed)
    freq = np.array(FREQ, float) / sum(FREQ)
    k = len(NAMES)
    rows: list[tuple] = []
    planted: dict[str, str] = {}
    planted_box: dict[str, tuple] = {}
    gid = pid = 0

    def similar(c: int) -> int:
        mates = [j for j in range(k) if GROUP[j] == GROUP[c] and j != c]
        if mates and rng.random() < 0.8:
            return int(rng.choice(mates))
        return int(rng.choice([j for j in range(k) if j != c]))

    for i in range(n_img):
        s = f"frame{i:06d}.png"
        n_obj = int(rng.negative_binomial(2, 0.25)) if rng.random() > 0.04 else 0
        objs = []
        for _ in range(n_obj):
            c = int(rng.choice(k, p=freq))
            side = float(np.exp(rng.uniform(np.log(10), np.log(400))))
            ar = ASPECT[c] * float(np.exp(rng.normal(0, 0.15)))
            w, h = side * np.sqrt(ar), side / np.sqrt(ar)
            w, h = min(w, W_IMG - 2), min(h, H_IMG - 2)
            x, y = rng.random() * (W_IMG - w), rng.random() * (H_IMG - h)
            objs.append([float(x), float(y), float(w), float(h), c])
        kind = None
        if rng.random() < plant_rate:
            kind = str(rng.choice(ERROR_KINDS, p=ERROR_MIX))
            if kind in ("missing", "wrong", "sloppy", "duplicate") and not objs:
                kind = "spurious"   # needs an object; an empty image gets a spurious box
            planted[s] = kind
        victim = int(rng.integers(len(objs))) if kind not in (None, "spurious") else -1

        # ---- the annotation (with the planted error)
        gts = []
        for j, (x, y, w, h, c) in enumerate(objs):
            if j != victim:
                gts.append(([x, y, w, h], c))
                continue
            if kind == "missing":
                planted_box[s] = ([x, y, w, h], c, None)
            elif kind == "wrong":
                gts.append(([x, y, w, h], similar(c)))
                planted_box[s] = ([x, y, w, h], c, gts[-1][1])
            elif kind == "sloppy":
                for _ in range(100):
                    grow = rng.uniform(0.5, 1.9, 2)
                    nw, nh = w * grow[0], h * grow[1]
                    nx = x + (w - nw) * rng.uniform(0, 1) + rng.normal(0, 0.15) * w
                    ny = y + (h - nh) * rng.uniform(0, 1) + rng.normal(0, 0.15) * h
                    box = [nx, ny, nw, nh]
                    if 0.35 <= _iou(box, [x, y, w, h]) <= 0.65:
                        break
                gts.append((box, c))
                planted_box[s] = (box, c, c)
            elif kind == "duplicate":
                gts.append(([x, y, w, h], c))
                j4 = rng.normal(0, 0.04, 4) * [w, h, w, h]
                box = [x + j4[0], y + j4[1], w + j4[2], h + j4[3]]
                gts.append((box, c))
                planted_box[s] = (box, c, c)
        if kind == "spurious":
            for _ in range(100):
                side = float(np.exp(rng.uniform(np.log(20), np.log(300))))
                c = int(rng.choice(k, p=freq))
                w, h = side * np.sqrt(ASPECT[c]), side / np.sqrt(ASPECT[c])
                box = [float(rng.random() * (W_IMG - w)), float(rng.random() * (H_IMG - h)), w, h]
                if all(_iou(box, o[:4]) < 0.05 for o in objs):
                    break
            gts.append((box, c))
            planted_box[s] = (box, None, c)
        order = rng.permutation(len(gts))
        for j in order:
            box, c = gts[j]
            gid += 1
            rows.append((s, "gt", gid, NAMES[c], [float(v) for v in box], None))
        if not gts:
            rows.append((s, "gt", None, None, None, None))

        # ---- the detector (sees the real objects, never the annotation)
        def det(box, c, score):
            nonlocal pid
            if score < 0.05:
                return
            pid += 1
            rows.append((s, "pred", pid, NAMES[c], [float(v) for v in box], float(score)))

        for x, y, w, h, c in objs:
            side = np.sqrt(w * h)
            p_det = 0.97 / (1 + np.exp(-3.0 * (np.log(side) - np.log(18))))
            if rng.random() > p_det:
                continue
            sd = 0.03 + 0.8 / np.sqrt(side)
            x1, y1 = x + rng.normal(0, sd) * w, y + rng.normal(0, sd) * h
            x2, y2 = x + w + rng.normal(0, sd) * w, y + h + rng.normal(0, sd) * h
            box = [x1, y1, max(2.0, x2 - x1), max(2.0, y2 - y1)]
            z = 1.2 + 0.6 * (np.log(side) - np.log(40)) + rng.normal(0, 1.0)   # latent quality
            score = 1 / (1 + np.exp(-z / 0.6))                                   # over-confident
            r = rng.random()
            confuse = 0.10 if sum(g == GROUP[c] for g in GROUP) > 1 else 0.0
            if r < confuse + 0.01:
                wrong = similar(c) if r < confuse else int(rng.choice([j for j in range(k) if j != c]))
                det(box, wrong, score * rng.uniform(0.5, 0.95))
                if rng.random() < 0.4:
                    det(box, c, score * rng.uniform(0.2, 0.8))
            else:
                det(box, c, score)
                if GROUP.count(GROUP[c]) > 1 and rng.random() < 0.15:
                    det(box, similar(c), score * rng.uniform(0.05, 0.4))
            if rng.random() < 0.05:
                dj = rng.normal(0, 0.15, 4) * [w, h, w, h]
                det([box[0] + dj[0], box[1] + dj[1], max(2.0, box[2] + dj[2]), max(2.0, box[3] + dj[3])], c, score * rng.uniform(0.1, 0.6))
        for _ in range(int(rng.poisson(2.5))):
            side = float(np.exp(rng.uniform(np.log(10), np.log(200))))
            c = int(rng.choice(k, p=freq))
            w, h = side * np.sqrt(ASPECT[c]), side / np.sqrt(ASPECT[c])
            z = rng.normal(-2.5, 1.5)
            det([float(rng.random() * (W_IMG - w)), float(rng.random() * (H_IMG - h)), w, h], c, 1 / (1 + np.exp(-z)))

    cols = {c: [r[j] for r in rows] for j, c in enumerate(["sample_id", "source", "label_id", "label", "bbox", "score"])}
    return T.from_columns(cols), planted, planted_box


def to_cleanlab(table):
    """(image names, cleanlab labels, cleanlab predictions) from a label table: labels
    ``{'bboxes': L x 4 x1y1x2y2, 'labels': L}``, predictions a list over classes of
    ``M x 5`` ``[x1, y1, x2, y2, p]``; class index = position in NAMES."""
    import numpy as np

    from mlcycle import table as T

    samples = np.asarray(table.column(T.SAMPLE_ID).to_pylist(), dtype=object)
    sources = np.asarray(table.column(T.SOURCE).to_pylist(), dtype=object)
    labels = table.column(T.LABEL).to_pylist()
    cls = np.array([NAMES.index(x) if x is not None else -1 for x in labels])
    score = T.numpy_column(table, T.SCORE).astype(float)
    b = T.bboxes(table)
    xyxy = np.c_[b[:, 0], b[:, 1], b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]]
    ok = ~np.isnan(b).any(axis=1)
    names = list(dict.fromkeys(samples.tolist()))
    idx = {s: i for i, s in enumerate(names)}
    per = [[] for _ in names]
    for r in np.flatnonzero(ok):
        per[idx[samples[r]]].append(r)
    cl_labels, cl_preds = [], []
    for rs in per:
        rs = np.array(rs, dtype=np.int64)
        g = rs[sources[rs] == "gt"] if len(rs) else rs
        p = rs[sources[rs] != "gt"] if len(rs) else rs
        cl_labels.append({"bboxes": xyxy[g].reshape(-1, 4), "labels": cls[g].astype(int)})
        cl_preds.append([np.c_[xyxy[p[cls[p] == c]], score[p[cls[p] == c]]].reshape(-1, 5) for c in range(len(NAMES))])
    return names, cl_labels, cl_preds


def precision_recall(ranked: list[str], planted: dict[str, str], k: int) -> tuple[float, float]:
    hits = sum(1 for s in ranked[:k] if s in planted)
    return hits / k, hits / len(planted)


def rankings(table, with_cleanlab: bool = True) -> tuple[dict[str, list[str]], dict[str, float]]:
    """{method: image names best first}, {method: seconds}."""
    import numpy as np

    import mlcycle
    from bench_mine import fiftyone_style
    from mlcycle import mining

    out, secs = {}, {}
    t0 = time.perf_counter()
    evaluated = mlcycle.evaluate(table).table
    secs["evaluate"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    out["mine-hard (rules, default)"] = mining.rank(evaluated, mining.MineOptions(per="sample")).selected_samples
    secs["mine-hard (rules, default)"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    out["mine-hard --method objectlab"] = mining.rank(evaluated, mining.MineOptions(per="sample", method="objectlab")).selected_samples
    secs["mine-hard --method objectlab"] = time.perf_counter() - t0
    if with_cleanlab:
        from cleanlab.object_detection.rank import get_label_quality_scores

        names, cl_labels, cl_preds = to_cleanlab(table)
        t0 = time.perf_counter()
        q = get_label_quality_scores(cl_labels, cl_preds, verbose=False)
        secs["cleanlab ObjectLab"] = time.perf_counter() - t0
        out["cleanlab ObjectLab"] = [names[i] for i in np.argsort(q, kind="stable")]
    t0 = time.perf_counter()
    fo = fiftyone_style(table)
    out["FiftyOne-style mistakenness"] = sorted(fo, key=lambda s: (-fo[s][0], -fo[s][1], s))
    secs["FiftyOne-style mistakenness"] = time.perf_counter() - t0
    return out, secs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=3000)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--plant-rate", type=float, default=0.08)
    a = ap.parse_args()
    print(f"bench_mine_quality: {a.images} images x seeds {a.seeds}; load average {os.getloadavg()[0]:.2f} at start; "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    results: dict[str, list[tuple[float, float, float, float]]] = {}
    per_kind: dict[str, dict[str, list[int]]] = {}
    for seed in a.seeds:
        table, planted, _ = generate(a.images, seed, a.plant_rate)
        n = len(planted)
        counts = {kd: sum(v == kd for v in planted.values()) for kd in ERROR_KINDS}
        ranked, secs = rankings(table)
        print(f"\nseed {seed}: {table.num_rows} rows, n = {n} planted errors ({', '.join(f'{kd} {c}' for kd, c in counts.items())}); "
              + ", ".join(f"{m} {t:.2f} s" for m, t in secs.items()))
        print(f"  {'method':32s} {'P@n':>6s} {'R@n':>6s} {'P@2n':>6s} {'R@2n':>6s}   found in 2n: " + " ".join(f"{kd:>9s}" for kd in ERROR_KINDS))
        for m, r in ranked.items():
            p1, r1 = precision_recall(r, planted, n)
            p2, r2 = precision_recall(r, planted, 2 * n)
            results.setdefault(m, []).append((p1, r1, p2, r2))
            top = set(r[: 2 * n])
            found = [sum(1 for s, v in planted.items() if v == kd and s in top) for kd in ERROR_KINDS]
            for kd, fnd in zip(ERROR_KINDS, found):
                per_kind.setdefault(m, {}).setdefault(kd, [0, 0])
                per_kind[m][kd][0] += fnd
                per_kind[m][kd][1] += counts[kd]
            print(f"  {m:32s} {p1:6.3f} {r1:6.3f} {p2:6.3f} {r2:6.3f}                " + " ".join(f"{f'{fnd}/{counts[kd]}':>9s}" for kd, fnd in zip(ERROR_KINDS, found)))
    print(f"\nmean over seeds {a.seeds} (per seed in brackets); load average {os.getloadavg()[0]:.2f} at end")
    print("| method | P@n | R@n | P@2n | R@2n | found in 2n: " + " / ".join(ERROR_KINDS) + " |")
    print("|---|---|---|---|---|---|")
    for m, vals in results.items():
        cells = []
        for j in range(4):
            xs = [v[j] for v in vals]
            cells.append(f"{sum(xs) / len(xs):.3f} ({' / '.join(f'{x:.3f}' for x in xs)})")
        kinds = " / ".join(f"{per_kind[m][kd][0]}/{per_kind[m][kd][1]}" for kd in ERROR_KINDS)
        print(f"| {m} | " + " | ".join(cells) + f" | {kinds} |")


if __name__ == "__main__":
    main()
