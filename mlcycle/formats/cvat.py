"""CVAT for images 1.1 XML <-> label table.

Reading (a CVAT ``annotations.xml``, or a folder of CVAT XML files):

- each ``<image>`` is a sample: ``name`` -> ``sample_id`` (``subset/name`` when the image
  has a ``subset`` attribute, as in project exports, whose images live in
  ``images/<subset>/``), ``id`` -> ``image_id``, ``width``/``height``, ``subset`` ->
  ``split``; an image without shapes is a sample row;
- every shape is a row, in file order, ``label_id`` 1, 2, ... (CVAT shapes have no ids):
  ``box`` -> ``bbox`` = [xtl, ytl, xbr - xtl, ybr - ytl] (CVAT coordinates are
  continuous pixel coordinates: no +1); ``polygon`` -> ``segmentation`` (a COCO polygon)
  and its bounding box; ``polyline`` and ``points`` -> the ``points`` column (x1, y1, x2,
  y2, ...) and no box, so they never count as boxes; ``ellipse`` -> its bounding box and
  ``points`` = [cx, cy, rx, ry]; ``mask`` -> its bounding box and the CVAT RLE text in
  ``cvat_rle``; ``tag`` -> an image-level label (no box). ``shape`` says which;
- ``occluded`` (bool), ``z_order`` (int), ``source`` -> ``annotation_source``,
  ``group_id``, ``rotation`` are columns; each ``<attribute name="a">`` is a column ``a``
  (``attr_a`` when the name is taken), typed by the label's ``input_type`` in ``<meta>``:
  checkbox -> bool, number -> float, anything else text (``"0003"`` stays text);
- video exports (``<track>``): each shape that is not ``outside`` is a row on sample
  ``frame_NNNNNN`` (the frame number, 6 digits), with ``track_id`` and ``frame``;
  the frame size comes from ``<original_size>``;
- an empty ``label=""`` (datumaro writes such shapes) is a null label, written back as
  ``label=""``; cuboids and skeletons are skipped with a counted warning;
- ``width``/``height`` must be positive integers, ids and ``z_order``/``group_id``
  integers in range; coordinates must be finite.

Writing produces one ``annotations.xml`` (``-o FILE.xml``, ``-o DIR`` or ``-o DIR/`` for
``DIR/annotations.xml`` -- a new folder appears only complete --, or standard output) with ``<meta>`` labels and their attribute
specs (the ingested ones when the table came from CVAT), one ``<image>`` per sample and
the shapes above; rows from other formats are written as boxes (their attribute columns,
e.g. VOC ``difficult``, as ``<attribute>``), image-level labels as ``<tag>``. Numbers are
written so that they read back to the same float. Track ids are not written (the file is
CVAT *for images*).
"""

from __future__ import annotations

import os
from math import isfinite
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlcycle import table as T
from mlcycle.errors import MlcycleError, printable
from mlcycle.formats import ReadOptions, WriteOptions
from mlcycle.formats._assemble import attribute_array
from mlcycle.formats._invalid import InvalidInput
from mlcycle.formats._writing import num
from mlcycle.formats._xml import parse_xml

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa

META = "cvat"
RLE = "cvat_rle"
SHAPES = ("box", "polygon", "polyline", "points", "ellipse", "mask", "tag")
UNSUPPORTED = ("cuboid", "skeleton", "cuboid_3d")
# columns this module reads and writes itself (everything else may become <attribute>)
HANDLED = (T.SHAPE, T.POINTS, T.OCCLUDED, T.Z_ORDER, T.ANNOTATION_SOURCE, T.GROUP_ID, T.ROTATION,
           T.TRACK_ID, T.FRAME, RLE)


def _cvat_head(path: Path) -> bool:
    from mlcycle.formats._paths import read_head

    head = read_head(path, 4096)
    if head is None:
        return False
    return b"<annotations" in head and (b"<version>" in head or b"<meta" in head or b"<image " in head)


def _files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.suffix.lower() == ".xml" and p.is_file() and _cvat_head(p))
    return [path]


def detect(path: Path) -> bool:
    if path.is_dir():
        # look at a few XML files only: a VOC folder may hold 100k of them
        import itertools

        xmls = (p for p in path.iterdir() if p.suffix.lower() == ".xml" and p.is_file())
        return any(_cvat_head(p) for p in itertools.islice(xmls, 3))
    return path.is_file() and path.suffix.lower() == ".xml" and _cvat_head(path)


