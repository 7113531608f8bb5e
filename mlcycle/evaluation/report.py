"""The metrics document: everything ``evaluate`` reports, as one JSON-ready dict.

``coco`` runs the COCO engine on prepared arrays and assembles the 12 COCO numbers
(+ custom ranges), per-class rows, PR curves, the confusion matrix, slices and the
per-label columns ``eval``/``eval_id``/``eval_iou``; ``voc`` and ``classification`` wrap
the other methods' results in the same document shape; ``to_json`` encodes a document.
Every key is documented in docs/evaluate.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlcycle import table as T

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa

    from mlcycle.evaluation.prepare import Options, Prepared

NONE = "(none)"


def _version() -> str:
    from mlcycle import __version__

    return __version__


def _ratio(a: int, b: int) -> float | None:
    return a / b if b else None


def _f1(p: float | None, r: float | None) -> float | None:
    if p is None or r is None:
        return None
    return 2 * p * r / (p + r) if p + r > 0 else 0.0


# --------------------------------------------------------------------------- COCO

def coco(table: "pa.Table", prep: "Prepared", opts: "Options") -> tuple["pa.Table | None", dict]:
    """(the table with the per-label columns, or None without ``opts.annotate``; the document)."""
    import numpy as np

    from mlcycle.evaluation import coco as C
    from mlcycle.evaluation.slices import size_ranges, slice_specs

    params = C.Params(max_dets=list(opts.max_dets), iou_type=opts.iou_type)
    ranges = size_ranges(prep, opts)
    n_base = len(ranges)
    specs = slice_specs(table, prep, opts.by) if opts.by else []
    label_slices = []
    for spec in specs:
        if spec["kind"] == "label":
            for v, inside in spec["values"]:
                name = f"by:{spec['column']}={v}"
                ranges.append(C.Range(name, ~inside, np.zeros(len(prep.dt), bool)))
                label_slices.append((spec["column"], v, name, inside))
    extra, t_user = user_threshold(params, opts.iou)
    res = C.evaluate(prep.gt, prep.dt, len(prep.samples), len(prep.classes), params, ranges, extra, full=False,
                     match_rows=[t_user])
    custom = list(opts.area_ranges) + list(opts.rel_area_ranges)
    summary = C.summarize(res, custom)

    # ---- per-label columns at opts.iou (area all, max detections), opts.conf applied
    g, d = prep.gt, prep.dt
    kept = res.groups.dt_order
    m_user = res.match[0].astype(np.int64)      # the one row kept: threshold t_user
    iou_user = res.match_iou[0]
    crowd = g.crowd
    d_sc = d.score[kept]
    matched = m_user >= 0
    mg = np.where(matched, m_user, 0)
    to_crowd = matched & crowd[mg] if len(g) else np.zeros(len(kept), bool)
    K = len(prep.classes)
    ngt_k = np.bincount(g.cat[~crowd], minlength=K)
    operating, reliability, conf = operating_point(d_sc, d.cat[kept], matched, to_crowd, ngt_k, prep.classes, opts)
    conf_ok = d_sc >= conf
    d_state = np.full(len(d), -1, np.int8)  # -1 null, 0 tp, 1 fp
    d_gt = np.full(len(d), -1, np.int64)
    d_iou = np.full(len(d), np.nan)
    d_state[kept] = np.where(~conf_ok, -1, np.where(matched, np.where(to_crowd, -1, 0), 1))
    d_gt[kept] = np.where(matched & conf_ok, m_user, -1)
    d_iou[kept] = np.where(matched & conf_ok, iou_user, np.nan)
    g_det = np.full(len(g), -1, np.int64)
    tp_sel = matched & conf_ok & ~to_crowd
    g_det[m_user[tp_sel]] = kept[tp_sel]
    g_iou = np.full(len(g), np.nan)
    g_iou[m_user[tp_sel]] = iou_user[tp_sel]
    g_state = np.where(crowd, -1, np.where(g_det >= 0, 0, 2)).astype(np.int8)
    out = _with_eval_columns(table, prep, d_state, d_gt, d_iou, g_state, g_det, g_iou) if opts.annotate else None
    cm = confusion_counts(g, d, d_state, g_state, len(prep.samples), K, opts)

    # ---- slices
    top = params.max_dets[-1]
    slices = []
    for spec in specs:
        if spec["kind"] == "sample":
            for v, img_in in spec["values"]:
                gsel, dsel = img_in[g.img], img_in[d.img]
                sub_g = _subset(g, gsel)
                sub_d = _subset(d, dsel)
                sub_r = [C.Range(rg.name, rg.gt_out[gsel], rg.dt_out[dsel]) for rg in ranges[:n_base]]
                sres = C.evaluate(sub_g, sub_d, len(prep.samples), K, params, sub_r, full=False)
                sm = C.summarize(sres, custom)
                slices.append({"column": spec["column"], "kind": "sample", "value": v,
                               "images": int(img_in.sum()), "num_gt": int((~sub_g.crowd).sum()),
                               "num_pred": int(dsel.sum()), "metrics": sm})
        else:
            for col, v, name, inside in label_slices:
                if col != spec["column"]:
                    continue
                sm = {"AP": C._summ(res, True, None, name, top), "AP50": C._summ(res, True, .5, name, top),
                      "AP75": C._summ(res, True, .75, name, top), f"AR_{top}": C._summ(res, False, None, name, top)}
                slices.append({"column": col, "kind": "label", "value": v,
                               "num_gt": int((inside & ~crowd).sum()), "metrics": sm})

    doc = document(res, summary, prep.classes, d.cat[kept], d_sc, matched, to_crowd, ngt_k,
                   np.bincount(g.cat[crowd], minlength=K), np.bincount(d.cat, minlength=K), cm, conf,
                   operating, reliability, slices, opts, prep.counts, prep.warnings, prep.gt_source,
                   prep.pred_source)
    return out, doc


def user_threshold(params, iou: float) -> tuple[list, int]:
    """(extra thresholds to match, index of ``iou`` among the matched thresholds)."""
    import numpy as np

    user_t = np.flatnonzero(params.iou_thrs == iou)
    extra = [] if len(user_t) else [iou]
    return extra, int(user_t[0]) if len(user_t) else len(params.iou_thrs)


def operating_point(d_sc, d_cat, matched, to_crowd, ngt_k, classes, opts: "Options"):
    """Operating points and calibration at ``opts.iou`` (before any score threshold), and
    the score threshold the per-label columns use. Arrays are per kept detection."""
    from mlcycle.evaluation import calibration, operating_points

    counted = ~(matched & to_crowd)
    tp = matched & ~to_crowd
    operating = operating_points.compute(d_sc, d_cat, tp, counted, ngt_k, classes,
                                         opts.iou, opts.beta, opts.at_recall, opts.at_precision)
    reliability = calibration.reliability(d_sc[counted], tp[counted], opts.iou)
    conf = opts.conf
    if opts.conf_auto is not None:
        auto = operating_points.auto_threshold(operating, opts.conf_auto)
        conf = auto if auto is not None else opts.conf
    return operating, reliability, conf


def confusion_counts(g, d, d_state, g_state, n_img: int, K: int, opts: "Options"):
    """The confusion matrix at opts.iou/opts.conf ((K+1, K+1), last: none): the
    class-aware matches are the diagonal; then the leftover predictions (fp) take
    leftover ground truth (fn) of another class on the same image, greedily by score at
    the same IoU threshold. Per image, so shards' matrices add up."""
    import numpy as np

    from mlcycle.evaluation.match import cross_class_match

    d_left = np.flatnonzero(d_state == 1)
    g_left = np.flatnonzero(g_state == 2)
    dm, _ = cross_class_match(_subset(g, g_left), _subset(d, d_left), n_img, opts.iou, opts.iou_type)
    cm = np.zeros((K + 1, K + 1), dtype=np.int64)
    np.add.at(cm, (d.cat[d_state == 0], d.cat[d_state == 0]), 1)
    hit = dm >= 0
    np.add.at(cm, (g.cat[g_left[dm[hit]]], d.cat[d_left[hit]]), 1)
    np.add.at(cm, (np.full(int((~hit).sum()), K), d.cat[d_left[~hit]]), 1)
    g_hit = np.zeros(len(g_left), bool)
    g_hit[dm[hit]] = True
    np.add.at(cm, (g.cat[g_left[~g_hit]], np.full(int((~g_hit).sum()), K)), 1)
    return cm


