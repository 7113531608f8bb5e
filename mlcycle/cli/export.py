"""mlcycle export: a label table -> a standard annotation format."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from mlcycle.cli.common import NoColor, Quiet, Tables, Verbose, command, setup


def _complete_writable(incomplete: str) -> list[str]:
    from mlcycle import formats

    return [n for n in formats.names(writes=True) if n.startswith(incomplete)]


def _output_path(format_name: str, output: str | None) -> Any:
    """-o as the writer takes it: a trailing '/' means a folder (cvat writes
    DIR/annotations.xml; a format that writes one file refuses it)."""
    import os

    from mlcycle import formats
    from mlcycle.errors import OptionError

    if output is None:
        return None
    if output.endswith(("/", os.sep)) and output.rstrip("/" + os.sep):
        if format_name == "cvat":
            return output  # the slash kept: cvat.write writes DIR/annotations.xml
        if formats.info(format_name).output == "file":
            raise OptionError("output", f"{output}: {format_name} writes one file, not a folder",
                              hint="name the file to write, e.g. DIR/annotations.json")
    return Path(output)


@command(
    "export",
    examples=[
        "mlcycle export coco gt.parquet -o instances.json",
        "mlcycle ingest coco instances.json | mlcycle export coco > copy.json",
        "mlcycle export coco-results evaluated.parquet --source yolov8n -o dets.json",
        "mlcycle export html evaluated.parquet -o report/ --metrics metrics.json",
        "mlcycle export yolo train.parquet val.parquet -o dataset/ --images-root images/",
    ],
)
def export(
    format_name: Annotated[str, typer.Argument(metavar="FORMAT", autocompletion=_complete_writable,
                                               help="Format to write (see mlcycle ingest --list-formats).")],
    tables: Tables = None,
    output: Annotated[Optional[str], typer.Option("-o", "--output", metavar="PATH",
                                                  help="File or folder to write (file formats: standard output by default; "
                                                       "a trailing / means a folder).")] = None,
    source: Annotated[Optional[str], typer.Option("--source", metavar="NAME", help="Which rows to write [default: gt; the one prediction source for results].")] = None,
    split: Annotated[Optional[str], typer.Option("--split", metavar="NAME", help="Write only the rows of this split.")] = None,
    images_root: Annotated[Optional[Path], typer.Option("--images-root", metavar="DIR", help="Folder the images are in.")] = None,
    layout: Annotated[Optional[str], typer.Option("--layout", metavar="NAME", help="yolo: ultralytics (default), darknet or flat.")] = None,
    corners: Annotated[Optional[str], typer.Option("--corners", metavar="exclusive|inclusive", help="voc, kitti: how box corners are written (see mlcycle ingest --help).")] = None,
    embed: Annotated[bool, typer.Option("--embed", help="html: one self-contained file, thumbnails inlined (-o report.html or DIR).")] = False,
    limit: Annotated[Optional[int], typer.Option("--limit", metavar="N", min=0, help="html: only the first N samples in sort order.")] = None,
    sort_by: Annotated[Optional[str], typer.Option("--sort-by", metavar="COLUMN", help="html: sample order: a column (numbers: largest first), sample_id or errors [default: hard_score, else errors, else sample_id].")] = None,
    metrics: Annotated[Optional[Path], typer.Option("--metrics", metavar="FILE", help="html: add a metrics page from mlcycle evaluate --metrics FILE.")] = None,
    quiet: Quiet = False,
    verbose: Verbose = False,
    no_color: NoColor = False,
) -> None:
    """Write a label table back to a standard annotation format.

    COCO writes the instances JSON (ground truth) and coco-results the detections
    list; folder formats need -o DIR. Several tables are concatenated. Nothing is
    written outside the output, and a folder appears only complete (a failure
    leaves none). html writes an offline report (index.html + thumbs/) to look at
    the samples.
    """
    from mlcycle.cli import console
    from mlcycle import formats, io

    setup(quiet, verbose, no_color)
    format_name = formats.info(format_name, "write").name  # an alias (yolov8) becomes its format
    table = io.read_tables(tables)
    # each format's own options; the others ignore them
    own: dict[str, Any] = {
        "yolo": dict(layout=layout or None),
        "voc": dict(corners=corners or None),
        "kitti": dict(corners=corners or None),
        "html": dict(embed=embed, limit=limit, sort_by=sort_by or None, metrics=metrics or None),
    }.get(format_name, {})
    options = formats.options_class(format_name, "write")(source=source, split=split, images_root=images_root, **own)
    with console.progress(f"writing {format_name}"):
        formats.write(format_name, table, _output_path(format_name, output), options)
    console.info(f"exported {format_name} to {output if output is not None else '<stdout>'}")
