"""Pascal VOC average precision (VOC2007 11-point and VOC2010+ all-point) on label tables.

Semantics follow the VOC devkit (``VOCevaldet.m``) and its Python port
(py-faster-rcnn ``voc_eval.py``), see docs/evaluate-voc-classification.md:

- per class, the detections of all images are ranked by score (descending; ties keep
  table order, a stable sort, where the devkit's quicksort is unstable);
- each detection takes the ground truth box of its image and class with the highest IoU
  (the first one on ties), whether or not that box is already taken;
- IoU >= ``iou`` (and > 0): a ``difficult`` box -> the detection is ignored (neither TP
  nor FP); a box not yet detected -> TP and the box is taken; a taken box -> FP
  (duplicate). Otherwise FP. The devkit compares with ``>=``; py-faster-rcnn with ``>``:
  the stated fixture values (Object-Detection-Metrics, review_object_detection_metrics,
  Cartucho/mAP) all use ``>=``.
- ``inclusive=True`` is the devkit's inclusive-pixel convention: a box from pixel x1 to
  pixel x2 is ``x2 - x1 + 1`` wide. Table boxes are ``[x, y, w, h]`` with ``x2 = x + w``,
  so widths and heights are ``w + 1``/``h + 1`` and the intersection width is
  ``min(x2) - max(x1) + 1``. ``inclusive=False`` is the continuous (COCO) convention.
- ``num_gt`` counts non-difficult boxes; recall = cumTP / num_gt, precision = cumTP /
  (cumTP + cumFP); AP 11-point = mean over t in 0, 0.1 .. 1 of max precision at
  recall >= t; all-point = area under the monotone precision envelope.
- mAP is the mean over classes with at least one non-difficult ground truth box;
  classes only predicted are listed (AP ``None``) but not averaged.

Everything is vectorised: one sort, one IoU pass over the (detection, same-image
same-class ground truth) pairs, and the greedy assignment reduces to "the first detection
in rank order whose best box is b is the TP for b", which is a ``np.unique``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlcycle import table as T
from mlcycle.errors import MlcycleError, OptionError

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import pyarrow as pa


def evaluate(
    table: "pa.Table",
    gt_source: str = T.GT_SOURCE,
    pred_source: str = T.DEFAULT_PRED_SOURCE,
    iou: float = 0.5,
    use_07: bool = False,
    inclusive: bool = True,
) -> dict[str, Any]:
    """Pascal VOC AP per class and mAP for the box labels of ``pred_source`` against
    ``gt_source``. Rows without a box (sample rows, image-level labels) are skipped.

    Returns ``{"method", "iou", "inclusive_pixels", "mAP", "per_class", "classes_without_gt",
    "counts"}``; see docs/evaluate-voc-classification.md.
    """
    import numpy as np

    if not 0.0 <= iou <= 1.0:
        raise OptionError("iou", f"IoU threshold must be between 0 and 1, got {iou}")
    m = _match(table, gt_source, pred_source, iou, inclusive)
    classes, n_cls = m["classes"], len(m["classes"])
    ng, nd = m["ng"], m["nd"]
    num_gt, num_diff, num_pred = m["num_gt"], m["num_diff"], m["num_pred"]
    d_cls, d_score = m["d_cls"], m["d_score"]
    tp, fp, ignored = m["is_tp"], m["is_fp"], m["ignored"]

    per_class: dict[str, dict[str, Any]] = {}
    bounds = np.searchsorted(d_cls, np.arange(n_cls + 1), side="left")
    aps = []
    eps = np.finfo(np.float64).eps
    for k, name in enumerate(classes):
        lo, hi = int(bounds[k]), int(bounds[k + 1])
        keep = ~ignored[lo:hi]
        tp_k = tp[lo:hi][keep]
        fp_k = fp[lo:hi][keep]
        npos = int(num_gt[k])
        entry: dict[str, Any] = {
            "AP": None,
            "num_gt": npos,
            "num_difficult": int(num_diff[k]),
            "num_pred": int(num_pred[k]),
            T.TP: int(tp_k.sum()),
            T.FP: int(fp_k.sum()),
            "ignored": int(hi - lo - keep.sum()),
            "precision": [],
            "recall": [],
            "scores": [],
        }
        if npos > 0:
            tp_c = np.cumsum(tp_k, dtype=np.float64)
            fp_c = np.cumsum(fp_k, dtype=np.float64)
            rec = tp_c / float(npos)
            prec = tp_c / np.maximum(tp_c + fp_c, eps)
            ap = _ap_07(rec, prec) if use_07 else _ap_all(rec, prec)
            entry.update(AP=ap, precision=prec.tolist(), recall=rec.tolist(),
                         scores=d_score[lo:hi][keep].tolist())
            aps.append(ap)
        per_class[name] = entry

    without_gt = [c for c in classes if per_class[c]["num_gt"] == 0]
    return {
        "method": "voc07" if use_07 else "voc",
        "iou": iou,
        "inclusive_pixels": inclusive,
        "mAP": float(np.mean(aps)) if aps else 0.0,
        "per_class": per_class,
        "classes_without_gt": without_gt,
        "counts": {
            "gt": ng,
            "gt_difficult": int(num_diff.sum()),
            "pred": nd,
            "pred_ignored": int(ignored.sum()),
            T.TP: int(tp.sum()),
            T.FP: int(fp.sum()),
            "classes": n_cls,
            "classes_in_mAP": len(aps),
        },
    }


def annotate(
    table: "pa.Table",
    gt_source: str = T.GT_SOURCE,
    pred_source: str = T.DEFAULT_PRED_SOURCE,
    iou: float = 0.5,
    inclusive: bool = True,
) -> "pa.Table":
    """The table with ``eval``/``eval_id``/``eval_iou`` set from VOC matching at ``iou``.

    Predictions: ``tp``/``fp``; null when matched to a ``difficult`` box (ignored).
    Ground truth: ``tp`` when detected, else ``fn``; null when difficult. ``eval_id`` is the
    matched row's ``label_id`` and ``eval_iou`` the IoU of the pair (TP and ignored pairs
    only). Rows of other sources and rows without a box get nulls.
    """
    import numpy as np
    import pyarrow as pa

    if not 0.0 <= iou <= 1.0:
        raise OptionError("iou", f"IoU threshold must be between 0 and 1, got {iou}")
    m = _match(table, gt_source, pred_source, iou, inclusive)
    n = table.num_rows
    ids = T.column_or_null(table, T.LABEL_ID)
    id_valid = ids.is_valid().to_numpy(zero_copy_only=False) if n else np.zeros(0, bool)
    label_id = T.numpy_column(table, T.LABEL_ID, fill=0, dtype=np.int64) if n else np.zeros(0, np.int64)
    ev = np.full(n, None, dtype=object)
    ev_id = np.zeros(n, dtype=np.int64)
    ev_id_ok = np.zeros(n, dtype=bool)
    ev_iou = np.full(n, np.nan)

    g_rows, d_rows = m["g_rows"], m["d_rows"]  # table rows, in matching order
    tp, fp, ignored, jmax, ovmax = m["is_tp"], m["is_fp"], m["ignored"], m["jmax"], m["ovmax"]
    ev[d_rows[tp]] = T.TP
    ev[d_rows[fp]] = T.FP
    ev[g_rows[~m["g_diff"]]] = T.FN
    linked = tp | ignored
    ev[g_rows[jmax[tp]]] = T.TP
    ev_id[d_rows[linked]] = label_id[g_rows[jmax[linked]]]
    ev_id_ok[d_rows[linked]] = id_valid[g_rows[jmax[linked]]]
    ev_iou[d_rows[linked]] = ovmax[linked]
    ev_id[g_rows[jmax[tp]]] = label_id[d_rows[tp]]
    ev_id_ok[g_rows[jmax[tp]]] = id_valid[d_rows[tp]]
    ev_iou[g_rows[jmax[tp]]] = ovmax[tp]

    out = table
    for name, arr in (
        (T.EVAL, pa.array(ev.tolist(), type=pa.string())),
        (T.EVAL_ID, pa.array(ev_id, type=pa.int64(), mask=~ev_id_ok)),
        (T.EVAL_IOU, pa.array(ev_iou, type=pa.float64(), from_pandas=True)),
    ):
        if name in out.column_names:
            out = out.set_column(out.column_names.index(name), name, arr)
        else:
            out = out.append_column(name, arr)
    return out


def _match(table: "pa.Table", gt_source: str, pred_source: str, iou: float, inclusive: bool) -> dict[str, Any]:
    """VOC matching of all classes at once; arrays in (class, score) rank order for
    detections and (sample, class) order for ground truth."""
    import numpy as np

    gt = _side(table, gt_source, with_score=False)
    dt = _side(table, pred_source, with_score=True)
    if gt["boxes"].shape[0] == 0:
        raise MlcycleError(
            f"no ground-truth boxes (source '{gt_source}'): VOC AP needs at least one",
            hint="check the ground truth source name and that the ground truth has bbox values",
        )

    # one code space for samples and classes over both sides
    g_sample, d_sample = _encode(gt["sample"], dt["sample"])
    classes, (g_cls, d_cls) = _encode_sorted(gt["label"], dt["label"])
    n_cls = len(classes)
    ng, nd = gt["boxes"].shape[0], dt["boxes"].shape[0]

    g_diff = gt["difficult"]
    num_gt = np.bincount(g_cls[~g_diff], minlength=n_cls)
    num_diff = np.bincount(g_cls[g_diff], minlength=n_cls)
    num_pred = np.bincount(d_cls, minlength=n_cls)

    # ground truth grouped by (sample, class), table order kept inside a group
    g_key = g_sample * n_cls + g_cls
    g_order = np.argsort(g_key, kind="stable")
    g_key = g_key[g_order]
    g_box = gt["boxes"][g_order]
    g_diff = g_diff[g_order]

    # detections ranked: by class, then score descending (stable: ties keep table order)
    d_order = np.lexsort((-dt["score"], d_cls))
    d_cls = d_cls[d_order]
    d_box = dt["boxes"][d_order]
    d_score = dt["score"][d_order]
    d_key = d_sample[d_order] * n_cls + d_cls

    ovmax, jmax = _best_overlaps(d_box, d_key, g_box, g_key, inclusive)
    hit = (ovmax >= iou) & (ovmax > 0)
    ignored = np.zeros(nd, dtype=bool)
    tp = np.zeros(nd, dtype=bool)
    if nd:
        ignored = hit & g_diff[np.maximum(jmax, 0)]
        cand = np.flatnonzero(hit & ~ignored)
        _, first = np.unique(jmax[cand], return_index=True)  # first detection per box
        tp[cand[first]] = True
    fp = ~tp & ~ignored
    return {
        "classes": classes, "ng": ng, "nd": nd,
        "num_gt": num_gt, "num_diff": num_diff, "num_pred": num_pred,
        "d_cls": d_cls, "d_score": d_score, "is_tp": tp, "is_fp": fp, "ignored": ignored,
        "ovmax": ovmax, "jmax": jmax, "g_diff": g_diff,
        "g_rows": gt["rows"][g_order], "d_rows": dt["rows"][d_order],
    }


# --------------------------------------------------------------------------- AP

def _ap_all(rec: "np.ndarray", prec: "np.ndarray") -> float:
    """VOC2010+ all-point AP (py-faster-rcnn ``voc_ap(use_07_metric=False)``)."""
    import numpy as np

    mrec = np.concatenate(([0.0], rec, [1.0]))
    mpre = np.concatenate(([0.0], prec, [0.0]))
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    i = np.flatnonzero(mrec[1:] != mrec[:-1])
    return float(np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1]))


def _ap_07(rec: "np.ndarray", prec: "np.ndarray") -> float:
    """VOC2007 11-point AP: mean over t = 0, 0.1, ..., 1 of max(precision[recall >= t]),
    as (sum of the 11 points) / 11: the devkit adds p/11 point by point, which gives
    0.9999999999999999 for a perfect result; the sum first gives exactly 1.0."""
    import numpy as np

    n = rec.shape[0]
    if n == 0:
        return 0.0
    env = np.maximum.accumulate(prec[::-1])[::-1]  # env[i] = max(prec[i:]); rec is sorted
    thr = np.arange(0.0, 1.1, 0.1)  # as the devkit: 0.30000000000000004 etc.
    idx = np.searchsorted(rec, thr, side="left")
    p = np.where(idx < n, env[np.minimum(idx, n - 1)], 0.0)
    total = 0.0
    for v in p.tolist():  # sum the 11 points, then divide: a perfect result is exactly 1.0
        total = total + v
    return float(total / 11.0)


# --------------------------------------------------------------------------- matching

def _best_overlaps(d_box, d_key, g_box, g_key, inclusive: bool):
    """For each detection: the highest IoU over ground truth with the same key, and the
    index (into the sorted ground truth) of the first box reaching it; -inf/-1 if none."""
    import numpy as np

    nd = d_box.shape[0]
    ovmax = np.full(nd, -np.inf)
    jmax = np.full(nd, -1, dtype=np.int64)
    if nd == 0 or g_box.shape[0] == 0:
        return ovmax, jmax
    lo = np.searchsorted(g_key, d_key, side="left")
    cnt = np.searchsorted(g_key, d_key, side="right") - lo
    total = int(cnt.sum())
    if total == 0:
        return ovmax, jmax
    offs = np.cumsum(cnt) - cnt
    det = np.repeat(np.arange(nd), cnt)
    gi = lo[det] + (np.arange(total) - offs[det])
    ov = _iou_pairs(d_box[det], g_box[gi], inclusive)
    has = cnt > 0
    ovmax[has] = np.maximum.reduceat(ov, offs[has])
    at_max = np.flatnonzero(ov == ovmax[det])
    at_det = det[at_max]
    first = np.ones(at_det.shape[0], dtype=bool)
    first[1:] = at_det[1:] != at_det[:-1]
    jmax[at_det[first]] = gi[at_max[first]]
    return ovmax, jmax


def _iou_pairs(a: "np.ndarray", b: "np.ndarray", inclusive: bool) -> "np.ndarray":
    """Row-wise IoU of [x, y, w, h] boxes; ``inclusive`` adds the devkit's +1 pixel."""
    import numpy as np

    one = 1.0 if inclusive else 0.0
    ax2 = a[:, 0] + a[:, 2]
    ay2 = a[:, 1] + a[:, 3]
    bx2 = b[:, 0] + b[:, 2]
    by2 = b[:, 1] + b[:, 3]
    iw = np.maximum(np.minimum(ax2, bx2) - np.maximum(a[:, 0], b[:, 0]) + one, 0.0)
    ih = np.maximum(np.minimum(ay2, by2) - np.maximum(a[:, 1], b[:, 1]) + one, 0.0)
    inter = iw * ih
    union = (ax2 - a[:, 0] + one) * (ay2 - a[:, 1] + one) + (bx2 - b[:, 0] + one) * (by2 - b[:, 1] + one) - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        out = inter / union
    return np.where(union > 0, out, 0.0)


