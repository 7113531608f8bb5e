"""Benchmark: `mlcycle stats` on a generated Parquet label table.

    .venv/bin/python benchmarks/bench_stats.py                 # 1 million labels
    .venv/bin/python benchmarks/bench_stats.py --labels 10000000

Generates (once, cached in the temp folder) a table of LABELS labels on LABELS/10
images (80 classes with a long-tailed distribution, train/val splits, an `occluded`
bool and an `annotator` string attribute, 2 % sample rows), then runs
`mlcycle stats FILE --json` in a child process and reports wall time and the child's
peak resident memory (ru_maxrss). Goal for 10 million labels: < 10 s, < 2 GB.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def generate(path: Path, labels: int, seed: int = 0) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    sys.path.insert(0, str(REPO))
    from mlcycle import table as T

    rng = np.random.default_rng(seed)
    images = max(labels // 10, 1)
    classes = np.array([f"class_{i:02d}" for i in range(80)])
    weights = 1.0 / np.arange(1, 81) ** 0.8
    weights /= weights.sum()
    chunk = 1_000_000
    tmp = path.with_suffix(".tmp")
    writer = None
    done = 0
    while done < labels:
        n = min(chunk, labels - done)
        img = np.sort(rng.integers(done // 10, min(done // 10 + n // 10 + 1, images), n))
        W = np.full(n, 640, np.int32)
        H = np.full(n, 480, np.int32)
        w = rng.uniform(4, 300, n)
        h = rng.uniform(4, 300, n)
        x = rng.uniform(0, 640 - w)
        y = rng.uniform(0, 480 - h)
        boxes = np.stack([x, y, w, h], axis=1)
        sample_rows = rng.random(n) < 0.02
        boxes[sample_rows] = np.nan
        label = classes[rng.choice(80, n, p=weights)].astype(object)
        label[sample_rows] = None
        table = T.from_columns({
            T.SAMPLE_ID: pa.array(np.char.add("images/", np.char.add(img.astype(str), ".jpg"))),
            T.SOURCE: pa.array(np.full(n, "gt")),
            T.LABEL_ID: pa.array(np.where(sample_rows, -1, np.arange(done, done + n))).cast(pa.int64()),
            T.LABEL: pa.array(label, pa.string()),
            T.BBOX: boxes,
            T.WIDTH: W, T.HEIGHT: H,
            T.SPLIT: pa.array(np.where(img % 5 == 0, "val", "train")),
            "occluded": pa.array(rng.random(n) < 0.3),
            "annotator": pa.array(np.array(["alice", "bob", "carol"])[rng.integers(0, 3, n)]),
        })
        if writer is None:
            writer = pq.ParquetWriter(tmp, table.schema, compression="zstd", use_dictionary=True)
        writer.write_table(table, row_group_size=chunk)
        done += n
    writer.close()
    os.replace(tmp, path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--labels", type=int, default=1_000_000)
    ap.add_argument("--file", type=Path, default=None, help="where to cache the generated table")
    ap.add_argument("--args", default="", help="extra arguments for mlcycle stats, e.g. '--compare split'")
    ap.add_argument("--generate-only", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    path = args.file or Path(tempfile.gettempdir()) / f"mlcycle-bench-stats-{args.labels}.parquet"
    if args.generate_only:
        generate(path, args.labels)
        return
    if not path.exists():
        # in a child: Linux carries a parent's RSS high-water mark into forked children
        t = time.perf_counter()
        subprocess.run([sys.executable, __file__, "--labels", str(args.labels), "--file", str(path),
                        "--generate-only"], check=True)
        print(f"generated {path} ({path.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - t:.1f} s", file=sys.stderr)
    cmd = [sys.executable, "-m", "mlcycle", "stats", str(path), "--json", *args.args.split()]
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)  # this child's own peak memory and CPU time
    wall = time.perf_counter() - t
    err = proc.stderr.read().decode(errors="replace")
    if os.waitstatus_to_exitcode(status):
        sys.exit(f"mlcycle stats failed: {err}")
    load = os.getloadavg()[0]
    print(f"mlcycle stats {args.labels:,} labels {args.args}: {wall:.2f} s wall, "
          f"{usage.ru_utime + usage.ru_stime:.2f} s CPU (user {usage.ru_utime:.2f} + sys {usage.ru_stime:.2f}), "
          f"{usage.ru_maxrss / 1024:.0f} MB peak RSS; load average {load:.1f} on {os.cpu_count()} CPUs")

if __name__ == "__main__":
    main()
