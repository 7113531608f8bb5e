"""Generic CSV annotations (format name ``csv``) <-> label table.

One row per box (or per image-level label, or per image), with a header row. Which
column holds what is given with ``--columns FIELD=COLUMN,...``; fields not given are
looked up by common header names (case-insensitive):

| field | meaning | header names tried |
|---|---|---|
| image | the image (-> ``sample_id``) | image, filename, file_name, image_name, image_path, path, file, img |
| label | class name | label, class, class_name, category, category_name |
| x1 y1 x2 y2 | corners, ``--box-format xyxy`` (default) | xmin ymin xmax ymax, x1 y1 x2 y2, left top right bottom |
| x y w h | top-left corner and size, ``--box-format xywh`` | x y w h |
| cx cy w h | centre and size, ``--box-format cxcywh`` | cx cy w h, x_center y_center |
| score | prediction confidence (then the source defaults to ``pred``) | score, confidence, conf |
| width height | image size in pixels | width height, image_width image_height |
| split, source, label_id, category_id, image_id, iscrowd, area, segmentation | the label-table column of that name | the same name |

- Box values are pixels; with ``--normalized`` they are fractions of the image size,
  taken from the width/height columns or, when there are none, from the images (see
  docs/formats.md "Image sizes": ``--image-sizes``, ``--image-size``, image headers
  under ``--images-root`` or the CSV's folder). Decimal commas (``"0,5"``) are recognised.
- A row whose box cells are all empty is an image-level label (or a sample row when the
  label is empty too); a classification CSV (image, label) has no box columns at all.
- Every other column is kept as an attribute column (integers, floats and
  true/false recognised, otherwise text).
- A folder is read as all its ``*.csv`` files; the split is then the file name without
  ``-export``/``_export``/``-annotations``/``_labels`` (VoTT's ``train-export.csv`` ->
  ``train``) unless a split column or ``--split`` says otherwise.

Writing produces one CSV (``-o FILE.csv`` or standard output) in the common
``image,label,xmin,ymin,xmax,ymax,width,height`` layout, then every other core column
that has a value, then every attribute column, those that commands add (``eval``,
``hard_score``, ``violations`` ...) included (nested ones as JSON text); ``iscrowd``
whenever a row is a crowd region. Floats are written as the shortest text that reads
back to the same value; ``ingest csv`` reads the file back without ``--columns``. Text
cells that a spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@``, tab, CR
first) get a leading ``'`` (OWASP); reading takes it off again.

Invalid rows (an error naming ``file:line``, or skipped and counted with
``skip_invalid``): a box with some values empty, a value that is not finite (``inf``,
``nan``), a negative width or height (``x2 < x1``), a box without a label, a score that
is not finite, an image size that is not a whole number of pixels, a segmentation that
is not JSON.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from mlcycle import table as T
from mlcycle.errors import MlcycleError, OptionError
from mlcycle.formats import ReadOptions as CommonReadOptions
from mlcycle.formats import WriteOptions
from mlcycle.errors import printable
from mlcycle.formats._assemble import check_box_geometry, filter_keeping_samples
from mlcycle.formats._csv_text import finite_floats, has_decimal_commas, neutralise, read_csv_text, to_float
from mlcycle.formats._invalid import InvalidInput
from mlcycle.formats._writing import source_rows

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa

BOX_FIELDS = {"xyxy": ("x1", "y1", "x2", "y2"), "xywh": ("x", "y", "w", "h"), "cxcywh": ("cx", "cy", "w", "h")}
CORE_FIELDS = (T.SPLIT, T.SOURCE, T.LABEL_ID, T.CATEGORY_ID, T.IMAGE_ID, T.ISCROWD, T.AREA, T.SEGMENTATION)
FIELDS = ("image", "label", "x1", "y1", "x2", "y2", "x", "y", "w", "h", "cx", "cy", "score", "width", "height") + CORE_FIELDS
# field aliases accepted in ``columns``
FIELD_ALIASES = {"sample_id": "image", "filename": "image", "xmin": "x1", "ymin": "y1", "xmax": "x2", "ymax": "y2",
                 "class": "label", "confidence": "score"}
# header names tried for a field that ``columns`` does not give
HEADER_NAMES = {
    "image": ("image", "filename", "file_name", "image_name", "image_path", "path", "file", "img", "sample_id"),
    "label": ("label", "class", "class_name", "category", "category_name"),
    "x1": ("xmin", "x1", "left", "x_min"), "y1": ("ymin", "y1", "top", "y_min"),
    "x2": ("xmax", "x2", "right", "x_max"), "y2": ("ymax", "y2", "bottom", "y_max"),
    "x": ("x",), "y": ("y",), "w": ("w",), "h": ("h",),
    "cx": ("cx", "x_center", "xc", "center_x"), "cy": ("cy", "y_center", "yc", "center_y"),
    "score": ("score", "confidence", "conf"),
    "width": ("width", "image_width", "img_width"), "height": ("height", "image_height", "img_height"),
    **{c: (c,) for c in CORE_FIELDS},
}
_SPLIT_SUFFIXES = ("-export", "_export", "-annotations", "_annotations", "-labels", "_labels")


@dataclass(frozen=True)
class ReadOptions(CommonReadOptions):
    """The generic CSV's read options: ``columns`` maps fields to CSV columns
    (``{"image": "filename", "x1": "xmin"}``; fields not given are found by header name),
    ``box_format`` is ``"xyxy"``, ``"xywh"`` or ``"cxcywh"``, and ``normalized`` says the
    box values are fractions of the image size."""

    columns: Mapping[str, str] = field(default_factory=dict)
    box_format: str = "xyxy"
    normalized: bool = False

    def __post_init__(self) -> None:
        if self.box_format not in BOX_FIELDS:
            raise OptionError("box_format", f"{self.box_format!r}: expected one of xyxy, xywh, cxcywh")
        for name in self.columns:
            if FIELD_ALIASES.get(name.lower(), name.lower()) not in FIELDS:
                raise OptionError("columns", f"unknown field {name!r}",
                                  hint="fields: image, label, x1 y1 x2 y2 | x y w h | cx cy w h, score, width, height, "
                                       + ", ".join(CORE_FIELDS))


def _header(path: Path) -> list[str]:
    import csv as _csv

    try:
        with open(path, encoding="utf-8-sig", errors="replace", newline="") as fh:
            return [c.strip() for c in next(_csv.reader([fh.readline(8192)]), [])]
    except OSError:
        return []


def _resolve(header: list[str], columns: Mapping[str, str], box_format: str, name: str) -> dict[str, str]:
    """field -> CSV column, from ``columns`` (checked by ``ReadOptions``) then from the
    header names."""
    mapping: dict[str, str] = {}
    for given, column in columns.items():
        f = FIELD_ALIASES.get(given.lower(), given.lower())
        if column not in header:
            raise MlcycleError(f"{name}:1: column mapping {given}={column}: the header has no column {column!r}",
                               hint="columns in the file: " + ", ".join(header))
        mapping[f] = column
    used = set(mapping.values())
    lower = {h.lower(): h for h in reversed(header)}
    wanted = ("image", "label", "score", "width", "height") + BOX_FIELDS[box_format] + CORE_FIELDS
    for f in wanted:
        if f in mapping:
            continue
        for cand in HEADER_NAMES[f]:
            col = lower.get(cand)
            if col is not None and col not in used:
                mapping[f] = col
                used.add(col)
                break
    return mapping


def _auto_ok(path: Path) -> bool:
    header = _header(path)
    if not header:
        return False
    m = _resolve(header, {}, "xyxy", str(path))
    return "image" in m and ("label" in m or all(f in m for f in BOX_FIELDS["xyxy"]))


def _files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() == ".csv")
    return [path]


def detect(path: Path) -> bool:
    import itertools

    if path.is_file():
        return path.suffix.lower() == ".csv" and _auto_ok(path)
    if not path.is_dir():
        return False
    files = list(itertools.islice((p for p in path.iterdir() if p.suffix.lower() == ".csv" and p.is_file()), 5))
    return bool(files) and all(_auto_ok(p) for p in files)


# --------------------------------------------------------------------------- reading

def _typed_column(col: "pa.ChunkedArray") -> "pa.ChunkedArray":
    """Text -> int64, float64 or bool when every value reads as one, else text."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if col.null_count == len(col):
        return col
    for typ in (pa.int64(), pa.float64()):
        try:
            return pc.cast(col, typ)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
    low = pc.utf8_lower(col)
    if pc.all(pc.is_in(pc.drop_null(low), pa.array(["true", "false"]))).as_py():
        return pc.equal(low, "true")
    return col