# --------------------------------------------------------------------------- input

def _side(table: "pa.Table", source: str, with_score: bool) -> dict[str, Any]:
    """The box rows of one source: sample ids, labels (Arrow), boxes, scores, difficult."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    if T.SOURCE not in table.column_names or T.SAMPLE_ID not in table.column_names:
        raise MlcycleError("not a label table: 'sample_id' and 'source' columns are required")
    rows = np.flatnonzero(pc.equal(table.column(T.SOURCE), source).fill_null(False).to_numpy(zero_copy_only=False))
    wanted = [c for c in (T.SAMPLE_ID, T.LABEL, T.BBOX, T.SCORE, T.DIFFICULT) if c in table.column_names]
    sub = table.select(wanted).take(pa.array(rows, type=pa.int64()))
    boxes = T.bboxes(sub)
    has_box = ~np.all(np.isnan(boxes), axis=1)
    bad = has_box & np.any(~np.isfinite(boxes), axis=1)
    if bad.any():
        i = int(np.argmax(bad))
        raise MlcycleError(
            f"row {int(rows[i]) + 1} (source '{source}'): bbox {boxes[i].tolist()} has NaN or infinite values",
            hint="drop or fix such rows before evaluating",
        )
    labels = T.column_or_null(sub, T.LABEL)
    has_label = labels.is_valid().to_numpy(zero_copy_only=False) if sub.num_rows else np.zeros(0, bool)
    if (has_box & ~has_label).any():
        i = int(np.argmax(has_box & ~has_label))
        raise MlcycleError(f"row {int(rows[i]) + 1} (source '{source}'): a box without a label (class name)")
    keep = np.flatnonzero(has_box)
    sub = sub.take(pa.array(keep, type=pa.int64()))
    out: dict[str, Any] = {
        "sample": sub.column(T.SAMPLE_ID),
        "label": sub.column(T.LABEL) if keep.size else pa.chunked_array([], type=pa.string()),
        "boxes": boxes[keep],
        "rows": rows[keep],
    }
    if with_score:
        score = T.numpy_column(sub, T.SCORE, dtype=np.float64) if keep.size else np.zeros(0)
        missing = np.isnan(score)
        if missing.any():
            i = int(rows[keep[int(np.argmax(missing))]])
            raise MlcycleError(
                f"row {i + 1} (source '{source}'): prediction without a score "
                f"({int(missing.sum())} such rows); VOC AP ranks predictions by score",
                hint="give every prediction a score (e.g. 1.0 for a hard decision)",
            )
        out["score"] = score
    out["difficult"] = _difficult(sub)
    return out


def _difficult(sub: "pa.Table") -> "np.ndarray":
    """The ``difficult`` attribute as bool (bool or integer column; null -> False)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    n = sub.num_rows
    if T.DIFFICULT not in sub.column_names or n == 0:
        return np.zeros(n, dtype=bool)
    col = sub.column(T.DIFFICULT)
    typ = col.type
    if pa.types.is_boolean(typ):
        out = col
    elif pa.types.is_integer(typ) or pa.types.is_floating(typ):
        out = pc.not_equal(col, 0)
    elif pa.types.is_null(typ):
        return np.zeros(n, dtype=bool)
    elif pa.types.is_string(typ) or pa.types.is_large_string(typ):
        out = pc.is_in(pc.utf8_lower(col), value_set=pa.array(["1", "true", "yes"]))
    else:
        raise MlcycleError(f"column '{T.DIFFICULT}' has type {typ}; expected bool or integer (0/1)")
    return np.asarray(pc.fill_null(out, False).to_numpy(zero_copy_only=False), dtype=bool)


