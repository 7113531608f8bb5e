"""The stats report on a terminal: rich tables with inline bars.

It works from the document ``mlcycle.stats.describe`` returns, never from the table, so
what a terminal shows and what ``--json`` prints always agree. Every string that comes
from the data (class names, attribute values, column values) is escaped with
``console.escape`` before rich renders it.
"""

from __future__ import annotations

from typing import Any

from mlcycle.cli.console import escape

BAR_WIDTH = 20
_EIGHTHS = " ▏▎▍▌▋▊▉"
_SHADES = " ░▒▓█"


# --------------------------------------------------------------------------- text helpers

_bar_width = [BAR_WIDTH]  # narrowed by render() on narrow terminals


def bar(fraction: float | None, width: int | None = None) -> str:
    """A horizontal bar of ``width`` cells filled to ``fraction`` (eighths of a cell)."""
    if fraction is None or fraction != fraction:
        return ""
    width = _bar_width[0] if width is None else width
    f = min(max(fraction, 0.0), 1.0)
    eighths = int(round(f * width * 8))
    full, part = divmod(eighths, 8)
    return ("█" * full + (_EIGHTHS[part] if part else "")).ljust(width)


def _name(value: Any) -> str:
    if value is None:
        return "(none)"
    if value == "":
        return '""'
    return escape(value)


def _pct(x: float | None) -> str:
    return "" if x is None else f"{100 * x:.1f}%"


def _int(n: int | None) -> str:
    return "" if n is None else f"{n:,}"


def _fmt(x: float | None) -> str:
    if x is None:
        return ""
    if x == int(x) and abs(x) < 1e12:
        return f"{int(x):,}"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    if abs(x) >= 1:
        return f"{x:.2f}"
    return f"{x:.3g}"


# --------------------------------------------------------------------------- the report

def render(doc: dict[str, Any], out, top: int = 20) -> None:
    """Print the report for a stats document to the rich console ``out``."""
    _bar_width[0] = BAR_WIDTH if out.width >= 110 else 10
    try:
        for item in renderables(doc, top=top):
            out.print(item)
            out.print()
    finally:
        _bar_width[0] = BAR_WIDTH


def renderables(doc: dict[str, Any], top: int = 20) -> list:
    items: list = []
    items += _section(doc, top, title=None)
    if doc.get("groups"):
        items += _groups(doc["groups"], top)
    if doc.get("compare"):
        items += _compare(doc["compare"], top)
    return items


def _rule(text: str):
    from rich.rule import Rule

    return Rule(text, style="dim")


def _table(title: str, *columns: str, right: tuple[int, ...] = ()):
    from rich.table import Table

    t = Table(title=title, title_justify="left", title_style="bold", box=None, pad_edge=False,
              header_style="bold dim", show_edge=False, min_width=len(title))
    for i, c in enumerate(columns):
        t.add_column(c, justify="right" if i in right else "left", no_wrap=(i in right))
    return t


def _section(doc: dict, top: int, title: str | None) -> list:
    items = [_overview(doc, title)]
    c = doc["counts"]
    if c["per_class"]:
        items.append(_classes(doc, top))
    if len(c["per_split"]) > 1 or (c["per_split"] and c["per_split"][0]["split"] is not None):
        items.append(_parts("Splits", "split", c["per_split"], c["labels"]))
    if len(c["per_source"]) > 1:
        items.append(_parts("Sources", "source", c["per_source"], c["labels"]))
    if doc["boxes"]["count"]:
        items += _boxes(doc["boxes"])
    items += _per_sample(doc["per_sample"], top)
    if doc["attributes"]:
        items.append(_attributes(doc["attributes"]))
    if doc.get("eval"):
        items += _eval(doc["eval"], top)
    if doc.get("hard"):
        items.append(_hard(doc["hard"], top))
    return items


def _overview(doc: dict, title: str | None):
    c, b, bal = doc["counts"], doc["boxes"], doc["balance"]
    t = _table("Overview" + (f" ({title})" if title else ""), "", "", right=(1,))
    t.add_row("samples", _int(c["samples"]))
    t.add_row("labels", _int(c["labels"]))
    t.add_row("samples without labels", f"{_int(c['samples_without_labels'])}"
              + (f"  ({_pct(c['samples_without_labels'] / c['samples'])})" if c["samples"] else ""))
    t.add_row("classes", _int(c["classes"]))
    t.add_row("boxes", _int(b["count"]))
    if b["labels_without_box"]:
        t.add_row("labels without a box", _int(b["labels_without_box"]))
    if bal["imbalance_ratio"] is not None:
        t.add_row("imbalance (largest / smallest)",
                  f"{bal['imbalance_ratio']:.1f}  ({_name(bal['largest']['label'])} / {_name(bal['smallest']['label'])})")
        t.add_row("effective number of classes", f"{bal['effective_classes']:.1f} of {bal['classes']}")
    return t


