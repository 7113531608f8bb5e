"""mlcycle schema-check: check every label against a schema file, like a linter."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from mlcycle.cli.common import Format, Json, NoColor, Output, Quiet, Tables, Verbose, command, setup

KEEP_CHOICES = ("all", "valid", "invalid")


def _complete_keep(incomplete: str) -> list[str]:
    return [k for k in KEEP_CHOICES if k.startswith(incomplete)]


@command(
    "schema-check",
    examples=[
        "mlcycle schema-check -s schema.yaml gt.parquet --report violations.jsonl > /dev/null",
        "mlcycle ingest coco instances.json | mlcycle schema-check -s schema.yaml --annotate | mlcycle stats",
        "mlcycle schema-check --infer gt.parquet > schema.yaml",
    ],
)
def schema_check(
    tables: Tables = None,
    schema_path: Annotated[Optional[Path], typer.Option("-s", "--schema", metavar="SCHEMA.yaml",
                                                        help="The schema file to check against (see docs/schema.md).")] = None,
    annotate: Annotated[bool, typer.Option("--annotate", help="Add a 'violations' column: the rule ids each row breaks.")] = False,
    keep: Annotated[str, typer.Option("--keep", metavar="all|valid|invalid", autocompletion=_complete_keep,
                                      help="Pass on all rows, only the valid ones, or only the invalid ones "
                                           "(invalid: breaks an error rule; with --strict a warning rule too).")] = "all",
    report: Annotated[Optional[Path], typer.Option("--report", metavar="FILE",
                                                   help="Write one row per violation (rule, severity, sample_id, label_id, "
                                                        "column, value, message) as a table; encoding from the ending, "
                                                        "JSON Lines by default.")] = None,
    strict: Annotated[bool, typer.Option("--strict", help="Warnings fail the check too (exit 3).")] = False,
    infer: Annotated[bool, typer.Option("--infer", help="Draft a schema from the data (YAML on standard output or -o) "
                                                        "instead of checking.")] = False,
    examples: Annotated[int, typer.Option("--examples", metavar="N", min=0,
                                          help="Examples shown per rule in the summary.")] = 3,
    json_out: Json = False,
    output: Output = None,
    encoding: Format = None,
    quiet: Quiet = False,
    verbose: Verbose = False,
    no_color: NoColor = False,
) -> None:
    """Check a label table against an annotation schema (YAML), like a linter.

    The table passes through to standard output (or -o), so schema-check sits in a
    pipe; a summary per rule goes to standard error. The schema file is validated
    before any data is read. Exit status 3 when an error-level rule is broken (with
    --strict, a warning-level one too), after all output is written.
    """
    from mlcycle.cli import console
    from mlcycle import io, schema
    from mlcycle.cli.common import UsageError
    from mlcycle.errors import CheckFailed

    setup(quiet, verbose, no_color)
    if keep not in KEEP_CHOICES:
        raise UsageError(f"--keep: expected one of {', '.join(KEEP_CHOICES)}, got {keep!r}")
    if infer:
        if schema_path is not None:
            raise UsageError("--infer drafts a schema and --schema checks one; give only one",
                             hint="mlcycle schema-check --infer TABLE > schema.yaml")
        from mlcycle import schema_infer

        table = io.read_tables(tables)
        text = schema_infer.infer(table, origin=", ".join(tables or ["<stdin>"]))
        with io.atomic_output(output, "wb") as fh:
            fh.write(text.encode("utf-8"))
        console.info(f"drafted a schema from {table.num_rows} rows; review it before use")
        return
    if schema_path is None:
        raise UsageError("missing --schema", hint="mlcycle schema-check -s schema.yaml [TABLE] (or --infer to draft one)")
    spec = schema.load(schema_path)          # the schema is validated before the data is read
    if report is not None:                   # ... and the report's place before any output
        from mlcycle.errors import MlcycleError

        if report.is_dir():
            raise UsageError(f"--report {report}: is a folder; give a file name such as violations.jsonl")
        if not (report.parent if str(report.parent) else Path(".")).is_dir():
            raise MlcycleError(f"--report {report}: folder {report.parent} does not exist")
    out_encoding = io.output_encoding(output, encoding)
    if not json_out:
        io.check_binary_to_terminal(output, out_encoding)
    table = io.read_tables(tables)
    result = schema.check(table, spec)
    if not json_out or not io.is_stdout(output):
        io.write_table(result.apply(table, annotate=annotate, keep=keep, strict=strict), output, encoding)
    if report is not None:
        io.write_table(result.report_table(), report, _report_encoding(report))
    doc = result.summary(examples=examples, strict=strict)
    if json_out:
        import orjson

        with io.atomic_output(None, "wb") as fh:
            fh.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE))
    else:
        _render(doc)
    if result.failed(strict):
        parts = [f"{doc['errors']} error{'s' if doc['errors'] != 1 else ''}"]
        if strict or doc["warnings"]:
            parts.append(f"{doc['warnings']} warning{'s' if doc['warnings'] != 1 else ''}")
        raise CheckFailed(f"schema check failed: {', '.join(parts)} against {schema_path}",
                          hint=None if report else "--report FILE lists every violation")


def _report_encoding(path: Path) -> str:
    """The report's encoding: its file ending, else JSON Lines (never --format)."""
    from mlcycle import io

    return io.output_encoding(path, "jsonl")


def _render(doc: dict) -> None:
    """The per-rule summary on stderr (values from the data are escaped)."""
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
