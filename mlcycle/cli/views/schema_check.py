"""The schema-check summary on a terminal: one rich table row per rule broken.

It works from the summary document ``mlcycle.schema.check`` returns (what ``--json``
prints), so the terminal and the JSON always agree. Values from the data (sample ids,
messages) are escaped with ``console.escape`` before rich renders them.
"""

from __future__ import annotations

from typing import Any


def render(doc: dict[str, Any]) -> None:
    """The per-rule summary on stderr (nothing with -q)."""
    from mlcycle.cli import console

    if console.is_quiet():
        return
    if not doc["rules"]:
        console.info(f"schema check passed: {doc['labels']} labels in {doc['rows']} rows, no violations")
        return
    from rich.table import Table

    t = Table(title=f"schema-check against {console.escape(doc['schema'])}", title_justify="left",
              show_lines=False, pad_edge=False)
    t.add_column("rule")
    t.add_column("severity")
    t.add_column("count", justify="right")
    t.add_column("first examples (sample_id, label_id: message)")
    for rule in doc["rules"]:
        ex = "\n".join(
            f"{console.escape(e['sample_id'] if e['sample_id'] is not None else '(dataset)')}"
            f"{'' if e['label_id'] is None else ' #' + str(e['label_id'])}: {console.escape(e['message'])}"
            for e in rule["examples"])
        style = "red" if rule["severity"] == "error" else "yellow"
        t.add_row(rule["rule"], f"[{style}]{rule['severity']}[/{style}]", str(rule["count"]), ex)
    console.render(t)
    verdict = "passed" if doc["passed"] else "failed"
    console.info(f"schema check {verdict}: {doc['errors']} errors, {doc['warnings']} warnings "
                 f"in {doc['labels']} labels ({doc['rows']} rows)")


def failure_message(doc: dict[str, Any], schema_path: object, strict: bool) -> str:
    """'schema check failed: 2 errors, 1 warning against schema.yaml' (the error line)."""
    parts = [f"{doc['errors']} error{'s' if doc['errors'] != 1 else ''}"]
    if strict or doc["warnings"]:
        parts.append(f"{doc['warnings']} warning{'s' if doc['warnings'] != 1 else ''}")
    return f"schema check failed: {', '.join(parts)} against {schema_path}"
