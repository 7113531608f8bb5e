"""The metrics document (JSON) and its rendering on stderr.

``coco`` runs the COCO engine on prepared arrays and assembles everything ``evaluate``
reports: the 12 COCO numbers (+ custom ranges), per-class rows, PR curves, the
confusion matrix, slices, and the per-label columns. ``render`` turns a document into
rich tables. Every key is documented in docs/evaluate.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlcycle import table as T
from mlcycle.errors import MlcycleError, OptionError

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa

    from mlcycle.evaluate import Options, Prepared

EVAL_TP, EVAL_FP, EVAL_FN = "tp", "fp", "fn"
NONE = "(none)"
MAX_SLICE_VALUES = 50
NUMERIC_BINS = 4
MAX_RENDER_CLASSES = 20


def _version() -> str:
    from mlcycle import __version__

    return __version__


def _ratio(a: int, b: int) -> float | None:
    return a / b if b else None


def _f1(p: float | None, r: float | None) -> float | None:
    if p is None or r is None:
        return None
    return 2 * p * r / (p + r) if p + r > 0 else 0.0


# --------------------------------------------------------------------------- ranges

def _ranges(prep: "Prepared", opts: "Options"):
    import numpy as np

    from mlcycle.evaluate import coco as C

    ranges = [C.area_range(n, lo, hi, prep.gt.area, prep.dt.area) for n, (lo, hi) in C.DEFAULT_AREAS.items()]
    for name, (lo, hi) in opts.area_ranges.items():
        ranges.append(C.area_range(name, lo, hi, prep.gt.area, prep.dt.area))
    if opts.rel_area_ranges:
        ia = prep.img_area
        g_ia, d_ia = ia[prep.gt.img], ia[prep.dt.img]
        if np.isnan(g_ia).any() or np.isnan(d_ia).any():
            bad = prep.samples[int(prep.gt.img[np.argmax(np.isnan(g_ia))])] if np.isnan(g_ia).any() \
                else prep.samples[int(prep.dt.img[np.argmax(np.isnan(d_ia))])]
            raise MlcycleError(f"--rel-area-range needs image sizes, but sample {bad!r} has no width/height",
                               hint="ingest with image sizes (width/height columns)")
        with np.errstate(divide="ignore", invalid="ignore"):
            g_rel, d_rel = prep.gt.area / g_ia, prep.dt.area / d_ia
        for name, (lo, hi) in opts.rel_area_ranges.items():
            ranges.append(C.area_range(name, lo, hi, g_rel, d_rel))
    return ranges


# --------------------------------------------------------------------------- slices

def _slice_specs(table: "pa.Table", prep: "Prepared", columns) -> list[dict]:
    """For each --by column: its kind (sample/label) and values with masks."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    from mlcycle.evaluate import _encode

    specs = []
    s_codes, s_values = _encode(table.column(T.SAMPLE_ID))
    img_of_code = {v: i for i, v in enumerate(prep.samples)}
    code_img = np.array([img_of_code.get(v, -1) for v in s_values] + [-1], dtype=np.int64)
    row_img = code_img[s_codes]
    gt_rows_all = np.flatnonzero(pc.equal(table.column(T.SOURCE), prep.gt_source).to_numpy(zero_copy_only=False))
    for col in columns:
        if col not in table.column_names:
            raise OptionError(None, f"--by: no column {col!r}", hint=f"columns: {', '.join(table.column_names)}")
        c = table.column(col)
        typ = c.type
        numeric = (pa.types.is_integer(typ) or pa.types.is_floating(typ)) and not pa.types.is_boolean(typ)
        if not (numeric or pa.types.is_string(typ) or pa.types.is_large_string(typ) or pa.types.is_boolean(typ)
                or pa.types.is_dictionary(typ)):
            raise OptionError(None, f"--by {col}: column type {typ} cannot be sliced", hint="use a string, bool or number column")
        vals = c.to_numpy(zero_copy_only=False) if numeric else np.array(c.to_pylist(), dtype=object)
        valid = c.is_valid().to_numpy(zero_copy_only=False)
        labels = vals.astype(object)
        if numeric:
            fv = np.asarray(vals, dtype=np.float64)
            gv = fv[gt_rows_all][valid[gt_rows_all]]
            uniq = np.unique(gv[~np.isnan(gv)])
            if len(uniq) > 10:
                edges = np.unique(np.quantile(uniq if len(uniq) < 4 else gv[~np.isnan(gv)], np.linspace(0, 1, NUMERIC_BINS + 1)))
                b = np.clip(np.searchsorted(edges, fv, side="right") - 1, 0, len(edges) - 2)
                names = [f"[{_fmt(edges[i])}, {_fmt(edges[i + 1])}{']' if i == len(edges) - 2 else ')'}" for i in range(len(edges) - 1)]
                labels = np.array([names[i] for i in b], dtype=object)
            else:
                labels = np.array([_fmt(v) for v in fv], dtype=object)
        labels = np.where(valid, labels, None)
        # sample-level when the ground truth rows of each sample agree on the value
        g_img = row_img[gt_rows_all]
        g_lab = labels[gt_rows_all]
        g_ok = valid[gt_rows_all] & (g_img >= 0)
        per_img: dict[int, Any] = {}
        sample_level = True
        for i, v in zip(g_img[g_ok].tolist(), g_lab[g_ok].tolist()):
            if per_img.setdefault(i, v) != v:
                sample_level = False
                break
        if sample_level:
            # a sample row may hold the value while label rows are null (or the reverse)
            img_val = np.full(len(prep.samples), None, dtype=object)
            ok = valid & (row_img >= 0)
            img_val[row_img[ok]] = labels[ok]
            values = sorted({v for v in img_val.tolist() if v is not None}, key=str)
            if len(values) > MAX_SLICE_VALUES:
                raise OptionError(None, f"--by {col}: {len(values)} values; at most {MAX_SLICE_VALUES} are sliced")
            specs.append({"column": col, "kind": "sample", "values": [
                (v, np.array([x == v for x in img_val.tolist()], dtype=bool)) for v in values]})
        else:
            g_vals = labels[prep.gt_rows]
            values = sorted({v for v in g_vals.tolist() if v is not None}, key=str)
            if len(values) > MAX_SLICE_VALUES:
                raise OptionError(None, f"--by {col}: {len(values)} values; at most {MAX_SLICE_VALUES} are sliced")
            specs.append({"column": col, "kind": "label", "values": [
                (v, np.array([x == v for x in g_vals.tolist()], dtype=bool)) for v in values]})
    return specs


