"""The quality gate: minimum values for metrics (``fail_under``), checked on a document.

``check_bounds(doc, bounds)`` returns one message per metric below its bound; whoever
called it decides what a failure means (the CLI exits 3 after writing its outputs).
Every metric a bound may name is a fraction in [0, 1].
"""

from __future__ import annotations

from typing import Mapping

from mlcycle.errors import OptionError

# names a bound may use besides the summary metrics (AP, AP50, ..., AR_100, AP_<range>)
EXTRA_METRICS = ("precision", "recall", "f1", "accuracy", "mAP")


def metric_names() -> list[str]:
    """The COCO summary metrics and the other names a bound may use (for completions)."""
    from mlcycle.evaluation.coco import STAT_NAMES

    return [*STAT_NAMES, *EXTRA_METRICS]


def flat_metrics(doc: dict) -> dict[str, float]:
    """Names a bound accepts: every summary metric plus precision/recall/f1 at the IoU threshold."""
    out = {k: v for k, v in doc.get("metrics", {}).items() if isinstance(v, (int, float)) and v is not None}
    for k in ("precision", "recall", "f1"):
        v = doc.get("at_iou", {}).get(k)
        if isinstance(v, (int, float)):
            out[k] = v
    for k in ("accuracy", "mAP"):
        v = doc.get(k)
        if isinstance(v, (int, float)) and k not in out:
            out[k] = v
    return out


def check_bound_values(bounds: Mapping[str, float]) -> dict[str, float]:
    """The bounds as floats; ``OptionError`` for one that no fraction can meet (above 1)."""
    out: dict[str, float] = {}
    for name, bound in bounds.items():
        try:
            value = float(bound)
        except (TypeError, ValueError):
            raise OptionError("fail_under", f"{name}: {bound!r} is not a number") from None
        if value > 1:
            raise OptionError("fail_under", f"{name}={value:g} can never be met: metrics are fractions in [0, 1]")
        out[str(name)] = value
    return out


def check_bounds(doc: dict, bounds: Mapping[str, float]) -> list[str]:
    """Messages for each metric below its bound (an undefined metric, -1 or null, fails).

    ``OptionError`` for a name the document has no metric for."""
    flat = flat_metrics(doc)
    failed = []
    for name, bound in bounds.items():
        if name not in flat and name not in doc.get("metrics", {}):
            raise OptionError("fail_under", f"unknown metric {name!r}", hint=f"one of: {', '.join(flat)}")
        v = flat.get(name)
        if v is None or v < bound:
            failed.append(f"{name} = {'undefined' if v is None else f'{v:.4f}'} is below {bound:g}")
    return failed
