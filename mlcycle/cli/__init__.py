"""The command line: a thin typer layer over the library.

Each command lives in its own module here and only parses options, then calls one
library function. Nothing heavy (pyarrow, numpy, pycocotools, yaml) is imported at
module level, so ``mlcycle --help`` and tab completion stay instant.
"""

from __future__ import annotations

import importlib
import sys
import os

from mlcycle.cli.common import app

# Command modules register themselves on `app` when imported, in help order.
COMMAND_MODULES = (
    "ingest",
    "schema_check",
    "stats",
    "evaluate",
    "mine_hard",
    "export",
    "merge",
    "filter",
    "remap",
    "split",
    "rebalance",
    "diff",
    "dedupe",
    "info",
)

for _name in COMMAND_MODULES:
    importlib.import_module(f"mlcycle.cli.{_name}")


def main() -> None:
    """Console-script entry point."""
    if "_MLCYCLE_COMPLETE" in os.environ:
        # Dynamic completion (`eval "$(_MLCYCLE_COMPLETE=source_bash mlcycle)"`): typer
        # registers its shell classes only with add_completion=True, which would also add
        # --install-completion to every help. The static scripts in completions/ need no
        # Python at all (docs/shell.md); this keeps the dynamic route working too.
        from typer._completion_classes import completion_init

        completion_init()
    # pyarrow imports pandas (when installed) on its first Python-to-Arrow conversion,
    # ~0.4 s of start-up that no mlcycle command uses. Only the real process entry point
    # does this (never an in-process test runner), and MLCYCLE_PANDAS=1 turns it off.
    if "pandas" not in sys.modules and os.environ.get("MLCYCLE_PANDAS") != "1":
        sys.meta_path.insert(0, _NoPandas())
    app(prog_name="mlcycle")


class _NoPandas:
    """A meta-path finder that makes ``import pandas`` fail (see ``main``)."""

    def find_spec(self, name, path=None, target=None):
        if name == "pandas" or name.startswith("pandas."):
            raise ModuleNotFoundError(f"No module named {name!r} (mlcycle skips pandas)", name=name)
        return None