def document(res, summary, classes, d_cat, d_sc, matched, to_crowd, ngt_k, ncrowd_k, npred_k, cm, conf,
             operating, reliability, slices, opts: "Options", counts, warnings, gt_source, pred_source) -> dict:
    """The COCO metrics document. ``res`` holds precision/recall/scores (``coco.Result``
    or alike); ``d_cat``, ``d_sc``, ``matched`` and ``to_crowd`` (matched at opts.iou to a
    crowd region) are per kept detection in kept order; ``ngt_k``/``ncrowd_k``/``npred_k``
    per class: non-crowd and crowd ground truth, evaluated predictions; ``cm`` the
    confusion counts. One function for the whole-table run and merged shards."""
    import numpy as np

    from mlcycle.evaluation import coco as C

    params = res.params
    iou_thrs = params.iou_thrs
    K = len(classes)
    conf_ok = d_sc >= conf
    tp_k = np.bincount(d_cat[conf_ok & matched & ~to_crowd], minlength=K)
    fp_k = np.bincount(d_cat[conf_ok & ~matched], minlength=K)
    fn_k = ngt_k - tp_k      # every non-crowd ground truth is matched at most once
    top = params.max_dets[-1]
    per_class = []
    i50 = int(np.flatnonzero(iou_thrs == .5)[0])
    i75 = int(np.flatnonzero(iou_thrs == .75)[0])
    for k, name in enumerate(classes):
        tp, fp, fn = int(tp_k[k]), int(fp_k[k]), int(fn_k[k])
        p, r = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
        per_class.append({
            "label": name,
            "AP": C.per_class_ap(res, k), "AP50": C.per_class_ap(res, k, i50), "AP75": C.per_class_ap(res, k, i75),
            f"AR_{top}": C.per_class_ar(res, k),
            "precision": p, "recall": r, "f1": _f1(p, r), T.TP: tp, T.FP: fp, T.FN: fn,
            "num_gt": int(ngt_k[k]), "num_crowd": int(ncrowd_k[k]), "num_pred": int(npred_k[k]),
        })
    tp, fp, fn = int(tp_k.sum()), int(fp_k.sum()), int(fn_k.sum())
    p, r = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    at_iou = {"iou": opts.iou, "conf": conf, T.TP: tp, T.FP: fp, T.FN: fn,
              "precision": p, "recall": r, "f1": _f1(p, r)}

    # ---- PR curves (area all, max detections) at IoU .5 and .75
    curves = []
    for t_i, t_v in ((i50, 0.5), (i75, 0.75)):
        for k, name in enumerate(classes):
            pr = res.precision[t_i, :, k, 0, -1]
            if (pr < 0).all():
                continue
            curves.append({"label": name, "iou": t_v, "precision": pr.tolist(),
                           "score": res.scores[t_i, :, k, 0, -1].tolist()})
    if opts.conf_auto is not None:
        at_iou["conf_from"] = opts.conf_auto
    confusion = {"iou": opts.iou, "conf": conf, "labels": list(classes) + [NONE], "matrix": cm.tolist()}

    area_params = {n: list(v) for n, v in C.DEFAULT_AREAS.items()}
    area_params.update({n: list(v) for n, v in opts.area_ranges.items()})
    return {
        "mlcycle_version": _version(),
        "method": "coco",
        "iou_type": opts.iou_type,
        "metrics": summary,
        "at_iou": at_iou,
        "operating_points": operating,
        "calibration": reliability,
        "per_class": per_class,
        "pr_curves": {"recall": params.rec_thrs.tolist(), "curves": curves},
        "confusion_matrix": confusion,
        "slices": slices,
        "params": {
            "gt_source": gt_source, "pred_source": pred_source,
            "iou_thresholds": iou_thrs.tolist(), "recall_points": len(params.rec_thrs),
            "max_dets": params.max_dets, "area_ranges": area_params,
            "rel_area_ranges": {n: list(v) for n, v in opts.rel_area_ranges.items()},
            "iou": opts.iou, "conf": opts.conf, "by": list(opts.by),
        },
        "inputs": counts,
        "warnings": warnings,
    }