def _fmt(v: float) -> Any:
    v = float(v)
    if v == int(v) and abs(v) < 2 ** 53:
        return str(int(v))
    return f"{v:.4g}"


# --------------------------------------------------------------------------- COCO

def coco(table: "pa.Table", prep: "Prepared", opts: "Options") -> tuple["pa.Table", dict]:
    import numpy as np

    from mlcycle.evaluate import coco as C
    from mlcycle.evaluate.match import cross_class_match

    params = C.Params(max_dets=list(opts.max_dets), iou_type=opts.iou_type)
    ranges = _ranges(prep, opts)
    n_base = len(ranges)
    specs = _slice_specs(table, prep, opts.by) if opts.by else []
    label_slices = []
    for spec in specs:
        if spec["kind"] == "label":
            for v, inside in spec["values"]:
                name = f"by:{spec['column']}={v}"
                ranges.append(C.Range(name, ~inside, np.zeros(len(prep.dt), bool)))
                label_slices.append((spec["column"], v, name, inside))
    iou_thrs = params.iou_thrs
    user_t = np.flatnonzero(iou_thrs == opts.iou)
    extra = [] if len(user_t) else [opts.iou]
    t_user = int(user_t[0]) if len(user_t) else len(iou_thrs)
    res = C.evaluate(prep.gt, prep.dt, len(prep.samples), len(prep.classes), params, ranges, extra, full=False,
                     match_rows=[t_user])
    custom = list(opts.area_ranges) + list(opts.rel_area_ranges)
    summary = C.summarize(res, custom)

    # ---- per-label columns at --iou (area all, max detections), --conf applied
    g, d = prep.gt, prep.dt
    kept = res.groups.dt_order
    m_user = res.match[0].astype(np.int64)      # the one row kept: threshold t_user
    iou_user = res.match_iou[0]
    crowd = g.crowd
    d_sc = d.score[kept]
    conf_ok = d_sc >= opts.conf
    d_state = np.full(len(d), -1, np.int8)  # -1 null, 0 tp, 1 fp
    d_gt = np.full(len(d), -1, np.int64)
    d_iou = np.full(len(d), np.nan)
    matched = m_user >= 0
    mg = np.where(matched, m_user, 0)
    to_crowd = matched & crowd[mg] if len(g) else np.zeros(len(kept), bool)
    d_state[kept] = np.where(~conf_ok, -1, np.where(matched, np.where(to_crowd, -1, 0), 1))
    d_gt[kept] = np.where(matched & conf_ok, m_user, -1)
    d_iou[kept] = np.where(matched & conf_ok, iou_user, np.nan)
    g_det = np.full(len(g), -1, np.int64)
    tp_sel = matched & conf_ok & ~to_crowd
    g_det[m_user[tp_sel]] = kept[tp_sel]
    g_iou = np.full(len(g), np.nan)
    g_iou[m_user[tp_sel]] = iou_user[tp_sel]
    g_state = np.where(crowd, -1, np.where(g_det >= 0, 0, 2)).astype(np.int8)
    out = _with_eval_columns(table, prep, d_state, d_gt, d_iou, g_state, g_det, g_iou) if opts.annotate else table

    # ---- per-class counts at --iou/--conf
    K = len(prep.classes)
    tp_k = np.bincount(d.cat[d_state == 0], minlength=K)
    fp_k = np.bincount(d.cat[d_state == 1], minlength=K)
    fn_k = np.bincount(g.cat[g_state == 2], minlength=K)
    ngt_k = np.bincount(g.cat[~crowd], minlength=K)
    ncrowd_k = np.bincount(g.cat[crowd], minlength=K)
    npred_k = np.bincount(d.cat, minlength=K)
    top = params.max_dets[-1]
    per_class = []
    i50 = int(np.flatnonzero(iou_thrs == .5)[0])
    i75 = int(np.flatnonzero(iou_thrs == .75)[0])
    for k, name in enumerate(prep.classes):
        tp, fp, fn = int(tp_k[k]), int(fp_k[k]), int(fn_k[k])
        p, r = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
        per_class.append({
            "label": name,
            "AP": C.per_class_ap(res, k), "AP50": C.per_class_ap(res, k, i50), "AP75": C.per_class_ap(res, k, i75),
            f"AR_{top}": C.per_class_ar(res, k),
            "precision": p, "recall": r, "f1": _f1(p, r), "tp": tp, "fp": fp, "fn": fn,
            "num_gt": int(ngt_k[k]), "num_crowd": int(ncrowd_k[k]), "num_pred": int(npred_k[k]),
        })
    tp, fp, fn = int(tp_k.sum()), int(fp_k.sum()), int(fn_k.sum())
    p, r = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    at_iou = {"iou": opts.iou, "conf": opts.conf, "tp": tp, "fp": fp, "fn": fn,
              "precision": p, "recall": r, "f1": _f1(p, r)}

    # ---- PR curves (area all, max detections) at IoU .5 and .75
    curves = []
    for t_i, t_v in ((i50, 0.5), (i75, 0.75)):
        for k, name in enumerate(prep.classes):
            pr = res.precision[t_i, :, k, 0, -1]
            if (pr < 0).all():
                continue
            curves.append({"label": name, "iou": t_v, "precision": pr.tolist(),
                           "score": res.scores[t_i, :, k, 0, -1].tolist()})

    # ---- confusion matrix at --iou/--conf: the class-aware matches are the diagonal;
    # then the leftover predictions (fp) take leftover ground truth (fn) of another class
    # on the same image, greedily by score at the same IoU threshold
    d_left = np.flatnonzero(d_state == 1)
    g_left = np.flatnonzero(g_state == 2)
    dm, _ = cross_class_match(_subset(g, g_left), _subset(d, d_left), len(prep.samples), opts.iou, opts.iou_type)
    cm = np.zeros((K + 1, K + 1), dtype=np.int64)
    np.add.at(cm, (d.cat[d_state == 0], d.cat[d_state == 0]), 1)
    hit = dm >= 0
    np.add.at(cm, (g.cat[g_left[dm[hit]]], d.cat[d_left[hit]]), 1)
    np.add.at(cm, (np.full(int((~hit).sum()), K), d.cat[d_left[~hit]]), 1)
    g_hit = np.zeros(len(g_left), bool)
    g_hit[dm[hit]] = True
    np.add.at(cm, (g.cat[g_left[~g_hit]], np.full(int((~g_hit).sum()), K)), 1)
    confusion = {"iou": opts.iou, "conf": opts.conf, "labels": prep.classes + [NONE], "matrix": cm.tolist()}

    # ---- slices
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

    area_params = {n: list(v) for n, v in C.DEFAULT_AREAS.items()}
    area_params.update({n: list(v) for n, v in opts.area_ranges.items()})
    doc = {
        "mlcycle_version": _version(),
        "method": "coco",
        "iou_type": opts.iou_type,
        "metrics": summary,
        "at_iou": at_iou,
        "per_class": per_class,
        "pr_curves": {"recall": params.rec_thrs.tolist(), "curves": curves},
        "confusion_matrix": confusion,
        "slices": slices,
        "params": {
            "gt_source": prep.gt_source, "pred_source": prep.pred_source,
            "iou_thresholds": iou_thrs.tolist(), "recall_points": len(params.rec_thrs),
            "max_dets": params.max_dets, "area_ranges": area_params,
            "rel_area_ranges": {n: list(v) for n, v in opts.rel_area_ranges.items()},
            "iou": opts.iou, "conf": opts.conf, "by": list(opts.by),
        },
        "inputs": prep.counts,
        "warnings": prep.warnings,
    }
    return out, doc