# --------------------------------------------------------------------------- reading

def _float(el, key: str, where: str, problems: InvalidInput) -> float | None:
    v = el.get(key)
    try:
        f = float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        problems.add(f"{where}: {key}={v!r} is not a number" if v is not None else f"{where}: '{key}' is missing")
        return None
    if f != f or f in (float("inf"), float("-inf")):
        problems.add(f"{where}: {key}={v!r} is not a finite number")
        return None
    return f


def _points(text: str | None, where: str, problems: InvalidInput) -> list[float] | None:
    if not text:
        problems.add(f"{where}: 'points' is missing")
        return None
    out: list[float] = []
    try:
        for pair in text.strip().split(";"):
            x, y = pair.split(",")
            out.append(float(x))
            out.append(float(y))
    except ValueError:
        problems.add(f"{where}: points={text!r} is not 'x1,y1;x2,y2;...'")
        return None
    if any(v != v or v in (float("inf"), float("-inf")) for v in out):
        problems.add(f"{where}: points={text!r} has a non-finite value")
        return None
    return out


def _bounds(pts: list[float]) -> tuple[float, float, float, float]:
    xs, ys = pts[0::2], pts[1::2]
    x0, y0 = min(xs), min(ys)
    return (x0, y0, max(xs) - x0, max(ys) - y0)


def _int(v: str | None) -> int | None:
    if v is None or v == "":
        return None
    try:
        i = int(v)
    except ValueError:
        return None
    return i if -2**63 <= i < 2**63 else None


_INT32 = 2**31 - 1


def _checked_int(el, key: str, where: Any, problems: InvalidInput, low: int = -2**63, high: int = 2**63 - 1) -> int | None:
    """An integer attribute in ``low..high``; None when absent; anything else is
    invalid (reported; None with skip_invalid)."""
    v = el.get(key)
    if v is None or v == "":
        return None
    try:
        i = int(v)
    except ValueError:
        try:
            f = float(v)
            i = int(f) if f.is_integer() else None  # 640.0
        except (ValueError, OverflowError):
            i = None
    if i is None or not low <= i <= high:
        problems.add(f"{where}: {key}='{printable(v)}' is not an integer" + (f" in {low}..{high}" if low >= 0 else ""))
        return None
    return i


def _label_specs(root) -> list[dict]:
    labels = []
    for lab in root.iter("label"):
        name = lab.findtext("name")
        if name is None:
            continue
        spec: dict[str, Any] = {"name": name}
        for key in ("color", "type"):
            v = lab.findtext(key)
            if v is not None:
                spec[key] = v
        attrs = []
        for at in lab.iter("attribute"):
            an = at.findtext("name")
            if an is None:
                continue
            attrs.append({k: at.findtext(k) for k in ("name", "mutable", "input_type", "default_value", "values")
                          if at.findtext(k) is not None})
        spec["attributes"] = attrs
        labels.append(spec)
    return labels


def _typed(value: str | None, input_type: str | None) -> Any:
    if value is None:
        return None
    if input_type == "checkbox":
        low = value.strip().lower()
        if low in ("true", "1"):
            return True
        if low in ("false", "0"):
            return False
        return value
    if input_type == "number":
        try:
            return float(value)
        except ValueError:
            return value
    return value


class _Where:
    """'file: image 'x', <box> #2' — built only when an error names it."""

    __slots__ = ("prefix", "tag", "k")

    def __init__(self, prefix: str, tag: str, k: int | None) -> None:
        self.prefix, self.tag, self.k = prefix, tag, k

    def __str__(self) -> str:
        return f"{self.prefix}, <{self.tag}>" + (f" #{self.k}" if self.k is not None else "")