def _subset(o, sel):
    """The objects at ``sel`` (a boolean mask or an index array)."""
    import numpy as np

    from mlcycle.evaluation.match import Objects

    sel = np.flatnonzero(sel) if np.asarray(sel).dtype == bool else np.asarray(sel)

    return Objects(img=o.img[sel], cat=o.cat[sel], box=o.box[sel], area=o.area[sel],
                   crowd=o.crowd[sel] if o.crowd is not None else None,
                   score=o.score[sel] if o.score is not None else None,
                   rle=None if o.rle is None else (o.rle.subset(sel) if hasattr(o.rle, "subset")
                                                    else [o.rle[i] for i in sel.tolist()]))


def _with_eval_columns(table, prep, d_state, d_gt, d_iou, g_state, g_det, g_iou) -> "pa.Table":
    """The input table with ``eval``, ``eval_id``, ``eval_iou`` set (replaced if present)."""
    import numpy as np
    import pyarrow as pa

    n = table.num_rows
    state = np.full(n, -1, np.int8)
    state[prep.dt_rows] = d_state
    state[prep.gt_rows] = g_state
    label_id = np.asarray(T.numpy_column(table, T.LABEL_ID), dtype=np.float64) if n else np.zeros(0)
    other = np.full(n, -1, np.int64)
    g_ext = np.append(prep.gt_rows, -1)   # index -1 (no match) -> -1
    d_ext = np.append(prep.dt_rows, -1)
    other[prep.dt_rows] = g_ext[d_gt]
    other[prep.gt_rows] = d_ext[g_det]
    has = other >= 0
    oid = np.where(has, label_id[np.maximum(other, 0)], np.nan)
    iou = np.full(n, np.nan)
    iou[prep.dt_rows] = d_iou
    iou[prep.gt_rows] = g_iou
    names = np.array([T.TP, T.FP, T.FN], dtype=object)
    ev = pa.DictionaryArray.from_arrays(pa.array(state, mask=state < 0), pa.array(names.tolist())) \
        .cast(pa.string())
    eid = pa.array(np.nan_to_num(oid, nan=0).astype(np.int64), mask=np.isnan(oid))
    eiou = pa.array(iou, mask=np.isnan(iou))
    for name in (T.EVAL, T.EVAL_ID, T.EVAL_IOU):
        if name in table.column_names:
            table = table.drop_columns([name])
    return table.append_column(T.EVAL, ev).append_column(T.EVAL_ID, eid).append_column(T.EVAL_IOU, eiou)


