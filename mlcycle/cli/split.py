"""mlcycle split: assign samples to train/val/test — random, stratified, grouped."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from mlcycle.cli.common import Format, Json, NoColor, Output, Quiet, Tables, Verbose, command, setup


@command(
    "split",
    examples=[
        "mlcycle split gt.parquet --ratio train=0.8,val=0.1,test=0.1 --seed 1 -o gt_split.parquet",
        "mlcycle split gt.parquet --stratify label --group video --seed 7 | mlcycle stats --compare split",
        "mlcycle split gt.parquet --ratio train=0.9,val=0.1 --stratify label --json | jq .per_class",
    ],
)
def split(
    tables: Tables = None,
    ratio: Annotated[str, typer.Option("--ratio", metavar="NAME=R[,..]", help="Split names and shares (normalised).")] = "train=0.8,val=0.1,test=0.1",
    seed: Annotated[int, typer.Option("--seed", metavar="N", help="Random seed: the same seed gives the same split.")] = 0,
    stratify: Annotated[Optional[str], typer.Option("--stratify", metavar="COLUMN", help="Balance the classes of this column across splits (iterative stratification, multi-label aware); usually label.")] = None,
    group: Annotated[Optional[str], typer.Option("--group", metavar="COLUMN", help="Keep the samples of one value of this column (video, scene, patient) in one split.")] = None,
    json_out: Json = False,
    output: Output = None,
    encoding: Format = None,
    quiet: Quiet = False,
    verbose: Verbose = False,
    no_color: NoColor = False,
) -> None:
    """Assign every sample to a split; write the split column on all of its rows.

    Random by sample, stratified by class (Sechidis et al. 2011 iterative stratification,
    counting gt labels when there is a gt source) and/or grouped (no group spans two
    splits). Reproducible with --seed. The summary gives the achieved ratios and the
    per-class distribution per split.
    """
    from mlcycle.cli._curate import check_output, report, table_target
    from mlcycle.curate import split as SP

    setup(quiet, verbose, no_color)
    check_output(output, encoding, json_out)
    out, enc = table_target(output, encoding, json_out)
    res = SP.split_files(list(tables or []), out, enc, ratios=ratio, seed=seed, stratify=stratify, group=group)
    s = res.summary
    lines = ["split: " + ", ".join(f"{k} {s['samples_per_split'][k]} ({s['achieved'][k]:.1%}, asked {s['ratios'][k]:.1%})"
                                   for k in s["ratios"]) + f" of {s['samples']} samples"]
    if "groups" in s:
        lines.append(f"  {s['groups']} groups of '{group}', none across splits")
    if "max_class_deviation" in s:
        lines.append(f"  {len(s['per_class'])} classes of '{stratify or 'label'}'; largest gap between a class's share and its ratio: "
                     f"{s['max_class_deviation']:.1%}")
    report(s, json_out, lines)
