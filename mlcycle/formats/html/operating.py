"""The report's operating points, from the evaluated table alone: for each prediction
source, the score threshold that maximises F1, the matches between predictions and
ground truth, and each sample's errors at a threshold.

Why the table is enough: ``evaluate`` matches greedily, each image and class in
descending score order, so the match of a prediction never depends on predictions with a
lower score. Keeping only predictions with ``score >= t`` therefore leaves every
remaining match as it is: at threshold ``t`` a prediction is a tp or fp as its ``eval``
says, and a ground truth is found when the prediction matched to it (``eval_id``) has
``score >= t``. The F1 of every threshold follows from one sort of the scores.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlcycle import table as T

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import pyarrow as pa


def prediction_sources(table: "pa.Table") -> list[str]:
    """The prediction sources of ``table`` (every source but ``gt``), sorted."""
    import pyarrow.compute as pc

    if not table.num_rows:
        return []
    return sorted(s for s in pc.unique(table[T.SOURCE]).to_pylist() if s is not None and s != T.GT_SOURCE)


def _eval(table: "pa.Table") -> "np.ndarray":
    import numpy as np

    if T.EVAL not in table.column_names:
        return np.full(table.num_rows, None, dtype=object)
    return np.asarray(table[T.EVAL].to_numpy(zero_copy_only=False), dtype=object)


def _scores(table: "pa.Table") -> "np.ndarray":
    """Scores as float64, a missing score as +inf (always kept by a threshold)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    if T.SCORE not in table.column_names:
        return np.full(table.num_rows, np.inf)
    s = pc.fill_null(pc.cast(table[T.SCORE], pa.float64()), np.inf)
    return np.asarray(s.to_numpy(zero_copy_only=False), dtype=np.float64)


def counted_gt(table: "pa.Table", ev: "np.ndarray | None" = None) -> "np.ndarray":
    """Ground-truth rows the evaluation counted (``eval`` tp or fn; crowd regions and
    sample rows have none)."""
    import numpy as np
    import pyarrow.compute as pc

    ev = _eval(table) if ev is None else ev
    gt = np.asarray(pc.equal(table[T.SOURCE], T.GT_SOURCE).to_numpy(zero_copy_only=False), dtype=bool)
    return gt & ((ev == T.TP) | (ev == T.FN))


def best_f1(table: "pa.Table") -> dict[str, dict[str, Any]]:
    """{source: operating point} for every prediction source of an evaluated table:
    ``threshold`` (keep predictions with score >= it; None when the source has no
    scores or finds nothing), ``f1``, ``precision``, ``recall``, ``tp``, ``fp``, ``fn``
    at it, and ``gt`` (the ground truth counted). Empty without an ``eval`` column."""
    import numpy as np
    import pyarrow.compute as pc

    if T.EVAL not in table.column_names or not table.num_rows:
        return {}
    ev = _eval(table)
    scores = _scores(table)
    n_gt = int(counted_gt(table, ev).sum())
    out: dict[str, dict[str, Any]] = {}
    for src in prediction_sources(table):
        mine = np.asarray(pc.equal(table[T.SOURCE], src).to_numpy(zero_copy_only=False), dtype=bool)
        rows = np.flatnonzero(mine & ((ev == T.TP) | (ev == T.FP)))
        s = scores[rows]
        order = np.argsort(-s, kind="stable")
        s, tp_flag = s[order], (ev[rows][order] == T.TP)
        tp = np.cumsum(tp_flag)
        fp = np.cumsum(~tp_flag)
        # a threshold keeps every prediction with an equal score: the last of each run
        last = np.flatnonzero(np.append(s[1:] != s[:-1], True)) if len(s) else np.zeros(0, np.int64)
        point: dict[str, Any] = {"threshold": None, "f1": 0.0, "precision": None, "recall": 0.0 if n_gt else None,
                                 T.TP: 0, T.FP: 0, T.FN: n_gt, "gt": n_gt, "predictions": int(len(rows)),
                                 "scored": bool(np.isfinite(s).any())}
        if len(last):
            denom = tp[last] + fp[last] + n_gt
            f1 = np.where(denom > 0, 2.0 * tp[last] / np.maximum(denom, 1), 0.0)
            best = int(np.argmax(f1))  # the first maximum: the highest threshold that reaches it
            i = last[best]
            if f1[best] > 0:
                t, f = int(tp[i]), int(fp[i])
                point.update({"threshold": float(s[i]) if np.isfinite(s[i]) else None, "f1": float(f1[best]),
                              "precision": t / (t + f), "recall": t / n_gt if n_gt else None,
                              T.TP: t, T.FP: f, T.FN: n_gt - t})
        out[src] = point
    return out


