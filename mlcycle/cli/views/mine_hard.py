"""The mine-hard summary on stderr: one line of counts, rich tables of the reasons and
the top labels, one line about the pool search.

It works from the summary document ``mlcycle.mining.mine`` returns (what ``--json``
prints). Strings that come from the data (sample ids, sources, class names) are escaped
with ``console.escape`` before rich renders them.
"""

from __future__ import annotations

from typing import Any


def show_summary(doc: dict[str, Any]) -> None:
    from mlcycle.cli import console

    if console.is_quiet():
        return
    from rich.table import Table

    esc = console.escape
    console.info(
        f"mine-hard: {doc['labels_scored']} labels flagged in {doc['samples_scored']} of "
        f"{doc['samples']} samples; selected {doc['selected_labels']} labels in "
        f"{doc['selected_samples']} samples; {doc['rows_written']} rows with context"
    )
    cut = doc.get("cutoff") or {}
    if cut.get("rule") == "default":
        per = "samples" if cut.get("of") == "samples" else "labels"
        console.info(
            f"cut-off: the default, the best {cut['fraction']:.0%} of the {cut['base']:,} {cut['of']} "
            f"(at least {cut['minimum']}): top {cut['top']:,} {per}"
            + (f"; {cut['left_out']:,} flagged {per} below it not written" if cut.get("left_out") else "")
            + " (--top N or --min-score X to change; --min-score 0 for every flagged label)"
        )
    elif cut.get("left_out"):
        console.info(f"cut-off: --top {cut['top']:,}; {cut['left_out']:,} more flagged below it not written")
    if doc["by_reason"]:
        t = Table(title="flagged labels by reason", title_justify="left")
        t.add_column("reason")
        t.add_column("count", justify="right")
        t.add_column("classes (most frequent)")
        for reason, count in sorted(doc["by_reason"].items(), key=lambda kv: -kv[1]):
            classes = sorted(doc["by_reason_and_class"].get(reason, {}).items(), key=lambda kv: -kv[1])[:4]
            t.add_row(reason, str(count), ", ".join(f"{esc(c)} {n}" for c, n in classes))
        console.render(t)
    if doc["top_labels"]:
        t = Table(title="top labels", title_justify="left")
        for name in ("score", "reason", "sample", "source", "label", "confidence"):
            t.add_column(name, justify="right" if name in ("score", "confidence") else "left")
        for row in doc["top_labels"][:5]:
            conf = "" if row["score"] is None else f"{row['score']:.2f}"
            t.add_row(f"{row['hard_score']:.3f}", row["hard_reason"], esc(row["sample_id"]), esc(row["source"]),
                      esc(row["label"] if row["label"] is not None else ""), conf)
        console.render(t)
    if "pool" in doc:
        p = doc["pool"]
        console.info(
            f"pool: chose {p['chosen']} samples of {p['pool_candidates']} unlabeled pool rows, similar to "
            f"{p['failures_used']} failures ({p['pool_samples_already_labeled']} pool samples already labeled, skipped)"
        )
