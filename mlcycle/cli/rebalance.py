"""mlcycle rebalance: subsample (or weight) samples toward a target class distribution."""

from __future__ import annotations

from typing import Annotated

import typer

from mlcycle.cli.common import Format, Json, NoColor, Output, Quiet, Tables, Verbose, command, setup


@command(
    "rebalance",
    examples=[
        "mlcycle rebalance train.parquet --target sqrt --seed 1 -o train_balanced.parquet",
        "mlcycle filter gt.parquet --split train | mlcycle rebalance --target uniform --mode weight | mlcycle export yolo -o data/",
        "mlcycle rebalance train.parquet --target weights.yaml --json | jq .per_class",
    ],
)
def rebalance(
    tables: Tables = None,
    by: Annotated[str, typer.Option("--by", metavar="COLUMN", help="The class column to balance.")] = "label",
    target: Annotated[str, typer.Option("--target", metavar="uniform|sqrt|FILE.yaml", help="Target shares: equal, proportional to sqrt(count), or `class: weight` lines in a YAML file.")] = "uniform",
    mode: Annotated[str, typer.Option("--mode", metavar="sample|weight", help="Drop samples (sample) or add a weight column (weight).")] = "sample",
    seed: Annotated[int, typer.Option("--seed", metavar="N", help="Random seed for the subsampling.")] = 0,
    json_out: Json = False,
    output: Output = None,
    encoding: Format = None,
    quiet: Quiet = False,
    verbose: Verbose = False,
    no_color: NoColor = False,
) -> None:
    """Subsample samples, or weight them, toward a target class distribution.

    A sample is kept with the keep rate of its rarest class (whole samples, all sources);
    --mode weight keeps everything and adds a weight column (mean 1 over samples).
    The summary gives the class distribution before and after. Details: docs/curate.md.
    """
    from mlcycle.cli._curate import check_output, report, table_target
    from mlcycle.curate import rebalance as RB

    setup(quiet, verbose, no_color)
    check_output(output, encoding, json_out)
    out, enc = table_target(output, encoding, json_out)
    res = RB.rebalance_files(list(tables or []), out, enc, by=by, target=target, mode=mode, seed=seed)
    s = res.summary
    lines = [f"rebalance ({s['mode']}, target {target}): {s['samples_after']} of {s['samples_before']} samples kept"
             if s["mode"] == "sample" else f"rebalance (weight, target {target}): weights {s['weight_min']:.3g}..{s['weight_max']:.3g}"]
    if s.get("imbalance_before"):
        lines.append(f"  imbalance (largest/smallest class share): {s['imbalance_before']:.1f} -> {s['imbalance_after']:.1f}")
    report(s, json_out, lines)
