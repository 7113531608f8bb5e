"""The metrics of ``mlcycle evaluate``, rendered as rich tables on stderr.

A human view of the metrics document (docs/evaluate.md); the JSON is the contract, this
rendering may change.
"""

from __future__ import annotations

from typing import Any

MAX_RENDER_CLASSES = 20


def render(doc: dict) -> None:
    """Summary tables on stderr (rich); nothing with -q."""
    from mlcycle.cli import console
    from mlcycle.evaluation.gate import flat_metrics

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

    if isinstance(doc.get("sources"), dict):
        render_compare(doc)
        for w in doc.get("warnings", []):
            console.warn(w)
        return
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
        conf = at.get("conf")
        conf_text = f"{conf:.4g}" if isinstance(conf, float) else str(conf)
        if at.get("conf_from"):
            conf_text += f" ({at['conf_from']})"
        pc = Table(title=f"per class (P/R/F1 at IoU {at.get('iou')}, score >= {conf_text})")
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
        _render_extras(doc)
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


def _num(v: Any, signed: bool = False) -> str:
    if v is None or (isinstance(v, float) and v != v):
        return "-"
    if isinstance(v, float):
        return f"{v:+.3f}" if signed else ("-" if v < 0 else f"{v:.3f}")
    return str(v)


def _render_extras(doc: dict) -> None:
    """Operating points, calibration, TIDE and bootstrap intervals of one source."""
    from rich.table import Table

    from mlcycle.cli import console

    esc = console.escape
    ops = doc.get("operating_points")
    if ops:
        o = ops["overall"]
        lines = []
        for key, label in (("best_f1", "best F1"), ("best_fbeta", f"best F{ops.get('beta', 1):g}")):
            p = o.get(key)
            if p:
                lines.append(f"{label} at score >= {p['threshold']:.3f}: P {p['precision']:.3f} R {p['recall']:.3f}")
        for row in o.get("at_recall", []):
            lines.append(f"at recall >= {row['target']:g}: " + (
                "out of reach" if row["threshold"] is None
                else f"P {row['precision']:.3f} (score >= {row['threshold']:.3f})"))
        for row in o.get("at_precision", []):
            lines.append(f"at precision >= {row['target']:g}: " + (
                "out of reach" if row["threshold"] is None
                else f"R {row['recall']:.3f} (score >= {row['threshold']:.3f})"))
        cal = doc.get("calibration") or {}
        if cal.get("ece") is not None:
            lines.append(f"calibration: ECE {cal['ece']:.3f} over {cal['count']} detections")
        if lines:
            console.info(f"operating points (IoU {ops['iou']}): " + "; ".join(lines))
    tide = doc.get("tide")
    if tide:
        t = Table(title=f"TIDE errors (dAP50, AP50 {tide['AP50']:.3f})")
        for k in (*tide["main"], *tide["special"]):
            t.add_column(esc(k), justify="right")
        t.add_row(*[_num(v) for v in tide["main"].values()], *[_num(v) for v in tide["special"].values()])
        t.add_row(*[str(tide["counts"].get(k, "")) for k in tide["main"]], *["" for _ in tide["special"]])
        console.render(t)
    bs = doc.get("bootstrap")
    if bs:
        t = Table(title=f"{int(bs['confidence'] * 100)}% bootstrap intervals ({bs['resamples']} resamples over images)")
        t.add_column("metric")
        t.add_column("value", justify="right")
        t.add_column("interval", justify="right")
        for k, ci in bs["intervals"].items():
            t.add_row(esc(k), _num(doc.get("metrics", {}).get(k)), "-" if ci is None else f"[{ci[0]:.3f}, {ci[1]:.3f}]")
        console.render(t)