class _Reader:
    def __init__(self, options: ReadOptions) -> None:
        self.options = options
        self.rows: list[dict[str, Any]] = []
        self.attr_names: list[str] = []  # CVAT attribute names in first-seen order
        self.labels: list[dict] = []
        self.problems = InvalidInput(options.skip_invalid, "shape")
        self.unsupported: dict[str, int] = {}
        self.next_id = 1
        self.seen: set[str] = set()
        self.present: set[str] = set()  # row keys any shape row has

    def attr_type(self, label: str | None, name: str) -> str | None:
        return self.types.get((label, name)) or self.types.get((None, name))

    def read_file(self, path: Path, split_hint: str | None) -> None:
        root = parse_xml(path)
        if root.tag != "annotations":
            raise MlcycleError(f"{path}: not a CVAT XML file: the root element is <{root.tag}>, expected <annotations>")
        specs = _label_specs(root.find("meta") if root.find("meta") is not None else root)
        known = {s["name"] for s in self.labels}
        self.labels.extend(s for s in specs if s["name"] not in known)
        self.types: dict[tuple, str] = {}
        for s in specs:
            for a in s.get("attributes", []):
                self.types[(s["name"], a["name"])] = a.get("input_type", "text")
                self.types.setdefault((None, a["name"]), a.get("input_type", "text"))
        name = str(path)
        images = root.findall("image")
        for k, im in enumerate(images):
            iname = im.get("name")
            if not iname:
                raise MlcycleError(f"{name}: <image> #{k + 1} (id {im.get('id')}) has no 'name'")
            subset = im.get("subset")
            sample = f"{subset}/{iname}" if subset else iname
            where_img = f"{name}: image {iname!r}" + (f" (subset {subset})" if subset else "")
            if sample in self.seen:
                raise MlcycleError(f"{where_img} appears twice")
            self.seen.add(sample)
            base = {
                T.SAMPLE_ID: sample, T.IMAGE_ID: _checked_int(im, "id", where_img, self.problems),
                T.WIDTH: _checked_int(im, "width", where_img, self.problems, 1, _INT32),
                T.HEIGHT: _checked_int(im, "height", where_img, self.problems, 1, _INT32),
                T.SPLIT: self.options.split or subset or split_hint,
            }
            n_before = len(self.rows)
            counts: dict[str, int] = {}
            for el in im:
                k_tag = counts[el.tag] = counts.get(el.tag, 0) + 1
                self.shape(el, base, (where_img, el.tag, k_tag), el.get("label"))
            if len(self.rows) == n_before:
                self.rows.append(dict(base))
        tracks = root.findall("track")
        if tracks:
            size = root.find("meta/task/original_size")
            w = _int(size.findtext("width")) if size is not None else None
            h = _int(size.findtext("height")) if size is not None else None
            w = w if w is not None and 0 < w <= _INT32 else None
            h = h if h is not None and 0 < h <= _INT32 else None
            frames: dict[int, list] = {}
            for t in tracks:
                tid = _checked_int(t, "id", f"{name}: <track>", self.problems)
                for el in t:
                    if el.get("outside") == "1":
                        continue
                    frame = _checked_int(el, "frame", f"{name}: track {tid}, <{el.tag}>", self.problems, 0, 10**12)
                    if frame is None and el.get("frame") is None:
                        self.problems.add(f"{name}: track {tid}, <{el.tag}>: 'frame' is missing")
                        continue
                    if frame is None:
                        continue
                    frames.setdefault(frame, []).append((t, tid, el))
            for frame in sorted(frames):
                sample = f"frame_{frame:06d}"
                if sample in self.seen:
                    continue
                base = {T.SAMPLE_ID: sample, T.IMAGE_ID: frame, T.WIDTH: w, T.HEIGHT: h,
                        T.SPLIT: self.options.split or split_hint}
                for t, tid, el in frames[frame]:
                    extra = {T.TRACK_ID: tid, T.FRAME: frame}
                    if t.get("group_id") is not None and el.get("group_id") is None:
                        extra[T.GROUP_ID] = _int(t.get("group_id"))
                    if t.get("source") is not None and el.get("source") is None:
                        extra[T.ANNOTATION_SOURCE] = t.get("source")
                    self.shape(el, {**base, **extra}, (f"{name}: track {tid}, frame {frame}", el.tag, None), t.get("label"))

    def shape(self, el, base: dict, place: tuple, label: str | None) -> None:
        tag = el.tag
        if tag not in SHAPES:
            if tag in UNSUPPORTED:
                self.unsupported[tag] = self.unsupported.get(tag, 0) + 1
            return
        # the place is formatted only when there is something to report
        prefix, _, k = place
        where = _Where(prefix, tag, k)
        row = dict(base)
        # an unlabelled shape (label="", as datumaro writes them) is kept with a null
        # label: nothing is lost, schema-check can flag it, and evaluate refuses a ground
        # truth row without a class with a clear error
        row[T.LABEL] = label or None
        row[T.SHAPE] = tag
        p = self.problems
        if tag == "box":
            g = el.get
            try:  # fast path; the slow one below names what is wrong
                xtl, ytl, xbr, ybr = float(g("xtl")), float(g("ytl")), float(g("xbr")), float(g("ybr"))
                ok = isfinite(xtl) and isfinite(ytl) and isfinite(xbr) and isfinite(ybr) \
                    and isfinite(xbr - xtl) and isfinite(ybr - ytl)
            except (TypeError, ValueError):
                ok = False
            if not ok:
                vals = [_float(el, k, where, p) for k in ("xtl", "ytl", "xbr", "ybr")]
                if any(v is None for v in vals):
                    return
                xtl, ytl, xbr, ybr = vals  # type: ignore[misc]
                if not (isfinite(xbr - xtl) and isfinite(ybr - ytl)):  # type: ignore[operator]
                    p.add(f"{where}: box is beyond the float range")
                    return
            if xbr < xtl or ybr < ytl:
                p.add(f"{where}: box corners are reversed (xtl={el.get('xtl')}, xbr={el.get('xbr')}, "
                      f"ytl={el.get('ytl')}, ybr={el.get('ybr')})")
                return
            row[T.BBOX] = (xtl, ytl, xbr - xtl, ybr - ytl)
        elif tag in ("polygon", "polyline", "points"):
            pts = _points(el.get("points"), where, p)
            if pts is None:
                return
            if tag == "polygon":
                row[T.SEGMENTATION] = "[[" + ",".join(num(v) for v in pts) + "]]"
                row[T.BBOX] = _bounds(pts)
            else:
                row[T.POINTS] = pts
        elif tag == "ellipse":
            vals = [_float(el, k, where, p) for k in ("cx", "cy", "rx", "ry")]
            if any(v is None for v in vals):
                return
            cx, cy, rx, ry = vals  # type: ignore[misc]
            if rx < 0 or ry < 0 or not isfinite(2 * rx) or not isfinite(2 * ry):  # type: ignore[operator]
                p.add(f"{where}: ellipse radii must be finite and not negative (rx={el.get('rx')}, ry={el.get('ry')})")
                return
            row[T.BBOX] = (cx - rx, cy - ry, 2 * rx, 2 * ry)
            row[T.POINTS] = [cx, cy, rx, ry]
        elif tag == "mask":
            vals = [_float(el, k, where, p) for k in ("left", "top", "width", "height")]
            if any(v is None for v in vals):
                return
            if vals[2] < 0 or vals[3] < 0:  # type: ignore[operator]
                p.add(f"{where}: mask has a negative width or height")
                return
            row[T.BBOX] = tuple(vals)
            row[RLE] = el.get("rle")
        occ = el.get("occluded")
        if occ is not None:
            row[T.OCCLUDED] = occ.strip() in ("1", "true", "True")
        if el.get("z_order") is not None:
            row[T.Z_ORDER] = _checked_int(el, "z_order", where, p)
        if el.get("source") is not None:
            row[T.ANNOTATION_SOURCE] = el.get("source")
        if el.get("group_id") is not None:
            row[T.GROUP_ID] = _checked_int(el, "group_id", where, p)
        if el.get("rotation") is not None:
            r = _float(el, "rotation", where, p)
            if r is None:
                return
            row[T.ROTATION] = r
        attrs = {}
        for at in el.findall("attribute"):
            an = at.get("name")
            if an is None:
                continue
            if an not in self.attr_names:
                self.attr_names.append(an)
            attrs[an] = _typed(at.text or "", self.attr_type(label, an))
        row["\0attrs"] = attrs
        row[T.LABEL_ID] = self.next_id
        self.next_id += 1
        self.present.update(row)
        self.rows.append(row)

    def table(self) -> "pa.Table":
        import pyarrow as pa

        rows = self.rows
        n = len(rows)
        cols: dict[str, Any] = {}
        cols[T.SAMPLE_ID] = [r[T.SAMPLE_ID] for r in rows]
        cols[T.SOURCE] = [self.options.source or T.GT_SOURCE] * n
        cols[T.LABEL_ID] = [r.get(T.LABEL_ID) for r in rows]
        cols[T.LABEL] = [r.get(T.LABEL) for r in rows]
        boxes = [r.get(T.BBOX) for r in rows]
        cols[T.BBOX] = pa.array(boxes, type=pa.list_(pa.float64(), 4))
        if T.SEGMENTATION in self.present:
            cols[T.SEGMENTATION] = [r.get(T.SEGMENTATION) for r in rows]
        cols[T.WIDTH] = [r.get(T.WIDTH) for r in rows]
        cols[T.HEIGHT] = [r.get(T.HEIGHT) for r in rows]
        if any(r.get(T.SPLIT) is not None for r in rows):
            cols[T.SPLIT] = [r.get(T.SPLIT) for r in rows]
        cols[T.IMAGE_ID] = [r.get(T.IMAGE_ID) for r in rows]
        present = []
        for c, typ in ((T.SHAPE, pa.string()), (T.POINTS, pa.list_(pa.float64())), (T.OCCLUDED, pa.bool_()),
                       (T.Z_ORDER, pa.int64()), (T.ANNOTATION_SOURCE, pa.string()), (T.GROUP_ID, pa.int64()),
                       (T.ROTATION, pa.float64()), (RLE, pa.string()), (T.TRACK_ID, pa.int64()), (T.FRAME, pa.int64())):
            if c in self.present:
                cols[c] = pa.array([r.get(c) for r in rows], type=typ)
                present.append(c)
        taken = set(cols) | set(T.CORE_COLUMNS) | set(HANDLED)
        attr_cols: dict[str, str] = {}
        for an in self.attr_names:
            col = an if an not in taken else f"attr_{an}"
            while col in taken:
                col = f"attr_{col}"
            taken.add(col)
            attr_cols[col] = an
            cols[col] = attribute_array([(r.get("\0attrs") or {}).get(an) for r in rows])
        self.problems.report()
        if self.unsupported:
            from mlcycle import reporting

            what = ", ".join(f"{v} {k}" for k, v in self.unsupported.items())
            reporting.warn(f"skipped shapes CVAT export has but a label table does not hold: {what}")
        meta: dict[str, Any] = {META: {"labels": self.labels, "attributes": attr_cols}}
        if self.options.images_root is not None:
            meta["images_root"] = str(self.options.images_root)
        return T.from_columns(cols, meta)


