"""mlcycle filter: keep the label rows that match a condition; samples stay consistent."""

from __future__ import annotations

from typing import Annotated, List, Optional

import typer

from mlcycle.cli._curate import Where
from mlcycle.cli.common import Format, Json, NoColor, Output, Quiet, Tables, Verbose, command, setup


@command(
    "filter",
    examples=[
        "mlcycle filter gt.parquet --where \"label in ['car', 'truck'] and bbox.w >= 16\" -o vehicles.parquet",
        "mlcycle evaluate gt.parquet preds.parquet | mlcycle filter --eval fn --drop-empty | mlcycle export cvat -o misses.xml",
        "mlcycle filter preds.parquet --min-score 0.3 --split val | mlcycle stats",
    ],
)
def filter_(
    tables: Tables = None,
    where: Where = None,
    labels: Annotated[Optional[List[str]], typer.Option("--label", metavar="NAME[,NAME]", help="Only these classes (repeatable).")] = None,
    splits: Annotated[Optional[List[str]], typer.Option("--split", metavar="NAME[,NAME]", help="Only these splits (repeatable).")] = None,
    sources: Annotated[Optional[List[str]], typer.Option("--source", metavar="NAME[,NAME]", help="Only these sources (repeatable).")] = None,
    min_score: Annotated[Optional[float], typer.Option("--min-score", metavar="X", help="Only scores >= X (rows without a score, e.g. ground truth, stay).")] = None,
    evals: Annotated[Optional[List[str]], typer.Option("--eval", metavar="tp|fp|fn", help="Only these evaluate outcomes (repeatable).")] = None,
    reasons: Annotated[Optional[List[str]], typer.Option("--reason", metavar="REASON[,..]", help="Only these mine-hard reasons (repeatable).")] = None,
    drop_empty: Annotated[bool, typer.Option("--drop-empty", help="Drop samples left with no label (default: keep them as sample rows).")] = False,
    json_out: Json = False,
    output: Output = None,
    encoding: Format = None,
    quiet: Quiet = False,
    verbose: Verbose = False,
    no_color: NoColor = False,
) -> None:
    """Keep the label rows that match a condition, streaming batch by batch.

    The condition is --where EXPR and-ed with the convenience options. A sample whose
    labels are all filtered out stays as one sample row (so it still counts as an image
    with no objects), unless the condition is false on the sample itself (split, width,
    ...) or --drop-empty is given. Expression grammar: docs/curate.md. A summary goes
    to stderr; --json prints it on standard output instead (without -o: a dry run).
    """
    from mlcycle.cli._curate import check_output, report, split_list, table_target
    from mlcycle.curate import filter as F

    setup(quiet, verbose, no_color)
    check_output(output, encoding, json_out)
    out, enc = table_target(output, encoding, json_out)
    res = F.filter_files(list(tables or []), out, enc, where, labels=split_list(labels), splits=split_list(splits),
                         sources=split_list(sources), min_score=min_score, evals=split_list(evals),
                         reasons=split_list(reasons), drop_empty=drop_empty)
    s = res.summary
    report(s, json_out, [
        f"filter: kept {s['labels_kept']} of {s['labels_in']} labels; {s['sample_rows']} samples left "
        f"without labels kept as sample rows; wrote {s['rows_out']} rows"
        + (" (--drop-empty)" if s["drop_empty"] else ""),
    ])
