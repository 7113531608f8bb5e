"""Operating points: the score thresholds worth deploying, per class and over all classes.

From the detections matched at one IoU threshold (true positive, false positive; those
matched to crowd regions are left out, as in the per-label columns) and the number of
ground-truth objects, every distinct score is a candidate threshold (keep detections
with ``score >= threshold``). Reported:

- ``best_f1``: the threshold with the highest F1 (ties: the highest threshold, i.e. the
  fewest detections), with its precision and recall; ``best_fbeta`` likewise for
  F-beta = (1 + b²)·P·R / (b²·P + R) when beta is not 1;
- ``at_recall``: per target r, the highest precision among thresholds with recall >= r
  (and the highest threshold giving it); ``at_precision``: per target p, the highest
  recall among thresholds with precision >= p. ``null`` when the target is out of reach.

``conf_option`` reads the ``conf`` parameter: a number, or ``"best-f1"`` /
``"best-fbeta"`` (the overall operating point decides the threshold of the per-label
columns, P/R/F1 and the confusion matrix).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from mlcycle.errors import OptionError

AUTO = ("best-f1", "best-fbeta")


def conf_option(conf) -> tuple[float, str | None]:
    """(numeric threshold, auto mode or None) from a number or "best-f1"/"best-fbeta"."""
    if isinstance(conf, str):
        text = conf.strip().lower()
        if text in AUTO:
            return 0.0, text
        try:
            return float(text), None
        except ValueError:
            raise OptionError("conf", f"expected a score or one of {', '.join(AUTO)}, got {conf!r}") from None
    try:
        return float(conf), None
    except (TypeError, ValueError):
        raise OptionError("conf", f"expected a score or one of {', '.join(AUTO)}, got {conf!r}") from None


def check(beta: float, at_recall: Sequence[float], at_precision: Sequence[float]) -> None:
    if not (beta > 0 and np.isfinite(beta)):
        raise OptionError("beta", f"expected a positive number, got {beta}")
    for name, values in (("at_recall", at_recall), ("at_precision", at_precision)):
        for v in values:
            if not (0.0 < v <= 1.0):
                raise OptionError(name, f"expected a target in (0, 1], got {v}")


def _fbeta(p: np.ndarray, r: np.ndarray, beta: float) -> np.ndarray:
    b2 = beta * beta
    den = b2 * p + r
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, (1 + b2) * p * r / np.where(den > 0, den, 1), 0.0)


def _point(thr, p, r, i) -> dict:
    return {"threshold": float(thr[i]), "precision": float(p[i]), "recall": float(r[i])}


def curve(scores: np.ndarray, tp: np.ndarray, n_gt: int, presorted: bool = False):
    """(thresholds descending, precision, recall) at every distinct score."""
    if presorted:
        s, ctp = scores, np.cumsum(tp)
    else:
        order = np.argsort(-scores, kind="stable")
        s = scores[order]
        ctp = np.cumsum(tp[order])
    n = np.arange(1, len(s) + 1)
    last = np.flatnonzero(np.r_[s[1:] != s[:-1], True])
    with np.errstate(divide="ignore", invalid="ignore"):
        p = ctp[last] / n[last]
        r = ctp[last] / n_gt if n_gt else np.full(len(last), np.nan)
    return s[last], p, r


def points(scores: np.ndarray, tp: np.ndarray, n_gt: int, beta: float,
           at_recall: Sequence[float], at_precision: Sequence[float], presorted: bool = False) -> dict:
    """The operating points of one set of detections (``tp`` bool, the rest false positives)."""
    out: dict = {"num_gt": int(n_gt), "num_pred": int(len(scores)), "best_f1": None}
    if beta != 1.0:
        out["best_fbeta"] = None
    out["at_recall"] = [{"target": float(t), "threshold": None, "precision": None, "recall": None} for t in at_recall]
    out["at_precision"] = [{"target": float(t), "threshold": None, "precision": None, "recall": None}
                           for t in at_precision]
    if not len(scores) or not n_gt:
        return out
    thr, p, r = curve(scores, tp, n_gt, presorted)
    f1 = _fbeta(p, r, 1.0)
    i = int(np.argmax(f1))
    out["best_f1"] = {**_point(thr, p, r, i), "f1": float(f1[i])}
    if beta != 1.0:
        fb = _fbeta(p, r, beta)
        i = int(np.argmax(fb))
        out["best_fbeta"] = {**_point(thr, p, r, i), "beta": beta, "fbeta": float(fb[i])}
    for row in out["at_recall"]:
        ok = np.flatnonzero(r >= row["target"])
        if len(ok):
            i = int(ok[np.argmax(p[ok])])
            row.update(_point(thr, p, r, i))
    for row in out["at_precision"]:
        ok = np.flatnonzero(p >= row["target"])
        if len(ok):
            i = int(ok[np.argmax(r[ok])])
            row.update(_point(thr, p, r, i))
    return out


def compute(scores: np.ndarray, cats: np.ndarray, tp: np.ndarray, counted: np.ndarray, n_gt_k: np.ndarray,
            classes: Sequence[str], iou: float, beta: float = 1.0, at_recall: Sequence[float] = (),
            at_precision: Sequence[float] = ()) -> dict:
    """Operating points over all classes (pooled) and per class. ``counted`` marks the
    detections that are true or false positives (the others, matched to crowd regions,
    are left out)."""
    s, c, t = scores[counted], cats[counted], tp[counted]
    by_score = np.argsort(-s, kind="stable")
    s, c, t = s[by_score], c[by_score], t[by_score]
    overall = points(s, t, int(n_gt_k.sum()), beta, at_recall, at_precision, presorted=True)
    per_class = []
    # stable by class keeps the score order inside each class (16-bit keys: a radix sort)
    key = c.astype(np.uint16) if len(classes) <= np.iinfo(np.uint16).max else c
    order = np.argsort(key, kind="stable")
    bounds = np.searchsorted(c[order], np.arange(len(classes) + 1))
    for k, name in enumerate(classes):
        idx = order[bounds[k]:bounds[k + 1]]
        per_class.append({"label": name, **points(s[idx], t[idx], int(n_gt_k[k]), beta, at_recall, at_precision,
                                                  presorted=True)})
    return {"iou": iou, "beta": beta, "overall": overall, "per_class": per_class}


def auto_threshold(ops: dict, mode: str) -> float | None:
    """The overall threshold ``mode`` ("best-f1"/"best-fbeta") picks, or None (no point)."""
    key = "best_fbeta" if mode == "best-fbeta" and "best_fbeta" in ops["overall"] else "best_f1"
    point = ops["overall"].get(key)
    return None if point is None else point["threshold"]