def _encode(a: "pa.ChunkedArray", b: "pa.ChunkedArray") -> tuple["np.ndarray", "np.ndarray"]:
    """Integer codes for the values of two string columns in one shared code space."""
    import numpy as np
    import pyarrow as pa

    both = pa.chunked_array([c.cast(pa.string()) for c in a.chunks + b.chunks], type=pa.string())
    enc = both.combine_chunks().dictionary_encode() if len(both) else None
    if enc is None:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    codes = enc.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    return codes[: len(a)], codes[len(a):]


def _encode_sorted(a: "pa.ChunkedArray", b: "pa.ChunkedArray") -> tuple[list[str], tuple["np.ndarray", "np.ndarray"]]:
    """Like ``_encode`` but codes follow the sorted order of the distinct values."""
    import numpy as np
    import pyarrow as pa

    both = pa.chunked_array([c.cast(pa.string()) for c in a.chunks + b.chunks], type=pa.string())
    if len(both) == 0:
        return [], (np.zeros(0, np.int64), np.zeros(0, np.int64))
    enc = both.combine_chunks().dictionary_encode()
    names = enc.dictionary.to_pylist()
    order = sorted(range(len(names)), key=names.__getitem__)
    rank = np.empty(len(names), dtype=np.int64)
    rank[order] = np.arange(len(names))
    codes = rank[enc.indices.to_numpy(zero_copy_only=False)]
    return [names[i] for i in order], (codes[: len(a)], codes[len(a):])