def _classes(doc: dict, top: int):
    c = doc["counts"]
    per_class = c["per_class"]
    sizes = {d["label"]: d for d in doc["boxes"]["per_class"]}
    peak = max(d["labels"] for d in per_class)
    t = _table(f"Classes ({len(per_class)})", "class", "labels", "share", "", "samples", "in samples",
               "small", "medium", "large", right=(1, 2, 4, 5, 6, 7, 8))
    for d in per_class[:top]:
        s = sizes.get(d["label"], {})
        t.add_row(_name(d["label"]), _int(d["labels"]), _pct(d["share"]), f"[cyan]{bar(d['labels'] / peak)}[/]",
                  _int(d["samples"]), _pct(d["sample_share"]),
                  _int(s.get("small")), _int(s.get("medium")), _int(s.get("large")))
    if len(per_class) > top:
        rest = per_class[top:]
        t.add_row(f"[dim]… {len(rest)} more[/]", _int(sum(d["labels"] for d in rest)),
                  _pct(sum(d["share"] for d in rest)), "", "", "", "", "", "")
    return t


def _parts(title: str, key: str, rows: list[dict], labels: int):
    peak = max([r["labels"] for r in rows] + [1])
    t = _table(title, key, "samples", "labels", "", "without labels", right=(1, 2, 4))
    for r in rows:
        t.add_row(_name(r[key]), _int(r["samples"]), _int(r["labels"]), f"[cyan]{bar(r['labels'] / peak)}[/]",
                  _int(r["samples_without_labels"]))
    return t


def _hist_table(title: str, first: str, rows: list[tuple[str, int, float | None]]):
    peak = max([n for _, n, _ in rows] + [1])
    t = _table(title, first, "boxes", "share", "", right=(1, 2))
    for name, n, share in rows:
        t.add_row(name, _int(n), _pct(share), f"[green]{bar(n / peak)}[/]")
    return t


def _range(lo: float | None, hi: float | None) -> str:
    if hi is None:
        return f"≥ {_fmt(lo)}"
    return f"{_fmt(lo)} – {_fmt(hi)}"


def _boxes(b: dict) -> list:
    from rich.columns import Columns

    items = []
    sizes = _hist_table("Box sizes (COCO area)", "bucket",
                        [(f"{d['bucket']} ({_range(d['min_area'], d['max_area'])} px²)", d["boxes"], d["share"])
                         for d in b["size_buckets"]])
    rel = _hist_table("Relative size √(box/image)", "size",
                      [(_range(d["min"], d["max"]), d["boxes"], d["share"]) for d in b["relative_size_histogram"]])
    aspect = _hist_table("Aspect ratio w/h", "ratio",
                         [(_range(d["min"], d["max"]), d["boxes"], d["share"]) for d in b["aspect_ratio_histogram"]])
    items.append(Columns([sizes, rel, aspect], padding=(0, 4)))
    q = _table("Box dimensions", "", "min", "p05", "p25", "median", "p75", "p95", "max", "mean",
               right=tuple(range(1, 10)))
    for key, name in (("width", "width (px)"), ("height", "height (px)"), ("aspect_ratio", "aspect w/h"),
                      ("area", "area (px²)"), ("relative_size", "relative size")):
        s = b[key]
        q.add_row(name, *(_fmt(s[k]) for k in ("min", "p05", "p25", "p50", "p75", "p95", "max", "mean")))
    items.append(q)
    items.append(Columns([_grid(b["centre_grid"]), _border(b)], padding=(0, 4)))
    return items


def _grid(grid: dict):
    counts = grid["counts"]
    peak = max([max(r) for r in counts] + [1])
    t = _table("Box centres (grid over the image)", *[""] * grid["size"],
               right=tuple(range(grid["size"])))
    for row in counts:
        cells = []
        for n in row:
            level = 0 if n == 0 else 1 + min(3, int(3 * n / peak))
            shade = _SHADES[level] * 2
            cells.append(f"[magenta]{shade}[/] {_int(n)}")
        t.add_row(*cells)
    return t