def _split_from_name(path: Path) -> str:
    stem = path.stem
    for suf in _SPLIT_SUFFIXES:
        if stem.lower().endswith(suf):
            return stem[: -len(suf)]
    return stem


def _read_one(path: Path, options: ReadOptions, split_hint: str | None, problems: InvalidInput) -> "pa.Table":
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    name = str(path)
    tab = read_csv_text(path)
    tab = tab.rename_columns([c.lstrip("\ufeff").strip() for c in tab.column_names])
    header = tab.column_names
    m = _resolve(header, options.columns, options.box_format, name)
    if "image" not in m:
        raise MlcycleError(f"{name}:1: which column names the image? none of {', '.join(header)} is known",
                           hint="map it in the columns option: image=COLUMN (and label=..., x1=... as needed)")
    n = tab.num_rows
    box_fields = BOX_FIELDS[options.box_format]
    present = [f for f in box_fields if f in m]
    if present and len(present) != 4:
        missing = [f for f in box_fields if f not in m]
        raise MlcycleError(f"{name}:1: box columns for {options.box_format} incomplete: no column for {', '.join(missing)}",
                           hint=f"map them in the columns option, e.g. {','.join(f'{f}=COLUMN' for f in missing)}")
    sample = pc.utf8_trim_whitespace(tab.column(m["image"]))
    bad_img = ~sample.is_valid().to_numpy(zero_copy_only=False) if n else np.zeros(0, bool)
    keep = np.ones(n, bool)
    for i in np.flatnonzero(bad_img).tolist():
        problems.add(f"{name}:{i + 2}: the image column '{m['image']}' is empty")
        keep[i] = False
    cols: dict[str, Any] = {T.SAMPLE_ID: sample}
    label = tab.column(m["label"]) if "label" in m else pa.chunked_array([pa.nulls(n, pa.string())])
    has_box = np.zeros(n, bool)
    bbox = np.full((n, 4), np.nan)
    if present:
        comma = has_decimal_commas([tab.column(m[f]) for f in box_fields])
        if comma:
            from mlcycle import reporting

            reporting.info(f"{name}: numbers are written with decimal commas (\"0,5\"); read them as decimal points")
        floats = [finite_floats(tab, m[f], name, problems, comma) for f in box_fields]
        (a, b, c, d), nonfinite = [v for v, _ in floats], np.any([bad for _, bad in floats], axis=0)
        keep &= ~nonfinite
        a, b, c, d = (np.where(nonfinite, np.nan, v) for v in (a, b, c, d))
        nan = np.isnan(np.stack([a, b, c, d], axis=1))
        partial = nan.any(axis=1) & ~nan.all(axis=1) & ~nonfinite
        has_box = ~nan.any(axis=1)
        if options.box_format == "xyxy":
            x, y, w, h = a, b, c - a, d - b
        elif options.box_format == "xywh":
            x, y, w, h = a, b, c, d
        else:
            x, y, w, h = a - c / 2, b - d / 2, c, d
        for i in np.flatnonzero(partial & keep).tolist():
            vals = ", ".join(f"{m[f]}={printable(tab.column(m[f])[i].as_py(), 40)!r}" for f in box_fields)
            problems.add(f"{name}:{i + 2}: some box values are empty ({vals})")
            keep[i] = False
        # the one rule for bad geometry (x2 < x1, negative w/h), on the values as written
        keep &= check_box_geometry(np.stack([x, y, w, h], axis=1), problems, lambda i: f"{name}:{i + 2}",
                                   present=has_box & keep,
                                   values=lambda i: ", ".join(f"{m[f]}={tab.column(m[f])[i].as_py()!r}" for f in box_fields))
        if options.normalized:
            W, H = _sizes(tab, m, sample, options, path, name, has_box & keep)
            x, y, w, h = x * W, y * H, w * W, h * H
            unknown = has_box & (np.isnan(W) | np.isnan(H))
            if unknown.any():
                from mlcycle import reporting

                reporting.warn(f"{name}: {int(unknown.sum())} normalised box(es) on images of unknown size skipped")
                keep &= ~unknown
        bbox = np.stack([x, y, w, h], axis=1)
    has_label = label.is_valid().to_numpy(zero_copy_only=False) if n else np.zeros(0, bool)
    # a box without a class is a label nobody can use (as CVAT's label="")
    problems.add_each(np.flatnonzero(has_box & ~has_label & keep).tolist(),
                      lambda i: f"{name}:{i + 2}: a box without a label (the '{printable(m.get('label', 'label'))}' cell is empty)")
    keep &= ~(has_box & ~has_label)
    is_label = has_label | has_box
    cols[T.LABEL] = label
    cols[T.BBOX] = T.bbox_array(bbox, valid=has_box)
    if "score" in m:
        v, bad = finite_floats(tab, m["score"], name, problems)
        keep &= ~bad
        cols[T.SCORE] = pa.array(v, from_pandas=True)
    for f in ("width", "height"):
        if f in m:
            cols[f], bad = _size_column(tab, m[f], name, problems)
            keep &= ~bad
    if T.SEGMENTATION in m:
        keep &= ~_bad_json(tab.column(m[T.SEGMENTATION]), name, m[T.SEGMENTATION], problems)
    if T.SOURCE in m and options.source is None:
        src = tab.column(m[T.SOURCE])
        default = T.DEFAULT_PRED_SOURCE if "score" in m else T.GT_SOURCE
        cols[T.SOURCE] = pc.fill_null(src, default)
    else:
        default = options.source or (T.DEFAULT_PRED_SOURCE if "score" in m else T.GT_SOURCE)
        cols[T.SOURCE] = pa.array([default] * n, type=pa.string())
    if T.LABEL_ID in m:
        cols[T.LABEL_ID] = _typed_column(tab.column(m[T.LABEL_ID]))
    else:
        ids = np.cumsum(is_label)
        cols[T.LABEL_ID] = pa.array(ids, mask=~is_label, type=pa.int64())
    for f in (T.CATEGORY_ID, T.IMAGE_ID, T.AREA, T.SEGMENTATION):
        if f in m:
            cols[f] = tab.column(m[f]) if f == T.SEGMENTATION else _typed_column(tab.column(m[f]))
    if T.ISCROWD in m:
        cols[T.ISCROWD] = _typed_column(tab.column(m[T.ISCROWD]))
    if options.split is not None:
        cols[T.SPLIT] = pa.array([options.split] * n, type=pa.string())
    elif T.SPLIT in m:
        cols[T.SPLIT] = tab.column(m[T.SPLIT]) if split_hint is None else pc.fill_null(tab.column(m[T.SPLIT]), split_hint)
    elif split_hint is not None:
        cols[T.SPLIT] = pa.array([split_hint] * n, type=pa.string())
    used = set(m.values())
    for c in header:
        if c not in used and c not in cols:
            cols[c] = _typed_column(tab.column(c))
    return filter_keeping_samples(T.from_columns(cols), keep)


