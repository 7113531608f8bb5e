"""Run a command as a whole process and measure wall time and its own peak memory.

``os.wait4`` returns the resource usage of that one child, so peak RSS is per process
(``ru_maxrss`` is in KiB on Linux).

Caveat, measured: Linux carries the parent's RSS high-water mark into a forked child
across ``exec``, so a benchmark whose own process has grown big (e.g. by generating the
data set) would report that size for every child. Generate data in a subprocess
(``generate_in_subprocess``) so that the measuring process stays small.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import time


def run(cmd: list[str], env: dict | None = None, stdout=subprocess.DEVNULL) -> tuple[float, float]:
    """(seconds, peak MB) of one run; raises if the command fails."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=stdout, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{err}")
    return elapsed, usage.ru_maxrss / 1024.0


def best_of(cmd: list[str], repeat: int, env: dict | None = None) -> tuple[float, float]:
    """Median time and max peak memory over ``repeat`` runs."""
    runs = [run(cmd, env) for _ in range(repeat)]
    return statistics.median(r[0] for r in runs), max(r[1] for r in runs)


def generate_in_subprocess(script: str, args: list[str]) -> None:
    """Run ``script --generate ARGS`` in a child so this process stays small."""
    import sys

    subprocess.run([sys.executable, script, "--generate", *args], check=True)
