"""Time `mlcycle ingest coco` (to Parquet) against pycocotools' COCO(path) load.

Generates COCO instances files (train2017-like: ~7.3 annotations per image with polygon
segmentations, 1% crowd RLE, 80 categories, the image keys COCO has), then runs both as
whole processes (start-up included), interleaved run by run so that a change in the
machine's load hits both alike, and prints for each the median wall time, the median CPU
time (user + system, steadier on a shared machine), the peak memory and the ratio.
``--keypoints`` also measures the same files with person-keypoints keys on every
annotation (``keypoints``, ``num_keypoints``), which mlcycle must read as fast.

    python benchmarks/bench_ingest.py                                  # train2017 scale
    python benchmarks/bench_ingest.py --images 5000 20000 50000 --repeat 5 --keypoints
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _measure import generate_in_subprocess  # noqa: E402


def make_coco(path: Path, n_images: int, anns_per_image: float, seed: int = 0, keypoints: bool = False) -> int:
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
        ann = {"segmentation": seg, "area": float(round(bw[k] * bh[k] * 0.7, 3)), "iscrowd": int(crowd[k]),
               "image_id": int(img_of[k]), "bbox": [float(bx[k]), float(by[k]), float(bw[k]), float(bh[k])],
               "category_id": int(rng.integers(1, 81)), "id": k + 1}
        if keypoints:  # as person_keypoints_*.json: 17 (x, y, visibility) triples
            vis = rng.integers(0, 3, size=17)
            kx = (bx[k] + rng.uniform(0, 1, 17) * bw[k]).round().astype(int) * (vis > 0)
            ky = (by[k] + rng.uniform(0, 1, 17) * bh[k]).round().astype(int) * (vis > 0)
            ann["num_keypoints"] = int((vis > 0).sum())
            ann["keypoints"] = np.stack([kx, ky, vis], 1).ravel().tolist()
        anns.append(ann)
    doc = {"info": {"description": "synthetic train2017-scale"}, "licenses": [{"id": i, "name": f"l{i}"} for i in range(1, 9)],
           "images": images, "annotations": anns, "categories": cats}
    path.write_bytes(orjson.dumps(doc))
    return n


def run(cmd: list[str]) -> tuple[float, float, float]:
    """(wall seconds, CPU seconds, peak MB) of one whole process; raises if it fails."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{err}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, nargs="+", default=[118287])
    ap.add_argument("--anns-per-image", type=float, default=7.27)
    ap.add_argument("--repeat", type=int, default=1, help="runs of each command (the median is shown)")
    ap.add_argument("--keypoints", action="store_true", help="also files with keypoints on every annotation")
    ap.add_argument("--generate", metavar="PATH", help=argparse.SUPPRESS)
    ap.add_argument("--with-keypoints", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.generate:
        n = make_coco(Path(args.generate), args.images[0], args.anns_per_image, keypoints=args.with_keypoints)
        Path(args.generate + ".count").write_text(str(n))
        return
    py = sys.executable
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; median of {args.repeat}", flush=True)
    print(f"{'file':<42}{'tool':<14}{'wall s':>8}{'CPU s':>8}{'peak MB':>9}{'wall x':>8}{'CPU x':>7}", flush=True)
    for n_images in args.images:
        for kp in ([False, True] if args.keypoints else [False]):
            with tempfile.TemporaryDirectory() as tmp:
                src = Path(tmp) / "instances.json"
                generate_in_subprocess(__file__, [str(src), "--images", str(n_images), "--anns-per-image",
                                                  str(args.anns_per_image)] + (["--with-keypoints"] if kp else []))
                n = int(Path(str(src) + ".count").read_text())
                out = Path(tmp) / "gt.parquet"
                cmds = {"mlcycle": [py, "-m", "mlcycle", "ingest", "coco", str(src), "-o", str(out), "-q"],
                        "pycocotools": [py, "-c", f"from pycocotools.coco import COCO; COCO({str(src)!r})"]}
                runs: dict[str, list] = {k: [] for k in cmds}
                for _ in range(args.repeat):  # interleaved: load changes hit both
                    for k, cmd in cmds.items():
                        runs[k].append(run(cmd))
                med = {k: (statistics.median(r[0] for r in v), statistics.median(r[1] for r in v), max(r[2] for r in v))
                       for k, v in runs.items()}
                label = f"{n_images:,} img, {n:,} ann{', keypoints' if kp else ''}, {src.stat().st_size / 1e6:.0f} MB"
                for k, (w, c, m) in med.items():
                    ratio = "" if k == "mlcycle" else f"{w / med['mlcycle'][0]:>8.2f}{c / med['mlcycle'][1]:>7.2f}"
                    print(f"{label if k == 'mlcycle' else '':<42}{k:<14}{w:>8.2f}{c:>8.2f}{m:>9.0f}{ratio}", flush=True)
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
