"""Temporary shim, removed in the merge: the package is now ``mlcycle.evaluation``.

It keeps the old import paths working for modules not yet moved over (``run``,
``mlcycle.evaluate.coco`` ...). While it exists, ``import mlcycle.evaluate`` binds this
module to ``mlcycle.evaluate`` and shadows the function ``mlcycle.evaluate``.
"""

from __future__ import annotations

import dataclasses
import sys

from mlcycle.evaluation import classification, coco, match, voc
from mlcycle.evaluation.prepare import Options, choose_pred_source, prepare  # noqa: F401


def run(table, options=None, **kwargs):
    """The old ``run``: (table with eval columns, metrics document)."""
    from mlcycle.evaluation.run import run as _run

    return _run(table, dataclasses.replace(options or Options(), **kwargs))


for _name, _module in {"classification": classification, "coco": coco, "match": match, "voc": voc}.items():
    sys.modules[f"{__name__}.{_name}"] = _module