def _border(b: dict):
    t = _table("Box checks", "", "", right=(1,))
    share = b["touching_border_share"]
    t.add_row(f"touching the border (±{_fmt(b['border_tolerance'])} px)",
              _int(b["touching_border"]) + (f" ({_pct(share)})" if share is not None else ""))
    t.add_row("reaching outside the image", _int(b["outside_image"]))
    t.add_row("zero width or height", _int(b["degenerate"]))
    t.add_row("without image size", _int(b["without_image_size"]))
    t.add_row("area from the area column", _int(b["area_from_column"]))
    return t


def _dist_rows(dist: dict, limit: int = 12) -> list[tuple[str, int, float | None]]:
    hist = dist["histogram"]
    n = dist["samples"] or 1
    rows = [(str(h["value"]), h["samples"], h["samples"] / n) for h in hist[:limit]]
    if len(hist) > limit:
        rest = hist[limit:]
        rows.append((f"{rest[0]['value']}–{rest[-1]['value']}", sum(h["samples"] for h in rest),
                     sum(h["samples"] for h in rest) / n))
    return rows


def _per_sample(ps: dict, top: int) -> list:
    from rich.columns import Columns

    if not ps["labels"]["samples"]:
        return []

    def table(title: str, first: str, dist: dict):
        rows = _dist_rows(dist)
        peak = max([r[1] for r in rows] + [1])
        t = _table(f"{title} (mean {dist['mean']:.2f}, median {dist['p50']}, max {dist['max']})",
                   first, "samples", "share", "", right=(0, 1, 2))
        for name, n, share in rows:
            t.add_row(name, _int(n), _pct(share), f"[yellow]{bar(n / peak, min(15, _bar_width[0]))}[/]")
        return t

    parts = [table("Labels per sample", "labels", ps["labels"]), table("Classes per sample", "classes", ps["classes"])]
    if ps["cooccurrence"]:
        t = _table("Classes seen together", "class", "class", "samples", right=(2,))
        for d in ps["cooccurrence"][:top]:
            t.add_row(_name(d["a"]), _name(d["b"]), _int(d["samples"]))
        parts.append(t)
    return [Columns(parts, padding=(0, 4))]


def _attr_summary(a: dict) -> str:
    if a["type"] == "bool":
        return f"true {_int(a['true'])} ({_pct(a['true_share'])}), false {_int(a['false'])}"
    if a["type"] == "number":
        q = a["quantiles"]
        if not q["count"]:
            return ""
        return f"median {_fmt(q['p50'])}  [{_fmt(q['min'])} … {_fmt(q['max'])}]  mean {_fmt(q['mean'])}"
    if a["type"] == "categorical":
        if a.get("high_cardinality"):
            return "[dim]more than 10,000 distinct values[/]"
        vals = ", ".join(f"{_name(v['value'])} {_pct(v['share'])}" for v in a["values"][:5])
        more = f" … ({_int(a['distinct'])} distinct)" if a["distinct"] and a["distinct"] > 5 else ""
        return vals + more
    if a.get("length"):
        q = a["length"]
        return f"length median {_fmt(q['p50'])}  [{_fmt(q['min'])} … {_fmt(q['max'])}]" if q["count"] else ""
    return ""


def _attributes(attrs: list[dict]):
    t = _table("Attributes (over label rows)", "column", "type", "missing", "summary", right=(2,))
    for a in attrs:
        kind = a["type"] + (" list" if a.get("list") else "")
        t.add_row(escape(a["name"]), kind, _pct(a["missing_share"]), _attr_summary(a))
    return t


def _eval(ev: dict, top: int) -> list:
    t = _table("Evaluation (from the eval column)", "class", "tp", "fp", "fn", "precision", "recall",
               right=(1, 2, 3, 4, 5))
    tot = ev["total"]
    for d in ev["per_class"][:top]:
        t.add_row(_name(d["label"]), _int(d["tp"]), _int(d["fp"]), _int(d["fn"]), _pct(d["precision"]), _pct(d["recall"]))
    t.add_row("[bold]all[/]", _int(tot["tp"]), _int(tot["fp"]), _int(tot["fn"]), _pct(tot["precision"]), _pct(tot["recall"]))
    s = _table("Evaluation by object size", "size", "tp", "fp", "fn", "precision", "recall", right=(1, 2, 3, 4, 5))
    for d in ev["per_size"]:
        s.add_row(_name(d["bucket"]), _int(d["tp"]), _int(d["fp"]), _int(d["fn"]), _pct(d["precision"]), _pct(d["recall"]))
    return [t, s]


def _hard(h: dict, top: int):
    q = h["score"]
    title = f"Hard examples ({_int(h['rows'])} rows flagged"
    if q["count"]:
        title += f"; score median {_fmt(q['p50'])}, max {_fmt(q['max'])}"
    t = _table(title + ")", "reason", "rows", "share", "", right=(1, 2))
    peak = max([r["count"] for r in h["reasons"]] + [1])
    for r in h["reasons"][:top]:
        t.add_row(_name(r["reason"]), _int(r["count"]), _pct(r["share"]), f"[red]{bar(r['count'] / peak)}[/]")
    return t


