"""LabelMe JSON (wkentaro/labelme) <-> label table.

Reading (one ``.json`` file, or a folder searched recursively for LabelMe JSON files):

- each file is a sample: ``sample_id`` is the image path (``imagePath``, which LabelMe
  stores relative to the JSON file) relative to the folder read, POSIX separators; when
  ``imagePath`` points outside that folder (``../images/x.jpg``) the sample id is the
  JSON file's folder plus the image file name. ``imageWidth``/``imageHeight`` ->
  ``width``/``height``. ``imageData`` (the base64 image) is not stored;
- each shape is a row, in file order, ``label_id`` 1, 2, ... over all files:
  ``rectangle`` -> ``bbox`` from its two corners (any two opposite corners; LabelMe
  coordinates are continuous pixel coordinates, no +1); ``polygon`` -> ``segmentation``
  (a COCO polygon) and its bounding box; ``circle`` -> its bounding box (centre and a
  point on the circle) and ``points``; ``line``, ``linestrip``, ``point``, ``points`` ->
  the ``points`` column (x1, y1, x2, y2, ...) and no box. ``shape`` holds the kind in
  mlcycle's shared vocabulary (``box`` for rectangle, ``polyline`` for linestrip, the
  others by their LabelMe names). ``group_id``, ``description`` and the shape's ``flags``
  (JSON text) are columns when any file has them; the image ``flags`` (LabelMe's
  image-level checkboxes) are the ``image_flags`` column (JSON text); any other shape
  key (LabelMe keeps keys it does not know) is a column of that name. Mask shapes are
  skipped with a counted warning;
- a file without shapes is a sample row.

Writing (``-o DIR``) puts one LabelMe JSON per sample at ``DIR/<sample_id with .json>``
(``imagePath`` = the image's file name, ``imageData`` = null), refusing a sample id that
would land outside ``DIR``. Boxes are written as rectangles, polygons from
``segmentation``, other shapes from ``points``; other attribute columns (VOC
``difficult``, CVAT attributes, mine-hard's ``hard_reason`` ...) are written as extra
shape keys. The split has no place in LabelMe: it is written as a top-level ``split``
key (LabelMe keeps keys it does not know) and read back from it; a crowd region
(``iscrowd``) is written with the shape key ``iscrowd: true`` and read back as a crowd
region, its RLE mask as its box (with a warning). The folder is written all or nothing
(a temporary sibling renamed when complete).

Invalid shapes (an error naming the file and ``shapes[k]``, or skipped and counted with
``skip_invalid``): a shape without a label, points that are not ``[x, y]`` numbers or
not finite, a rectangle or circle without 2 points, a polygon under 3 points.
"""

from __future__ import annotations

import posixpath
from math import hypot, isfinite
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from mlcycle import table as T
from mlcycle.errors import MlcycleError, printable
from mlcycle.formats import ReadOptions, WriteOptions
from mlcycle.formats._assemble import attribute_array
from mlcycle.formats._invalid import InvalidInput
from mlcycle.formats._json import load_json
from mlcycle.formats._paths import safe_join
from mlcycle.formats._writing import num, source_rows, writable_attributes

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa

META = "labelme"
SPLIT_KEY = "split"  # top-level key mlcycle adds (LabelMe keeps keys it does not know)
CROWD_KEY = "iscrowd"  # shape key for a COCO crowd region
IMAGE_FLAGS = "image_flags"
FLAGS = "flags"
DESCRIPTION = "description"
# LabelMe shape_type -> mlcycle shape vocabulary, and back
_TO_SHAPE = {"rectangle": "box", "polygon": "polygon", "circle": "circle", "line": "line",
             "linestrip": "polyline", "point": "point", "points": "points"}
_NUMBER = (int, float)
_SHAPE_KEYS = ("label", "points", "group_id", "shape_type", "flags", "description", "mask")
_FROM_SHAPE = {"box": "rectangle", "polygon": "polygon", "circle": "circle", "line": "line",
               "polyline": "linestrip", "point": "point", "points": "points", "ellipse": "rectangle"}


