"""1M images / 10M labels: stats, schema-check and evaluate in one process and sharded on a
local 2-worker Dask cluster (mlcycle.scale): wall time, peak memory, and whether the
sharded numbers equal the single run's.

    python benchmarks/bench_scale.py --images 1000000 --work /tmp/bench_scale
    python benchmarks/bench_scale.py --images 100000 --skip-single evaluate

The data set is generated in chunks (a subprocess, so this process stays small) as a
partitioned Parquet folder: ``gt/part-*.parquet`` and ``pred/part-*.parquet`` (80
classes, about 5 ground-truth labels and 5 predictions per image, 128k-row groups).

Every command runs as a whole process (the CLI; evaluate's sharded run through
``mlcycle.scale.evaluate``, which has no CLI flag yet). Peak memory is the largest sum of
the resident memory of the command's whole process tree (the Dask scheduler and worker
processes included), sampled every 0.1 s with psutil; the single process's own peak is
also given. CPU seconds are the user + system time of every process of the tree (as last
sampled, so up to 0.1 s of a process's end is missed): the work done, which a loaded
machine does not inflate as it does wall time. Results go to a JSON file; docs/scale.md has the table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

N_CLASSES = 80
CHUNK_IMAGES = 50_000
ROW_GROUP = 131_072

SCHEMA = """\
version: 1
classes: [{classes}]
attributes:
  occluded: bool
boxes:
  required: true
  inside_image: true
  tolerance: 0.5
  min_width: 2
  min_height: 2
samples:
  max_labels: 30
dataset:
  min_examples: 10
  max_imbalance: 100
  duplicate_iou: 0.95
  unique_label_ids: true
predictions:
  score_required: true
  classes_known: true