def _subset(o, sel):
    """The objects at ``sel`` (a boolean mask or an index array)."""
    import numpy as np

    from mlcycle.evaluate.match import Objects

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
    names = np.array([EVAL_TP, EVAL_FP, EVAL_FN], dtype=object)
    ev = pa.DictionaryArray.from_arrays(pa.array(state, mask=state < 0), pa.array(names.tolist())) \
        .cast(pa.string())
    eid = pa.array(np.nan_to_num(oid, nan=0).astype(np.int64), mask=np.isnan(oid))
    eiou = pa.array(iou, mask=np.isnan(iou))
    for name in (T.EVAL, T.EVAL_ID, T.EVAL_IOU):
        if name in table.column_names:
            table = table.drop_columns([name])
    return table.append_column(T.EVAL, ev).append_column(T.EVAL_ID, eid).append_column(T.EVAL_IOU, eiou)


# --------------------------------------------------------------------------- VOC / classification

def voc(table: "pa.Table", opts: "Options", pred_source: str) -> tuple["pa.Table", dict]:
    try:
        from mlcycle.evaluate import voc as voc_mod
    except ImportError:  # pragma: no cover - built in parallel
        raise MlcycleError("--method voc is not available in this build") from None
    result = voc_mod.evaluate(table, gt_source=opts.gt_source, pred_source=pred_source, iou=opts.iou,
                              use_07=opts.method == "voc07", inclusive=True)
    doc = {"mlcycle_version": _version(), "method": opts.method, "iou_type": "bbox",
           "metrics": {"mAP": result.get("mAP")}, **{k: v for k, v in result.items() if k not in ("method",)},
           "params": {"gt_source": opts.gt_source, "pred_source": pred_source, "iou": opts.iou,
                      "inclusive_pixels": True}}
    doc.setdefault("inputs", {"rows": table.num_rows})
    doc.setdefault("warnings", [])
    if opts.annotate and hasattr(voc_mod, "annotate"):
        table = voc_mod.annotate(table, gt_source=opts.gt_source, pred_source=pred_source, iou=opts.iou,
                                 inclusive=True)
    return table, doc