def read(path: Path, options: ReadOptions | None = None) -> "pa.Table":
    options = options or ReadOptions()
    path = Path(path)
    files = _files(path)
    if not files:
        raise MlcycleError(f"{path}: no CVAT XML file (<annotations> with <version>) in this folder")
    reader = _Reader(options)
    for f in files:
        hint = None
        if len(files) > 1 and f.stem != "annotations":
            hint = f.stem
        elif path.is_dir() and f.stem not in ("annotations", "default"):
            hint = f.stem  # datumaro-style <subset>.xml
        reader.read_file(f, hint)
    return reader.table()


# --------------------------------------------------------------------------- writing

def to_xml(table: "pa.Table", source: str | None = None) -> str:
    """The CVAT XML document of the rows of ``source`` (``_cvat_write`` builds it)."""
    from mlcycle.formats._cvat_write import to_xml as build

    return build(table, source)


def write(table: "pa.Table", output: Path | None, options: WriteOptions | None = None) -> None:
    from mlcycle import io

    options = options or WriteOptions()
    text = to_xml(table, options.source)
    if output is not None and str(output) != "-" and (Path(output).is_dir() or str(output).endswith(("/", os.sep))):
        # a folder: DIR/annotations.xml (a new folder appears only with its file)
        with io.atomic_folder(Path(output)) as tmp:
            try:
                (tmp / "annotations.xml").write_bytes(text.encode("utf-8"))
            except OSError as exc:
                raise MlcycleError(f"{Path(output) / 'annotations.xml'}: cannot write: {exc.strerror or exc}") from None
        return
    with io.atomic_output(output, "wb") as fh:
        fh.write(text.encode("utf-8"))
