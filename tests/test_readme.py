"""The README's quick-start pipelines run as written."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def quick_start_block() -> str:
    text = (REPO / "README.md").read_text()
    section = text.split("## Quick start", 1)[1]
    match = re.search(r"```sh\n(.*?)```", section, re.S)
    assert match, "README has no ```sh block under '## Quick start'"
    return match.group(1)


def test_readme_opens_with_make_demo_and_make_test():
    first_block = re.search(r"```sh\n(.*?)```", (REPO / "README.md").read_text(), re.S).group(1)
    commands = [line.split("#")[0].strip() for line in first_block.splitlines() if line.strip()]
    assert commands == ["make demo", "make test"]


def test_quick_start_runs_as_written(tmp_path):
    (tmp_path / "mlcycle").symlink_to(REPO / "mlcycle")
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    script = "set -euo pipefail\n" + quick_start_block()
    proc = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    for made in ("gt.parquet", "train.parquet", "stats.json", "metrics.json", "evaluated.parquet", "hard.parquet",
                 "report/index.html", "copy.json"):
        assert (tmp_path / made).exists(), made