def classification(table: "pa.Table", opts: "Options", pred_source: str) -> tuple["pa.Table", dict]:
    try:
        from mlcycle.evaluate import classification as cls_mod
    except ImportError:  # pragma: no cover - built in parallel
        raise MlcycleError("classification metrics are not available in this build") from None
    result = cls_mod.evaluate(table, opts.gt_source, pred_source)
    metrics = {k: result[k] for k in ("accuracy",) if k in result}
    doc = {"mlcycle_version": _version(), "method": "classification", **result,
           "metrics": {**metrics, **{k: v for k, v in result.get("metrics", {}).items()}} if isinstance(result.get("metrics"), dict) else metrics,
           "params": {"gt_source": opts.gt_source, "pred_source": pred_source}}
    doc.setdefault("inputs", {"rows": table.num_rows})
    doc.setdefault("warnings", [])
    if opts.annotate and hasattr(cls_mod, "annotate"):
        table = cls_mod.annotate(table, gt_source=opts.gt_source, pred_source=pred_source)
    return table, doc


# --------------------------------------------------------------------------- JSON

def to_json(doc: dict) -> bytes:
    """The document as JSON text (indented, trailing newline; NaN/inf become null)."""
    import orjson

    return orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY
                        | orjson.OPT_APPEND_NEWLINE | orjson.OPT_NON_STR_KEYS)


# --------------------------------------------------------------------------- gate

def flat_metrics(doc: dict) -> dict[str, float]:
    """Names ``--fail-under`` accepts: every summary metric plus precision/recall/f1 at --iou."""
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