def _size_column(tab, column: str, name: str, problems: InvalidInput):
    """An image size column: whole numbers 0 <= v < 2**31 (``640.0`` is 640); others are
    invalid rows. Returns (int32 array, bad mask)."""
    import numpy as np
    import pyarrow as pa

    from mlcycle.errors import printable

    v = to_float(tab.column(column), name, column)
    given = ~np.isnan(v)
    with np.errstate(invalid="ignore"):
        bad = (np.isinf(v) | (v < 0) | (v >= 2**31) | (np.mod(v, 1) != 0)) & given
    problems.add_each(np.flatnonzero(bad).tolist(),
                      lambda i: f"{name}:{i + 2}: column '{printable(column)}' value "
                                f"{printable(tab.column(column)[i].as_py(), 40)!r} is not an image size in pixels")
    ok = given & ~bad
    return pa.array(np.where(ok, v, 0).astype(np.int64), mask=~ok, type=pa.int32()), bad


def _bad_json(col, name: str, column: str, problems: InvalidInput):
    """Rows whose segmentation cell is not JSON text (reported to ``problems``)."""
    import numpy as np
    import orjson

    from mlcycle.errors import printable

    bad = np.zeros(len(col), bool)
    for i, text in enumerate(col.to_pylist()):
        if text is None:
            continue
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError:
            value = None
        if not isinstance(value, (list, dict)):
            problems.add(f"{name}:{i + 2}: column '{printable(column)}' value {printable(text, 40)!r} is not a "
                         "COCO segmentation (JSON polygons or RLE)")
            bad[i] = True
    return bad


