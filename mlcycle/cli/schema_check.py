"""mlcycle schema-check: check every label against a schema file, like a linter.

The options only: the checking is ``mlcycle.schema``, the terminal summary is
``mlcycle.cli.views.schema_check``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from mlcycle.cli.common import Format, Json, NoColor, Output, Quiet, Tables, Verbose, command, setup
from mlcycle.scale import ENGINE_HELP, ENGINE_METAVAR

# --engine (stats, schema-check): its text is mlcycle.scale's; the option belongs in
# common.py beside the other shared options.
EngineOption = Annotated[Optional[str], typer.Option("--engine", metavar=ENGINE_METAVAR, help=ENGINE_HELP)]


def _complete_keep(incomplete: str) -> list[str]:
    from mlcycle.schema.model import KEEP_CHOICES

    return [k for k in KEEP_CHOICES if k.startswith(incomplete)]


@command(
    "schema-check",
    examples=[
        "mlcycle schema-check -s schema.yaml gt.parquet --report violations.jsonl > /dev/null",
        "mlcycle ingest coco instances.json | mlcycle schema-check -s schema.yaml --annotate | mlcycle stats",
        "mlcycle schema-check --infer gt.parquet > schema.yaml",
        "mlcycle schema-check -s schema.yaml labels/ --engine dask --report violations.parquet",
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
    engine: EngineOption = None,
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

    With --engine the check runs sharded and the table is not passed on (it may not
    fit one machine): the summary, --report and the exit status are those of one run.
    """
    from mlcycle import io, schema
    from mlcycle.cli import console
    from mlcycle.cli.common import UsageError
    from mlcycle.cli.views import schema_check as view
    from mlcycle.errors import CheckFailed, MlcycleError

    setup(quiet, verbose, no_color)
    schema.validate_options(keep=keep, examples=examples)
    if infer:
        if schema_path is not None:
            raise UsageError("--infer drafts a schema and --schema checks one; give only one",
                             hint="mlcycle schema-check --infer TABLE > schema.yaml")
        table = io.read_tables(tables)
        text = schema.infer(table, origin=", ".join(tables or ["<stdin>"]))
        with io.atomic_output(output, "wb") as fh:
            fh.write(text.encode("utf-8"))
        console.info(f"drafted a schema from {table.num_rows} rows; review it before use")
        return
    if schema_path is None:
        raise UsageError("missing --schema", hint="mlcycle schema-check -s schema.yaml [TABLE] (or --infer to draft one)")
    spec = schema.load(schema_path)          # the schema is validated before the data is read
    if report is not None:                   # ... and the report's place before any output
        if report.is_dir():
            raise UsageError(f"--report {report}: is a folder; give a file name such as violations.jsonl")
        if not (report.parent if str(report.parent) else Path(".")).is_dir():
            raise MlcycleError(f"--report {report}: folder {report.parent} does not exist")
    if engine is not None:
        from mlcycle import scale

        for flag, given in (("--annotate", annotate), ("--keep", keep != "all"), ("-o/--output", output is not None),
                            ("--format", encoding is not None)):
            if given:
                raise UsageError(f"{flag} passes the table on, which --engine does not do",
                                 hint="check with --engine and --report FILE, or pass the table on without --engine")
        scale.require(engine)  # a missing engine fails before anything is read
        found = scale.find_violations(tables, spec, engine=engine)
    else:
        out_encoding = io.output_encoding(output, encoding)
        if not json_out:
            io.check_binary_to_terminal(output, out_encoding)
        table = io.read_tables(tables)
        found = schema.find_violations(table, spec)
        if not json_out or not io.is_stdout(output):
            io.write_table(found.apply(table, annotate=annotate, keep=keep, strict=strict), output, encoding)
    if report is not None:
        io.write_table(found.report_table(), report, _report_encoding(report))
    doc = found.summary(examples=examples, strict=strict)
    if json_out:
        import orjson

        with io.atomic_output(None, "wb") as fh:
            fh.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE))
    else:
        view.render(doc)
    if found.failed(strict):
        raise CheckFailed(view.failure_message(doc, schema_path, strict),
                          hint=None if report else "--report FILE lists every violation")


def _report_encoding(path: Path) -> str:
    """The report's encoding: its file ending, else JSON Lines (never --format)."""
    from mlcycle import io

    return io.output_encoding(path, "jsonl")
