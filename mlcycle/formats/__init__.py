"""The format registry: name -> reader, writer, detector; and ``ingest``/``export``,
the front door for Python users.

Each format is one module in this package with the same three functions:

- ``read(path: Path, options: ReadOptions) -> pyarrow.Table`` — a label table;
- ``write(table: pyarrow.Table, output: Path | None, options: WriteOptions) -> None``;
- ``detect(path: Path) -> bool`` — cheap check whether ``path`` looks like this format.

Options: ``ReadOptions`` and ``WriteOptions`` here hold what every format understands
(split, source, images root, image sizes, invalid input). A format with options of its
own defines its ``ReadOptions``/``WriteOptions`` as a subclass (``csv_table.ReadOptions
(columns=..., box_format=..., normalized=...)``, ``voc.ReadOptions(corners=...)``,
``yolo.WriteOptions(layout=...)``, ``html.WriteOptions(embed=..., limit=..., ...)``);
its reader and writer also accept the common ones. Options are frozen: the library
never changes them.

    import mlcycle
    gt = mlcycle.ingest("instances_val.json", "coco")
    boxes = mlcycle.ingest("boxes.csv", "csv", columns={"image": "filename"}, box_format="xywh")
    mlcycle.export(gt, "yolo", "out/", layout="darknet")

Modules are imported only when used, so listing formats (``--help``, completion) stays
instant. Adding a format is one file and one line in ``FORMATS``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, fields
from pathlib import Path
from types import ModuleType
from typing import Any

from mlcycle.errors import MlcycleError, OptionError


@dataclass(frozen=True)
class FormatInfo:
    name: str
    module: str
    summary: str
    reads: bool = True
    writes: bool = True
    # what `export` writes: a single file (stdout allowed) or a folder (needs -o)
    output: str = "file"
    # other names accepted for this format (``yolov8`` for ``yolo``)
    aliases: tuple[str, ...] = ()


# Detection tries formats in this order; the more specific ones come first.
FORMATS: dict[str, FormatInfo] = {
    f.name: f
    for f in (
        FormatInfo("coco", "mlcycle.formats.coco", "COCO instances JSON (boxes, polygons, RLE, crowd)"),
        FormatInfo("coco-results", "mlcycle.formats.coco_results", "COCO results JSON (detections with scores)"),
        FormatInfo("cvat", "mlcycle.formats.cvat", "CVAT for images 1.1 XML (boxes, polygons, points, tags; attributes, occluded, z_order)"),
        FormatInfo("labelme", "mlcycle.formats.labelme", "LabelMe JSON, one file per image (rectangles; polygons as segmentation)", output="folder"),
        FormatInfo("openimages", "mlcycle.formats.openimages", "Open Images V6/V7 box CSV (IsGroupOf, IsOccluded, ... ; normalised, needs image sizes)"),
        FormatInfo("yolo", "mlcycle.formats.yolo", "YOLO txt: Ultralytics (data.yaml, images/ labels/), darknet (obj.names), flat (classes.txt)", output="folder",
                   aliases=("yolov8", "ultralytics")),
        FormatInfo("voc", "mlcycle.formats.voc", "Pascal VOC XML (difficult, truncated, occluded, pose as attributes)", output="folder"),
        FormatInfo("kitti", "mlcycle.formats.kitti", "KITTI object txt (truncated, occluded, alpha, 3D box as attributes)", output="folder"),
        FormatInfo("csv", "mlcycle.formats.csv_table", "Generic CSV: columns mapped with {option:columns} image=...,label=...,x1=..., {option:box_format}, {option:normalized}"),
        FormatInfo("images", "mlcycle.formats.images", "A folder of images: one sample row each; class-per-folder as classification labels", output="folder"),
        FormatInfo("html", "mlcycle.formats.html", "Offline HTML report: samples with boxes, filters, metrics charts (write only)", reads=False, output="folder"),
    )
}


# alias -> format name
ALIASES: dict[str, str] = {a: f.name for f in FORMATS.values() for a in f.aliases}


@dataclass(frozen=True)
class ReadOptions:
    """Options every reader understands (a reader ignores what does not apply to it)."""

    split: str | None = None
    images_root: Path | None = None
    source: str | None = None
    image_size: tuple[int, int] | None = None
    image_sizes: Path | None = None
    allow_missing: bool = False
    skip_invalid: bool = False

    @classmethod
    def of(cls, options: "ReadOptions | None") -> Any:
        """``options`` as this class (a format's own options from the common ones)."""
        return _as(cls, options, ReadOptions)


@dataclass(frozen=True)
class WriteOptions:
    """Options every writer understands. ``split`` is applied by ``write``: only the rows
    of that split are written."""

    source: str | None = None
    split: str | None = None
    images_root: Path | None = None

    @classmethod
    def of(cls, options: "WriteOptions | None") -> Any:
        """``options`` as this class (a format's own options from the common ones)."""
        return _as(cls, options, WriteOptions)


def _as(cls: type, options: Any, common: type) -> Any:
    if options is None:
        return cls()
    if isinstance(options, cls):
        return options
    return cls(**{f.name: getattr(options, f.name) for f in fields(common)})


def names(reads: bool | None = None, writes: bool | None = None) -> list[str]:
    return [
        n for n, f in FORMATS.items()
        if (reads is None or f.reads == reads) and (writes is None or f.writes == writes)
    ]


def canonical(format_name: str) -> str:
    """The format's name for a name or an alias (``yolov8`` -> ``yolo``); unknown names
    are returned as they are."""
    return ALIASES.get(format_name, format_name)


def is_name(text: str) -> bool:
    """True when ``text`` names a format (or an alias of one)."""
    return text in FORMATS or text in ALIASES


def info(format_name: str, mode: str | None = None) -> FormatInfo:
    """The format named ``format_name`` (or an alias of it). With ``mode`` ("read" or
    "write"), a format that cannot do that is an error, and an unknown name gets a
    did-you-mean among the formats that can."""
    from mlcycle.errors import printable

    f = FORMATS.get(canonical(format_name))
    can = names(reads=True) if mode == "read" else names(writes=True) if mode == "write" else list(FORMATS)
    if f is None:
        import difflib

        shown = printable(format_name, 60)
        offered = can + [a for a, n in ALIASES.items() if n in can]
        close = difflib.get_close_matches(format_name.lower(), offered, n=1, cutoff=0.6)
        close = close or [n for n in can if format_name.lower().startswith(n) or n.startswith(format_name.lower())][:1]
        mean = f"did you mean '{close[0]}'? " if close else ""
        what = {"read": "readable ", "write": "writable "}.get(mode or "", "known ")
        raise OptionError("format_name", f"unknown format '{shown}'",
                          hint=f"{mean}{what}formats: " + ", ".join(can))
    if mode == "read" and not f.reads:
        raise OptionError("format_name", f"format '{f.name}' can be written but not read",
                          hint="readable formats: " + ", ".join(can))
    if mode == "write" and not f.writes:
        raise OptionError("format_name", f"format '{f.name}' can be read but not written",
                          hint="writable formats: " + ", ".join(can))
    return f


def module(format_name: str) -> ModuleType:
    return importlib.import_module(info(format_name).module)


def options_class(format_name: str, mode: str = "read") -> type:
    """The options ``format_name`` takes for ``mode`` ("read" or "write"): its own
    subclass, or the common ``ReadOptions``/``WriteOptions``."""
    common = ReadOptions if mode == "read" else WriteOptions
    return getattr(module(canonical(format_name)), common.__name__, common)


def _check_options(format_name: str, options: Any, common: type) -> Any:
    if options is None:
        return common()
    format_name = canonical(format_name)
    own = options_class(format_name, "read" if common is ReadOptions else "write")
    if not isinstance(options, common):
        raise OptionError("options", f"expected {common.__name__}, got {type(options).__name__}")
    if type(options) is not common and (own is common or not isinstance(options, own)):
        raise OptionError("options", f"{type(options).__module__}.{type(options).__name__} are not options of format '{format_name}'")
    return options


def read(format_name: str, path: Path, options: ReadOptions | None = None):
    """Read ``path`` in ``format_name`` into a label table."""
    format_name = info(format_name, "read").name
    return module(format_name).read(Path(path), _check_options(format_name, options, ReadOptions))


def write(format_name: str, table, output: Path | None, options: WriteOptions | None = None) -> None:
    """Write ``table`` in ``format_name`` to ``output`` (a file, a folder, or None for
    standard output where the format is one file); with ``options.split``, only the rows
    of that split."""
    f = info(format_name, "write")
    format_name = f.name
    if f.output == "folder" and output is None:
        raise OptionError("output", f"{format_name} writes a folder, not to standard output",
                          hint="name the folder to write")
    options = _check_options(format_name, options, WriteOptions)
    if options.split is not None:
        import pyarrow.compute as pc

        from mlcycle import table as T

        table = table.filter(pc.equal(T.column_or_null(table, T.SPLIT), options.split))
    module(format_name).write(table, output, options)


def _options(format_name: str, mode: str, given: dict[str, Any]) -> Any:
    format_name = canonical(format_name)
    cls = options_class(format_name, mode)
    known = {f.name for f in fields(cls)}
    for key in given:
        if key not in known:
            raise OptionError(key, f"format '{format_name}' has no {mode} option '{key}'",
                              hint="its options: " + ", ".join(sorted(known)))
    return cls(**given)


def ingest(path: str | Path, format: str | None = None, **options: Any):
    """Read annotations or predictions into a label table (``pyarrow.Table``).

    ``format`` is a name from ``FORMATS`` (detected from the content when None);
    ``options`` are the fields of ``ReadOptions`` and of the format's own options, e.g.
    ``ingest("dets.json", "coco-results", images="instances.json")``.
    """
    format_name = info(format if format is not None else detect(Path(path)), "read").name
    return read(format_name, Path(path), _options(format_name, "read", options))


def export(table, format: str, output: str | Path | None = None, **options: Any) -> None:
    """Write a label table in an annotation format to ``output`` (a file or folder; None:
    standard output, for formats that are one file). ``options`` are the fields of
    ``WriteOptions`` and of the format's own options, e.g. ``layout="darknet"`` for yolo."""
    format = info(format, "write").name
    write(format, table, None if output is None else Path(output), _options(format, "write", options))


def detect(path: Path) -> str:
    """The name of the first format whose detector accepts ``path``."""
    path = Path(path)
    if not path.exists():
        raise MlcycleError(f"{path}: no such file or folder")
    for name, f in FORMATS.items():
        if not f.reads:
            continue
        try:
            if module(name).detect(path):
                return name
        except (OSError, ValueError):
            continue
    raise MlcycleError(f"{path}: cannot tell which annotation format this is",
                       hint="name the format; readable formats: " + ", ".join(names(reads=True)))