def _sizes(tab, m: dict, sample, options: ReadOptions, path: Path, name: str, need) -> tuple:
    """Per-row image width and height (float, NaN where unknown) for normalized boxes."""
    import numpy as np

    from mlcycle.formats._images import image_sizes

    n = tab.num_rows
    if "width" in m and "height" in m:
        return tuple(_size_column(tab, m[f], name, InvalidInput(True))[0].to_numpy(zero_copy_only=False).astype(np.float64)
                     for f in ("width", "height"))
    ids = sample.to_pylist()
    uniq = list(dict.fromkeys(s for s, k in zip(ids, need.tolist()) if k and s is not None))
    w, h = image_sizes(uniq, path.parent, options)
    lookup = {s: (float(a) if a >= 0 else np.nan, float(b) if b >= 0 else np.nan) for s, a, b in zip(uniq, w.tolist(), h.tolist())}
    W = np.full(n, np.nan)
    H = np.full(n, np.nan)
    for i, s in enumerate(ids):
        wh = lookup.get(s)
        if wh is not None:
            W[i], H[i] = wh
    return W, H


def read(path: Path, options: CommonReadOptions | None = None) -> "pa.Table":
    from mlcycle import io

    options = ReadOptions.of(options)
    path = Path(path)
    files = _files(path)
    if not files:
        raise MlcycleError(f"{path}: no .csv file here")
    problems = InvalidInput(options.skip_invalid, "row")
    parts = []
    for f in files:
        hint = _split_from_name(f) if path.is_dir() and len(files) > 1 else None
        parts.append(_read_one(f, options, hint, problems))
    problems.report()
    out = parts[0] if len(parts) == 1 else io.concat(parts)
    if len(parts) > 1:
        # label ids restart in each file: renumber over the whole table
        import numpy as np
        import pyarrow as pa

        lab = T.label_mask(out)
        if not options.columns.get(T.LABEL_ID):
            ids = np.cumsum(lab)
            out = out.set_column(out.column_names.index(T.LABEL_ID), T.LABEL_ID, pa.array(ids, mask=~lab, type=pa.int64()))
    meta: dict[str, Any] = {"csv": {"box_format": options.box_format, "normalized": options.normalized}}
    if options.images_root is not None:
        meta["images_root"] = str(options.images_root)
    return T.with_metadata(out, T.merge_metadata(T.get_metadata(out), meta))


