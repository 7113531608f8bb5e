"""The format registry: name -> reader, writer, detector.

Each format is one module in this package with the same three functions:

- ``read(path: Path, options: ReadOptions) -> pyarrow.Table`` — a label table;
- ``write(table: pyarrow.Table, output: Path | None, options: WriteOptions) -> None``;
- ``detect(path: Path) -> bool`` — cheap check whether ``path`` looks like this format.

Modules are imported only when used, so listing formats (``--help``, completion) stays
instant. Adding a format is one file and one line in ``FORMATS``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
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


# Detection tries formats in this order; the more specific ones come first.
FORMATS: dict[str, FormatInfo] = {
    f.name: f
    for f in (
        FormatInfo("coco", "mlcycle.formats.coco", "COCO instances JSON (boxes, polygons, RLE, crowd)"),
        FormatInfo("coco-results", "mlcycle.formats.coco_results", "COCO results JSON (detections with scores)"),
        FormatInfo("cvat", "mlcycle.formats.cvat", "CVAT for images 1.1 XML (boxes, polygons, points, tags; attributes, occluded, z_order)"),
        FormatInfo("labelme", "mlcycle.formats.labelme", "LabelMe JSON, one file per image (rectangles; polygons as segmentation)", output="folder"),
        FormatInfo("openimages", "mlcycle.formats.openimages", "Open Images V6/V7 box CSV (IsGroupOf, IsOccluded, ... ; normalised, needs image sizes)"),
        FormatInfo("yolo", "mlcycle.formats.yolo", "YOLO txt: Ultralytics (data.yaml, images/ labels/), darknet (obj.names), flat (classes.txt)", output="folder"),
        FormatInfo("voc", "mlcycle.formats.voc", "Pascal VOC XML (difficult, truncated, occluded, pose as attributes)", output="folder"),
        FormatInfo("kitti", "mlcycle.formats.kitti", "KITTI object txt (truncated, occluded, alpha, 3D box as attributes)", output="folder"),
        FormatInfo("csv", "mlcycle.formats.csv_table", "Generic CSV: --columns image=...,label=...,x1=..., --box-format, --normalized"),
        FormatInfo("images", "mlcycle.formats.images", "A folder of images: one sample row each; class-per-folder as classification labels", output="folder"),
        FormatInfo("html", "mlcycle.formats.html", "Offline HTML report: samples with boxes, filters, metrics charts (write only)", reads=False, output="folder"),
    )
}


@dataclass
class ReadOptions:
    """Options every reader may use; a reader ignores what does not apply to it."""

    split: str | None = None
    images_root: Path | None = None
    source: str | None = None
    images: Path | None = None  # ground truth that maps result image ids (coco-results)
    image_size: tuple[int, int] | None = None
    image_sizes: Path | None = None
    allow_missing: bool = False
    skip_invalid: bool = False
    columns: dict[str, str] = field(default_factory=dict)
    box_format: str = "xyxy"
    normalized: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class WriteOptions:
    source: str | None = None
    split: str | None = None
    images_root: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def names(reads: bool | None = None, writes: bool | None = None) -> list[str]:
    return [
        n for n, f in FORMATS.items()
        if (reads is None or f.reads == reads) and (writes is None or f.writes == writes)
    ]


def info(name: str) -> FormatInfo:
    try:
        return FORMATS[name]
    except KeyError:
        raise OptionError(None, f"unknown format '{name}'", hint="known formats: " + ", ".join(FORMATS)) from None


def module(name: str) -> ModuleType:
    return importlib.import_module(info(name).module)


def read(name: str, path: Path, options: ReadOptions | None = None):
    f = info(name)
    if not f.reads:
        raise OptionError(None, f"format '{name}' can be written but not read")
    return module(name).read(Path(path), options or ReadOptions())


def write(name: str, table, output: Path | None, options: WriteOptions | None = None) -> None:
    f = info(name)
    if not f.writes:
        raise OptionError(None, f"format '{name}' can be read but not written")
    if f.output == "folder" and output is None:
        raise OptionError(None, f"export {name} writes a folder", hint=f"pass -o DIR, e.g. mlcycle export {name} labels.parquet -o out/")
    module(name).write(table, output, options or WriteOptions())


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
                       hint="name it: mlcycle ingest FORMAT PATH (see mlcycle ingest --list-formats)")
