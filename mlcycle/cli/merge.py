"""mlcycle merge: several label tables into one, with conflicts reported."""

from __future__ import annotations

from typing import Annotated

import typer

from mlcycle.cli.common import Format, Json, NoColor, Output, Quiet, Tables, Verbose, command, setup


@command(
    "merge",
    examples=[
        "mlcycle merge batch1.parquet batch2.parquet batch3.parquet -o all.parquet",
        "mlcycle ingest voc VOC2012/ | mlcycle merge - extra_labels.parquet --on-conflict first | mlcycle stats",
        "mlcycle merge gt.parquet yolov8n.parquet rtdetr.parquet -o eval_input.parquet --json | jq .label_ids_renumbered",
    ],
)
def merge(
    tables: Tables = None,
    on_conflict: Annotated[str, typer.Option(
        "--on-conflict", metavar="error|first",
        help="A sample with different width/height in two inputs: stop (error) or keep the first input's size (first).")] = "error",
    json_out: Json = False,
    output: Output = None,
    encoding: Format = None,
    quiet: Quiet = False,
    verbose: Verbose = False,
    no_color: NoColor = False,
) -> None:
    """Merge label tables (same or different sources) into one.

    All rows are kept. A sample's width/height must agree across inputs (see
    --on-conflict); label ids that collide within a source are renumbered with a
    warning (the old id stays in original_label_id); classes are unified and
    category_id re-assigned consistently (COCO categories metadata merged); image ids
    shared by different samples are renumbered. Rules: docs/curate.md.
    """
    from mlcycle.cli._curate import check_output, report, table_target
    from mlcycle.curate import merge as M

    setup(quiet, verbose, no_color)
    check_output(output, encoding, json_out)
    out, enc = table_target(output, encoding, json_out)
    res = M.merge_files(list(tables or []), out, enc, on_conflict=on_conflict)
    s = res.summary
    lines = [f"merge: {len(s['inputs'])} inputs, {s['rows_out']} rows, {s['samples']} samples, {s['classes']} classes"]
    if s["size_conflicts"]["samples"]:
        lines.append(f"  {s['size_conflicts']['samples']} samples with conflicting sizes: kept the first input's")
    for r in s["label_ids_renumbered"]:
        lines.append(f"  {r['input']}: {r['labels']} label ids of source '{r['source']}' renumbered from {r['first_new_id']}")
    report(s, json_out, lines)
