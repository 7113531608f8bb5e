"""Image-level classification metrics on label tables.

Rows taken: a ``label`` and no ``bbox`` (image-level labels) of ``gt_source`` and
``pred_source``. Each sample with a ground-truth label is evaluated once:

- the prediction for a sample is its highest-scored predicted label (ties: table order);
  a sample with one prediction without a score uses it; several predictions of which one
  lacks a score is an error (no way to choose). A sample without any prediction is
  predicted ``(none)``: it counts as wrong (a false negative of its true class) and is
  never a false positive of any class.
- predictions for samples without a ground-truth label are not evaluated (counted).
- one ground-truth class per sample (single-label); several different ground-truth
  labels on one sample is an error.

Formulas are scikit-learn's (``precision_recall_fscore_support``, ``zero_division=0``),
over the labels = sorted union of the true and predicted classes (``(none)`` excluded):
P = TP/(TP+FP), R = TP/(TP+FN), F1 = 2TP/(2TP+FP+FN), support = #true; macro = plain
mean over labels, weighted = support-weighted mean, micro = from the summed counts
(equals accuracy unless some samples have no prediction). Top-k accuracy: the true class
is among the k best-scored distinct predicted classes of the sample; reported only when
some sample has several scored predictions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable

from mlcycle import table as T
from mlcycle.errors import MlcycleError

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import pyarrow as pa

NONE = "(none)"


def evaluate(
    table: "pa.Table",
    gt_source: str = T.GT_SOURCE,
    pred_source: str = T.DEFAULT_PRED_SOURCE,
    top_k: Iterable[int] = (1, 5),
) -> dict[str, Any]:
    """Accuracy, per-class precision/recall/F1/support, macro/micro/weighted averages,
    confusion matrix and top-k accuracy; see docs/evaluate-voc-classification.md."""
    import numpy as np

    top_k = sorted({int(k) for k in top_k})
    if any(k < 1 for k in top_k):
        raise MlcycleError(f"top-k values must be at least 1, got {top_k}")
    m = _prepare(table, gt_source, pred_source)
    classes, n_s, n_c = m["classes"], m["n_s"], m["n_c"]
    gt, pr = m["gt"], m["pr"]
    true_of, pred_of, evaluated = m["true_of"], m["pred_of"], m["evaluated"]
    rs, rc, rank, n_pred = m["rs"], m["rc"], m["rank"], m["n_pred"]
    several_scored = bool(np.any(np.bincount(rs, minlength=n_s) > 1))

    y_true = true_of[evaluated]
    y_pred = pred_of[evaluated]
    n = int(y_true.shape[0])
    correct = y_true == y_pred

    # labels: sorted union of true and (top-1) predicted classes of evaluated samples
    present = np.zeros(n_c, dtype=bool)
    present[y_true] = True
    present[y_pred[y_pred >= 0]] = True
    lab_idx = np.flatnonzero(present)
    labels = [classes[i] for i in lab_idx]
    pos = np.full(n_c, -1, dtype=np.int64)
    pos[lab_idx] = np.arange(lab_idx.shape[0])
    L = lab_idx.shape[0]
    t_pos = pos[y_true]
    p_pos = np.where(y_pred >= 0, pos[np.maximum(y_pred, 0)], L)  # L = the (none) column

    cm = np.bincount(t_pos * (L + 1) + p_pos, minlength=L * (L + 1)).reshape(L, L + 1)
    tp = np.diag(cm[:, :L]).astype(np.int64)
    true_sum = cm.sum(axis=1)
    pred_sum = cm[:, :L].sum(axis=0)
    precision = _div(tp, pred_sum)
    recall = _div(tp, true_sum)
    f1 = _div(2 * tp, true_sum + pred_sum)

    per_class = {
        name: {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(true_sum[i]),
            T.TP: int(tp[i]),
            T.FP: int(pred_sum[i] - tp[i]),
            T.FN: int(true_sum[i] - tp[i]),
            "num_pred": int(pred_sum[i]),
        }
        for i, name in enumerate(labels)
    }
    support = int(true_sum.sum())
    tp_all, pred_all = int(tp.sum()), int(pred_sum.sum())
    micro_p = _div1(tp_all, pred_all)
    micro_r = _div1(tp_all, support)
    averages = {
        "macro": {"precision": _mean(precision), "recall": _mean(recall), "f1": _mean(f1), "support": support},
        "micro": {"precision": micro_p, "recall": micro_r, "f1": _div1(2 * tp_all, support + pred_all), "support": support},
        "weighted": {
            "precision": _wmean(precision, true_sum), "recall": _wmean(recall, true_sum),
            "f1": _wmean(f1, true_sum), "support": support,
        },
    }

    top = None
    if several_scored:
        hit_rank = np.full(n_s, np.iinfo(np.int64).max, dtype=np.int64)
        match = rc == true_of[rs]
        hit_rank[rs[match]] = rank[match]
        hr = hit_rank[evaluated]
        top = {str(k): _div1(int(np.count_nonzero(hr < k)), n) for k in top_k}

    pred_samples = n_pred > 0
    return {
        "method": "classification",
        "accuracy": _div1(int(correct.sum()), n),
        "labels": labels,
        "per_class": per_class,
        **averages,
        "confusion_matrix": {
            "rows": labels,
            "columns": labels + [NONE],
            "matrix": cm.tolist(),
        },
        "top_k_accuracy": top,
        "counts": {
            "samples": n,
            "correct": int(correct.sum()),
            "without_prediction": int(np.count_nonzero(y_pred < 0)),
            "with_several_predictions": int(np.count_nonzero(evaluated & (np.bincount(rs, minlength=n_s) > 1))),
            "pred_samples_without_gt": int(np.count_nonzero(pred_samples & ~evaluated)),
            "gt_rows": gt["n"],
            "pred_rows": pr["n"],
        },
    }


def annotate(
    table: "pa.Table",
    gt_source: str = T.GT_SOURCE,
    pred_source: str = T.DEFAULT_PRED_SOURCE,
) -> "pa.Table":
    """The table with ``eval``/``eval_id`` (and a null ``eval_iou``) for image-level labels.

    Ground-truth rows: ``tp`` when the sample's predicted class is right, else ``fn``.
    The deciding (top-scored) prediction of each evaluated sample: ``tp`` or ``fp``.
    ``eval_id`` links the two rows by ``label_id``. Other rows (lower-ranked predictions,
    predictions for samples without ground truth, box rows, other sources) get nulls.
    """
    import numpy as np
    import pyarrow as pa

    m = _prepare(table, gt_source, pred_source)
    n = table.num_rows
    ids = T.column_or_null(table, T.LABEL_ID)
    id_valid = ids.is_valid().to_numpy(zero_copy_only=False) if n else np.zeros(0, bool)
    label_id = T.numpy_column(table, T.LABEL_ID, fill=0, dtype=np.int64) if n else np.zeros(0, np.int64)

    n_s = m["n_s"]
    correct = m["evaluated"] & (m["true_of"] == m["pred_of"])
    top1_row = np.full(n_s, -1, dtype=np.int64)
    top1_row[m["rs"][m["rank"] == 0]] = m["top_rows"]
    g_rows, g_s = m["gt"]["rows"], m["g_s"]
    first_gt_row = np.full(n_s, -1, dtype=np.int64)
    first_gt_row[g_s[::-1]] = g_rows[::-1]  # the first ground-truth row of each sample

    ev = np.full(n, None, dtype=object)
    ev_id = np.zeros(n, dtype=np.int64)
    ev_ok = np.zeros(n, dtype=bool)
    ev[g_rows] = np.where(correct[g_s], T.TP, T.FN)
    has_pred = top1_row[g_s] >= 0
    ev_id[g_rows[has_pred]] = label_id[top1_row[g_s[has_pred]]]
    ev_ok[g_rows[has_pred]] = id_valid[top1_row[g_s[has_pred]]]
    decided = np.flatnonzero(m["evaluated"] & (top1_row >= 0))
    prow = top1_row[decided]
    ev[prow] = np.where(correct[decided], T.TP, T.FP)
    ev_id[prow] = label_id[first_gt_row[decided]]
    ev_ok[prow] = id_valid[first_gt_row[decided]]

    out = table
    for name, arr in (
        (T.EVAL, pa.array(ev.tolist(), type=pa.string())),
        (T.EVAL_ID, pa.array(ev_id, type=pa.int64(), mask=~ev_ok)),
        (T.EVAL_IOU, pa.nulls(n, type=pa.float64())),
    ):
        if name in out.column_names:
            out = out.set_column(out.column_names.index(name), name, arr)
        else:
            out = out.append_column(name, arr)
    return out


def _prepare(table: "pa.Table", gt_source: str, pred_source: str) -> dict[str, Any]:
    """Per sample: the true class, the ranked distinct predicted classes, the top-1 class."""
    import numpy as np

    gt = _side(table, gt_source)
    pr = _side(table, pred_source)
    if gt["n"] == 0:
        raise MlcycleError(
            f"no image-level ground-truth labels (source '{gt_source}', rows with a label and no bbox)",
            hint="classification metrics need one class label per sample in the ground truth",
        )
    samples, (g_s, p_s) = _codes(gt["sample"], pr["sample"], sort=False)
    classes, (g_c, p_c) = _codes(gt["label"], pr["label"], sort=True)
    n_s, n_c = len(samples), len(classes)

    # ground truth: exactly one class per sample
    true_of = np.full(n_s, -1, dtype=np.int64)
    pairs = np.unique(g_s * n_c + g_c)
    ps, pc_ = pairs // n_c, pairs % n_c
    multi = np.bincount(ps, minlength=n_s) > 1
    if multi.any():
        s = int(np.argmax(multi))
        names = [classes[c] for c in pc_[ps == s]]
        raise MlcycleError(
            f"sample '{samples[s]}' has {len(names)} different ground-truth labels ({', '.join(names[:5])}); "
            "classification metrics expect one per sample",
            hint="multi-label ground truth is not supported by this evaluation",
        )
    true_of[ps] = pc_
    evaluated = true_of >= 0

    # predictions: rank per sample by score (desc), ties in table order
    score = pr["score"]
    has_score = ~np.isnan(score)
    n_pred = np.bincount(p_s, minlength=n_s)
    n_unscored = np.bincount(p_s[~has_score], minlength=n_s)
    bad = (n_pred > 1) & (n_unscored > 0)
    if bad.any():
        s = int(np.argmax(bad))
        raise MlcycleError(
            f"sample '{samples[s]}' has {int(n_pred[s])} predictions and {int(n_unscored[s])} of them have no score; "
            "cannot choose the predicted class",
            hint="give predictions a score, or keep one prediction per sample",
        )
    order = np.lexsort((-np.where(has_score, score, 0.0), p_s))  # stable: ties keep table order
    rs, rc = p_s[order], p_c[order]
    # first occurrence of each (sample, class) in rank order -> distinct classes per sample
    _, first = np.unique(rs * n_c + rc, return_index=True)
    keep = np.zeros(rs.shape[0], dtype=bool)
    keep[first] = True
    rs, rc, rows = rs[keep], rc[keep], pr["rows"][order][keep]
    rank = np.arange(rs.shape[0]) - np.searchsorted(rs, rs, side="left")
    pred_of = np.full(n_s, -1, dtype=np.int64)
    pred_of[rs[rank == 0]] = rc[rank == 0]

    return {
        "samples": samples, "classes": classes, "n_s": n_s, "n_c": n_c, "gt": gt, "pr": pr,
        "g_s": g_s, "true_of": true_of, "pred_of": pred_of, "evaluated": evaluated,
        "rs": rs, "rc": rc, "rank": rank, "n_pred": n_pred, "top_rows": rows[rank == 0],
    }


# --------------------------------------------------------------------------- helpers

def _div(num: "np.ndarray", den: "np.ndarray") -> "np.ndarray":
    import numpy as np

    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    out = np.zeros_like(num)
    np.divide(num, den, out=out, where=den > 0)
    return out


def _div1(num: float, den: float) -> float:
    return float(num) / float(den) if den else 0.0


def _mean(values: "np.ndarray") -> float:
    import numpy as np

    return float(np.mean(values)) if values.shape[0] else 0.0


def _wmean(values: "np.ndarray", weights: "np.ndarray") -> float:
    import numpy as np

    total = float(np.sum(weights))
    return float(np.sum(values * weights) / total) if total > 0 else 0.0


def _side(table: "pa.Table", source: str) -> dict[str, Any]:
    """Image-level label rows (label set, bbox null) of one source."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    if T.SOURCE not in table.column_names or T.SAMPLE_ID not in table.column_names:
        raise MlcycleError("not a label table: 'sample_id' and 'source' columns are required")
    mask = pc.equal(table.column(T.SOURCE), source).fill_null(False)
    mask = pc.and_(mask, T.column_or_null(table, T.LABEL).is_valid())
    if T.BBOX in table.column_names:
        mask = pc.and_(mask, table.column(T.BBOX).is_null())
    wanted = [c for c in (T.SAMPLE_ID, T.LABEL, T.SCORE) if c in table.column_names]
    sub = table.select(wanted).filter(mask)
    score = T.numpy_column(sub, T.SCORE, dtype=np.float64) if sub.num_rows else np.zeros(0)
    bad = np.isinf(score)
    if bad.any():
        raise MlcycleError(f"source '{source}': a classification score is infinite ({score[np.argmax(bad)]})")
    sample = sub.column(T.SAMPLE_ID) if sub.num_rows else pa.chunked_array([], type=pa.string())
    label = sub.column(T.LABEL) if sub.num_rows else pa.chunked_array([], type=pa.string())
    return {"n": sub.num_rows, "sample": sample, "label": label, "score": score,
            "rows": np.flatnonzero(mask.to_numpy(zero_copy_only=False)) if table.num_rows else np.zeros(0, np.int64)}


def _codes(a: "pa.ChunkedArray", b: "pa.ChunkedArray", sort: bool) -> tuple[list[str], tuple["np.ndarray", "np.ndarray"]]:
    """Shared integer codes for two string columns (sorted by value when ``sort``)."""
    import numpy as np
    import pyarrow as pa

    chunks = [c.cast(pa.string()) for c in a.chunks + b.chunks]
    if not chunks or (len(a) + len(b)) == 0:
        return [], (np.zeros(0, np.int64), np.zeros(0, np.int64))
    enc = pa.concat_arrays(chunks).dictionary_encode()
    names = enc.dictionary.to_pylist()
    codes = enc.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    if sort:
        order = sorted(range(len(names)), key=names.__getitem__)
        rank = np.empty(len(names), dtype=np.int64)
        rank[order] = np.arange(len(names))
        codes = rank[codes]
        names = [names[i] for i in order]
    return names, (codes[: len(a)], codes[len(a):])
