"""Curation verbs: compare versions of a label table, find duplicate images.

``diff`` (mlcycle/curate/diff.py) and ``dedupe`` (mlcycle/curate/dedupe.py) each
return a ``mlcycle.results.Result``.
"""

__all__ = ["diff", "dedupe"]


def __getattr__(name: str):
    if name in __all__:
        import importlib

        return getattr(importlib.import_module(f"mlcycle.curate.{name}"), name)
    raise AttributeError(f"module 'mlcycle.curate' has no attribute {name!r}")