"""


# --------------------------------------------------------------------------- data

def generate(out: Path, images: int, seed: int = 0) -> None:
    """Write the data set chunk by chunk (memory: one chunk)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mlcycle import table as T

    rng = np.random.default_rng(seed)
    classes = np.array([f"class{i:02d}" for i in range(N_CLASSES)], dtype=object)
    (out / "gt").mkdir(parents=True, exist_ok=True)
    (out / "pred").mkdir(parents=True, exist_ok=True)
    next_gt_id = 1
    next_pred_id = 1
    for part, start in enumerate(range(0, images, CHUNK_IMAGES)):
        n_img = min(CHUNK_IMAGES, images - start)
        ids = pa.array([f"images/{i:08d}.jpg" for i in range(start, start + n_img)], pa.string())
        width = rng.choice([640, 800, 1024, 1280], n_img).astype(np.int32)
        height = (width * 3 // 4).astype(np.int32)
        # ground truth: 0..10 labels per image (mean 5); images without labels get a sample row
        per = rng.integers(0, 11, n_img)
        img = np.repeat(np.arange(n_img), np.maximum(per, 1))
        empty = np.repeat(per == 0, np.maximum(per, 1))
        n = len(img)
        W, H = width[img].astype(float), height[img].astype(float)
        w = np.minimum(rng.lognormal(3.5, 0.8, n), W - 1)
        h = np.minimum(rng.lognormal(3.5, 0.8, n), H - 1)
        x = rng.uniform(0, 1, n) * (W - w)
        y = rng.uniform(0, 1, n) * (H - h)
        cls = (rng.zipf(1.3, n) - 1) % N_CLASSES
        box = np.stack([x, y, w, h], axis=1)
        box[empty] = np.nan
        label = pa.array(np.where(empty, None, classes[cls]), pa.string())
        label_id = pa.array(np.where(empty, 0, next_gt_id + np.arange(n)), pa.int64(), mask=empty)
        next_gt_id += n
        gt = pa.table({
            T.SAMPLE_ID: ids.take(pa.array(img)), T.SOURCE: pa.array(np.full(n, "gt", dtype=object), pa.string()),
            T.LABEL_ID: label_id, T.LABEL: label,
            T.BBOX: pa.FixedSizeListArray.from_arrays(pa.array(np.nan_to_num(box).ravel()), 4, mask=pa.array(empty)),
            T.ISCROWD: pa.array(np.zeros(n, bool)), T.WIDTH: pa.array(width[img]), T.HEIGHT: pa.array(height[img]),
            T.SPLIT: pa.array(np.where(img % 10 == 0, "val", "train").astype(object), pa.string()),
            "occluded": pa.array(rng.random(n) < 0.2, mask=empty),
        })
        gt = T.normalize(gt, origin="generated")
        # predictions: each label found with p=0.85 (jittered box, right class p=0.9), plus false positives
        keep = ~empty & (rng.random(n) < 0.85)
        k = int(keep.sum())
        jitter = rng.normal(0, 0.08, (k, 4)) * np.stack([w[keep], h[keep], w[keep], h[keep]], axis=1)
        pbox = box[keep] + jitter
        pbox[:, 2:] = np.maximum(pbox[:, 2:], 1.0)
        pcls = np.where(rng.random(k) < 0.9, cls[keep], rng.integers(0, N_CLASSES, k))
        pimg = img[keep]
        nfp = int(n * 0.2)
        fimg = rng.integers(0, n_img, nfp)
        fw = rng.lognormal(3.0, 0.8, nfp)
        fbox = np.stack([rng.uniform(0, 500, nfp), rng.uniform(0, 400, nfp), fw, fw * rng.uniform(0.5, 2, nfp)], axis=1)
        pimg = np.concatenate([pimg, fimg])
        pbox = np.concatenate([pbox, fbox])
        pcls = np.concatenate([pcls, rng.integers(0, N_CLASSES, nfp)])
        score = np.concatenate([rng.beta(5, 2, k), rng.beta(2, 5, nfp)])
        order = np.argsort(pimg, kind="stable")
        pimg, pbox, pcls, score = pimg[order], pbox[order], pcls[order], score[order]
        m = len(pimg)
        pred = T.normalize(pa.table({
            T.SAMPLE_ID: ids.take(pa.array(pimg)), T.SOURCE: pa.array(np.full(m, "pred", dtype=object), pa.string()),
            T.LABEL_ID: pa.array(next_pred_id + np.arange(m), pa.int64()), T.LABEL: pa.array(classes[pcls], pa.string()),
            T.BBOX: pa.FixedSizeListArray.from_arrays(pa.array(pbox.ravel()), 4),
            T.SCORE: pa.array(score), T.WIDTH: pa.array(width[pimg]), T.HEIGHT: pa.array(height[pimg]),
            T.SPLIT: pa.array(np.where(pimg % 10 == 0, "val", "train").astype(object), pa.string()),
        }), origin="generated")
        next_pred_id += m
        pq.write_table(gt, out / "gt" / f"part-{part:04d}.parquet", row_group_size=ROW_GROUP, compression="zstd")
        pq.write_table(pred, out / "pred" / f"part-{part:04d}.parquet", row_group_size=ROW_GROUP, compression="zstd")
    (out.parent / "schema.yaml").write_text(SCHEMA.format(classes=", ".join(classes)))


# --------------------------------------------------------------------------- measuring

def measure(cmd: list[str], stdout_path: Path, timeout: float) -> dict:
    """Wall time, peak memory of the process tree (sum of RSS) and of the main process."""
    import psutil

    start = time.perf_counter()
    with open(stdout_path, "wb") as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err)
        ps = psutil.Process(proc.pid)
        tree_peak = main_peak = 0
        cpu: dict[int, float] = {}  # latest user + system seconds of every process of the tree
        while proc.poll() is None:
            try:
                procs = [ps] + ps.children(recursive=True)
                rss = []
                for p in procs:
                    try:
                        rss.append(p.memory_info().rss)
                        t = p.cpu_times()
                        cpu[p.pid] = t.user + t.system
                    except psutil.Error:
                        pass
                tree_peak = max(tree_peak, sum(rss))
                main_peak = max(main_peak, rss[0] if rss else 0)
            except psutil.Error:
                pass
            if time.perf_counter() - start > timeout:
                proc.kill()
                proc.wait()
                return {"seconds": None, "timeout": timeout, "cmd": cmd}
            time.sleep(0.1)
        seconds = time.perf_counter() - start
        err.seek(0)
        message = err.read().decode(errors="replace")
    return {"seconds": round(seconds, 2), "cpu_s": round(sum(cpu.values()), 1),
            "tree_peak_mb": round(tree_peak / 2**20), "main_peak_mb": round(main_peak / 2**20),
            "exit": proc.returncode, "stderr_tail": message.strip().splitlines()[-3:], "cmd": cmd}


EVALUATE_SHARDED = """
import json, sys
from mlcycle import scale
def main():
    doc = scale.evaluate(sys.argv[1], engine=sys.argv[2], origin=sys.argv[1]).summary
    sys.stdout.write(json.dumps(doc, sort_keys=True))
if __name__ == "__main__":
    main()
"""

