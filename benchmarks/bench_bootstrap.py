"""Benchmark the paired image bootstrap of `evaluate` with two prediction sources.

COCO-val2017-like data from bench_evaluate.generate (5,000 images, 80 classes, ~36k
ground truth, up to 100 detections per image) with a second, weaker model made from
the first (boxes jittered more, scores noisier, 10% of detections dropped). Times the
library call mlcycle.evaluate(table, bootstrap=N) (both sources evaluated, matched once
each for the bootstrap, N resamples) and the same call without the bootstrap, and
reports wall and CPU time (this process and the forked child together). With ``--cli``
it also times the whole command on three Parquet files, as a user runs it:
``mlcycle evaluate gt.parquet a.parquet b.parquet --baseline a --bootstrap N -o out.parquet``
(a fresh process each run: start-up, reading, the numba kernel loaded from its cache,
the annotated table written). ``--runs`` repeats each timing and reports the median.
``MLCYCLE_NO_NUMBA=1`` in the environment times the numpy path.

    python benchmarks/bench_bootstrap.py                    # 5,000 images, 1,000 resamples
    python benchmarks/bench_bootstrap.py --cli --runs 3     # + the CLI command, medians of 3
    python benchmarks/bench_bootstrap.py --resamples 200 --images 2000
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def weaker(dt, seed: int):
    import pyarrow as pa

    from mlcycle import table as T

    rng = np.random.default_rng(seed)
    keep = rng.random(dt.num_rows) >= 0.1
    dt = dt.filter(pa.array(keep))
    box = T.bboxes(dt)
    box[:, :2] += rng.normal(0, 0.06, (len(box), 2)) * box[:, 2:]
    score = np.clip(np.asarray(dt.column(T.SCORE).to_numpy(), float) + rng.normal(0, 0.1, len(box)), 0.001, 1)
    dt = dt.set_column(dt.column_names.index(T.BBOX), T.BBOX,
                       pa.FixedSizeListArray.from_arrays(pa.array(box.ravel()), 4).cast(dt.schema.field(T.BBOX).type))
    dt = dt.set_column(dt.column_names.index(T.SCORE), T.SCORE, pa.array(score))
    return dt.set_column(dt.column_names.index(T.SOURCE), T.SOURCE, pa.array(["weaker"] * dt.num_rows))


def _cpu() -> float:
    """CPU seconds of this process and its finished children (the second source's
    resamples run in a forked process)."""
    import resource

    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


def _load() -> str:
    import os

    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def main() -> None:
    import os
    import statistics
    import subprocess

    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=5000)
    ap.add_argument("--resamples", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--runs", type=int, default=1, help="repeat each timing; report the median")
    ap.add_argument("--cli", action="store_true", help="also time the whole CLI command")
    ap.add_argument("--work", type=Path, default=Path("/tmp/mlcycle-bench"))
    a = ap.parse_args()
    import pyarrow as pa

    import bench_evaluate as be
    import mlcycle
    from mlcycle import io
    from mlcycle import table as T

    path = "numpy path (MLCYCLE_NO_NUMBA)" if os.environ.get("MLCYCLE_NO_NUMBA", "") not in ("", "0") else "numba kernel if installed"
    print(f"{path}; load average {_load()}")
    paths = be.prepare(a.work, a.images, a.seed, "bbox")
    gt, dt = io.read_table(paths["gt_parquet"]), io.read_table(paths["dt_parquet"])
    table = pa.concat_tables([gt, dt, weaker(dt, a.seed)], promote_options="permissive")
    for n in (0, a.resamples):
        walls, cpus = [], []
        for _ in range(a.runs if n else 1):
            w0, c0 = time.perf_counter(), _cpu()
            doc = mlcycle.evaluate(table, bootstrap=n, seed=a.seed, annotate=False).summary
            walls.append(time.perf_counter() - w0)
            cpus.append(_cpu() - c0)
        print(f"library: {a.images} images, 2 sources, bootstrap {n:>5}: wall {statistics.median(walls):6.2f} s "
              f"(runs: {', '.join(f'{w:.2f}' for w in walls)}), cpu {statistics.median(cpus):6.2f} s; load {_load()}")
    d = doc["comparison"]["bootstrap"]["deltas"]["weaker"]["AP"]
    print(f"AP pred {doc['sources']['pred']['metrics']['AP']:.4f}, weaker {doc['sources']['weaker']['metrics']['AP']:.4f}, "
          f"delta {d['delta']:+.4f} CI [{d['ci'][0]:+.4f}, {d['ci'][1]:+.4f}] significant={d['significant']}")
    if not a.cli:
        return
    folder = a.work / f"bootstrap-cli-{a.images}-{a.seed}"
    folder.mkdir(parents=True, exist_ok=True)
    files = [folder / "gt.parquet", folder / "a.parquet", folder / "b.parquet"]
    if not all(f.exists() for f in files):
        b = weaker(dt, a.seed)
        io.write_table(gt, files[0])
        io.write_table(dt.set_column(dt.column_names.index(T.SOURCE), T.SOURCE, pa.array(["a"] * dt.num_rows)), files[1])
        io.write_table(b.set_column(b.column_names.index(T.SOURCE), T.SOURCE, pa.array(["b"] * b.num_rows)), files[2])
    cmd = [sys.executable, "-m", "mlcycle", "evaluate", *map(str, files), "--baseline", "a",
           "--bootstrap", str(a.resamples), "--seed", str(a.seed), "-o", str(folder / "out.parquet"), "-q"]
    walls, cpus = [], []
    for _ in range(a.runs):
        w0, c0 = time.perf_counter(), _cpu()
        subprocess.run(cmd, check=True, cwd=ROOT)
        walls.append(time.perf_counter() - w0)
        cpus.append(_cpu() - c0)
    print(f"CLI: evaluate gt a b --baseline a --bootstrap {a.resamples} -o out.parquet: wall median "
          f"{statistics.median(walls):.2f} s (runs: {', '.join(f'{w:.2f}' for w in walls)}), "
          f"cpu {statistics.median(cpus):.2f} s; load {_load()}")


if __name__ == "__main__":
    main()
