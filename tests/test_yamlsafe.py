"""YAML from files users did not write: an alias bomb ("billion laughs") is refused at
once by every command that reads YAML (schema-check, remap, rebalance, ingest yolo)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from mlcycle import io
from mlcycle import table as T
from mlcycle import yamlsafe
from mlcycle.errors import MlcycleError


def _bomb() -> str:
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    prev = "a"
    for name in "bcdefghi":
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 9) + "]")
        prev = name
    return "\n".join(lines) + "\n"


def test_the_loader_refuses_an_alias_bomb_and_keeps_small_aliases():
    with pytest.raises(MlcycleError, match="aliases expand to more than"):
        yamlsafe.load(_bomb(), "bomb.yaml")
    assert yamlsafe.load("a: &x [1, 2]\nb: *x\n", "ok.yaml") == {"a": [1, 2], "b": [1, 2]}
    assert yamlsafe.load("", "empty.yaml") is None


@pytest.mark.parametrize("args", [["schema-check", "{t}", "-s", "{y}"], ["remap", "{t}", "--map-file", "{y}"],
                                  ["rebalance", "{t}", "--target", "{y}"]])
def test_every_command_that_reads_yaml_refuses_the_bomb_fast(tmp_path, args):
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(_bomb())
    table = tmp_path / "t.parquet"
    io.write_table(T.from_columns({T.SAMPLE_ID: ["a.jpg"], T.SOURCE: ["gt"], T.LABEL: ["cat"],
                                   T.BBOX: [[1.0, 1.0, 2.0, 2.0]]}), table)
    cmd = [a.format(t=table, y=bomb) for a in args]
    out = subprocess.run([sys.executable, "-m", "mlcycle", *cmd], capture_output=True, text=True, timeout=60)
    assert out.returncode == 1, out.stderr
    assert "alias bomb" in out.stderr and "internal error" not in out.stderr
