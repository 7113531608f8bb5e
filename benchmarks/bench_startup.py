"""How fast mlcycle answers the shell: --help, COMMAND --help and a completion request.

    python benchmarks/bench_startup.py [--runs 20] [--command evaluate] [--json]

Each case runs ``--runs`` times as a fresh process (as a shell runs it) and reports the
median wall time next to a bare ``python -c pass`` of the same interpreter, so the
figure mlcycle adds is visible. A completion request is what a shell sends on TAB with
dynamic completion (``_MLCYCLE_COMPLETE=complete_bash``); the static scripts in
completions/ start no Python at all, so the last row times bash running the generated
completion function instead. Goal: every mlcycle case under 100 ms on this machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _mlcycle() -> list[str]:
    script = Path(sys.executable).parent / "mlcycle"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "mlcycle"]


def time_runs(cmd: list[str], runs: int, env: dict | None = None) -> tuple[list[float], list[float]]:
    """Wall times and CPU times (user + system of the child) of ``runs`` fresh processes.

    CPU time is the figure to compare on a busy machine: wall time then includes waiting
    for a core, CPU time does not."""
    import resource

    env = {**os.environ, **(env or {})}
    subprocess.run(cmd, env=env, capture_output=True)  # warm the file cache once
    wall, cpu = [], []
    for _ in range(runs):
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        p = subprocess.run(cmd, env=env, capture_output=True)
        wall.append(time.perf_counter() - t0)
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append((r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime))
        if p.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed: {p.stderr.decode()[-500:]}")
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--command", default=None, help="the command for COMMAND --help [default: evaluate if present, else ingest]")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--python", default=None,
                        help="another interpreter to run mlcycle from this checkout with (e.g. a venv "
                             "with another typer version); it runs python -m mlcycle with PYTHONPATH set")
    args = parser.parse_args()

    sys.path.insert(0, str(REPO / "scripts"))
    import docgen  # scripts/docgen.py: the command tree

    names = [d.name for d in docgen.command_tree()[1:]]
    command = args.command or ("evaluate" if "evaluate" in names else names[0])
    python = args.python or sys.executable
    mlc = [python, "-m", "mlcycle"] if args.python else _mlcycle()
    base_env = {"PYTHONPATH": str(REPO)} if args.python else {}
    cases = [
        ("python -c pass", [python, "-c", "pass"], None),
        ("mlcycle --help", mlc + ["--help"], base_env),
        (f"mlcycle {command} --help", mlc + [command, "--help"], base_env),
        ("completion request (dynamic, bash)", mlc,
         {**base_env, "_MLCYCLE_COMPLETE": "complete_bash", "COMP_WORDS": "mlcycle ingest --format ",
          "COMP_CWORD": "3"}),
    ]
    bash = shutil.which("bash")
    if bash:
        script = REPO / "completions" / "mlcycle.bash"
        probe = (f'source "{script}"; COMP_WORDS=(mlcycle ingest --format ""); COMP_CWORD=3; '
                 "COMPREPLY=(); _mlcycle; echo \"${COMPREPLY[*]}\"")
        cases.append(("completion (static script, bash)", [bash, "--norc", "-c", probe], None))
        cases.append(("bash -c true", [bash, "--norc", "-c", "true"], None))

    rows = []
    for label, cmd, env in cases:
        runs, cpu = time_runs(cmd, args.runs, env)
        rows.append({"case": label, "median_ms": round(statistics.median(runs) * 1000, 1),
                     "min_ms": round(min(runs) * 1000, 1), "max_ms": round(max(runs) * 1000, 1),
                     "cpu_median_ms": round(statistics.median(cpu) * 1000, 1)})
    typer_version = subprocess.run([python, "-c", "import typer; print(typer.__version__)"],
                                   capture_output=True, text=True).stdout.strip()
    meta = {"python": platform.python_version(), "typer": typer_version, "runs": args.runs,
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
            "load_avg_1min": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None}
    if args.json:
        print(json.dumps({"meta": meta, "rows": rows}, indent=2))
        return
    base = rows[0]["median_ms"]
    print(f"median of {args.runs} runs; python {meta['python']}, typer {meta['typer']}, "
          f"{meta['machine']}, load {meta['load_avg_1min']}")
    print(f"{'case':<40} {'median ms':>10} {'over python':>12} {'min':>7} {'max':>7} {'cpu ms':>7}")
    for r in rows:
        over = "" if r["case"] in ("python -c pass", "bash -c true") or "static" in r["case"] else f"+{r['median_ms'] - base:.1f}"
        print(f"{r['case']:<40} {r['median_ms']:>10.1f} {over:>12} {r['min_ms']:>7.1f} {r['max_ms']:>7.1f} "
              f"{r['cpu_median_ms']:>7.1f}")


if __name__ == "__main__":
    main()
