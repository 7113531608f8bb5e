"""Time the library functions behind `evaluate --method voc|voc07` and classification.

Generates COCO-val-like detection data (80 classes, ~7.3 ground-truth boxes and 20-100
detections per image, half of them near a ground-truth box) and image-level
classification data (1,000 classes, 5 scored predictions per sample), then times
`voc.evaluate` (all-point and 11-point), `voc.annotate`, `classification.evaluate` and
`classification.annotate` in-process (table building excluded).

    python benchmarks/bench_voc_classification.py                      # 5k images, 200k samples
    python benchmarks/bench_voc_classification.py --images 20000 --samples 1000000
"""

from __future__ import annotations

import argparse
import time


def detection_table(n_img: int, seed: int = 0):
    import numpy as np
    import pyarrow as pa

    from mlcycle import table as T

    rng = np.random.default_rng(seed)
    ncls = 80
    ng_per = rng.poisson(7.3, n_img)
    ng = int(ng_per.sum())
    g_s = np.repeat(np.arange(n_img), ng_per)
    g_c = rng.integers(0, ncls, ng)
    gb = np.hstack([rng.uniform(0, 500, (ng, 2)), rng.uniform(5, 200, (ng, 2))])
    nd_per = rng.integers(20, 101, n_img)
    nd = int(nd_per.sum())
    d_s = np.repeat(np.arange(n_img), nd_per)
    d_c = rng.integers(0, ncls, nd)
    db = np.hstack([rng.uniform(0, 500, (nd, 2)), rng.uniform(5, 200, (nd, 2))])
    starts = np.cumsum(ng_per) - ng_per
    pick = starts[d_s] + (rng.random(nd) * np.maximum(ng_per[d_s], 1)).astype(int)
    near = (rng.random(nd) < 0.5) & (ng_per[d_s] > 0)
    db[near] = gb[pick[near]] + rng.normal(0, 5, (int(near.sum()), 4))
    d_c[near] = g_c[pick[near]]
    names = np.array([f"class{i}" for i in range(ncls)], dtype=object)
    sids = np.array([f"img/{i:06d}.jpg" for i in range(n_img)], dtype=object)
    gt = T.from_columns({T.SAMPLE_ID: pa.array(sids[g_s], pa.string()), T.SOURCE: ["gt"] * ng,
                         T.LABEL: pa.array(names[g_c], pa.string()), T.BBOX: gb})
    dt = T.from_columns({T.SAMPLE_ID: pa.array(sids[d_s], pa.string()), T.SOURCE: ["pred"] * nd,
                         T.LABEL: pa.array(names[d_c], pa.string()), T.BBOX: db, T.SCORE: rng.random(nd)})
    return pa.concat_tables([gt, dt], promote_options="default"), ng, nd


def classification_table(n: int, seed: int = 0):
    import numpy as np
    import pyarrow as pa

    from mlcycle import table as T

    rng = np.random.default_rng(seed)
    names = np.array([f"c{i}" for i in range(1000)], dtype=object)
    cls = rng.integers(0, 1000, n)
    sids = np.array([f"s{i}" for i in range(n)], dtype=object)
    pc = rng.integers(0, 1000, (n, 5))
    pc[:, 0] = np.where(rng.random(n) < 0.6, cls, pc[:, 0])
    scores = np.sort(rng.random((n, 5)), axis=1)[:, ::-1].ravel()
    g = T.from_columns({T.SAMPLE_ID: pa.array(sids, pa.string()), T.SOURCE: ["gt"] * n,
                        T.LABEL: pa.array(names[cls], pa.string())})
    p = T.from_columns({T.SAMPLE_ID: pa.array(np.repeat(sids, 5), pa.string()), T.SOURCE: ["pred"] * (5 * n),
                        T.LABEL: pa.array(names[pc.ravel()], pa.string()), T.SCORE: scores})
    return pa.concat_tables([g, p], promote_options="default")


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - start, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=5000)
    ap.add_argument("--samples", type=int, default=200_000)
    args = ap.parse_args()

    from mlcycle.evaluation import classification, voc

    table, ng, nd = detection_table(args.images)
    print(f"VOC: {args.images} images, {ng} ground-truth boxes, {nd} detections")
    for use_07 in (False, True):
        secs, res = timed(voc.evaluate, table, use_07=use_07)
        print(f"  evaluate {res['method']:5s} {secs:6.2f} s   mAP {res['mAP']:.4f}")
    secs, _ = timed(voc.annotate, table)
    print(f"  annotate       {secs:6.2f} s")

    table = classification_table(args.samples)
    print(f"classification: {args.samples} samples, {5 * args.samples} scored predictions")
    secs, res = timed(classification.evaluate, table)
    print(f"  evaluate       {secs:6.2f} s   accuracy {res['accuracy']:.4f} top-5 {res['top_k_accuracy']['5']:.4f}")
    secs, _ = timed(classification.annotate, table)
    print(f"  annotate       {secs:6.2f} s")


if __name__ == "__main__":
    main()
