"""mlcycle diff: what changed between two versions of a label table."""

from __future__ import annotations

from typing import Annotated

import typer

from mlcycle.cli.common import Format, Json, NoColor, Output, Quiet, Verbose, command, setup


@command(
    "diff",
    examples=[
        "mlcycle diff gt_v1.parquet gt_v2.parquet -o changes.parquet",
        "mlcycle ingest coco relabelled.json | mlcycle diff gt.parquet - --json | jq .counts",
        "mlcycle diff main.parquet branch.parquet --fail-on-change -q > /dev/null",
    ],
    no_args_is_help=True,
)
def diff(
    old: Annotated[str, typer.Argument(metavar="OLD", help="The earlier label table ('-': standard input).")],
    new: Annotated[str, typer.Argument(metavar="NEW", help="The later label table ('-': standard input).")],
    iou: Annotated[float, typer.Option("--iou", metavar="T", help="Boxes with IoU >= T are the same label (moved or relabelled).")] = 0.5,
    same_iou: Annotated[float, typer.Option("--same-iou", metavar="T", help="Matched boxes with IoU >= T are unchanged (not moved).")] = 0.99,
    fail_on_change: Annotated[bool, typer.Option("--fail-on-change", help="Exit 3 when anything changed (after writing the output): for CI.")] = False,
    json_out: Json = False,
    output: Output = None,
    encoding: Format = None,
    quiet: Quiet = False,
    verbose: Verbose = False,
    no_color: NoColor = False,
) -> None:
    """Compare two label tables: labels added, removed, moved, relabelled, attributes changed.

    Labels are matched within a source and sample: by label_id when both sides have it
    and the boxes overlap, then greedily by IoU within a class (moved when the IoU is
    below --same-iou), then across classes (relabelled). Writes one row per change with
    change (added, removed, moved, relabelled, attributes), change_iou, old_label,
    old_bbox and changed_attributes; removed rows are the old rows, the others the new
    ones. Samples present on one side only come with all their rows. A summary goes to
    stderr; --json prints it on standard output instead of the table. Details:
    docs/curate-diff.md.
    """
    from mlcycle import io
    from mlcycle.cli.common import UsageError
    from mlcycle.cli.views import diff as view
    from mlcycle.curate.diff import diff_files
    from mlcycle.errors import CheckFailed
    from mlcycle.results import Result

    setup(quiet, verbose, no_color)
    if old == "-" and new == "-":
        raise UsageError("OLD and NEW cannot both be standard input ('-')")
    if not json_out:
        io.check_binary_to_terminal(output, io.output_encoding(output, encoding))
    summary = diff_files(old, new, output, encoding, iou=iou, same_iou=same_iou, write=not json_out)
    if json_out:
        with io.atomic_output(output, "wb") as fh:
            fh.write(Result(None, summary, ()).to_json())
    view.render(summary)
    if fail_on_change and summary["changes"]:
        raise CheckFailed(f"{summary['changes']} changes between {io.display_name(old)} and {io.display_name(new)}")