def _groups(groups: list[dict], top: int) -> list:
    """--by: one row per group, then labels per class with a column per group (the JSON
    has every statistic per group)."""
    columns = list(groups[0]["by"])
    names = [", ".join(_name(g["by"][c]) for c in columns) for g in groups]
    items: list = [_rule("by " + ", ".join(escape(c) for c in columns))]
    t = _table("Groups", ", ".join(escape(c) for c in columns), "samples", "labels", "classes", "no labels",
               "small", "medium", "large", "rel. size", right=tuple(range(1, 9)))
    for name, g in zip(names, groups):
        c, b = g["counts"], g["boxes"]
        t.add_row(name, _int(c["samples"]), _int(c["labels"]), _int(c["classes"]), _int(c["samples_without_labels"]),
                  *(_pct(x["share"]) for x in b["size_buckets"]), _fmt(b["relative_size"]["p50"]))
    items.append(t)
    labels: dict = {}
    for j, g in enumerate(groups):
        for c in g["counts"]["per_class"]:
            labels.setdefault(c["label"], [0] * len(groups))[j] = c["labels"]
    order = sorted(labels, key=lambda k: (-sum(labels[k]), "" if k is None else str(k)))
    ct = _table("Labels per class and group", "class", *names, right=tuple(range(1, len(names) + 1)))
    for k in order[:top]:
        ct.add_row(_name(k), *(_int(n) for n in labels[k]))
    if len(order) > top:
        ct.add_row(f"[dim]… {len(order) - top} more[/]", *("" for _ in names))
    items.append(ct)
    return items


def _compare(cmp: dict, top: int) -> list:
    values = cmp["values"]
    items: list = [_rule(f"compare by {escape(cmp['column'])}")]
    docs = cmp["per_value"]
    heads = [_name(v) for v in values]
    o = _table(f"Side by side ({escape(cmp['column'])})", "", *heads, right=tuple(range(1, len(values) + 1)))
    o.add_row("samples", *(_int(d["counts"]["samples"]) for d in docs))
    o.add_row("labels", *(_int(d["counts"]["labels"]) for d in docs))
    o.add_row("classes", *(_int(d["counts"]["classes"]) for d in docs))
    o.add_row("labels per sample (mean)", *(_fmt(d["per_sample"]["labels"]["mean"]) for d in docs))
    for i, name in enumerate(("small", "medium", "large")):
        o.add_row(f"{name} boxes", *(_pct(d["boxes"]["size_buckets"][i]["share"]) for d in docs))
    o.add_row("relative size (median)", *(_fmt(d["boxes"]["relative_size"]["p50"]) for d in docs))
    items.append(o)
    # class shares side by side, ordered by the largest difference
    shares: dict = {}
    for j, d in enumerate(docs):
        for c in d["counts"]["per_class"]:
            shares.setdefault(c["label"], [0.0] * len(docs))[j] = c["share"]
    order = sorted(shares, key=lambda k: -(max(shares[k]) - min(shares[k])))
    t = _table("Class shares (largest differences first)", "class", *heads, "difference",
               right=tuple(range(1, len(values) + 2)))
    for k in order[:top]:
        s = shares[k]
        t.add_row(_name(k), *(_pct(x) for x in s), _pct(max(s) - min(s)))
    items.append(t)
    dist = _table("Jensen–Shannon distance (0 same, 1 disjoint)", "a", "b", "classes", "sizes",
                  "relative size", "aspect", "labels/sample", right=(2, 3, 4, 5, 6))
    for d in cmp["distances"]:
        dist.add_row(_name(d["a"]), _name(d["b"]), *(_fmt3(d[k]) for k in
                     ("class_shares", "size_buckets", "relative_size", "aspect_ratio", "labels_per_sample")))
    items.append(dist)
    if cmp["largest_differences"]:
        ld = _table("Largest differences", "what", "name", *heads, right=tuple(range(2, len(values) + 2)))
        for d in cmp["largest_differences"]:
            what = d["statistic"].replace("_", " ") + (f" {escape(d['attribute'])}" if d.get("attribute") else "")
            ld.add_row(what, _name(d["name"]), *(_pct(s["share"]) for s in d["shares"]))
        items.append(ld)
    return items


def _fmt3(x: float | None) -> str:
    return "" if x is None else f"{x:.3f}"
