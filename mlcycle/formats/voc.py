"""Pascal VOC XML <-> label table (boxes with difficult/truncated/occluded/pose).

Layouts read:

- **VOC devkit**: ``Annotations/*.xml``, ``ImageSets/Main/<split>.txt`` (the split of
  each image; ``train``/``val``/``test`` win over ``trainval``; images listed without an
  XML file become sample rows), ``JPEGImages/``;
- **a folder of XML files** (Roboflow, CVAT's "ImageNet"/VOC exports, review_object_
  detection_metrics), searched recursively; a first-level folder named like a split
  (``train``, ``val``, ``valid``, ``test`` ...) sets the split;
- **one XML file**.

Each ``<object>`` becomes a row: ``<name>`` -> ``label``, ``<bndbox>`` -> ``bbox``,
``difficult``/``truncated``/``occluded`` -> bool attribute columns, ``pose`` -> a string
column, ``<attributes><attribute><name>/<value>`` (CVAT, Datumaro) -> columns of that
name, ``<actions>`` -> ``action_<name>`` bool columns, ``<score>`` -> ``score``. A
``<part>`` (VOC layout: head, hand, foot) becomes its own row with ``part_of`` = the
``label_id`` of its object. ``sample_id`` is ``<filename>`` (the file name relative to
``JPEGImages``); ``width``/``height`` come from ``<size>``, else the image header.

**Coordinates.** By default corners are continuous coordinates:
``bbox = [xmin, ymin, xmax - xmin, ymax - ymin]`` -- what Datumaro, CVAT, torchvision,
globox and review_object_detection_metrics use, and what makes the 100 VOC images of
that project equal to their COCO form. The VOC devkit reads corners as 1-based
inclusive pixel indices (width ``xmax - xmin + 1``); choose it with ``--corners
inclusive``: ``bbox = [xmin - 1, ymin - 1, xmax - xmin + 1, ymax - ymin + 1]``; the
writer applies the inverse. Corners are written with up to 12 significant digits
(integers stay integers).

A ``<polygon>`` inside an ``<object>`` (``<x1>``/``<y1>``... or ``<pt><x>``/``<y>``) is
read as ``segmentation`` and, without a ``<bndbox>``, gives the box; a one-polygon
segmentation is written back that way. Crowd regions are written as
``<difficult>1</difficult>``. Text is escaped; control characters XML cannot hold are
refused, naming the sample.

XML is parsed with defusedxml: an entity bomb or external entity is refused.

Size: one format's reader and writer kept together (the writer is the reader's
inverse: corners, flags, parts, polygons, attributes); the shared XML and path
safety live in ``_xml`` and ``_paths``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any
from mlcycle import table as T
from mlcycle.errors import MlcycleError, OptionError, printable
from mlcycle.formats import ReadOptions as CommonReadOptions
from mlcycle.formats import WriteOptions as CommonWriteOptions
from mlcycle.formats._assemble import assemble
from mlcycle.formats._invalid import InvalidInput
from mlcycle.formats._paths import SPLIT_NAMES, read_head, read_regular, relative_entry, safe_join
from mlcycle.formats._writing import num_strings, source_rows, unique_samples
from mlcycle.formats._xml import NotXmlText, parse_xml, xml_text

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa

META = "voc"
PART_OF = "part_of"
FLAGS = ("difficult", "truncated", "occluded")
POSE = "pose"
_MAIN_SPLITS = ("train", "val", "test", "trainval")
_SKIP_COLUMNS = {*T.COMMAND_COLUMNS, PART_OF}
CORNERS = ("exclusive", "inclusive")


def _check_corners(corners: str | None) -> None:
    if corners is not None and corners not in CORNERS:
        raise OptionError("corners", f"must be 'exclusive' or 'inclusive', got {corners!r}")


@dataclass(frozen=True)
class ReadOptions(CommonReadOptions):
    """VOC's (and KITTI's) read options: ``corners`` is how box corners are read,
    ``"exclusive"`` (default: w = xmax - xmin) or ``"inclusive"`` (w = xmax - xmin + 1)."""

    corners: str | None = None

    def __post_init__(self) -> None:
        _check_corners(self.corners)


@dataclass(frozen=True)
class WriteOptions(CommonWriteOptions):
    """VOC's (and KITTI's) write options: ``corners`` as in ``ReadOptions`` (default: the
    convention the table was read with, else exclusive)."""

    corners: str | None = None

    def __post_init__(self) -> None:
        _check_corners(self.corners)


def corners_mode(options: ReadOptions | WriteOptions, table_meta: Any = None) -> str:
    """The corner convention: the option, else the one the table was read with (its
    metadata), else exclusive."""
    mode = getattr(options, "corners", None)
    if mode is None and isinstance(table_meta, dict):
        mode = table_meta.get("corners")
    mode = mode or "exclusive"
    if mode not in CORNERS:
        raise MlcycleError(f"the table's metadata says corners {mode!r}; expected 'exclusive' or 'inclusive'")
    return mode


# --------------------------------------------------------------------------- detection


def box_rows_for_export(table: "pa.Table", output: Path | None, options: CommonWriteOptions, fmt: str,
                        meta_key: str, box_note: str = "") -> tuple:
    """What the per-image box writers (voc, kitti) start from: the output folder, the rows
    of the chosen source, the corner convention (the ``corners`` option, else the one the
    table was read with), the samples, and which labels have a box (the others are not written: a warning
    says how many). Returns (out, rows, mode, sample_ids, row_sample, splits, is_label,
    boxes, has_box)."""
    import numpy as np

    if output is None:
        raise OptionError("output", f"{fmt} writes a folder, not to standard output", hint="name the folder to write")
    rows, _ = source_rows(table, options.source)
    mode = corners_mode(options, T.get_metadata(table).get(meta_key, {}))
    sids, row_sample, splits = unique_samples(rows)
    is_label = T.label_mask(rows)
    boxes = T.bboxes(rows)
    has_box = is_label & ~np.isnan(boxes).any(axis=1)
    if (is_label & ~has_box).any():
        from mlcycle import reporting

        reporting.warn(f"{int((is_label & ~has_box).sum())} label(s) without a box are not written{box_note}")
    return Path(output), rows, mode, sids, row_sample, splits, is_label, boxes, has_box

def _looks_voc(p: Path | str) -> bool:
    """An ``<annotation>`` root with ``<bndbox>`` objects, or with a ``<size>`` (an empty
    image, or polygon objects). CVAT's ``<annotations>`` and MIT LabelMe's polygon XML
    (``<imagesize>``, no ``<size>``) are not VOC."""
    head = read_head(p, 1 << 14)
    if head is None or not re.search(rb"<annotation[\s>]", head):
        return False
    # (MIT LabelMe's XML has <imagesize>, never <size>)
    return b"<bndbox" in head or b"<size>" in head


def _xml_files(path: Path, depth: int) -> list[str]:
    """XML files in ``path`` and its folders down to ``depth`` levels, sorted."""
    out: list[str] = []
    for dirpath, dirnames, filenames in os.walk(path):
        level = os.path.relpath(dirpath, path).count(os.sep) + (0 if dirpath == str(path) else 1)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".")) if level < depth else []
        out += sorted(os.path.join(dirpath, f) for f in filenames if f.lower().endswith(".xml"))
        if len(out) > 20:
            break
    return out


def detect(path: Path) -> bool:
    if path.is_file():
        return path.suffix.lower() == ".xml" and _looks_voc(path)
    if not path.is_dir():
        return False
    ann = path / "Annotations"
    if ann.is_dir():
        files = _xml_files(ann, 1)
        return bool(files) and any(_looks_voc(f) for f in files[:3])
    # a folder of XML files, maybe one folder per split (Roboflow)
    files = _xml_files(path, 1)
    return bool(files) and all(_looks_voc(f) for f in files[:3])


# --------------------------------------------------------------------------- reading

def _text(el, tag: str) -> str | None:
    t = el.findtext(tag)
    if t:
        t = t.strip()
    return t or None


_FLAG_VALUES = {"0": False, "1": True}


def _box(el, where, problems: InvalidInput):
    """[xmin, ymin, xmax, ymax] or None (reported); ``where()`` names the object."""
    bb = el.find("bndbox")
    if bb is None:
        poly = el.find("polygon")
        if poly is not None:
            pts = _polygon(poly, where, problems)
            if pts is None:
                return None
            xs, ys = pts[0::2], pts[1::2]
            return [min(xs), min(ys), max(xs), max(ys)]
        problems.add(f"{where()}: no <bndbox>")
        return None
    try:
        d = {c.tag: c.text for c in bb}
        vals = [float(d["xmin"]), float(d["ymin"]), float(d["xmax"]), float(d["ymax"])]  # type: ignore[arg-type]
    except (KeyError, TypeError, ValueError):
        for tag in ("xmin", "ymin", "xmax", "ymax"):
            t = _text(bb, tag)
            try:
                float(t)  # type: ignore[arg-type]
            except (TypeError, ValueError):
                problems.add(f"{where()}: <{tag}> is '{printable(t)}', not a number")
                return None
        return None  # pragma: no cover
    x1, y1, x2, y2 = vals
    if not (abs(x1) < _INF and abs(y1) < _INF and abs(x2) < _INF and abs(y2) < _INF and abs(x2 - x1) < _INF
            and abs(y2 - y1) < _INF):
        problems.add(f"{where()}: a corner is not finite (nan, inf or beyond the float range)")
        return None
    if x2 < x1 or y2 < y1:
        problems.add(f"{where()}: box has x2 < x1 or y2 < y1 (xmin {_num(x1)}, xmax {_num(x2)}, ymin {_num(y1)}, ymax {_num(y2)})")
        return None
    return vals


_INF = float("inf")


def _polygon(poly, where, problems: InvalidInput) -> list[float] | None:
    """A ``<polygon>`` inside an ``<object>`` as [x1, y1, x2, y2, ...]: numbered corners
    ``<x1>/<y1>/<x2>/<y2>...`` (CVAT's and Roboflow's VOC exports) or ``<pt><x>/<y></pt>``
    points (LabelMe style). At least 3 finite points, else invalid."""
    kids = list(poly)
    pts: list[float] = []
    try:
        if kids and kids[0].tag == "pt":
            for pt in kids:
                pts += [float(pt.findtext("x")), float(pt.findtext("y"))]  # type: ignore[arg-type]
        else:
            d = {c.tag: c.text for c in kids}
            k = 1
            while f"x{k}" in d:
                pts += [float(d[f"x{k}"]), float(d[f"y{k}"])]  # type: ignore[arg-type]
                k += 1
            if len(d) != 2 * (k - 1):
                raise ValueError
    except (KeyError, TypeError, ValueError):
        problems.add(f"{where()}: <polygon> is not <x1>,<y1>,<x2>,<y2>... or <pt><x>,<y></pt> numbers")
        return None
    if len(pts) < 6 or not all(abs(v) < _INF for v in pts):
        problems.add(f"{where()}: <polygon> needs at least 3 points with finite coordinates")
        return None
    return pts


_INT32 = 2**31 - 1


def _size(root, xml_path: str, problems: InvalidInput) -> tuple[int, int]:
    """(width, height) from ``<size>``; -1 when absent or empty (the image header is read
    then). A value that is not a positive integer (``inf``, ``nan``, ``-3``, ``1e12``)
    is invalid: an error, or with skip_invalid the size is unknown."""
    size = root.find("size")
    if size is None:
        return -1, -1
    out = []
    for tag in ("width", "height"):
        t = _text(size, tag)
        if t is None:
            return -1, -1
        try:
            v = float(t)
            ok = 0 <= v <= _INT32 and v == int(v)
        except (ValueError, OverflowError):
            ok = False
        if not ok:
            problems.add(f"{xml_path}: <size><{tag}> is '{printable(t)}', not an image size in pixels")
            return -1, -1
        out.append(int(v))
    return (out[0], out[1]) if out[0] > 0 and out[1] > 0 else (-1, -1)


def _split_lists(main: Path, problems: InvalidInput) -> dict[str, str]:
    """``ImageSets/Main/<split>.txt``: image id -> split (``train``/``val``/``test`` win
    over ``trainval``). An id that is not a relative path (``..``, absolute, control
    characters) is invalid."""
    from mlcycle.formats._tokens import text_files

    splits: dict[str, str] = {}
    for name in sorted(p.stem for p in main.glob("*.txt") if "_" not in p.stem):
        f = main / f"{name}.txt"
        text = text_files([read_regular(f)], [str(f)])[0].decode("utf-8")
        for k, line in enumerate(text.split("\n"), start=1):
            for item in line.split():
                if not relative_entry(item):
                    problems.add(f"{f}:{k}: image id '{printable(item)}' is not a relative image path")
                    continue
                if name == "trainval" and item in splits:
                    continue
                if item not in splits or splits[item] == "trainval":
                    splits[item] = None if name == "default" else name  # type: ignore[assignment]
    return splits


def _image_stems(images: Path) -> dict[str, str]:
    """Images under ``JPEGImages``: path without extension -> path (first by name)."""
    from mlcycle.formats._images import IMAGE_EXTENSIONS

    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(images):
        dirnames.sort()
        rel = os.path.relpath(dirpath, images)
        prefix = "" if rel == "." else rel.replace(os.sep, "/") + "/"
        for f in sorted(filenames):
            stem, ext = os.path.splitext(f)
            if ext.lower() in IMAGE_EXTENSIONS:
                out.setdefault(prefix + stem, prefix + f)
    return out


def _files(root: Path, problems: InvalidInput) -> tuple[list[tuple[str, str | None, str]], dict[str, str], Path | None]:
    """(xml path, split, sample folder prefix) list, devkit split map, images folder."""
    if root.is_file():
        return [(str(root), None, "")], {}, None
    ann = root / "Annotations"
    if ann.is_dir():
        main = root / "ImageSets" / "Main"
        splits = _split_lists(main, problems) if main.is_dir() else {}
        files = []
        for dirpath, dirnames, filenames in os.walk(ann):
            dirnames.sort()
            for f in sorted(filenames):
                if f.lower().endswith(".xml"):
                    files.append((os.path.join(dirpath, f), None, ""))
        images = root / "JPEGImages"
        return files, splits, images if images.is_dir() else None
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        rel = os.path.relpath(dirpath, root)
        parts = () if rel == "." else PurePosixPath(rel.replace(os.sep, "/")).parts
        split = parts[0] if parts and parts[0].lower() in SPLIT_NAMES else None
        prefix_parts = parts[1:] if split else parts
        prefix = "/".join(prefix_parts)
        for f in sorted(filenames):
            if f.lower().endswith(".xml"):
                files.append((os.path.join(dirpath, f), split, prefix))
    return files, {}, None


def read(path: Path, options: CommonReadOptions | None = None) -> "pa.Table":
    import numpy as np

    from mlcycle.formats._images import header_size

    options = ReadOptions.of(options)
    path = Path(path)
    mode = corners_mode(options)
    problems = InvalidInput(options.skip_invalid, "VOC object")
    if not path.exists():
        raise MlcycleError(f"{path}: no such file or folder")
    files, devkit_splits, images_dir = _files(path, problems)
    if not files and not devkit_splits:
        raise MlcycleError(f"{path}: no VOC XML files found")

    sample_ids: list[str] = []
    sample_split: list[str | None] = []
    widths: list[int] = []
    heights: list[int] = []
    xml_of: list[str | None] = []
    label_sample: list[int] = []
    labels: list[str] = []
    boxes: list[list[float]] = []
    flags: dict[str, list] = {k: [] for k in FLAGS}
    poses: list[str | None] = []
    scores: list[float | None] = []
    part_of: list[int | None] = []
    attrs: dict[str, dict[int, Any]] = {}
    segs: list[str | None] = []
    seen: dict[tuple[str | None, str], int] = {}

    for xml_path, split, prefix in files:
        root = parse_xml(xml_path, read_regular(xml_path))
        if root.tag != "annotation":
            problems.add(f"{xml_path}: root element is <{root.tag}>, expected <annotation>")
            continue
        xml_stem = os.path.splitext(os.path.basename(xml_path))[0]
        fname = _text(root, "filename") or (xml_stem + ".jpg")
        if not relative_entry(fname):
            problems.add(f"{xml_path}: <filename> '{printable(fname)}' is not an image file name (a relative path)")
            fname = xml_stem + ".jpg"
        sid = f"{prefix}/{fname}" if prefix else fname
        if devkit_splits:
            stem = os.path.splitext(sid)[0]
            split = devkit_splits.get(stem, devkit_splits.get(xml_stem))
        key = (split, sid)
        if key in seen:
            raise MlcycleError(f"{xml_path}: image {sid!r} is described by two XML files")
        s = seen[key] = len(sample_ids)
        sample_ids.append(sid)
        sample_split.append(split)
        xml_of.append(xml_path)
        w, h = _size(root, xml_path, problems)
        widths.append(w)
        heights.append(h)
        for k, obj in enumerate(root.iterfind("object"), start=1):
            name = _text(obj, "name")

            def where(k=k, name=name, xml_path=xml_path) -> str:
                return f"{xml_path}: object {k}" + (f" ({name})" if name else "")

            if name is None:
                problems.add(f"{where()}: no <name>")
                continue
            b = _box(obj, where, problems)
            if b is None:
                continue
            score = _score(obj, where, problems)
            if score is False:
                continue
            poly = obj.find("polygon")
            seg = None
            if poly is not None:
                pts = _polygon(poly, where, problems)
                if pts is None:
                    continue
                seg = "[[" + ",".join(num_strings(pts)) + "]]"
            parent = len(labels)
            _add(obj, s, name, b, labels, label_sample, boxes, flags, poses, scores, part_of, attrs, None, score)
            segs.append(seg)
            for j, part in enumerate(obj.findall("part") if obj.find("part") is not None else (), start=1):
                pname = _text(part, "name")
                pwhere = lambda j=j, where=where: f"{where()} part {j}"  # noqa: E731
                pb = _box(part, pwhere, problems)
                if pname is None or pb is None:
                    continue
                pscore = _score(part, pwhere, problems)
                if pscore is False:
                    continue
                _add(part, s, pname, pb, labels, label_sample, boxes, flags, poses, scores, part_of, attrs, parent + 1, pscore)
                segs.append(None)

    # devkit: images listed in ImageSets without an XML file are samples without labels
    have: set[str] = set()
    if devkit_splits:
        have = {os.path.splitext(s)[0] for s in sample_ids}
        have |= {os.path.splitext(s.rsplit("/", 1)[-1])[0] for s in sample_ids}
    stems = _image_stems(images_dir) if devkit_splits and images_dir is not None else {}
    for stem, split in devkit_splits.items():
        if stem not in have:
            sample_ids.append(stems.get(stem, stem + ".jpg"))
            sample_split.append(split)
            xml_of.append(None)
            widths.append(-1)
            heights.append(-1)
    widths_a = np.asarray(widths, dtype=np.int64)
    heights_a = np.asarray(heights, dtype=np.int64)
    for i in np.flatnonzero((widths_a <= 0) | (heights_a <= 0)).tolist():
        base = options.images_root or images_dir or (os.path.dirname(xml_of[i]) if xml_of[i] is not None else None)
        if base is not None:
            wh = header_size(Path(base) / sample_ids[i])
            if wh is not None:
                widths_a[i], heights_a[i] = wh
    problems.report()
    bx = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    out = np.empty_like(bx)
    out[:, 0] = bx[:, 0]
    out[:, 1] = bx[:, 1]
    out[:, 2] = bx[:, 2] - bx[:, 0]
    out[:, 3] = bx[:, 3] - bx[:, 1]
    if mode == "inclusive":
        out[:, :2] -= 1
        out[:, 2:] += 1
    attributes: dict[str, Any] = {}
    for k in FLAGS:
        if any(v is not None for v in flags[k]):
            attributes[k] = flags[k]
    if any(p is not None for p in poses):
        attributes[POSE] = poses
    if any(p is not None for p in part_of):
        attributes[PART_OF] = part_of
    if any(g is not None for g in segs):
        attributes[T.SEGMENTATION] = segs
    n = len(labels)
    for name, values in attrs.items():
        col = name if name not in T.CORE_COLUMNS and name not in attributes else f"attr_{name}"
        attributes[col] = [values.get(i) for i in range(n)]
    has_score = any(v is not None for v in scores)
    source = options.source or (T.DEFAULT_PRED_SOURCE if has_score else T.GT_SOURCE)
    if options.split is not None:
        sample_split = [options.split] * len(sample_split)
    meta: dict[str, Any] = {META: {"corners": mode}}
    if options.images_root is not None:
        meta["images_root"] = str(options.images_root)
    return assemble(sample_ids=sample_ids, splits=sample_split, widths=widths_a, heights=heights_a,
                    label_sample=np.asarray(label_sample, dtype=np.int64), labels=labels, boxes=out,
                    scores=np.asarray([np.nan if v is None else v for v in scores], dtype=np.float64) if has_score else None,
                    source=source, attributes=attributes, metadata=meta)


def _score(el, where, problems: InvalidInput) -> float | None | bool:
    """An object's ``<score>`` (or ``<confidence>``): None when absent, False when
    invalid (reported: not a number, or not finite)."""
    c = el.find("score")
    if c is None:
        c = el.find("confidence")
    if c is None or not c.text or not c.text.strip():
        return None
    try:
        v = float(c.text)
    except ValueError:
        v = _INF
    if not abs(v) < _INF:
        problems.add(f"{where()}: <{c.tag}> is '{printable(c.text.strip())}', not a finite number")
        return False
    return v


def _add(el, s, name, b, labels, label_sample, boxes, flags, poses, scores, part_of, attrs, parent, score) -> None:
    """Append one object (or part); one pass over its children (the hot loop)."""
    i = len(labels)
    labels.append(name)
    label_sample.append(s)
    boxes.append(b)
    kids = {c.tag: c for c in el}
    for k in FLAGS:
        c = kids.get(k)
        flags[k].append(None if c is None else _flag_text(c.text))
    c = kids.get("pose")
    poses.append(None if c is None or not c.text or not c.text.strip() else c.text.strip())
    scores.append(score)
    part_of.append(parent)
    at = kids.get("attributes")
    if at is not None:
        for a in at.findall("attribute"):
            an = _text(a, "name")
            if an:
                attrs.setdefault(an, {})[i] = _text(a, "value")
    acts = kids.get("actions")
    if acts is not None:
        for a in acts:
            v = (a.text or "").strip()
            attrs.setdefault(f"action_{a.tag}", {})[i] = v in ("1", "true", "True")


def _flag_text(t: str | None) -> bool | None:
    if t is None:
        return None
    t = t.strip()
    v = _FLAG_VALUES.get(t)
    if v is not None:
        return v
    t = t.lower()
    if t in ("true", "yes"):
        return True
    if t in ("false", "no"):
        return False
    try:
        return float(t) != 0 if t else None
    except ValueError:
        return None


# --------------------------------------------------------------------------- writing

def _num(v: float) -> str:
    return f"{v:.12g}"


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


_TAG = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")


def _polygon_xml(seg: str | None, indent: str) -> list[str] | None:
    """A one-polygon COCO segmentation as a VOC ``<polygon>`` (``<x1>``, ``<y1>`` ...);
    None for anything else (RLE, several polygons)."""
    import orjson

    try:
        poly = orjson.loads(seg) if seg else None
    except orjson.JSONDecodeError:
        return None
    if isinstance(poly, list) and len(poly) == 1 and isinstance(poly[0], list):
        poly = poly[0]
    if not (isinstance(poly, list) and len(poly) >= 6 and len(poly) % 2 == 0
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in poly)):
        return None
    vals = num_strings(poly)
    inner = "".join(f"<x{k // 2 + 1}>{vals[k]}</x{k // 2 + 1}><y{k // 2 + 1}>{vals[k + 1]}</y{k // 2 + 1}>"
                    for k in range(0, len(vals), 2))
    return [f"{indent}<polygon>{inner}</polygon>"]


def write(table: "pa.Table", output: Path | None, options: CommonWriteOptions | None = None) -> None:
    import numpy as np
    import pyarrow as pa

    from mlcycle import io, reporting
    from mlcycle.formats._paths import copy_images

    options = WriteOptions.of(options)
    out, rows, mode, sids, row_sample, splits, is_label, boxes, has_box = box_rows_for_export(
        table, output, options, "voc", META, " (VOC objects need a <bndbox>)")
    x1 = boxes[:, 0].copy()
    y1 = boxes[:, 1].copy()
    x2 = boxes[:, 0] + boxes[:, 2]
    y2 = boxes[:, 1] + boxes[:, 3]
    if mode == "inclusive":
        x1 += 1
        y1 += 1
    labels = T.column_or_null(rows, T.LABEL).to_pylist()
    label_ids = T.column_or_null(rows, T.LABEL_ID).to_pylist()
    widths = T.column_or_null(rows, T.WIDTH).to_pylist()
    heights = T.column_or_null(rows, T.HEIGHT).to_pylist()
    scores = T.column_or_null(rows, T.SCORE).to_pylist()
    flag_cols = {k: rows.column(k).to_pylist() for k in FLAGS if k in rows.column_names}
    crowd = (T.numpy_column(rows, T.ISCROWD, fill=False).astype(bool) & has_box if T.ISCROWD in rows.column_names
             else np.zeros(rows.num_rows, bool))
    if crowd.any():
        # VOC has no crowd flag: a crowd region is written as a difficult object (what
        # VOC evaluation ignores), never as an ordinary one
        diff = flag_cols.get("difficult", [None] * rows.num_rows)
        flag_cols["difficult"] = [True if c else d for c, d in zip(crowd.tolist(), diff)]
        reporting.info(f"{int(crowd.sum())} crowd region(s) (iscrowd) written as <difficult>1</difficult> objects")
    segs = T.column_or_null(rows, T.SEGMENTATION).to_pylist() if T.SEGMENTATION in rows.column_names else None
    poses = rows.column(POSE).to_pylist() if POSE in rows.column_names else None
    parts = rows.column(PART_OF).to_pylist() if PART_OF in rows.column_names else [None] * rows.num_rows
    extra_cols = [c for c in T.attribute_columns(rows)
                  if c not in FLAGS and c != POSE and c not in _SKIP_COLUMNS
                  and not pa.types.is_nested(rows.column(c).type)]
    action_cols = [c for c in extra_cols if c.startswith("action_") and _TAG.match(c[len("action_"):])]
    attr_cols = [c for c in extra_cols if c not in action_cols]
    extra = {c: rows.column(c).to_pylist() for c in extra_cols}

    by_sample: list[list[int]] = [[] for _ in sids]
    parts_of: dict[tuple[int, Any], list[int]] = {}
    for i in np.flatnonzero(has_box).tolist():
        s = int(row_sample[i])
        if parts[i] is not None:
            parts_of.setdefault((s, parts[i]), []).append(i)
        else:
            by_sample[s].append(i)
    escape = xml_text
    lost_segs = 0

    def obj_xml(i: int, tag: str, indent: str) -> list[str]:
        nonlocal lost_segs
        lines = [f"{indent}<{tag}>", f"{indent}\t<name>{escape(str(labels[i]))}</name>"]
        if poses is not None and poses[i] is not None:
            lines.append(f"{indent}\t<pose>{escape(str(poses[i]))}</pose>")
        for k, vals in flag_cols.items():
            if vals[i] is not None:
                lines.append(f"{indent}\t<{k}>{_value(vals[i])}</{k}>")
        if scores[i] is not None:
            lines.append(f"{indent}\t<score>{_num(scores[i])}</score>")
        lines += [f"{indent}\t<bndbox>",
                  f"{indent}\t\t<xmin>{_num(x1[i])}</xmin>", f"{indent}\t\t<ymin>{_num(y1[i])}</ymin>",
                  f"{indent}\t\t<xmax>{_num(x2[i])}</xmax>", f"{indent}\t\t<ymax>{_num(y2[i])}</ymax>",
                  f"{indent}\t</bndbox>"]
        if segs is not None and segs[i] not in (None, "", "[]"):
            poly = _polygon_xml(segs[i], indent + "\t")
            if poly is None:
                lost_segs += 1
            else:
                lines += poly
        acts = [(c[len("action_"):], extra[c][i]) for c in action_cols if extra[c][i] is not None]
        if acts:
            lines.append(f"{indent}\t<actions>")
            lines += [f"{indent}\t\t<{a}>{_value(v)}</{a}>" for a, v in acts]
            lines.append(f"{indent}\t</actions>")
        ats = [(c, extra[c][i]) for c in attr_cols if extra[c][i] is not None]
        if ats:
            lines.append(f"{indent}\t<attributes>")
            for c, v in ats:
                lines.append(f"{indent}\t\t<attribute><name>{escape(c)}</name><value>{escape(_value(v))}</value></attribute>")
            lines.append(f"{indent}\t</attributes>")
        return lines

    ann_paths = []
    for sid in sids:
        rel = PurePosixPath(str(sid).replace("\\", "/"))
        safe_join(out, str(sid))  # refuse absolute paths and '..' in the sample id itself
        ann = "Annotations/" + (str(rel.with_suffix(".xml")) if rel.suffix else str(rel) + ".xml")
        safe_join(out, ann)
        ann_paths.append(ann)
    first_row = np.full(len(sids), -1, dtype=np.int64)
    first_row[row_sample[::-1]] = np.arange(len(row_sample))[::-1]
    documents: list[str] = []
    for s, sid in enumerate(sids):
        r = int(first_row[s])
        try:
            lines = ["<annotation>", "\t<folder>JPEGImages</folder>", f"\t<filename>{escape(str(sid))}</filename>"]
            if widths[r] is not None and heights[r] is not None:
                lines += ["\t<size>", f"\t\t<width>{widths[r]}</width>", f"\t\t<height>{heights[r]}</height>",
                          "\t\t<depth>3</depth>", "\t</size>"]
            lines.append("\t<segmented>0</segmented>")
            for i in by_sample[s]:
                obj = obj_xml(i, "object", "\t")
                for j in parts_of.get((s, label_ids[i]), []):
                    obj += obj_xml(j, "part", "\t\t") + ["\t\t</part>"]
                lines += obj + ["\t</object>"]
        except NotXmlText as exc:
            raise MlcycleError(f"sample '{printable(sid)}': {exc.raw_message}",
                               hint=exc.raw_hint) from None
        lines.append("</annotation>")
        documents.append("\n".join(lines) + "\n")
    if lost_segs:
        reporting.warn(f"{lost_segs} segmentation(s) that are not one polygon (RLE, several parts) written as their boxes only")
    lists: dict[str, list[str]] = {}
    for sid, split in zip(sids, splits):
        rel = PurePosixPath(sid)
        lists.setdefault(split or "default", []).append(rel.with_suffix("").as_posix() if rel.suffix else sid)
    with io.atomic_folder(out) as tmp:
        for ann, doc in zip(ann_paths, documents):
            _write_file(tmp / ann, doc)
        for split, items in lists.items():
            _write_file(tmp / "ImageSets" / "Main" / f"{split}.txt", "".join(x + "\n" for x in items))
        copy_images(options.images_root, ((sid, tmp / "JPEGImages" / sid) for sid in sids))


def _write_file(path: Path, text: str) -> None:
    """One file inside the temporary output folder (the folder is renamed at the end)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
    except OSError as exc:
        raise MlcycleError(f"{path}: cannot write: {exc.strerror or exc}") from None
