"""mlcycle info: what a label table is and how it was made (its provenance)."""

from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer

from mlcycle.cli.common import Json, NoColor, Quiet, Verbose, command, setup, stdout_is_terminal


@command(
    "info",
    examples=[
        "mlcycle info gt.parquet",
        "mlcycle info changes.parquet --json | jq '.history[].command'",
        "mlcycle ingest coco instances.json | mlcycle dedupe --images-root images/ | mlcycle info",
    ],
)
def info(
    table: Annotated[Optional[str], typer.Argument(metavar="[TABLE]", help="Label table ('-' or none: standard input).", show_default=False)] = None,
    json_out: Json = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
    no_color: NoColor = False,
) -> None:
    """Describe a label table: rows, columns, sources, schema version, metadata, history.

    The history lists every mlcycle command that made the table, with its version,
    time and the sha256 digests of its inputs (docs/curate-diff.md, Provenance). On a
    terminal it is rendered; piped or with --json it is one JSON document.
    """
    from mlcycle import io, provenance

    setup(quiet, verbose, no_color)
    doc = provenance.describe_scan(io.scan([table] if table is not None else None), io.display_name(table))
    if json_out or not stdout_is_terminal():
        import orjson

        sys.stdout.buffer.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE))
        sys.stdout.flush()
        return
    _render(doc, no_color)


def _render(doc: dict, no_color: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    from mlcycle.cli.console import escape as esc

    out = Console(no_color=no_color or None, highlight=False)
    out.print(f"{esc(doc['name'])}: {doc['rows']} rows, {len(doc['columns'])} columns, "
              f"schema version {doc['schema_version']}")
    out.print("sources: " + (", ".join(f"{esc(k)} {v}" for k, v in doc["sources"].items()) or "-"))
    t = Table(title="columns", title_justify="left")
    for c in ("column", "type", "role"):
        t.add_column(c)
    for c in doc["columns"]:
        t.add_row(esc(c["name"]), esc(c["type"]), c["role"])
    out.print(t)
    if doc["metadata"]:
        out.print("metadata: " + "; ".join(f"{esc(k)}: {esc(v)}" for k, v in doc["metadata"].items()))
    t = Table(title=f"history ({len(doc['history'])} steps)", title_justify="left")
    for c in ("#", "time", "command", "inputs"):
        t.add_column(c)
    for k, step in enumerate(doc["history"], 1):
        inputs = ", ".join(f"{esc(i.get('name'))} {(i.get('sha256') or '-')[:12]}" for i in step.get("inputs", []))
        t.add_row(str(k), esc(step.get("time", "")), esc(step.get("command", "")), inputs or "-")
    out.print(t)