def check_bounds(doc: dict, bounds: dict[str, float]) -> list[str]:
    """Messages for each metric below its bound (an undefined metric, -1 or null, fails)."""
    flat = flat_metrics(doc)
    failed = []
    for name, bound in bounds.items():
        if name not in flat and name not in doc.get("metrics", {}):
            raise OptionError(None, f"--fail-under: unknown metric {name!r}",
                             hint=f"one of: {', '.join(flat)}")
        v = flat.get(name)
        if v is None or v < bound:
            failed.append(f"{name} = {'undefined' if v is None else f'{v:.4f}'} is below {bound:g}")
    return failed


# --------------------------------------------------------------------------- render

def render(doc: dict) -> None:
    """Summary tables on stderr (rich); nothing with -q."""
    from mlcycle.cli import console

    if console.is_quiet():
        return
    from rich.table import Table

    esc = console.escape

    def num(v: Any) -> str:
        if v is None:
            return "-"
        if isinstance(v, float):
            return "-" if v < 0 else f"{v:.3f}"
        return str(v)

    m = doc.get("metrics", {})
    title = f"{doc.get('method', '')} {doc.get('iou_type', '')}".strip()
    if doc.get("method") == "coco":
        tab = Table(title=f"evaluate ({esc(title)}): {esc(doc['params']['pred_source'])} vs {esc(doc['params']['gt_source'])}")
        tab.add_column("metric")
        tab.add_column("value", justify="right")
        tab.add_column("metric")
        tab.add_column("value", justify="right")
        ap = [(k, v) for k, v in m.items() if k.startswith("AP")]
        ar = [(k, v) for k, v in m.items() if k.startswith("AR")]
        for i in range(max(len(ap), len(ar))):
            a = ap[i] if i < len(ap) else ("", None)
            b = ar[i] if i < len(ar) else ("", None)
            tab.add_row(esc(a[0]), num(a[1]) if a[0] else "", esc(b[0]), num(b[1]) if b[0] else "")
        console.render(tab)
        at = doc.get("at_iou", {})
        pc = Table(title=f"per class (P/R/F1 at IoU {at.get('iou')}, score >= {at.get('conf')})")
        top = doc["params"]["max_dets"][-1]
        pc.add_column("class", no_wrap=True, max_width=18, overflow="ellipsis")
        for c in ("AP", "AP50", "P", "R", "F1", "tp", "fp", "fn"):
            pc.add_column(c, justify="right", no_wrap=True)
        rows = doc.get("per_class", [])
        for row in rows[:MAX_RENDER_CLASSES]:
            pc.add_row(esc(row["label"]), num(row["AP"]), num(row["AP50"]), num(row["precision"]),
                       num(row["recall"]), num(row["f1"]), num(row["tp"]), num(row["fp"]), num(row["fn"]))
        pc.add_row("all", num(m.get("AP")), num(m.get("AP50")), num(at.get("precision")), num(at.get("recall")),
                   num(at.get("f1")), num(at.get("tp")), num(at.get("fp")), num(at.get("fn")), style="bold")
        if len(rows) > MAX_RENDER_CLASSES:
            pc.caption = f"{len(rows) - MAX_RENDER_CLASSES} more classes in the metrics JSON (--metrics FILE)"
        console.render(pc)
        if doc.get("slices"):
            st = Table(title="slices")
            for c in ("column", "value", "kind", "AP", "AP50", "AP75", f"AR_{top}", "gt"):
                st.add_column(c, justify="left" if c in ("column", "value", "kind") else "right")
            for s in doc["slices"]:
                sm = s["metrics"]
                st.add_row(esc(s["column"]), esc(s["value"]), s["kind"], num(sm.get("AP")), num(sm.get("AP50")),
                           num(sm.get("AP75")), num(sm.get(f"AR_{top}")), num(s.get("num_gt")))
            console.render(st)
    else:
        tab = Table(title=f"evaluate ({esc(title)})")
        tab.add_column("metric")
        tab.add_column("value", justify="right")
        for k, v in flat_metrics(doc).items():
            tab.add_row(esc(k), num(v))
        console.render(tab)
        per = doc.get("per_class")
        if isinstance(per, dict) and per:
            pc = Table(title="per class")
            keys = [k for k, v in next(iter(per.values())).items() if isinstance(v, (int, float)) or v is None]
            pc.add_column("class")
            for k in keys:
                pc.add_column(esc(k), justify="right")
            for name, row in list(per.items())[:MAX_RENDER_CLASSES]:
                pc.add_row(esc(name), *[num(row.get(k)) for k in keys])
            console.render(pc)
    for w in doc.get("warnings", []):
        console.warn(w)
