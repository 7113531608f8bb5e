"""A folder of images <-> label table: raw data to label later, or classification labels.

Reading walks the folder (hidden entries skipped) and makes one sample row per image
file (``sample_id`` = path relative to the folder, ``width``/``height`` from the image
header; no pixels are decoded). Layouts recognised:

- **class per folder** (``cat/1.jpg``, ``dog/2.jpg``; every image exactly one folder
  deep): each image gets a classification label -- ``label`` = folder name, ``bbox``
  null, ``category_id`` = index of the class in sorted order;
- **split, then class** (``train/cat/1.jpg``, ``val/dog/2.jpg``; first-level folders
  all named like splits): the same, with ``split`` set;
- anything else: sample rows only (``label`` null).

Writing copies the images from ``--images-root`` into the same layout: ``[split/]label/
file`` for labelled samples, ``sample_id`` for the others (sample ids escaping the
output folder are refused).
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from mlcycle import table as T
from mlcycle.errors import MlcycleError, OptionError, mention
from mlcycle.formats import ReadOptions, WriteOptions
from mlcycle.formats._assemble import assemble
from mlcycle.formats._paths import SPLIT_NAMES, safe_join
from mlcycle.formats._writing import source_rows
from mlcycle.formats._images import IMAGE_EXTENSIONS

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa

META = "images"


def _walk(root: Path, limit: int | None = None) -> list[tuple[str, ...]]:
    out: list[tuple[str, ...]] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        rel = os.path.relpath(dirpath, root)
        base = () if rel == "." else tuple(PurePosixPath(rel.replace(os.sep, "/")).parts)
        for f in sorted(filenames):
            if not f.startswith(".") and os.path.splitext(f)[1].lower() in IMAGE_EXTENSIONS:
                out.append(base + (f,))
                if limit is not None and len(out) >= limit:
                    return out
    return out


_ANNOTATION_ENDINGS = (".json", ".xml", ".txt", ".csv", ".yaml", ".yml", ".names", ".parquet", ".jsonl")


def detect(path: Path) -> bool:
    """A folder holding images and no annotation files (json, xml, txt, csv, yaml ...),
    so that a labelled dataset with its images is never taken for bare images."""
    if not path.is_dir():
        return False
    seen_image = False
    for k, (dirpath, dirnames, filenames) in enumerate(os.walk(path)):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for f in filenames:
            ext = os.path.splitext(f)[1].lower()
            if ext in _ANNOTATION_ENDINGS:
                return False
            seen_image = seen_image or ext in IMAGE_EXTENSIONS
        if k > 2000:
            break
    return seen_image


def layout(files: list[tuple[str, ...]]) -> str:
    if not files:
        return "flat"
    depths = {len(f) for f in files}
    if depths == {2}:
        return "classes"
    if depths == {3} and all(f[0].lower() in SPLIT_NAMES for f in files):
        return "split-classes"
    return "flat"


def read(path: Path, options: ReadOptions | None = None) -> "pa.Table":
    import numpy as np

    from mlcycle.formats._images import image_sizes

    options = options or ReadOptions()
    root = Path(path)
    if not root.is_dir():
        raise MlcycleError(f"{root}: not a folder of images")
    files = _walk(root)
    if not files:
        raise MlcycleError(f"{root}: no image files found", hint="image endings: " + " ".join(IMAGE_EXTENSIONS[:8]) + " ...")
    kind = layout(files)
    sample_ids = ["/".join(f) for f in files]
    widths, heights = image_sizes(sample_ids, root, options, paths=[root.joinpath(*f) for f in files])
    splits: list[str | None] = [None] * len(files)
    if kind == "flat":
        labels: list[str] = []
        label_sample = np.zeros(0, np.int64)
        cids = np.zeros(0, np.int64)
    else:
        labels = [f[-2] for f in files]
        classes = sorted(set(labels))
        index = {c: i for i, c in enumerate(classes)}
        cids = np.array([index[c] for c in labels], dtype=np.int64)
        label_sample = np.arange(len(files), dtype=np.int64)
        if kind == "split-classes":
            splits = [f[0] for f in files]
    if options.split is not None:
        splits = [options.split] * len(files)
    meta: dict[str, Any] = {META: {"layout": kind}, "images_root": str(options.images_root or root)}
    if kind != "flat":
        meta[META]["classes"] = sorted(set(labels))
    return assemble(sample_ids=sample_ids, splits=splits, widths=widths, heights=heights,
                    label_sample=label_sample, labels=labels, category_ids=cids if kind != "flat" else None,
                    boxes=np.full((len(labels), 4), np.nan), source=options.source or T.GT_SOURCE,
                    metadata=meta)


def write(table: "pa.Table", output: Path | None, options: WriteOptions | None = None) -> None:
    import shutil

    options = options or WriteOptions()
    if output is None:
        raise OptionError("output", "images writes a folder, not to standard output", hint="name the folder to write")
    out = Path(output)
    rows, _ = source_rows(table, options.source)
    src_root = options.images_root or T.get_metadata(table).get("images_root")
    if src_root is None:
        raise OptionError("images_root", "images copies the images and needs to know where they are",
                          hint="name the folder the sample ids are relative to")
    src_root = Path(src_root)
    sids = rows.column(T.SAMPLE_ID).to_pylist()
    labels = T.column_or_null(rows, T.LABEL).to_pylist()
    splits = T.column_or_null(rows, T.SPLIT).to_pylist()
    labelled = {s for s, lab in zip(sids, labels) if lab is not None}
    done: set[tuple[str, str]] = set()
    targets: list[tuple[Path, Path]] = []
    for sid, lab, split in zip(sids, labels, splits):
        if lab is None and sid in labelled:
            continue
        name = PurePosixPath(str(sid).replace("\\", "/")).name
        rel = str(sid) if lab is None else "/".join(p for p in (split, str(lab), name) if p)
        if (str(sid), rel) in done:
            continue
        done.add((str(sid), rel))
        safe_join(src_root, str(sid))
        targets.append((src_root / str(sid), safe_join(out, rel)))
    missing = [str(s) for s, _ in targets if not s.is_file()]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise MlcycleError(f"{missing[0]}: image not found{more}", hint=f"pass {mention('images_root')} DIR, the folder the sample ids are relative to")
    for src, dst in targets:
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