def matches(table: "pa.Table", codes: "np.ndarray") -> dict[str, "np.ndarray"]:
    """{source: int64 array of shape (k, 2)}: the (ground-truth row, prediction row)
    pairs the evaluation matched (predictions with ``eval`` tp, through ``eval_id`` =
    the ground truth's ``label_id`` in the same sample). ``codes``: each row's sample."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    if T.EVAL not in table.column_names or T.EVAL_ID not in table.column_names or T.LABEL_ID not in table.column_names:
        return {}
    ev = _eval(table)
    src = np.asarray(table[T.SOURCE].to_numpy(zero_copy_only=False), dtype=object)
    gt_rows = np.flatnonzero((src == T.GT_SOURCE) & pc.is_valid(table[T.LABEL_ID]).to_numpy(zero_copy_only=False))
    gt = pa.table({"s": pa.array(codes[gt_rows], pa.int64()), "i": table[T.LABEL_ID].take(pa.array(gt_rows)),
                   "g": pa.array(gt_rows, pa.int64())})
    out = {}
    for name in prediction_sources(table):
        rows = np.flatnonzero((src == name) & (ev == T.TP))
        if not len(rows):
            out[name] = np.zeros((0, 2), np.int64)
            continue
        p = pa.table({"s": pa.array(codes[rows], pa.int64()),
                      "i": pc.cast(table[T.EVAL_ID].take(pa.array(rows)), pa.int64()), "p": pa.array(rows, pa.int64())})
        j = p.join(gt, keys=["s", "i"], join_type="inner")
        pairs = np.stack([j["g"].to_numpy(), j["p"].to_numpy()], axis=1) if j.num_rows else np.zeros((0, 2), np.int64)
        out[name] = pairs[np.argsort(pairs[:, 0], kind="stable")]
    return out


def sample_errors(table: "pa.Table", codes: "np.ndarray", n: int, thresholds: dict[str, float | None],
                  pairs: dict[str, "np.ndarray"] | None = None) -> "np.ndarray":
    """Each sample's errors at the thresholds, summed over the prediction sources: a
    false positive kept by the threshold counts its score (1 without a score), a
    counted ground truth not found at the threshold counts 1. Low-score boxes below the
    threshold count nothing, so the samples with confident mistakes and misses come first."""
    import numpy as np

    ev = _eval(table)
    scores = _scores(table)
    src = np.asarray(table[T.SOURCE].to_numpy(zero_copy_only=False), dtype=object)
    gt = counted_gt(table, ev)
    pairs = matches(table, codes) if pairs is None else pairs
    key = np.zeros(n, np.float64)
    for name in prediction_sources(table):
        t = thresholds.get(name)
        t = -np.inf if t is None else t
        fp = np.flatnonzero((src == name) & (ev == T.FP) & (scores >= t))
        key += np.bincount(codes[fp], weights=np.where(np.isfinite(scores[fp]), scores[fp], 1.0), minlength=n)
        found = np.zeros(len(src), bool)
        pr = pairs.get(name, np.zeros((0, 2), np.int64))
        found[pr[scores[pr[:, 1]] >= t, 0]] = True
        missed = np.flatnonzero(gt & ~found)
        key += np.bincount(codes[missed], minlength=n)
    return key
