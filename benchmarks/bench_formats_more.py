"""Write and read back N synthetic boxes in the cvat, labelme, openimages and csv formats.

    python benchmarks/bench_formats_more.py [--images 20000] [--per-image 5]

Prints seconds per format for export (write) and ingest (read), and boxes per second read.
Data is generated here (no downloads); everything goes to a temporary folder.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path


def main() -> None:
    import numpy as np

    from mlcycle import table as T
    from mlcycle.formats import csv_table, cvat, labelme, openimages

    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=20000)
    ap.add_argument("--per-image", type=int, default=5)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    n = args.images * args.per_image
    table = T.from_columns({
        T.SAMPLE_ID: [f"img{i:07d}.jpg" for i in range(args.images) for _ in range(args.per_image)],
        T.SOURCE: ["gt"] * n,
        T.LABEL: rng.choice(["cat", "dog", "car"], n).tolist(),
        T.BBOX: np.hstack([rng.uniform(0, 500, (n, 2)), rng.uniform(1, 100, (n, 2))]),
        T.WIDTH: [640] * n, T.HEIGHT: [480] * n, T.OCCLUDED: rng.random(n) < 0.3,
    })
    tmp = Path(tempfile.mkdtemp(prefix="mlcycle-bench-"))
    try:
        for name, mod, out in (("cvat", cvat, tmp / "annotations.xml"), ("labelme", labelme, tmp / "labelme"),
                               ("openimages", openimages, tmp / "oi"), ("csv", csv_table, tmp / "boxes.csv")):
            t0 = time.perf_counter()
            mod.write(table, out)
            t1 = time.perf_counter()
            back = mod.read(out)
            t2 = time.perf_counter()
            assert back.num_rows == n
            print(f"{name:<11} {n} boxes, {args.images} images: write {t1 - t0:6.2f} s  read {t2 - t1:6.2f} s"
                  f"  ({n / (t2 - t1):,.0f} boxes/s read)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