EVALUATE_SINGLE = """
import json, sys
import mlcycle
def main():
    doc = mlcycle.evaluate(mlcycle.read_table(sys.argv[1]), annotate=False, origin=sys.argv[1]).summary
    sys.stdout.write(json.dumps(doc, sort_keys=True))
if __name__ == "__main__":
    main()
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=1_000_000)
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "bench_scale")
    ap.add_argument("--engine", default="dask:2")
    ap.add_argument("--repeat", type=int, default=1, help="runs per measurement (the median is kept)")
    ap.add_argument("--skip-single", nargs="*", default=[], help="commands not run in one process")
    ap.add_argument("--only", nargs="*", default=["stats", "schema-check", "evaluate"])
    ap.add_argument("--timeout", type=float, default=1800)
    ap.add_argument("--out", type=Path, default=None, help="results JSON [default: WORK/results-N.json]")
    ap.add_argument("--generate", nargs=2, metavar=("OUT", "IMAGES"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.generate:
        generate(Path(args.generate[0]), int(args.generate[1]))
        return
    data = args.work / f"labels-{args.images}"
    if not data.exists():
        t = time.perf_counter()
        subprocess.run([sys.executable, __file__, "--generate", str(data), str(args.images)], check=True)
        print(f"generated {data} in {time.perf_counter() - t:.0f} s", file=sys.stderr)
    schema = data.parent / "schema.yaml"
    rows = _rows(data)
    py = sys.executable
    mlcycle = [py, "-m", "mlcycle"]
    scripts = args.work / "scripts"
    scripts.mkdir(exist_ok=True)
    (scripts / "evaluate_sharded.py").write_text(EVALUATE_SHARDED)
    (scripts / "evaluate_single.py").write_text(EVALUATE_SINGLE)
    commands = {
        "stats": (mlcycle + ["stats", str(data), "--json"],
                  mlcycle + ["stats", str(data), "--json", "--engine", args.engine]),
        "schema-check": (mlcycle + ["schema-check", "-s", str(schema), str(data), "--json", "-q"],
                         mlcycle + ["schema-check", "-s", str(schema), str(data), "--json", "-q", "--engine", args.engine]),
        "evaluate": ([py, str(scripts / "evaluate_single.py"), str(data)],
                     [py, str(scripts / "evaluate_sharded.py"), str(data), args.engine]),
    }
    results = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "images": args.images, "rows": rows,
               "engine": args.engine, "load_before": os.getloadavg(), "runs": {}}
    for name in args.only:
        single_cmd, sharded_cmd = commands[name]
        entry = {}
        outputs = {}
        for kind, cmd in (("single", single_cmd), ("sharded", sharded_cmd)):
            if kind == "single" and name in args.skip_single:
                continue
            runs = []
            for r in range(args.repeat):
                out = args.work / f"{name}-{kind}-{args.images}.json"
                runs.append(measure(cmd, out, args.timeout))
                outputs[kind] = out
                print(name, kind, runs[-1], file=sys.stderr)
            ok = [x for x in runs if x.get("seconds") is not None and x["exit"] in (0, 3)]
            entry[kind] = {
                "seconds": statistics.median(x["seconds"] for x in ok) if ok else None,
                "cpu_s": statistics.median(x["cpu_s"] for x in ok) if ok else None,
                "tree_peak_mb": max(x["tree_peak_mb"] for x in ok) if ok else None,
                "main_peak_mb": max(x["main_peak_mb"] for x in ok) if ok else None,
                "runs": runs, "load_after": os.getloadavg(),
            }
        if "single" in outputs and "sharded" in outputs and entry["single"]["seconds"] and entry["sharded"]["seconds"]:
            entry["equal"] = _same(outputs["single"], outputs["sharded"])
        results["runs"][name] = entry
    results["load_after"] = os.getloadavg()
    out = args.out or args.work / f"results-{args.images}.json"
    out.write_text(json.dumps(results, indent=2))
    print(json.dumps({k: {kk: {x: vv.get(x) for x in ("seconds", "cpu_s", "tree_peak_mb", "main_peak_mb")} if isinstance(vv, dict)
                          else vv for kk, vv in v.items()} for k, v in results["runs"].items()}, indent=1))
    print(f"results: {out}", file=sys.stderr)


def _same(a: Path, b: Path) -> bool:
    """The same JSON document (evaluate's ``origin`` aside, which names the input)."""
    da, db = json.loads(a.read_text()), json.loads(b.read_text())
    return json.dumps(da, sort_keys=True) == json.dumps(db, sort_keys=True)


def _rows(folder: Path) -> int:
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(f).metadata.num_rows for f in sorted(folder.rglob("*.parquet")))


if __name__ == "__main__":
    main()
