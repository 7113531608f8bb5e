"""Benchmark `mlcycle evaluate --stream` against the in-memory run: peak memory and time.

Uses bench_evaluate.py's COCO-val2017-like generator (80 classes, ~7.3 objects and up
to 100 detections per image; cached in --work) and times whole processes:

- in memory: ``mlcycle evaluate gt.parquet dt.parquet --json``
- streaming: ``mlcycle evaluate gt.parquet dt.parquet --stream --json`` with the
  default bucket count (one per 2M rows) and with ``--buckets N`` for each --buckets

Every streamed run's JSON must equal the in-memory run's byte for byte (checked). Reports
the median wall time and the largest peak RSS (``os.wait4``) of --repeat runs, and the
load average.

    python benchmarks/bench_stream.py --images 50000 --buckets 8 --buckets 32
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

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def run(cmd: list[str], out: Path) -> tuple[float, float, float]:
    """(wall seconds, CPU seconds, peak MB) of one process writing stdout to ``out``."""
    with open(out, "wb") as fh:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.PIPE, cwd=ROOT)
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - start
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{err[-3000:]}")
    return elapsed, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=50000)
    ap.add_argument("--iou-type", choices=["bbox", "segm"], default="bbox")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--buckets", type=int, action="append", default=[])
    ap.add_argument("--work", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "mlcycle-bench")
    args = ap.parse_args()
    # the data is generated (or found in the cache) by bench_evaluate.py in a child process
    subprocess.run([sys.executable, str(HERE / "bench_evaluate.py"), "--generate-only", "--images", str(args.images),
                    "--iou-type", args.iou_type, "--seed", str(args.seed), "--work", str(args.work)], check=True)
    d = args.work / f"{args.iou_type}-{args.images}-{args.seed}"
    gt, dt = d / "gt.parquet", d / "dt.parquet"
    py = [sys.executable, "-m", "mlcycle", "evaluate", str(gt), str(dt), "--iou-type", args.iou_type, "--json", "-q"]
    runs = {"in memory": py}
    runs["stream (default buckets)"] = py + ["--stream"]
    for n in args.buckets:
        runs[f"stream --buckets {n}"] = py + ["--stream", "--buckets", str(n)]
    import pyarrow.parquet as pq

    rows = pq.ParquetFile(gt).metadata.num_rows + pq.ParquetFile(dt).metadata.num_rows
    print(f"{args.images} images, {rows:,} rows ({args.iou_type}); load before: {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        ref_path = Path(tmp) / "ref.json"
        results = {}
        for r in range(args.repeat):
            for name, cmd in runs.items():
                out = ref_path if name == "in memory" else Path(tmp) / "out.json"
                results.setdefault(name, []).append(run(cmd, out))
                if name != "in memory" and out.read_bytes() != ref_path.read_bytes():
                    raise SystemExit(f"{name}: the metrics JSON differs from the in-memory run's")
        print(f"load after: {os.getloadavg()[0]:.2f}; every streamed JSON equals the in-memory one byte for byte")
        print(f"{'run':28} {'wall s':>8} {'CPU s':>8} {'peak MB':>8}")
        for name, rs in results.items():
            print(f"{name:28} {statistics.median(x[0] for x in rs):8.1f} {statistics.median(x[1] for x in rs):8.1f} "
                  f"{max(x[2] for x in rs):8.0f}")


if __name__ == "__main__":
    main()
