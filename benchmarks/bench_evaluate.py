"""Benchmark `mlcycle evaluate` against pycocotools, faster-coco-eval and hotcoco.

Generates COCO-val2017-like data (80 classes with a long-tailed frequency, ~7.3 objects
per image, COCO's small/medium/large mix, ~1.2% crowd regions, up to 100 detections per
image), writes COCO JSON for the peers and Parquet label tables for mlcycle (through
mlcycle's own readers), then times each tool as a whole process (start-up, loading,
evaluation, summary) and reports the median wall time, peak memory (max RSS from
/usr/bin/time) and the ratio to hotcoco. It also checks that every tool's 12 numbers
agree with pycocotools.

    python benchmarks/bench_evaluate.py                       # bbox, 5,000 images
    python benchmarks/bench_evaluate.py --images 20000 --repeat 1
    python benchmarks/bench_evaluate.py --iou-type segm --skip pycocotools

Data is cached in --work (default /tmp/mlcycle-bench) per size, type and seed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SIZES = [(640, 480), (480, 640), (640, 427), (500, 375), (612, 612)]

PEERS = {
    "pycocotools": """
import json, sys
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
gt = COCO(sys.argv[1]); dt = gt.loadRes(sys.argv[2])
E = COCOeval(gt, dt, sys.argv[3]); E.evaluate(); E.accumulate(); E.summarize()
print("STATS" + json.dumps([float(x) for x in E.stats]))
""",
    "faster-coco-eval": """
import json, sys
from faster_coco_eval import COCO, COCOeval_faster
gt = COCO(sys.argv[1]); dt = gt.loadRes(sys.argv[2])
E = COCOeval_faster(gt, dt, sys.argv[3]); E.evaluate(); E.accumulate(); E.summarize()
print("STATS" + json.dumps([float(x) for x in E.stats[:12]]))
""",
    "hotcoco": """
