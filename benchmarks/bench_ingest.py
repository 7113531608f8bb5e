"""Time `mlcycle ingest coco` (to Parquet) against pycocotools' COCO(path) load.

Generates a COCO instances file at train2017 scale (118,287 images, ~860k annotations
with polygon segmentations, 80 categories), then runs both as whole processes in the same
run and prints times, the ratio and each process's peak memory.

    python benchmarks/bench_ingest.py                 # train2017 scale
    python benchmarks/bench_ingest.py --images 20000  # smaller
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _measure import best_of, generate_in_subprocess  # noqa: E402


def make_coco(path: Path, n_images: int, anns_per_image: float, seed: int = 0) -> int:
    rng = np.random.default_rng(seed)
    cats = [{"id": i, "name": f"class_{i}", "supercategory": f"super_{i % 12}"} for i in range(1, 81)]
    widths = rng.choice([640, 480, 500, 427], size=n_images)
    heights = rng.choice([480, 640, 375, 333], size=n_images)
    images = [{"license": int(rng.integers(1, 8)), "file_name": f"{i:012d}.jpg", "coco_url": f"http://images.cocodataset.org/train2017/{i:012d}.jpg",
               "height": int(h), "width": int(w), "date_captured": "2013-11-14 11:18:45", "id": int(i)}
              for i, w, h in zip(range(1, n_images + 1), widths, heights)]
    counts = rng.poisson(anns_per_image, size=n_images)
    n = int(counts.sum())
    img_of = np.repeat(np.arange(1, n_images + 1), counts)
    w = np.repeat(widths, counts).astype(float)
    h = np.repeat(heights, counts).astype(float)
    # realistic size mix: ~41% small, ~34% medium, ~24% large
    side = np.exp(rng.normal(3.7, 1.1, size=n)).clip(2, 600)
    bw = np.minimum(side * rng.uniform(0.6, 1.6, size=n), w - 1).round(2)
    bh = np.minimum(side * rng.uniform(0.6, 1.6, size=n), h - 1).round(2)
    bx = (rng.uniform(0, 1, size=n) * (w - bw)).round(2)
    by = (rng.uniform(0, 1, size=n) * (h - bh)).round(2)
    crowd = rng.random(n) < 0.01
    npts = rng.integers(6, 20, size=n)
    anns = []
    for k in range(n):
        m = int(npts[k])
        t = np.sort(rng.uniform(0, 2 * np.pi, m))
        px = (bx[k] + bw[k] / 2 + np.cos(t) * bw[k] / 2).round(2)
        py = (by[k] + bh[k] / 2 + np.sin(t) * bh[k] / 2).round(2)
        seg = [np.stack([px, py], 1).ravel().tolist()]
        if crowd[k]:
            seg = {"counts": [int(v) for v in rng.integers(1, 50, size=12)], "size": [int(h[k]), int(w[k])]}
        anns.append({"segmentation": seg, "area": float(round(bw[k] * bh[k] * 0.7, 3)), "iscrowd": int(crowd[k]),
                     "image_id": int(img_of[k]), "bbox": [float(bx[k]), float(by[k]), float(bw[k]), float(bh[k])],
                     "category_id": int(rng.integers(1, 81)), "id": k + 1})
    doc = {"info": {"description": "synthetic train2017-scale"}, "licenses": [{"id": i, "name": f"l{i}"} for i in range(1, 9)],
           "images": images, "annotations": anns, "categories": cats}
    path.write_bytes(orjson.dumps(doc))
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=118287)
    ap.add_argument("--anns-per-image", type=float, default=7.27)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--generate", metavar="PATH", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.generate:
        n = make_coco(Path(args.generate), args.images, args.anns_per_image)
        Path(args.generate + ".count").write_text(str(n))
        return
    py = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "instances.json"
        generate_in_subprocess(__file__, [str(src), "--images", str(args.images), "--anns-per-image", str(args.anns_per_image)])
        n = int(Path(str(src) + ".count").read_text())
        size_mb = src.stat().st_size / 1e6
        print(f"COCO file: {args.images:,} images, {n:,} annotations, {size_mb:.0f} MB", flush=True)
        out = Path(tmp) / "gt.parquet"
        ours = best_of([py, "-m", "mlcycle", "ingest", "coco", str(src), "-o", str(out), "-q"], args.repeat)
        theirs = best_of([py, "-c", f"from pycocotools.coco import COCO; COCO({str(src)!r})"], args.repeat)
    print(f"{'tool':<32}{'seconds':>10}{'peak MB':>10}")
    print(f"{'mlcycle ingest coco -> parquet':<32}{ours[0]:>10.2f}{ours[1]:>10.0f}")
    print(f"{'pycocotools COCO(path)':<32}{theirs[0]:>10.2f}{theirs[1]:>10.0f}")
    print(f"speed-up: {theirs[0] / ours[0]:.2f}x faster; peak memory ratio mlcycle/pycocotools: {ours[1] / theirs[1]:.2f}")


if __name__ == "__main__":
    main()