def _looks_like_labelme(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            head = fh.read(1 << 14)
    except OSError:
        return False
    if not head.lstrip().startswith(b"{"):
        return False
    # "shapes" may come after a long base64 imageData, beyond what is read here
    return (b'"shapes"' in head and (b'"imagePath"' in head or b'"imageHeight"' in head or b'"version"' in head
                                     or b'"flags"' in head)) or (b'"imagePath"' in head and b'"imageData"' in head)


def _files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    # every JSON file; those that turn out not to be LabelMe files are skipped (counted)
    return sorted(p for p in path.rglob("*.json") if p.is_file())


def detect(path: Path) -> bool:
    if path.is_file():
        return path.suffix.lower() == ".json" and _looks_like_labelme(path)
    if not path.is_dir():
        return False
    import itertools

    # the first few JSON files found (lazily: a folder may hold 100k label files)
    return any(_looks_like_labelme(p) for p in itertools.islice(path.rglob("*.json"), 5))


# --------------------------------------------------------------------------- reading

def _sample_id(json_path: Path, root: Path, image_path: str | None) -> str:
    """The image path relative to ``root`` (string operations: this runs once per file)."""
    parent, base = str(json_path.parent), str(root)
    rel_dir = "" if parent == base else Path(parent).relative_to(base).as_posix()
    if not image_path:
        return posixpath.join(rel_dir, json_path.stem)
    img = image_path.replace("\\", "/")
    if img.startswith("/"):
        return posixpath.join(rel_dir, posixpath.basename(img))
    joined = posixpath.normpath(posixpath.join(rel_dir, img))
    if joined == ".." or joined.startswith("../"):
        return posixpath.join(rel_dir, posixpath.basename(img))
    return joined


def _flat(points: Any, where: str, problems: InvalidInput) -> list[float] | None:
    if not isinstance(points, list) or not points:
        problems.add(f"{where}: 'points' must be a non-empty list of [x, y]")
        return None
    out: list[float] = []
    for p in points:
        if type(p) is not list or len(p) != 2 or type(p[0]) not in _NUMBER or type(p[1]) not in _NUMBER:
            problems.add(f"{where}: point {p!r} is not [x, y]")
            return None
        try:
            x, y = float(p[0]), float(p[1])
        except OverflowError:
            x = y = float("inf")
        if not (isfinite(x) and isfinite(y)):
            problems.add(f"{where}: a point has a non-finite value")
            return None
        out.append(x)
        out.append(y)
    return out


def _size(doc: dict, key: str, name: str) -> int | None:
    """imageWidth/imageHeight: a whole number of pixels (640.0 is 640), or None."""
    v = doc.get(key)
    if v is None:
        return None
    if type(v) is float and isfinite(v) and v.is_integer():
        v = int(v)
    if type(v) is not int or not 0 <= v < 2**31:
        raise MlcycleError(f"{name}: {key} {printable(repr(v), 40)} is not an image size in pixels")
    return v


def read(path: Path, options: ReadOptions | None = None) -> "pa.Table":
    import orjson
    import pyarrow as pa

    options = options or ReadOptions()
    path = Path(path)
    files = _files(path)
    if not files:
        raise MlcycleError(f"{path}: no LabelMe JSON file (an object with 'shapes') here")
    not_labelme: list[Path] = []
    root = path.parent if path.is_file() else path
    problems = InvalidInput(options.skip_invalid, "shape")
    rows: list[dict[str, Any]] = []
    seen: dict[str, Path] = {}
    masks = 0
    extra_keys: list[str] = []  # shape keys LabelMe does not define (kept by LabelMe itself)
    versions: set[str] = set()
    next_id = 1
    for f in files:
        doc = load_json(f)
        name = str(f)
        if not isinstance(doc, dict) or not isinstance(doc.get("shapes"), list):
            if path.is_dir():
                not_labelme.append(f)
                continue
            raise MlcycleError(f"{name}: not a LabelMe file: expected an object with a 'shapes' list")
        sample = _sample_id(f, root, doc.get("imagePath"))
        if sample in seen:
            raise MlcycleError(f"{name}: image {sample!r} is also annotated in {seen[sample]}")
        seen[sample] = f
        if isinstance(doc.get("version"), str):
            versions.add(doc["version"])
        w, h = _size(doc, "imageWidth", name), _size(doc, "imageHeight", name)
        base: dict[str, Any] = {T.SAMPLE_ID: sample, T.WIDTH: w, T.HEIGHT: h}
        split = doc.get(SPLIT_KEY)
        if options.split is None and isinstance(split, str) and split:
            base[T.SPLIT] = split
        iflags = doc.get("flags")
        if iflags:
            base[IMAGE_FLAGS] = orjson.dumps(iflags).decode()
        n_before = len(rows)
        for k, sh in enumerate(doc["shapes"]):
            where = f"{name}: shapes[{k}]"
            if not isinstance(sh, dict):
                problems.add(f"{where} is not an object")
                continue
            st = sh.get("shape_type") or "polygon"
            if st == "mask":
                masks += 1
                continue
            kind = _TO_SHAPE.get(st)
            if kind is None:
                problems.add(f"{where}: unknown shape_type {st!r}")
                continue
            pts = _flat(sh.get("points"), where, problems)
            if pts is None:
                continue
            label = sh.get("label")
            if label is not None and not isinstance(label, str):
                label = str(label)
            if not label:  # a shape without a class, as CVAT's label=""
                problems.add(f"{where}: the shape has no label")
                continue
            row = dict(base)
            row[T.LABEL] = label
            row[T.SHAPE] = kind
            if kind == "box":
                if len(pts) != 4:
                    problems.add(f"{where}: a rectangle needs 2 points, got {len(pts) // 2}")
                    continue
                x0, x1 = sorted((pts[0], pts[2]))
                y0, y1 = sorted((pts[1], pts[3]))
                row[T.BBOX] = (x0, y0, x1 - x0, y1 - y0)
            elif kind == "polygon":
                if len(pts) < 6:
                    problems.add(f"{where}: a polygon needs at least 3 points, got {len(pts) // 2}")
                    continue
                row[T.SEGMENTATION] = "[[" + ",".join(num(v) for v in pts) + "]]"
                xs, ys = pts[0::2], pts[1::2]
                row[T.BBOX] = (min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys))
            elif kind == "circle":
                if len(pts) != 4:
                    problems.add(f"{where}: a circle needs 2 points (centre, a point on it), got {len(pts) // 2}")
                    continue
                r = hypot(pts[2] - pts[0], pts[3] - pts[1])
                if not isfinite(r):
                    problems.add(f"{where}: the circle's radius is not finite")
                    continue
                row[T.BBOX] = (pts[0] - r, pts[1] - r, 2 * r, 2 * r)
                row[T.POINTS] = pts
            else:
                row[T.POINTS] = pts
            if sh.get("group_id") is not None:
                g = sh.get("group_id")
                if type(g) is not int or not -2**63 <= g < 2**63:
                    problems.add(f"{where}: group_id {printable(repr(g), 40)} is not a 64-bit integer")
                    continue
                row[T.GROUP_ID] = g
            if sh.get("description"):
                row[DESCRIPTION] = str(sh["description"])
            if sh.get("flags"):
                row[FLAGS] = orjson.dumps(sh["flags"]).decode()
            if sh.get(CROWD_KEY) is not None:
                row[T.ISCROWD] = bool(sh[CROWD_KEY])
            for key, value in sh.items():
                if key not in _SHAPE_KEYS and key != CROWD_KEY and value is not None:
                    if key not in extra_keys:
                        extra_keys.append(key)
                    row["\0" + key] = value
            row[T.LABEL_ID] = next_id
            next_id += 1
            rows.append(row)
        if len(rows) == n_before:
            rows.append(base)
    if path.is_dir() and len(not_labelme) == len(files):
        raise MlcycleError(f"{path}: no LabelMe JSON file (an object with 'shapes') here")
    if not_labelme:
        from mlcycle import reporting

        more = f" (and {len(not_labelme) - 1} more)" if len(not_labelme) > 1 else ""
        reporting.info(f"skipped {len(not_labelme)} JSON file(s) that are not LabelMe files: {not_labelme[0]}{more}")
    problems.report()
    if masks:
        from mlcycle import reporting

        reporting.warn(f"skipped {masks} mask shape(s): a label table holds no LabelMe masks")
    n = len(rows)
    cols: dict[str, Any] = {
        T.SAMPLE_ID: [r[T.SAMPLE_ID] for r in rows],
        T.SOURCE: [options.source or T.GT_SOURCE] * n,
        T.LABEL_ID: [r.get(T.LABEL_ID) for r in rows],
        T.LABEL: [r.get(T.LABEL) for r in rows],
        T.BBOX: pa.array([r.get(T.BBOX) for r in rows], type=pa.list_(pa.float64(), 4)),
    }
    if any(T.SEGMENTATION in r for r in rows):
        cols[T.SEGMENTATION] = [r.get(T.SEGMENTATION) for r in rows]
    cols[T.WIDTH] = [r.get(T.WIDTH) for r in rows]
    cols[T.HEIGHT] = [r.get(T.HEIGHT) for r in rows]
    if options.split is not None:
        cols[T.SPLIT] = [options.split] * n
    elif any(T.SPLIT in r for r in rows):
        cols[T.SPLIT] = pa.array([r.get(T.SPLIT) for r in rows], type=pa.string())
    if any(T.ISCROWD in r for r in rows):
        cols[T.ISCROWD] = pa.array([r.get(T.ISCROWD, False) for r in rows], type=pa.bool_())
    for c, typ in ((T.SHAPE, pa.string()), (T.POINTS, pa.list_(pa.float64())), (T.GROUP_ID, pa.int64()),
                   (DESCRIPTION, pa.string()), (FLAGS, pa.string()), (IMAGE_FLAGS, pa.string())):
        if c == T.SHAPE or any(c in r for r in rows):
            cols[c] = pa.array([r.get(c) for r in rows], type=typ)
    taken = set(cols) | set(T.CORE_COLUMNS) | {T.SHAPE, T.POINTS, T.GROUP_ID, DESCRIPTION, FLAGS, IMAGE_FLAGS}
    extra_map: dict[str, str] = {}
    for key in extra_keys:
        col = key if key not in taken else f"labelme_{key}"
        taken.add(col)
        extra_map[col] = key
        cols[col] = attribute_array([r.get("\0" + key) for r in rows])
    meta: dict[str, Any] = {META: {"version": sorted(versions)[-1] if versions else None, "shape_keys": extra_map}}
    if options.images_root is not None:
        meta["images_root"] = str(options.images_root)
    return T.from_columns(cols, meta)


