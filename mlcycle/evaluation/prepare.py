"""A label table turned into what the matcher needs, and the options of an evaluation.

``Options`` holds every parameter (frozen: nothing changes it once made);
``choose_pred_source`` and ``has_boxes`` pick the sides and the kind of evaluation;
``prepare`` turns the table's rows into the engine's arrays (``match.Objects``).

How a label table maps onto COCO's inputs (docs/evaluate.md has the full story):

- images: every ``sample_id`` of the ground truth (sample rows included), ordered by
  ``image_id`` (then ``sample_id``) — pycocotools' sorted image ids;
- classes: the ground truth's labels plus the categories in the table's COCO metadata,
  ordered by ``category_id`` (then name) — pycocotools' sorted category ids;
- ground truth ``area``: the ``area`` column, ``w*h`` of the box where null;
- prediction area: ``w*h`` of its box (pycocotools' ``loadRes`` does this even for
  segmentation results that carry a box), the mask area for a mask without a box;
- predictions are numbered by row, ground truth is matched by row: a ground truth whose
  ``label_id`` is 0 is matched like any other (pycocotools never counts a match to id 0).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping

from mlcycle import table as T
from mlcycle.errors import MlcycleError, OptionError, printable

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import pyarrow as pa

    from mlcycle.evaluation.match import Objects

METHODS = ("coco", "voc", "voc07")
IOU_TYPES = ("bbox", "segm")
DEFAULT_RANGE_NAMES = ("all", "small", "medium", "large")


@dataclass(frozen=True)
class Options:
    """The parameters of one evaluation (``mlcycle.evaluate`` documents each)."""

    gt_source: str = T.GT_SOURCE
    pred_source: str | None = None
    iou_type: str = "bbox"
    method: str = "coco"
    iou: float = 0.5
    max_dets: tuple[int, ...] = (1, 10, 100)
    area_ranges: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    rel_area_ranges: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    by: tuple[str, ...] = ()
    conf: float = 0.0
    annotate: bool = True   # build the per-label output table (False: metrics only)
    origin: str = "<input>"  # how error messages name the input
    # several prediction sources (compare.py) and operating points (operating_points.py)
    baseline: str | None = None
    bootstrap: int = 0
    seed: int = 0
    beta: float = 1.0
    at_recall: tuple[float, ...] = ()
    at_precision: tuple[float, ...] = ()
    conf_auto: str | None = None   # "best-f1" / "best-fbeta": conf from the operating point
    tide: bool = False


@dataclass
class Prepared:
    """The table's rows turned into the engine's arrays."""

    samples: list            # sample ids in evaluation (image) order
    classes: list[str]       # class names in category order
    gt: "Objects"
    dt: "Objects"
    gt_rows: "np.ndarray"    # row index in the table of each gt object
    dt_rows: "np.ndarray"
    img_area: "np.ndarray | None" = None   # per image width*height (NaN if unknown)
    warnings: list[str] = field(default_factory=list)
    counts: dict[str, Any] = field(default_factory=dict)
    gt_source: str = T.GT_SOURCE
    pred_source: str = T.DEFAULT_PRED_SOURCE
    # for merging shards (partial.py): per sample in ``samples`` its sort key (image id),
    # per class (id or None, row the id came from or -1), the number of classes the table
    # knows (``pending=True`` appends the predictions' other classes after them), per
    # pending class the row its label first appears on, and the warnings as facts
    sample_keys: "np.ndarray | None" = None
    class_info: dict[str, tuple] = field(default_factory=dict)
    n_known: int = 0
    pending_rows: dict[str, int] = field(default_factory=dict)
    pending_off: dict[str, int] = field(default_factory=dict)   # per pending class, predictions off the samples
    notes: dict[str, dict] = field(default_factory=dict)


def warning_text(kind: str, note: dict, segm: bool = False) -> str:
    """The warning ``prepare`` gives for one kind of left-out rows (``Prepared.notes``)."""
    n = note["count"]
    if kind == "gt_no_shape":
        return f"{n} ground-truth label(s) without a {'mask or box' if segm else 'box'} were left out"
    if kind == "pred_no_shape":
        return f"{n} prediction(s) without a {'mask or box' if segm else 'box'} were left out"
    if kind == "pred_no_label":
        return f"{n} prediction(s) without a label were ignored (first: {note['where']})"
    if kind == "unknown_classes":
        detail = note["detail"]
        listed = ", ".join(f"{k} ({v})" for k, v in list(detail.items())[:5])
        return (f"{n} prediction(s) of class(es) the ground truth does not have were "
                f"ignored, as pycocotools does: {listed}{' ...' if len(detail) > 5 else ''}")
    if kind == "pred_off_samples":
        return f"{n} prediction(s) on samples the ground truth does not list were ignored"
    raise ValueError(kind)


NOTE_KINDS = ("gt_no_shape", "pred_no_shape", "pred_no_label", "unknown_classes", "pred_off_samples")


def check_options(opts: Options) -> None:
    """Raise ``OptionError`` (naming the parameter) for a value no evaluation accepts."""
    if opts.method not in METHODS:
        raise OptionError("method", f"expected one of {', '.join(METHODS)}, got {opts.method!r}")
    if opts.iou_type not in IOU_TYPES:
        raise OptionError("iou_type", f"expected one of {', '.join(IOU_TYPES)}, got {opts.iou_type!r}")
    if not (0.0 < opts.iou <= 1.0):
        raise OptionError("iou", f"expected a number in (0, 1], got {opts.iou}")
    if not opts.max_dets or any(int(m) < 1 for m in opts.max_dets):
        raise OptionError("max_dets", "expected positive integers such as 1,10,100")
    for option in ("area_ranges", "rel_area_ranges"):
        for name in getattr(opts, option):
            if name in DEFAULT_RANGE_NAMES:
                raise OptionError(option, f"range name {name!r} is taken by the default ranges; choose another")
    both = set(opts.area_ranges) & set(opts.rel_area_ranges)
    if both:
        raise OptionError("rel_area_ranges", f"range name(s) used twice: {', '.join(sorted(both))}")


# --------------------------------------------------------------------------- sources

def choose_pred_source(table: "pa.Table", gt_source: str, pred_source: str | None, origin: str = "<input>") -> str:
    srcs = T.sources(table)
    if gt_source not in srcs:
        raise MlcycleError(
            f"{origin}: no ground truth: no rows have source '{gt_source}'",
            hint="pass the ground truth table too, or name the source its rows have")
    preds = [s for s in srcs if s != gt_source]
    if pred_source is not None:
        if pred_source == gt_source:
            raise OptionError("pred_source", f"{pred_source!r} is the ground truth source")
        if pred_source not in srcs:
            raise MlcycleError(f"{origin}: no rows have source '{pred_source}'",
                               hint=f"sources present: {', '.join(srcs)}")
        return pred_source
    if not preds:
        return T.DEFAULT_PRED_SOURCE  # an empty prediction set: run() warns, metrics are 0
    if len(preds) > 1:
        raise OptionError("pred_source", f"several prediction sources in {origin} ({', '.join(preds)})",
                          hint="choose one of them as the prediction source")
    return preds[0]


def has_boxes(table: "pa.Table", gt_source: str, pred_source: str) -> bool:
    """Whether the labels are detections (boxes or masks) rather than image-level classes."""
    import pyarrow.compute as pc

    src = table.column(T.SOURCE)
    sel = pc.or_(pc.equal(src, gt_source), pc.equal(src, pred_source))
    for col in (T.BBOX, T.SEGMENTATION):
        if col in table.column_names:
            c = pc.filter(table.column(col), sel)
            if c.null_count < len(c):
                return True
    return False


# --------------------------------------------------------------------------- prepare

def _boxes(table: "pa.Table") -> "np.ndarray":
    """``table.bboxes`` without combining chunks first: (n, 4) float64, NaN where null."""
    import numpy as np

    if T.BBOX not in table.column_names or table.num_rows == 0:
        return T.bboxes(table)
    parts = []
    for chunk in table.column(T.BBOX).chunks:
        n = len(chunk)
        # child nulls (under null boxes) come out as NaN
        arr = chunk.values.to_numpy(zero_copy_only=False)[chunk.offset * 4:(chunk.offset + n) * 4].reshape(n, 4)
        if chunk.null_count:
            arr = np.array(arr, dtype=np.float64)
            arr[~chunk.is_valid().to_numpy(zero_copy_only=False)] = np.nan
        parts.append(arr)
    return np.concatenate(parts).astype(np.float64, copy=False) if len(parts) != 1 else np.array(parts[0], dtype=np.float64)


def prepare(table: "pa.Table", opts: Options, pred_source: str, *, row_numbers: "np.ndarray | None" = None,
            pending: bool = False) -> Prepared:
    """The table's rows as the matcher's arrays (see the module's docstring).

    ``row_numbers`` (one per row, 0-based) are the rows' numbers in the whole input when
    ``table`` is a shard of it: messages name those. ``pending=True`` keeps the
    predictions of classes this table's ground truth does not have, as extra classes
    after the known ones (``Prepared.n_known``), instead of dropping them with a
    warning: another shard's ground truth may have them (``partial.compute``)."""
    import numpy as np

    from mlcycle.evaluation.masks import Masks, mask_areas
    from mlcycle.evaluation.match import Objects

    origin = opts.origin
    n = table.num_rows
    src_codes, src_values = T.dictionary_codes(table.column(T.SOURCE))
    gsrc = src_values.index(opts.gt_source) if opts.gt_source in src_values else -2  # (a shard may have none)
    psrc = src_values.index(pred_source) if pred_source in src_values else -2
    is_gt = src_codes == gsrc
    is_dt = src_codes == psrc
    labelled = T.label_mask(table)
    warnings: list[str] = []

    def num(row: int) -> int:
        """A row's number in the whole input (1-based)."""
        return (int(row_numbers[row]) if row_numbers is not None else row) + 1

    def where(row: int) -> str:
        """A table row named in messages: its number and sample."""
        return f"row {num(row)} (sample {printable(str(s_values[s_codes[row]]), 80)!r})"

    # images: ground truth samples, in image_id then sample_id order
    s_codes, s_values = T.dictionary_codes(table.column(T.SAMPLE_ID))
    n_s = len(s_values)
    img_id = T.numpy_column(table, T.IMAGE_ID, fill=None)
    has_id = T.column_or_null(table, T.IMAGE_ID).is_valid().to_numpy(zero_copy_only=False) if n else np.zeros(0, bool)
    img_id = np.where(has_id, np.nan_to_num(np.asarray(img_id, dtype=np.float64), nan=0), 0).astype(np.int64) if n else np.zeros(0, np.int64)
    in_gt = np.zeros(n_s, bool)
    in_gt[s_codes[is_gt]] = True
    sid = np.full(n_s, np.iinfo(np.int64).max, dtype=np.int64)
    pref = is_gt & has_id
    np.minimum.at(sid, s_codes[pref], img_id[pref])
    other = ~is_gt & has_id
    missing = sid == np.iinfo(np.int64).max
    if other.any() and missing.any():
        tmp = np.full(n_s, np.iinfo(np.int64).max, dtype=np.int64)
        np.minimum.at(tmp, s_codes[other], img_id[other])
        sid = np.where(missing, tmp, sid)
    name_rank = np.empty(n_s, np.int64)
    name_rank[np.argsort(np.array(s_values, dtype=object), kind="stable")] = np.arange(n_s)
    gt_samples = np.flatnonzero(in_gt)
    order = gt_samples[np.lexsort((name_rank[gt_samples], sid[gt_samples]))]
    img_index = np.full(n_s, -1, np.int64)
    img_index[order] = np.arange(len(order))
    samples = [s_values[i] for i in order.tolist()]

    # classes: ground-truth labels + metadata categories, in category_id order
    l_codes, l_values = T.dictionary_codes(T.column_or_null(table, T.LABEL))
    cat_col = T.numpy_column(table, T.CATEGORY_ID)
    cat_valid = T.column_or_null(table, T.CATEGORY_ID).is_valid().to_numpy(zero_copy_only=False) if n else np.zeros(0, bool)
    gt_lab = is_gt & labelled & (l_codes >= 0)
    present = np.zeros(len(l_values), bool)
    present[l_codes[gt_lab]] = True
    class_id: dict[str, int | None] = {}
    meta_cats = T.get_metadata(table).get("coco", {}).get("categories", []) or []
    for c in meta_cats:
        if isinstance(c, dict) and isinstance(c.get("name"), str):
            class_id.setdefault(c["name"], c.get("id") if isinstance(c.get("id"), int) else None)
    class_info: dict[str, tuple] = {k: (v, -1) for k, v in class_id.items()}
    cid_rows = gt_lab & cat_valid
    if cid_rows.any():
        cats = np.asarray(cat_col, dtype=np.float64)[cid_rows]
        codes, first = np.unique(l_codes[cid_rows], return_index=True)
        cid_at = np.flatnonzero(cid_rows)
        for code, i in zip(codes.tolist(), first.tolist()):
            name = l_values[code]
            if class_id.get(name) is None:
                class_id[name] = int(cats[i])
                class_info[name] = (int(cats[i]), num(int(cid_at[i])) - 1)
    for code in np.flatnonzero(present).tolist():
        class_id.setdefault(l_values[code], None)
        class_info.setdefault(l_values[code], (None, -1))
    classes = sorted(class_id, key=lambda k: (class_id[k] is None, class_id[k] if class_id[k] is not None else 0, k))
    n_known = len(classes)
    pending_rows: dict[str, int] = {}
    if pending:
        # the predictions' other classes, after the known ones, in first-appearance order
        d_lab = is_dt & labelled & (l_codes >= 0)
        seen = np.zeros(len(l_values), bool)
        seen[l_codes[d_lab]] = True
        known = set(classes)
        extra = [c for c in np.flatnonzero(seen).tolist() if l_values[c] not in known]
        if extra:
            codes_all, first_all = np.unique(l_codes, return_index=True)
            first_of = dict(zip(codes_all.tolist(), first_all.tolist()))
            for c in extra:
                classes.append(l_values[c])
                pending_rows[l_values[c]] = num(first_of[c]) - 1
    cls_index = {c: i for i, c in enumerate(classes)}
    code_to_cls = np.array([cls_index.get(v, -1) for v in l_values] + [-1], dtype=np.int64)
    row_cls = code_to_cls[l_codes]  # -1 (null label) indexes the trailing -1

    boxes = _boxes(table)
    box_ok = ~np.isnan(boxes).any(axis=1)
    segm = opts.iou_type == "segm"
    seg_valid = T.column_or_null(table, T.SEGMENTATION).is_valid().to_numpy(zero_copy_only=False) if n else np.zeros(0, bool)
    if segm and seg_valid.any():  # '[]' (COCO's "no polygon"): no mask, as if null
        import pyarrow.compute as pc

        seg_valid &= ~pc.equal(T.column_or_null(table, T.SEGMENTATION), "[]").fill_null(False).to_numpy(zero_copy_only=False)
    if n and (boxes_bad := (~np.isnan(boxes).all(axis=1)) & ~box_ok).any():
        row = int(np.argmax(boxes_bad))
        raise MlcycleError(f"{origin}: {where(row)}: bbox has missing or NaN values",
                           hint="fix or drop the row; a box needs 4 numbers")
    if n and np.isinf(boxes[box_ok]).any():
        row = int(np.flatnonzero(box_ok)[np.argmax(np.isinf(boxes[box_ok]).any(axis=1))])
        raise MlcycleError(f"{origin}: {where(row)}: bbox has infinite values")
    W = np.asarray(T.numpy_column(table, T.WIDTH), dtype=np.float64) if n else np.zeros(0)
    H = np.asarray(T.numpy_column(table, T.HEIGHT), dtype=np.float64) if n else np.zeros(0)
    derive = is_dt & labelled & ~box_ok & seg_valid
    if not segm and derive.any():
        # a prediction with a mask and no box is matched on its mask's box, as pycocotools'
        # loadRes gives mask results one (maskUtils.toBbox); its area: the area column
        # (coco-results ingest fills it as loadRes does), else the mask's
        from mlcycle.evaluation.masks import mask_boxes

        rows_d = np.flatnonzero(derive)
        seg_all = T.column_or_null(table, T.SEGMENTATION).combine_chunks()
        masks_d = Masks(seg_all, rows_d, boxes, W, H, origin, where=where)
        rles_d = masks_d.take(np.arange(len(rows_d)))
        boxes = boxes.copy()
        boxes[rows_d] = mask_boxes(rles_d)
        box_ok = box_ok.copy()
        box_ok[rows_d] = True
        area_col_d = T.column_or_null(table, T.AREA)
        no_area = ~area_col_d.is_valid().to_numpy(zero_copy_only=False)[rows_d]
        derived_area = np.full(n, np.nan)
        derived_area[rows_d[no_area]] = mask_areas([r for r, k in zip(rles_d, no_area.tolist()) if k])
    else:
        derived_area = None
    shape_ok = box_ok | (seg_valid if segm else False)

    # ground truth objects: each needs a class (a box without a label cannot be counted)
    g_sel = is_gt & labelled
    g_nolabel = g_sel & (l_codes < 0)
    if g_nolabel.any():
        row = int(np.argmax(g_nolabel))
        raise MlcycleError(f"{origin}: {int(g_nolabel.sum())} ground-truth label(s) have a box or mask but no "
                           f"label (first: {where(row)})",
                           hint="give every ground-truth box its class, or drop those rows")
    notes: dict[str, dict] = {}

    def note(kind: str, **fact) -> None:
        notes[kind] = fact
        warnings.append(warning_text(kind, fact, segm))

    g_nobox = g_sel & ~shape_ok
    if g_nobox.any():
        note("gt_no_shape", count=int(g_nobox.sum()))
    g_rows = np.flatnonzero(g_sel & shape_ok)
    crowd = T.numpy_column(table, T.ISCROWD, fill=False).astype(bool) if T.ISCROWD in table.column_names else np.zeros(n, bool)
    area_col = T.column_or_null(table, T.AREA)
    area = np.asarray(T.numpy_column(table, T.AREA), dtype=np.float64) if n else np.zeros(0)
    area_valid = area_col.is_valid().to_numpy(zero_copy_only=False) if n else np.zeros(0, bool)
    area_valid &= ~np.isnan(area)  # NaN: as if not given
    if (bad_area := area_valid & (g_sel | is_dt & labelled) & ((area < 0) | np.isinf(area))).any():
        row = int(np.argmax(bad_area))
        raise MlcycleError(f"{origin}: {where(row)}: area {area[row]} is not a non-negative number",
                           hint="fix the area, or drop the column so that areas come from the boxes")
    wh = boxes[:, 2] * boxes[:, 3]

    # predictions
    d_sel = is_dt & labelled
    d_nobox = d_sel & ~shape_ok
    if d_nobox.any():
        note("pred_no_shape", count=int(d_nobox.sum()))
    d_sel &= shape_ok
    score_col = T.column_or_null(table, T.SCORE)
    score_valid = score_col.is_valid().to_numpy(zero_copy_only=False) if n else np.zeros(0, bool)
    if (d_sel & ~score_valid).any():
        row = int(np.argmax(d_sel & ~score_valid))
        cnt = int((d_sel & ~score_valid).sum())
        raise MlcycleError(f"{origin}: {cnt} prediction(s) of source '{pred_source}' have no score (first: row {num(row)})",
                           hint="detection metrics rank predictions by score; give every prediction a 'score'")
    score = np.asarray(T.numpy_column(table, T.SCORE), dtype=np.float64) if n else np.zeros(0)
    if (d_sel & np.isnan(np.where(score_valid, score, 0))).any():
        row = int(np.argmax(d_sel & np.isnan(np.where(score_valid, score, 0))))
        raise MlcycleError(f"{origin}: row {num(row)}: score is NaN")
    counts: dict[str, Any] = {}
    d_nolabel = d_sel & (l_codes < 0)
    if d_nolabel.any():
        counts["predictions_without_label"] = int(d_nolabel.sum())
        first = int(np.argmax(d_nolabel))
        note("pred_no_label", count=int(d_nolabel.sum()), row=num(first) - 1, where=where(first))
    unknown = d_sel & (row_cls < 0) & (l_codes >= 0)
    if unknown.any():
        names, cnt = np.unique(l_codes[unknown], return_counts=True)
        detail = {str(l_values[c]): int(k) for c, k in zip(names.tolist(), cnt.tolist())}
        counts["unknown_classes"] = detail
        note("unknown_classes", count=int(unknown.sum()), detail=detail)
    d_img_all = img_index[s_codes]
    off = d_sel & (row_cls >= 0) & (d_img_all < 0)
    pending_off: dict[str, int] = {}
    if pending_rows and off.any():
        # predictions of a pending class on other samples: unknown class or off-sample,
        # which only the merge can tell (as for the whole table: an unknown class first)
        p_off = off & (row_cls >= n_known)
        if p_off.any():
            ks, cnt = np.unique(row_cls[p_off], return_counts=True)
            pending_off = {classes[k]: int(c) for k, c in zip(ks.tolist(), cnt.tolist())}
            off = off & ~p_off
    if off.any():
        counts["predictions_on_unknown_samples"] = int(off.sum())
        note("pred_off_samples", count=int(off.sum()))
    d_rows = np.flatnonzero(d_sel & (row_cls >= 0) & (d_img_all >= 0))

    # image sizes (relative ranges, masks)
    img_area = np.full(len(samples), np.nan)
    ok_wh = (d_img_all >= 0) & ~np.isnan(W) & ~np.isnan(H)
    img_area[d_img_all[ok_wh]] = (W * H)[ok_wh]

    g_area = np.where(area_valid[g_rows], area[g_rows], wh[g_rows])
    g_rle = d_rle = None
    # a prediction's area: its area column (coco-results ingest fills it as loadRes does),
    # else w*h of its box, else (segm) its mask's area
    d_area = np.where(area_valid[d_rows], area[d_rows], wh[d_rows])
    if derived_area is not None:  # mask-only predictions without an area: the mask's
        d_area = np.where(np.isnan(derived_area[d_rows]), d_area, derived_area[d_rows])
    if segm:
        seg_col = T.column_or_null(table, T.SEGMENTATION).combine_chunks()
        g_rle = Masks(seg_col, g_rows, boxes, W, H, origin, where=where)
        d_rle = Masks(seg_col, d_rows, boxes, W, H, origin, where=where)
        # mask areas only where no area is given: gt without area/box, preds without area/box
        g_need = np.flatnonzero(np.isnan(g_area))
        g_area[g_need] = g_rle.areas(g_need)
        d_need = np.flatnonzero(np.isnan(d_area))
        d_area[d_need] = d_rle.areas(d_need)
    gt = Objects(img=img_index[s_codes[g_rows]], cat=row_cls[g_rows], box=boxes[g_rows], area=g_area,
                 crowd=crowd[g_rows], rle=g_rle)
    dt = Objects(img=d_img_all[d_rows], cat=row_cls[d_rows], box=boxes[d_rows], area=d_area,
                 score=score[d_rows], rle=d_rle)
    counts.update({
        "rows": int(n), "gt_labels": int(len(g_rows)), "predictions": int(d_sel.sum()),
        "predictions_evaluated": int(len(d_rows)), "images": len(samples), "classes": len(classes),
        "gt_crowd": int(crowd[g_rows].sum()),
    })
    return Prepared(samples, classes, gt, dt, g_rows, d_rows, img_area, warnings, counts,
                    opts.gt_source, pred_source, sample_keys=sid[order], class_info=class_info, n_known=n_known,
                    pending_rows=pending_rows, pending_off=pending_off, notes=notes)