# --------------------------------------------------------------------------- VOC / classification

def voc(table: "pa.Table", opts: "Options", pred_source: str) -> tuple["pa.Table | None", dict]:
    """Pascal VOC AP (``method`` voc or voc07) as a metrics document."""
    from mlcycle.evaluation import voc as voc_mod

    result = voc_mod.evaluate(table, gt_source=opts.gt_source, pred_source=pred_source, iou=opts.iou,
                              use_07=opts.method == "voc07", inclusive=True)
    doc = {"mlcycle_version": _version(), "method": opts.method, "iou_type": "bbox",
           "metrics": {"mAP": result.get("mAP")}, **{k: v for k, v in result.items() if k not in ("method",)},
           "params": {"gt_source": opts.gt_source, "pred_source": pred_source, "iou": opts.iou,
                      "inclusive_pixels": True}}
    doc.setdefault("inputs", {"rows": table.num_rows})
    doc.setdefault("warnings", [])
    out = voc_mod.annotate(table, gt_source=opts.gt_source, pred_source=pred_source, iou=opts.iou,
                           inclusive=True) if opts.annotate else None
    return out, doc


def classification(table: "pa.Table", opts: "Options", pred_source: str) -> tuple["pa.Table | None", dict]:
    """Image-level classification metrics as a metrics document."""
    from mlcycle.evaluation import classification as cls_mod

    result = cls_mod.evaluate(table, opts.gt_source, pred_source)
    metrics = {k: result[k] for k in ("accuracy",) if k in result}
    doc = {"mlcycle_version": _version(), "method": "classification", **result,
           "metrics": {**metrics, **{k: v for k, v in result.get("metrics", {}).items()}} if isinstance(result.get("metrics"), dict) else metrics,
           "params": {"gt_source": opts.gt_source, "pred_source": pred_source}}
    doc.setdefault("inputs", {"rows": table.num_rows})
    doc.setdefault("warnings", [])
    out = cls_mod.annotate(table, gt_source=opts.gt_source, pred_source=pred_source) if opts.annotate else None
    return out, doc


# --------------------------------------------------------------------------- JSON

def to_json(doc: dict) -> bytes:
    """The document as JSON text (indented, trailing newline; NaN/inf become null)."""
    import orjson

    return orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY
                        | orjson.OPT_APPEND_NEWLINE | orjson.OPT_NON_STR_KEYS)