# --------------------------------------------------------------------------- writing

def _pairs(flat: list[float]) -> list[list[float]]:
    return [[float(flat[k]), float(flat[k + 1])] for k in range(0, len(flat) - 1, 2)]


def to_documents(table: "pa.Table", source: str | None = None) -> dict[str, dict]:
    """sample_id -> the LabelMe document for that image."""
    import numpy as np
    import orjson

    meta = T.get_metadata(table).get(META) or {}
    version = meta.get("version") or "5.0.1"
    table = source_rows(table, source)[0]
    # other attribute columns (VOC difficult, CVAT attributes, ...) become extra shape
    # keys, which LabelMe keeps when it opens and saves a file
    key_of = dict(meta.get("shape_keys") or {})
    for c in writable_attributes(table, (T.SHAPE, T.POINTS, T.GROUP_ID, DESCRIPTION, FLAGS, IMAGE_FLAGS), commands=True):
        key_of.setdefault(c, c)
    key_of = {c: k for c, k in key_of.items() if c in table.column_names and k not in _SHAPE_KEYS}
    extra = {c: table.column(c).to_pylist() for c in key_of}
    n = table.num_rows
    col = lambda c: table.column(c).to_pylist() if c in table.column_names else [None] * n  # noqa: E731
    samples = col(T.SAMPLE_ID)
    labels, shapes, points, segs = col(T.LABEL), col(T.SHAPE), col(T.POINTS), col(T.SEGMENTATION)
    widths, heights = col(T.WIDTH), col(T.HEIGHT)
    group_ids, descs, flags, iflags = col(T.GROUP_ID), col(DESCRIPTION), col(FLAGS), col(IMAGE_FLAGS)
    splits, crowd = col(T.SPLIT), col(T.ISCROWD)
    as_boxes = parts_dropped = 0

    def parse(text: str, i: int, column: str) -> Any:
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            raise MlcycleError(f"sample {printable(samples[i])!r}: column '{column}' is not valid JSON text "
                               f"({printable(text, 60)!r})") from None

    boxes = T.bboxes(table)
    has_box = ~np.isnan(boxes).all(axis=1)
    is_label = T.label_mask(table)
    if T.SHAPE in table.column_names:
        is_label = is_label | table.column(T.SHAPE).is_valid().to_numpy(zero_copy_only=False)
    docs: dict[str, dict] = {}
    for i, s in enumerate(samples):
        d = docs.get(s)
        if d is None:
            d = docs[s] = {"version": version, "flags": {}, "shapes": [],
                           "imagePath": PurePosixPath(s.replace("\\", "/")).name,
                           "imageData": None, "imageHeight": heights[i], "imageWidth": widths[i]}
        if d["imageHeight"] is None and heights[i] is not None:
            d["imageHeight"], d["imageWidth"] = heights[i], widths[i]
        if splits[i] is not None and SPLIT_KEY not in d:
            d[SPLIT_KEY] = splits[i]  # LabelMe keeps keys it does not know
        if iflags[i] and not d["flags"]:
            d["flags"] = parse(iflags[i], i, IMAGE_FLAGS)
        if not is_label[i]:
            continue
        kind = shapes[i]
        st = _FROM_SHAPE.get(kind or "", None)
        pts: list[list[float]] | None = None
        if st == "polygon" and segs[i] is not None:
            seg = parse(segs[i], i, T.SEGMENTATION)
            poly = seg[0] if isinstance(seg, list) and seg and isinstance(seg[0], list) else seg
            if isinstance(poly, list) and len(poly) >= 6 and all(type(v) in (int, float) for v in poly):
                st, pts = "polygon", _pairs(poly)
                parts_dropped += isinstance(seg, list) and len(seg) > 1
        elif st in ("circle", "line", "linestrip", "point", "points") and points[i]:
            pts = _pairs(points[i])
        if pts is None:
            if not has_box[i]:
                continue  # an image-level label: LabelMe has only the image flags for that
            # an RLE mask (a crowd region) or a segmentation of no LabelMe shape: its box
            as_boxes += segs[i] is not None
            x, y, w, h = boxes[i].tolist()
            st, pts = "rectangle", [[x, y], [x + w, y + h]]
        shape: dict[str, Any] = {"label": labels[i] if labels[i] is not None else "", "points": pts,
                                 "group_id": group_ids[i], "description": descs[i] or "",
                                 "shape_type": st, "flags": parse(flags[i], i, FLAGS) if flags[i] else {}}
        if crowd[i]:
            shape[CROWD_KEY] = True  # a crowd region stays one, never an ordinary object
        for c, k in key_of.items():
            if extra[c][i] is not None:
                shape[k] = extra[c][i]
        d["shapes"].append(shape)
    if as_boxes or parts_dropped:
        from mlcycle import reporting

        if as_boxes:
            reporting.warn(f"{as_boxes} segmentation(s) written as their boxes: RLE masks (crowd regions) have no "
                           "LabelMe shape, and other rows have no polygon shape")
        if parts_dropped:
            reporting.warn(f"{parts_dropped} polygon(s) in several parts: only the first part written (a LabelMe polygon is one part)")
    return docs


def write(table: "pa.Table", output: Path | None, options: WriteOptions | None = None) -> None:
    import orjson

    from mlcycle import io

    options = options or WriteOptions()
    if output is None:
        raise MlcycleError("export labelme writes a folder", hint="pass -o DIR")
    out = Path(output)
    docs = to_documents(table, options.source)
    targets = {}
    for s in docs:
        target = safe_join(out, s)
        targets[s] = target.with_suffix(".json") if target.suffix else target.parent / (target.name + ".json")
    # all files or none: written into a temporary sibling folder that becomes `out`
    with io.atomic_folder(out) as tmp:
        for s, d in docs.items():
            target = tmp / targets[s].relative_to(out)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(orjson.dumps(d, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE))
