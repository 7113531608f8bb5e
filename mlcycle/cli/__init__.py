"""The command line: a thin typer layer over the library.

Each command lives in its own module here and only parses options, then calls one
library function. Nothing heavy (pyarrow, numpy, pycocotools, yaml) is imported at
module level, so ``mlcycle --help`` and tab completion stay instant. ``mlcycle --help``
and ``mlcycle COMMAND --help`` do not even import typer (half of the start-up): they
print the pages scripts/docgen.py generated into ``_generated.py``; tab completion
requests are answered from the lists stored there (``_complete.py``). tests/test_docs.py
checks both against typer's own answers.
"""

from __future__ import annotations

import importlib
import os
import sys

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



def __getattr__(name: str):
    """``mlcycle.cli.app``: the typer application with every command registered."""
    if name != "app":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from mlcycle.cli.common import app

    for module in COMMAND_MODULES:
        importlib.import_module(f"mlcycle.cli.{module}")
    # help order is COMMAND_MODULES' order, whichever command module was imported first
    app.registered_commands.sort(key=lambda c: COMMAND_MODULES.index(c.name.replace("-", "_")))
    return app


def help_page(args: list[str]) -> str | None:
    """The stored ``--help`` page for ``args`` (``[--help]`` or ``[COMMAND, --help]``), or
    None when typer must answer: other arguments, or a terminal narrower than the
    pages (click wraps at min(columns, 80))."""
    if not args or args[-1] not in ("--help", "-h") or len(args) > 2:
        return None
    import shutil

    from mlcycle.cli._generated import PAGES, WIDTH

    if shutil.get_terminal_size().columns < WIDTH:
        return None
    return PAGES.get(args[0] if len(args) == 2 else "")


def main() -> None:
    """Console-script entry point."""
    instruction = os.environ.get("_MLCYCLE_COMPLETE")
    if instruction:
        from mlcycle.cli._complete import complete

        page, status = complete(instruction)
    else:
        page, status = help_page(sys.argv[1:]), 0
    if page is not None:
        try:
            sys.stdout.write(page)
            sys.stdout.flush()
        except BrokenPipeError:  # `mlcycle --help | head`: as the commands do
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise SystemExit(status)
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
    __getattr__("app")(prog_name="mlcycle")


class _NoPandas:
    """A meta-path finder that makes ``import pandas`` fail (see ``main``)."""

    def find_spec(self, name, path=None, target=None):
        if name == "pandas" or name.startswith("pandas."):
            raise ModuleNotFoundError(f"No module named {name!r} (mlcycle skips pandas)", name=name)
        return None