def render_compare(doc: dict) -> None:
    """One row per prediction source, deltas against the baseline, significance."""
    from rich.table import Table

    from mlcycle.cli import console

    esc = console.escape
    comp = doc["comparison"]
    base = comp["baseline"]
    bs = comp.get("bootstrap")
    top = f"AR_{doc['sources'][base]['params']['max_dets'][-1]}" if doc.get("method") == "coco" else None
    names = [k for k in ("AP", "AP50", "AP75", top, "precision", "recall", "f1", "mAP", "accuracy")
             if k and k in comp["metrics"][base]]
    tab = Table(title=f"evaluate: {len(doc['sources'])} prediction sources vs {esc(doc['params']['gt_source'])}"
                      f" (deltas against {esc(base)})")
    tab.add_column("source", no_wrap=True)
    for k in names:
        tab.add_column(esc(k), justify="right", no_wrap=True)
    for s, flat in comp["metrics"].items():
        tab.add_row(esc(s) + (" (baseline)" if s == base else ""), *[_num(flat.get(k)) for k in names])
        if s != base:
            cells = []
            for k in names:
                d = comp["deltas"].get(s, {}).get(k)
                st = (bs or {}).get("deltas", {}).get(s, {}).get(k)
                cells.append("-" if d is None else f"{d:+.3f}" + ("*" if st and st.get("significant") else ""))
            tab.add_row("  delta", *cells, style="dim")
    if bs:
        tab.caption = (f"* the {int(bs['confidence'] * 100)}% paired bootstrap interval of the delta excludes 0 "
                       f"({bs['resamples']} resamples over images, seed {bs['seed']})")
    console.render(tab)
    if bs:
        t = Table(title="deltas with bootstrap intervals")
        for c in ("source", "metric", "delta", "interval", "p", "significant"):
            t.add_column(c, justify="left" if c in ("source", "metric") else "right")
        for s, per in bs["deltas"].items():
            for k, st in per.items():
                if k not in names:
                    continue
                ci = st["ci"]
                t.add_row(esc(s), esc(k), _num(st["delta"], signed=True),
                          "-" if ci is None else f"[{ci[0]:+.3f}, {ci[1]:+.3f}]",
                          "-" if st["p"] is None else f"{st['p']:.3f}", "yes" if st["significant"] else "no")
        console.render(t)
    for s, rows in comp.get("per_class", {}).items():
        changed = sorted((r for r in rows if r.get("delta_AP") is not None), key=lambda r: r["delta_AP"])
        if not changed:
            continue
        sig = {r["label"]: r for r in (bs or {}).get("per_class_AP", {}).get(s, [])}
        show = changed[:5] + [r for r in changed[-5:] if r not in changed[:5]]
        t = Table(title=f"per class: largest AP changes, {esc(s)} vs {esc(base)}")
        for c in ("class", "AP", "delta AP", "significant"):
            t.add_column(c, justify="left" if c == "class" else "right")
        for r in show:
            st = sig.get(r["label"])
            t.add_row(esc(r["label"]), _num(r.get("AP")), _num(r["delta_AP"], signed=True),
                      "-" if st is None else ("yes" if st["significant"] else "no"))
        console.render(t)
    for s, rows in comp.get("slices", {}).items():
        t = Table(title=f"slices: {esc(s)} vs {esc(base)}")
        for c in ("column", "value", "AP", "delta AP", "AP50", "delta AP50"):
            t.add_column(c, justify="left" if c in ("column", "value") else "right")
        for r in rows:
            t.add_row(esc(r["column"]), esc(r["value"]), _num(r["metrics"].get("AP")), _num(r["deltas"].get("AP"), True),
                      _num(r["metrics"].get("AP50")), _num(r["deltas"].get("AP50"), True))
        console.render(t)


def render_regression(result: dict, reference: str | None) -> None:
    """The regression gate's diff on stderr (shown even with -q when something is worse)."""
    from mlcycle.cli import console

    worse = [r for r in result["rows"] if r["worse"]]
    if console.is_quiet() and not worse:
        return
    from mlcycle.errors import printable

    lines = [f"metrics against {printable(str(reference))} (tolerance {result['tolerance']:g}):"]
    for r in result["rows"]:
        who = f"{r['source']}: " if r["source"] else ""
        now = "undefined" if r["value"] is None else f"{r['value']:.4f}"
        delta = "" if r["delta"] is None else f" ({r['delta']:+.4f})"
        mark = "  WORSE" if r["worse"] else ""
        lines.append(f"  {printable(who + r['metric']):<24} {r['reference']:.4f} -> {now}{delta}{mark}")
    console.console().print("\n".join(lines), markup=False, highlight=False, soft_wrap=True)
