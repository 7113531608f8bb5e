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