import json, sys
from hotcoco import COCO, COCOeval
gt = COCO(sys.argv[1]); dt = gt.load_res(sys.argv[2])
E = COCOeval(gt, dt, sys.argv[3]); E.evaluate(); E.accumulate(); E.summarize()
print("STATS" + json.dumps([float(x) for x in list(E.stats)[:12]]))
""",
}


# --------------------------------------------------------------------------- data

def generate(n_images: int, seed: int, segm: bool) -> tuple[dict, list]:
    rng = np.random.default_rng(seed)
    n_cat = 80
    freq = 1.0 / np.arange(1, n_cat + 1) ** 1.1
    freq[0] *= 4  # person-like head class
    freq /= freq.sum()
    sizes = np.array(SIZES)[rng.integers(0, len(SIZES), n_images)]
    images = [{"id": int(i + 1), "file_name": f"{i + 1:012d}.jpg", "width": int(w), "height": int(h)}
              for i, (w, h) in enumerate(sizes)]
    n_obj = np.minimum(rng.geometric(1 / 8.0, n_images) - 1 + (rng.random(n_images) < 0.3), 60)
    img = np.repeat(np.arange(n_images), n_obj)
    n = len(img)
    W, H = sizes[img, 0].astype(float), sizes[img, 1].astype(float)
    # COCO mix: ~41% small, ~34% medium, ~25% large (by sqrt(area))
    side = np.exp(rng.normal(3.75, 1.0, n))
    side = np.clip(side, 4, 0.95 * np.minimum(W, H))
    aspect = np.exp(rng.normal(0, 0.45, n))
    w = np.clip(side * np.sqrt(aspect), 2, W - 1)
    h = np.clip(side / np.sqrt(aspect), 2, H - 1)
    x = rng.random(n) * (W - w)
    y = rng.random(n) * (H - h)
    box = np.round(np.stack([x, y, w, h], 1), 2)
    cat = rng.choice(n_cat, n, p=freq) + 1
    crowd = rng.random(n) < 0.012
    anns = []
    for i in range(n):
        bx = box[i].tolist()
        a = {"id": i + 1, "image_id": int(img[i] + 1), "category_id": int(cat[i]), "bbox": bx,
             "area": float(round(bx[2] * bx[3] * (0.8 if segm else 1.0), 2)), "iscrowd": int(crowd[i])}
        if segm:
            a["segmentation"] = _octagon(bx)
        anns.append(a)
    if segm:
        _crowd_rles(anns, images, crowd)

    # detections: 0-3 per object (jittered, sometimes the wrong class) + background
    k = rng.choice(4, n, p=[0.15, 0.45, 0.3, 0.1])
    src = np.repeat(np.arange(n), k)
    m = len(src)
    jit = rng.normal(0, 0.08, (m, 4)) * np.repeat(box[:, 2:], 2, 1)[src][:, [0, 1, 0, 1]]
    dbox = box[src] + jit
    dbox[:, 2:] = np.maximum(dbox[:, 2:], 1)
    dcat = np.where(rng.random(m) < 0.85, cat[src], rng.choice(n_cat, m, p=freq) + 1)
    dimg = img[src]
    dscore = np.clip(rng.beta(4, 2, m), 0.001, 1)
    n_bg = rng.integers(10, 90, n_images)
    bimg = np.repeat(np.arange(n_images), n_bg)
    bW, bH = sizes[bimg, 0].astype(float), sizes[bimg, 1].astype(float)
    bside = np.clip(np.exp(rng.normal(3.5, 1.0, len(bimg))), 3, 0.9 * np.minimum(bW, bH))
    bw, bh = bside * rng.uniform(0.6, 1.4, len(bimg)), bside * rng.uniform(0.6, 1.4, len(bimg))
    bw, bh = np.minimum(bw, bW - 1), np.minimum(bh, bH - 1)
    bbox_ = np.stack([rng.random(len(bimg)) * (bW - bw), rng.random(len(bimg)) * (bH - bh), bw, bh], 1)
    all_img = np.concatenate([dimg, bimg])
    all_box = np.round(np.concatenate([dbox, bbox_]), 2)
    all_cat = np.concatenate([dcat, rng.choice(n_cat, len(bimg), p=freq) + 1])
    all_score = np.round(np.concatenate([dscore, np.clip(rng.beta(1.2, 5, len(bimg)), 0.001, 1)]), 5)
    # at most 100 per image (the top scores), in image order like a detector's output
    order = np.lexsort((-all_score, all_img))
    all_img, all_box, all_cat, all_score = all_img[order], all_box[order], all_cat[order], all_score[order]
    starts = np.flatnonzero(np.r_[True, all_img[1:] != all_img[:-1]])
    rank = np.arange(len(all_img)) - np.repeat(starts, np.diff(np.r_[starts, len(all_img)]))
    keep = rank < 100
    all_img, all_box, all_cat, all_score = all_img[keep], all_box[keep], all_cat[keep], all_score[keep]
    dets = [{"image_id": int(i + 1), "category_id": int(c), "bbox": b, "score": float(s)}
            for i, c, b, s in zip(all_img.tolist(), all_cat.tolist(), all_box.tolist(), all_score.tolist())]
    if segm:
        _det_rles(dets, sizes)
    cats = [{"id": c, "name": f"class{c:02d}", "supercategory": "thing"} for c in range(1, n_cat + 1)]
    return {"info": {"description": "mlcycle benchmark"}, "images": images, "categories": cats,
            "annotations": anns}, dets


def _octagon(b: list[float]) -> list[list[float]]:
    x, y, w, h = b
    q, r = w / 4, h / 4
    pts = [x + q, y, x + w - q, y, x + w, y + r, x + w, y + h - r, x + w - q, y + h, x + q, y + h, x, y + h - r, x, y + r]
    return [[round(v, 2) for v in pts]]


def _crowd_rles(anns: list, images: list, crowd: np.ndarray) -> None:
    """Crowd regions as uncompressed RLE, as COCO stores them."""
    from pycocotools import mask as mu

    for i in np.flatnonzero(crowd).tolist():
        a = anns[i]
        im = images[a["image_id"] - 1]
        r = mu.frPyObjects(a["segmentation"], im["height"], im["width"])[0]
        m = mu.decode(r).ravel(order="F")
        change = np.flatnonzero(np.diff(m)) + 1
        bounds = np.r_[0, change, len(m)]
        counts = np.diff(bounds).tolist()
        if m[0] == 1:
            counts = [0] + counts
        a["segmentation"] = {"size": [im["height"], im["width"]], "counts": counts}


def _det_rles(dets: list, sizes: np.ndarray) -> None:
    """Detections carry a compressed RLE mask (and their box, as detectron2 writes them)."""
    from pycocotools import mask as mu

    by_size: dict[tuple[int, int], list[int]] = {}
    for j, d in enumerate(dets):
        w, h = sizes[d["image_id"] - 1]
        by_size.setdefault((int(h), int(w)), []).append(j)
    for (h, w), idx in by_size.items():
        polys = [_octagon(dets[j]["bbox"])[0] for j in idx]
        for s in range(0, len(polys), 50000):
            rles = mu.frPyObjects(polys[s:s + 50000], h, w)
            for j, r in zip(idx[s:s + 50000], rles):
                dets[j]["segmentation"] = {"size": [h, w], "counts": r["counts"].decode()}


def prepare(work: Path, n_images: int, seed: int, iou_type: str) -> dict[str, Path]:
    d = work / f"{iou_type}-{n_images}-{seed}"
    paths = {k: d / v for k, v in (("gt_json", "gt.json"), ("dt_json", "dt.json"),
                                   ("gt_parquet", "gt.parquet"), ("dt_parquet", "dt.parquet"))}
    if all(p.exists() for p in paths.values()):
        return paths
    d.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    gt, dets = generate(n_images, seed, iou_type == "segm")
    paths["gt_json"].write_text(json.dumps(gt))
    paths["dt_json"].write_text(json.dumps(dets))
    sys.path.insert(0, str(ROOT))
    from mlcycle import io
    from mlcycle.formats import ReadOptions, coco, coco_results

    io.write_table(coco.read(paths["gt_json"], ReadOptions()), paths["gt_parquet"])
    io.write_table(coco_results.read(paths["dt_json"], coco_results.ReadOptions(images=paths["gt_json"])), paths["dt_parquet"])
    print(f"generated {n_images} images, {len(gt['annotations'])} ground truth "
          f"({sum(a['iscrowd'] for a in gt['annotations'])} crowd), {len(dets)} detections "
          f"in {time.time() - t0:.1f} s -> {d}", file=sys.stderr)
    return paths


# --------------------------------------------------------------------------- timing

def measure(cmd: list[str], cwd: Path | None = None) -> tuple[float, float, float, str]:
    """(wall seconds, CPU seconds (user + system), peak RSS in MB, stdout) of one whole
    process, from /usr/bin/time."""
    timer = "/usr/bin/time" if os.path.exists("/usr/bin/time") else shutil.which("time")
    t0 = time.perf_counter()
    p = subprocess.run([timer, "-f", "%U %S %M", *cmd], capture_output=True, text=True, cwd=cwd)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise RuntimeError(f"{cmd[:3]} failed ({p.returncode}): {p.stderr[-2000:]}")
    user, system, rss_kb = (float(v) for v in p.stderr.strip().splitlines()[-1].split())
    return wall, user + system, rss_kb / 1024, p.stdout


def stats_of(tool: str, stdout: str) -> list[float]:
    if tool.startswith("mlcycle"):
        return list(json.loads(stdout)["metrics"].values())[:12]
    line = next(x for x in stdout.splitlines() if x.startswith("STATS"))
    return json.loads(line[5:])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=5000)
    ap.add_argument("--iou-type", choices=["bbox", "segm"], default="bbox")
    ap.add_argument("--repeat", type=int, default=3, help="runs per tool (median reported)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "mlcycle-bench")
    ap.add_argument("--skip", action="append", default=[], help="tool to leave out (repeatable)")
    ap.add_argument("--baseline", type=Path, metavar="DIR",
                    help="also time the mlcycle package in DIR (e.g. `git archive HEAD~1 mlcycle | tar -x -C DIR`) "
                         "as 'mlcycle-baseline', for a before/after in the same run")
    ap.add_argument("--generate-only", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.generate_only:
        prepare(args.work, args.images, args.seed, args.iou_type)
        return
    # generate in a child process: Linux carries a process's RSS high-water mark into the
    # children it forks, so the measuring process must stay small
    subprocess.run([sys.executable, __file__, "--generate-only", "--images", str(args.images),
                    "--iou-type", args.iou_type, "--seed", str(args.seed), "--work", str(args.work)], check=True)
    paths = {k: p.resolve() for k, p in prepare(args.work, args.images, args.seed, args.iou_type).items()}
    py = sys.executable
    mlcycle = [py, "-m", "mlcycle", "evaluate", str(paths["gt_parquet"]), str(paths["dt_parquet"]),
               "--iou-type", args.iou_type, "--json", "-q"]
    tools = {"mlcycle": mlcycle}
    cwds: dict[str, Path] = {}
    if args.baseline:
        # `python -m` puts the working directory first on sys.path
        tools["mlcycle-baseline"] = mlcycle
        cwds["mlcycle-baseline"] = args.baseline.resolve()
    for name, code in PEERS.items():
        tools[name] = [py, "-c", code, str(paths["gt_json"]), str(paths["dt_json"]), args.iou_type]
    tools = {k: v for k, v in tools.items() if k not in args.skip}
    runs: dict[str, list] = {name: [] for name in tools}
    outs: dict[str, str] = {}
    # round robin, so that a change in the machine's load hits every tool alike
    for _ in range(args.repeat):
        for name, cmd in tools.items():
            wall, cpu, rss, outs[name] = measure(cmd, cwds.get(name))
            runs[name].append((wall, cpu, rss))
            print(f"{name:17s} {wall:7.2f} s wall  {cpu:7.2f} s cpu  {rss:7.0f} MB", file=sys.stderr)
    results: dict[str, dict] = {}
    for name, rs in runs.items():
        results[name] = {"time": statistics.median(r[0] for r in rs), "cpu": statistics.median(r[1] for r in rs),
                         "rss": max(r[2] for r in rs), "stats": stats_of(name, outs[name])}

    ref = results.get("pycocotools", results.get("mlcycle"))
    hot = results.get("hotcoco")
    n_gt = int(subprocess.run([sys.executable, "-c", "import json,sys; print(len(json.load(open(sys.argv[1]))['annotations']))",
                               str(paths["gt_json"])], capture_output=True, text=True, check=True).stdout)
    print(f"\n{args.iou_type}, {args.images} images, {n_gt} ground truth, median of {args.repeat} (whole process)")
    print("| tool | wall time | CPU time | peak memory | wall / hotcoco | CPU / hotcoco | max abs diff vs pycocotools (12 stats) |")
    print("|---|---|---|---|---|---|---|")
    for name, r in results.items():
        ratio = f"{r['time'] / hot['time']:.2f}x" if hot else "-"
        cratio = f"{r['cpu'] / hot['cpu']:.2f}x" if hot else "-"
        diff = max(abs(a - b) for a, b in zip(r["stats"], ref["stats"])) if ref else float("nan")
        print(f"| {name} | {r['time']:.2f} s | {r['cpu']:.2f} s | {r['rss']:.0f} MB | {ratio} | {cratio} | {diff:.1e} |")
    if "mlcycle" in results and "pycocotools" in results:
        same = results["mlcycle"]["stats"] == results["pycocotools"]["stats"]
        print(f"\nmlcycle stats bit-identical to pycocotools: {same}")


if __name__ == "__main__":
    main()
