"""The rich summary of ``mlcycle diff`` (stderr). The JSON summary is the contract;
this rendering may change."""

from __future__ import annotations


def render(doc: dict) -> None:
    from rich.table import Table

    from mlcycle.cli import console

    if console.is_quiet():
        return
    esc = console.escape
    o, n = doc["old"], doc["new"]
    console.info(f"diff: {o['name']} ({o['labels']} labels, {o['samples']} samples) -> "
                 f"{n['name']} ({n['labels']} labels, {n['samples']} samples): {doc['changes']} changes")
    t = Table(title="changes", title_justify="left")
    t.add_column("change")
    t.add_column("labels", justify="right")
    for name, count in doc["counts"].items():
        t.add_row(name, str(count))
    t.add_row("samples added", str(doc["samples"]["added"]))
    t.add_row("samples removed", str(doc["samples"]["removed"]))
    console.render(t)
    if doc["per_class"]:
        kinds = ["added", "removed", "moved", "relabelled", "attributes"]
        t = Table(title="by class", title_justify="left")
        t.add_column("class")
        for k in kinds:
            t.add_column(k, justify="right")
        rows = sorted(doc["per_class"].items(), key=lambda kv: -sum(kv[1].values()))
        for cls, c in rows[:15]:
            t.add_row(esc(cls), *[str(c.get(k, 0)) for k in kinds])
        console.render(t)
    if doc["relabels"]:
        console.info("relabels: " + ", ".join(f"{esc(r['from'])} -> {esc(r['to'])} {r['count']}"
                                             for r in doc["relabels"][:8]))
    if doc["attributes"]:
        console.info("attributes changed: " + ", ".join(f"{esc(k)} {v}" for k, v in doc["attributes"].items()))
    cols = doc["columns"]
    if cols["added"] or cols["removed"]:
        console.info(f"columns added: {', '.join(cols['added']) or '-'}; removed: {', '.join(cols['removed']) or '-'}")
