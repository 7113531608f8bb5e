"""mlcycle remap: rename, merge or drop classes; category ids and COCO categories follow."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, List, Optional

import typer

from mlcycle.cli.common import Format, Json, NoColor, Output, Quiet, Tables, Verbose, command, setup


@command(
    "remap",
    examples=[
        "mlcycle remap gt.parquet --map car=vehicle,truck=vehicle,bus=vehicle -o vehicles.parquet",
        "mlcycle ingest coco instances.json | mlcycle remap --map-file coco_to_voc.yaml --drop-unmapped | mlcycle export voc -o voc/",
        "mlcycle remap preds.parquet --map Person=person --ignore-case --source yolov8n --json",
    ],
)
def remap(
    tables: Tables = None,
    mapping: Annotated[Optional[List[str]], typer.Option(
        "--map", metavar="OLD=NEW[,..]", help="Rename OLD to NEW (repeatable, comma lists); several OLD to one NEW merge classes; OLD= drops the class.")] = None,
    map_file: Annotated[Optional[Path], typer.Option(
        "--map-file", metavar="FILE.yaml", help="YAML with one `old: new` per line; `old: null` or `old: ~` drops the class.")] = None,
    ignore_case: Annotated[bool, typer.Option("--ignore-case", help="Match the mapping's class names whatever their case.")] = False,
    drop_unmapped: Annotated[bool, typer.Option("--drop-unmapped", help="Drop the labels of classes the mapping does not name.")] = False,
    sources: Annotated[Optional[List[str]], typer.Option("--source", metavar="NAME[,NAME]", help="Remap only rows of these sources [default: all].")] = None,
    json_out: Json = False,
    output: Output = None,
    encoding: Format = None,
    quiet: Quiet = False,
    verbose: Verbose = False,
    no_color: NoColor = False,
) -> None:
    """Rename, merge or drop classes.

    Category ids follow: a class that keeps its name keeps its id, a new name takes the
    id of the first class mapped to it; the COCO categories metadata is rebuilt. A
    sample whose labels are all dropped stays as a sample row. Mapping keys not found in
    the table are warned about (with the nearest class name). Streams in two passes.
    """
    from mlcycle.cli._curate import check_output, fmt_counts, report, split_list, table_target
    from mlcycle.cli.common import UsageError
    from mlcycle.curate import remap as R

    setup(quiet, verbose, no_color)
    if not mapping and map_file is None:
        raise UsageError("give --map OLD=NEW or --map-file FILE.yaml", hint="e.g. --map car=vehicle,truck=vehicle")
    table_mapping: dict = {}
    if map_file is not None:
        table_mapping.update(R.load_mapping(map_file))
    if mapping:
        table_mapping.update(R.load_mapping(mapping))
    check_output(output, encoding, json_out)
    out, enc = table_target(output, encoding, json_out)
    res = R.remap_files(list(tables or []), out, enc, table_mapping, ignore_case=ignore_case,
                        drop_unmapped=drop_unmapped, sources=split_list(sources) or None)
    s = res.summary
    changed = {f"{m['from']}->{m['to'] if m['to'] is not None else 'dropped'}": m["labels"]
               for m in s["mapping"] if m["from"] != m["to"]}
    report(s, json_out, [
        f"remap: {s['labels_renamed']} labels renamed, {s['labels_dropped']} dropped, of {s['labels_in']}; "
        f"{s['classes_in']} classes -> {s['classes_out']}; {s['sample_rows']} samples left without labels kept as sample rows",
    ] + ([f"  {fmt_counts(changed)}"] if changed else []))