# --------------------------------------------------------------------------- writing

def to_arrow(table: "pa.Table", source: str | None = None) -> "pa.Table":
    """The table as written: image,label,xmin,ymin,xmax,ymax,width,height, ..."""
    import numpy as np
    import orjson
    import pyarrow as pa
    import pyarrow.compute as pc

    t = source_rows(table, source)[0]
    boxes = T.bboxes(t)
    valid = ~np.isnan(boxes).all(axis=1)
    cols: dict[str, Any] = {"image": t.column(T.SAMPLE_ID), "label": T.column_or_null(t, T.LABEL)}
    for k, nm in enumerate(("xmin", "ymin")):
        cols[nm] = pa.array(boxes[:, k], mask=~valid)
    cols["xmax"] = pa.array(boxes[:, 0] + boxes[:, 2], mask=~valid)
    cols["ymax"] = pa.array(boxes[:, 1] + boxes[:, 3], mask=~valid)
    if T.column_or_null(t, T.WIDTH).null_count < t.num_rows:
        cols["width"] = t.column(T.WIDTH)
        cols["height"] = T.column_or_null(t, T.HEIGHT)
    for c in (T.SCORE, T.SPLIT, T.LABEL_ID, T.CATEGORY_ID, T.IMAGE_ID, T.AREA, T.SEGMENTATION):
        if c in t.column_names and t.column(c).null_count < t.num_rows:
            cols[c] = t.column(c)
    if T.ISCROWD in t.column_names and pc.any(t.column(T.ISCROWD)).as_py():
        cols[T.ISCROWD] = pc.fill_null(t.column(T.ISCROWD), False)
    if T.SOURCE in t.column_names and source is not None and source not in (T.GT_SOURCE, T.DEFAULT_PRED_SOURCE):
        cols[T.SOURCE] = t.column(T.SOURCE)
    for c in T.attribute_columns(t):
        if c in cols:
            continue
        col = t.column(c)
        if pa.types.is_nested(col.type):
            col = pa.array([None if v is None else orjson.dumps(v).decode() for v in col.to_pylist()], type=pa.string())
        cols[c] = col
    return pa.table(cols)


def write(table: "pa.Table", output: Path | None, options: WriteOptions | None = None) -> None:
    import io as _io

    import pyarrow.csv as pacsv

    from mlcycle import io

    options = options or WriteOptions()
    out = neutralise(to_arrow(table, options.source))
    buf = _io.BytesIO()
    pacsv.write_csv(out, buf, write_options=pacsv.WriteOptions(quoting_style="needed"))
    with io.atomic_output(output, "wb") as fh:
        fh.write(buf.getvalue())
