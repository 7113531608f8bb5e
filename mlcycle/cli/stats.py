"""mlcycle stats: what is in a label table — counts, boxes, per sample, attributes, balance."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, List, Optional

import typer

from mlcycle.cli.common import Json, NoColor, Quiet, Tables, Verbose, command, setup, stdout_is_terminal

from mlcycle.scale import ENGINE_HELP, ENGINE_METAVAR

# --engine (stats, schema-check): its text is mlcycle.scale's; the option belongs in
# common.py beside the other shared options.
EngineOption = Annotated[Optional[str], typer.Option("--engine", metavar=ENGINE_METAVAR, help=ENGINE_HELP)]


@command(
    "stats",
    examples=[
        "mlcycle stats gt.parquet",
        "mlcycle ingest coco instances.json | mlcycle stats --json | jq '.counts.per_class[:5]'",
        "mlcycle stats train.parquet val.parquet --compare split --plot charts/",
        "mlcycle stats labels/ --engine dask --json > stats.json",
    ],
)
def stats(
    tables: Tables = None,
    by: Annotated[Optional[List[str]], typer.Option(
        "--by", metavar="COLUMN",
        help="Also give every statistic per value of this column (repeat for combinations).")] = None,
    compare: Annotated[Optional[str], typer.Option(
        "--compare", metavar="COLUMN",
        help="Compare the values of this column side by side (split, source, annotator, ...), "
             "with Jensen-Shannon distances and the largest differences.")] = None,
    source: Annotated[Optional[List[str]], typer.Option(
        "--source", metavar="NAME", help="Only rows of this source (repeatable) [default: all rows].")] = None,
    plot: Annotated[Optional[Path], typer.Option(
        "--plot", metavar="DIR", help="Also write PNG charts into this folder (needs mlcycle[plot]).")] = None,
    top: Annotated[int, typer.Option(
        "--top", metavar="N", min=1, help="Rows per table on a terminal (JSON always has all).")] = 20,
    engine: EngineOption = None,
    json_out: Json = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
    no_color: NoColor = False,
) -> None:
    """Describe a label table: counts, box sizes, labels per sample, attributes, balance.

    On a terminal the report is a set of tables with inline bars; piped or with --json
    it is one JSON document with stable keys (see docs/stats.md). Works on the output
    of evaluate (tp/fp/fn per class and size) and mine-hard (reasons, scores).
    """
    from mlcycle import stats as S
    from mlcycle.cli import console
    from mlcycle.errors import MlcycleError
    from mlcycle.stats import plots

    setup(quiet, verbose, no_color)
    if plot is not None and not plots.available():  # fail before reading anything
        raise MlcycleError("--plot needs matplotlib, which is not installed", hint=plots.PLOT_HINT)
    if engine is not None:
        from mlcycle import scale

        scale.require(engine)  # a missing engine fails before anything is read
        result = scale.describe(tables, engine=engine, by=by or (), compare=compare, sources=source or ())
    else:
        result = S.describe(tables, by=by or (), compare=compare, sources=source or ())
    if json_out or not stdout_is_terminal():
        _write_json(result.summary)
    else:
        from rich.console import Console

        from mlcycle.cli.views import stats as view

        out = Console(no_color=no_color or None, highlight=False)
        view.render(result.summary, out, top=top)
    if plot is not None:
        written = plots.write(result.summary, plot)
        console.info(f"wrote {len(written)} charts to {plot}")


def _write_json(doc: dict) -> None:
    import orjson

    data = orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE | orjson.OPT_NON_STR_KEYS)
    sys.stdout.buffer.write(data) if hasattr(sys.stdout, "buffer") else sys.stdout.write(data.decode())
    sys.stdout.flush()
