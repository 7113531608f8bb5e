"""mlcycle ingest: annotation files and predictions -> a label table."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, List, Optional

import typer

from mlcycle.cli.common import Format, NoColor, Output, Quiet, Verbose, command, parse_mapping, parse_size, setup


def _complete_format_or_path(incomplete: str) -> list[str]:
    from mlcycle import formats

    readable = formats.names(reads=True)
    offered = readable + [a for a, n in formats.ALIASES.items() if n in readable]
    return [n for n in offered if n.startswith(incomplete)]


@command(
    "ingest",
    examples=[
        "mlcycle ingest coco instances_val.json --split val -o gt.parquet",
        "mlcycle ingest coco-results detections.json --images instances_val.json -o preds.parquet",
        "mlcycle ingest labels/ | mlcycle stats",
    ],
)
def ingest(
    args: Annotated[Optional[List[str]], typer.Argument(
        metavar="[FORMAT] PATH", autocompletion=_complete_format_or_path, show_default=False,
        help="Format name (see --list-formats) and the file or folder to read; without a "
             "format name it is detected from the content.")] = None,
    split: Annotated[Optional[str], typer.Option("--split", metavar="NAME", help="Set the split column (train, val, ...).")] = None,
    images_root: Annotated[Optional[Path], typer.Option("--images-root", metavar="DIR",
                                                        help="Folder the images are in (sample ids are relative to it).")] = None,
    images: Annotated[Optional[Path], typer.Option("--images", metavar="INSTANCES",
                                                   help="coco-results: the ground truth (COCO JSON or label table) that maps image and category ids.")] = None,
    source: Annotated[Optional[str], typer.Option("--source", metavar="NAME", help="Source name of the rows [default: gt; pred for predictions].")] = None,
    image_size: Annotated[Optional[str], typer.Option("--image-size", metavar="WxH",
                                                      help="One image size for all samples, when images are not at hand.")] = None,
    image_sizes: Annotated[Optional[Path], typer.Option("--image-sizes", metavar="TABLE",
                                                        help="Take each sample's width and height from this label table.")] = None,
    allow_missing: Annotated[bool, typer.Option("--allow-missing", help="A missing image is a warning, not an error.")] = False,
    skip_invalid: Annotated[bool, typer.Option("--skip-invalid", help="Skip invalid labels with a counted warning instead of failing.")] = False,
    columns: Annotated[Optional[List[str]], typer.Option("--columns", metavar="FIELD=COLUMN,...",
                                                         help="csv: which CSV column holds each field, e.g. image=filename,label=class,x1=xmin.")] = None,
    box_format: Annotated[str, typer.Option("--box-format", metavar="xyxy|xywh|cxcywh", help="csv: how the box columns are laid out.")] = "xyxy",
    normalized: Annotated[bool, typer.Option("--normalized", help="csv: box values are fractions of the image size.")] = False,
    corners: Annotated[Optional[str], typer.Option("--corners", metavar="exclusive|inclusive",
                                                   help="voc, kitti: box corners are continuous coordinates (exclusive, default: w = xmax - xmin) or inclusive pixel indices (w = xmax - xmin + 1, the VOC devkit's reading).")] = None,
    list_formats: Annotated[bool, typer.Option("--list-formats", help="List the formats that can be read and written, and exit.")] = False,
    output: Output = None,
    encoding: Format = None,
    quiet: Quiet = False,
    verbose: Verbose = False,
    no_color: NoColor = False,
) -> None:
    """Read annotations or predictions in a standard format into a label table.

    Without -o the table goes to standard output (JSON Lines unless --format says
    otherwise). Images without annotations become sample rows.
    """
    from mlcycle.cli import console
    from mlcycle import formats, io
    from mlcycle.cli.common import UsageError
    from mlcycle.errors import OptionError

    setup(quiet, verbose, no_color)
    if list_formats:
        _print_formats()
        return
    args = list(args or [])
    if not args:
        raise UsageError("missing PATH", hint="mlcycle ingest [FORMAT] PATH (see mlcycle ingest --help)")
    if len(args) > 2:
        raise UsageError(f"expected [FORMAT] PATH, got {len(args)} arguments")
    if len(args) == 2:
        name, path = args[0], Path(args[1])
        try:
            name = formats.info(name, "read").name
        except OptionError as exc:  # the format is the first of the PATH arguments here
            raise UsageError(exc.message, hint=exc.hint) from None
    else:
        path = Path(args[0])
        if formats.is_name(args[0]) and not path.exists():
            raise UsageError(f"missing PATH after format '{args[0]}'")
        name = formats.detect(path)
        console.info(f"detected format: {name}")
    common = dict(split=split, images_root=images_root, source=source,
                  image_size=parse_size(image_size, "--image-size"), image_sizes=image_sizes,
                  allow_missing=allow_missing, skip_invalid=skip_invalid)
    mapping = parse_mapping(columns, "--columns")
    # each format's own options; the others ignore them
    own: dict[str, Any] = {
        "csv": dict(columns=mapping, box_format=box_format, normalized=normalized),
        "coco-results": dict(images=images),
        "voc": dict(corners=corners or None),
        "kitti": dict(corners=corners or None),
    }.get(name, {})
    options = formats.options_class(name, "read")(**common, **own)
    out_encoding = io.output_encoding(output, encoding)
    io.check_binary_to_terminal(output, out_encoding)
    with console.progress(f"reading {path} ({name})"):
        table = formats.read(name, path, options)
        io.write_table(table, output, encoding)
    console.info(f"ingested {table.num_rows} rows from {path} ({name})")


def _print_formats() -> None:
    from mlcycle import formats
    from mlcycle.cli.common import flag_for
    from mlcycle.errors import render_mentions

    for name, f in formats.FORMATS.items():
        modes = ",".join(m for m, ok in (("read", f.reads), ("write", f.writes)) if ok)
        also = f" (also: {', '.join(f.aliases)})" if f.aliases else ""
        typer.echo(f"{name:<14} {modes:<11} {render_mentions(f.summary, flag_for)}{also}")
