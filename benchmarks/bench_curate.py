"""Benchmark: `mlcycle filter` and `mlcycle remap` on a generated Parquet label table.

    .venv/bin/python benchmarks/bench_curate.py                     # 10 million labels
    .venv/bin/python benchmarks/bench_curate.py --labels 1000000

Uses bench_stats' generator (LABELS labels on LABELS/10 images, 80 long-tailed classes,
train/val, `occluded` and `annotator` attributes, 2 % sample rows; cached in the temp
folder), then runs each command as a whole process writing Parquet to a temporary file
and reports wall time, CPU time and the child's own peak resident memory (ru_maxrss via
os.wait4). Goal for 10 million labels: < 10 s each on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

COMMANDS = {
    "filter": ["filter", "{src}", "--where", "label in ['class_00', 'class_05', 'class_40'] and bbox.w >= 32 and not occluded",
               "-o", "{out}"],
    "filter --split": ["filter", "{src}", "--split", "val", "--drop-empty", "-o", "{out}"],
    "remap": ["remap", "{src}", "--map", "class_01=vehicle,class_02=vehicle,class_03=vehicle,class_79=,class_78=",
              "-o", "{out}"],
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--labels", type=int, default=10_000_000)
    ap.add_argument("--file", type=Path, default=None, help="where to cache the generated table")
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()
    path = args.file or Path(tempfile.gettempdir()) / f"mlcycle-bench-stats-{args.labels}.parquet"
    if not path.exists():
        # in a child: Linux carries a parent's RSS high-water mark into forked children
        t = time.perf_counter()
        subprocess.run([sys.executable, str(HERE / "bench_stats.py"), "--labels", str(args.labels), "--file", str(path),
                        "--generate-only"], check=True)
        print(f"generated {path} ({path.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - t:.1f} s", file=sys.stderr)
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.parquet"
        for name, template in COMMANDS.items():
            cmd = [sys.executable, "-m", "mlcycle", *[a.format(src=path, out=out) for a in template], "-q"]
            for _ in range(args.repeat):
                t = time.perf_counter()
                proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
                _, status, usage = os.wait4(proc.pid, 0)
                wall = time.perf_counter() - t
                err = proc.stderr.read().decode(errors="replace")
                if os.waitstatus_to_exitcode(status):
                    sys.exit(f"mlcycle {name} failed: {err}")
                print(f"mlcycle {name} {args.labels:,} labels: {wall:.2f} s wall, "
                      f"{usage.ru_utime + usage.ru_stime:.2f} s CPU, {usage.ru_maxrss / 1024:.0f} MB peak RSS, "
                      f"output {out.stat().st_size / 1e6:.0f} MB; load average {os.getloadavg()[0]:.1f} "
                      f"on {os.cpu_count()} CPUs", flush=True)


if __name__ == "__main__":
    main()
