"""mlcycle: label tables for the loop between data, model and evaluation.

The front door for Python users. Every entry point takes a label table (a
``pyarrow.Table``, see ``mlcycle.table``) and keyword options, and returns either a
table or a ``Result`` (``.table``, ``.summary``, ``.warnings``)::

    import mlcycle

    gt = mlcycle.ingest("instances_val.json", "coco")
    preds = mlcycle.ingest("detections.json", "coco-results", images="instances_val.json")
    run = mlcycle.evaluate(mlcycle.concat([gt, preds]))
    run.summary["metrics"]["AP"], run.table           # metrics + per-label tp/fp/fn
    hard = mlcycle.mine(run.table)                     # failures worth a look
    mlcycle.describe(gt).summary["counts"]             # statistics
    mlcycle.check(gt, "schema.yaml").summary           # schema violations
    mlcycle.write_table(hard.table, "hard.parquet")

Names are loaded on first use (PEP 562), so ``import mlcycle`` and ``mlcycle --help``
import nothing heavy. Errors are ``mlcycle.MlcycleError`` and its subclasses
(``mlcycle.errors`` documents the tree).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> (module, attribute)
_EXPORTS = {
    # tables
    "read_table": ("mlcycle.io", "read_table"),
    "read_tables": ("mlcycle.io", "read_tables"),
    "scan": ("mlcycle.io", "scan"),
    "write_table": ("mlcycle.io", "write_table"),
    "concat": ("mlcycle.io", "concat"),
    # annotation formats
    "ingest": ("mlcycle.formats", "ingest"),
    "export": ("mlcycle.formats", "export"),
    # the commands
    "evaluate": ("mlcycle.evaluation", "evaluate"),
    "check": ("mlcycle.schema", "check"),
    "describe": ("mlcycle.stats", "describe"),
    "mine": ("mlcycle.mining", "mine"),
    # results and errors
    "Result": ("mlcycle.results", "Result"),
    "MlcycleError": ("mlcycle.errors", "MlcycleError"),
    "OptionError": ("mlcycle.errors", "OptionError"),
    "CheckFailed": ("mlcycle.errors", "CheckFailed"),
}

__all__ = ["__version__", "sample_dataset", *_EXPORTS]


def sample_dataset():
    """The folder of the small sample dataset shipped with mlcycle (annotations/,
    predictions/, images/, schema.yaml): for trying things out, the demo and the docs."""
    from pathlib import Path

    return Path(__file__).resolve().parent / "data" / "sample"

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from mlcycle.errors import CheckFailed, MlcycleError, OptionError
    from mlcycle.evaluation import evaluate
    from mlcycle.formats import export, ingest
    from mlcycle.io import concat, read_table, read_tables, scan, write_table
    from mlcycle.mining import mine
    from mlcycle.results import Result
    from mlcycle.schema import check
    from mlcycle.stats import describe


def __getattr__(name: str) -> Any:
    try:
        module, attr = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'mlcycle' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
