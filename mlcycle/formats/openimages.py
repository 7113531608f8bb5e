"""Open Images V6/V7 box CSV <-> label table.

Reading a single CSV (``ImageID,Source,LabelName,Confidence,XMin,XMax,YMin,YMax,
IsOccluded,IsTruncated,IsGroupOf,IsDepiction,IsInside``) or a dataset folder laid out as
Open Images ships it (``annotations/*-annotations-bbox.csv``, ``*-imagelabels.csv``,
``image_ids_and_rotation.csv``, ``images.meta``, ``*class-descriptions*.csv``,
``images/<subset>/<ImageID>.jpg``):

- ``ImageID`` -> ``sample_id`` verbatim; ``LabelName`` (the MID, e.g. ``/m/01g317``) ->
  ``label`` verbatim (display names from the class descriptions are kept in the table
  metadata and written back);
- coordinates are fractions of the image size in the order XMin, XMax, YMin, YMax:
  ``bbox`` = [XMin*W, YMin*H, (XMax-XMin)*W, (YMax-YMin)*H] in pixels, so each image's
  width and height are needed: from ``images.meta`` (``ImageID height width`` per line,
  as Datumaro writes it), then ``--image-sizes TABLE`` / ``--image-size WxH`` / the
  image header (see docs/formats.md, "Image sizes");
- ``IsOccluded``, ``IsTruncated``, ``IsGroupOf``, ``IsDepiction``, ``IsInside`` -> bool
  columns ``occluded``, ``truncated``, ``group_of``, ``depiction``, ``inside`` (1 true,
  0 false, -1 or empty null); ``Source`` -> ``annotation_source``; ``Confidence`` ->
  ``confidence`` for ground truth, ``score`` for a prediction source (``--source``);
  other columns (V7's ``XClick1X`` ...) are kept as text columns of the same name;
- image-level labels (``*-imagelabels*.csv``) are rows with a label and no box, their
  ``Confidence`` (1 = present, 0 = verified absent) in ``confidence``; listed images
  without labels are sample rows; the subset comes from the file name
  (``oidv6-train-annotations-bbox.csv`` -> ``train``) or the image list's ``Subset``;
- numbers written with decimal commas (``"0,358"``), as some converters do, are
  recognised and read, with a note on stderr.

Writing: ``-o FILE.csv`` (or standard output) writes the box CSV; ``-o DIR`` writes the
folder layout (per split ``annotations/<split>-annotations-bbox.csv`` and
``<split>-annotations-human-imagelabels.csv``, plus ``image_ids_and_rotation.csv`` and
``images.meta`` so that sizes and empty images survive). Coordinates are written as the
shortest text that reads back to the same float; booleans as 1/0, null as -1. A crowd
region (``iscrowd``) is written with ``IsGroupOf`` = 1. Text cells a spreadsheet would
run as a formula get a leading ``'`` (OWASP), which reading takes off. The split is
kept by the folder layout; a single box CSV has no place for it (a warning says so),
nor for other attribute columns (named in a warning). A folder is written all or
nothing.

Invalid boxes (an error naming ``file:line``, or skipped and counted with
``skip_invalid``): an empty ImageID or LabelName, an empty coordinate, a value that is
not finite (``inf``, ``nan``), XMax < XMin or YMax < YMin.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlcycle import table as T
from mlcycle.errors import MlcycleError, mention, printable
from mlcycle.formats import ReadOptions, WriteOptions
from mlcycle.formats._assemble import check_box_geometry, filter_keeping_samples
from mlcycle.formats._csv_text import (check_csv_bytes, finite_floats, has_decimal_commas, neutralise_cell, read_csv_text, to_float,
                                       unescape_cell)
from mlcycle.formats._invalid import InvalidInput
from mlcycle.formats._writing import num_strings, source_rows, writable_attributes

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa

META = "openimages"
BOX_COLUMNS = ("XMin", "XMax", "YMin", "YMax")
FLAG_COLUMNS = {"IsOccluded": T.OCCLUDED, "IsTruncated": T.TRUNCATED, "IsGroupOf": T.GROUP_OF,
                "IsDepiction": T.DEPICTION, "IsInside": T.INSIDE}
STANDARD = ("ImageID", "Source", "LabelName", "Confidence") + BOX_COLUMNS + tuple(FLAG_COLUMNS)
SUBSETS = ("train", "validation", "test", "val")


def _header(path: Path) -> list[str]:
    try:
        with open(path, "rb") as fh:
            line = fh.readline(4096)
    except OSError:
        return []
    text = line.decode("utf-8", "replace").lstrip("\ufeff").strip()
    return [c.strip().strip('"') for c in text.split(",")]


def _is_box_csv(path: Path) -> bool:
    h = _header(path)
    return "ImageID" in h and "LabelName" in h and all(c in h for c in BOX_COLUMNS)


def _is_label_csv(path: Path) -> bool:
    h = _header(path)
    return "ImageID" in h and "LabelName" in h and "Confidence" in h and "XMin" not in h


def _ann_dir(path: Path) -> Path:
    return path / "annotations" if (path / "annotations").is_dir() else path


def detect(path: Path) -> bool:
    if path.is_file():
        return path.suffix.lower() == ".csv" and (_is_box_csv(path) or _is_label_csv(path))
    if not path.is_dir():
        return False
    import itertools

    ann = _ann_dir(path)
    csvs = (p for p in ann.iterdir() if p.suffix.lower() == ".csv")
    return any(_is_box_csv(p) or _is_label_csv(p) or _is_image_list(p) for p in itertools.islice(csvs, 20))


def _is_image_list(path: Path) -> bool:
    """Open Images' image list (``*-images-with-rotation.csv``, ``image_ids_and_rotation.csv``)."""
    h = _header(path)
    return bool(h) and h[0] == "ImageID" and "Subset" in h and ("OriginalURL" in h or "Rotation" in h)


def _subset(file: Path) -> str | None:
    parts = [p for p in file.stem.lower().split("-") if p not in ("oidv4", "oidv5", "oidv6", "oidv7", "challenge")]
    if parts and parts[0] in SUBSETS + ("tuning",):
        return parts[0]
    return None


# --------------------------------------------------------------------------- reading

class _Reader:
    def __init__(self, options: ReadOptions) -> None:
        self.options = options
        self.problems = InvalidInput(options.skip_invalid, "box", "boxes")
        self.parts: list[dict[str, Any]] = []  # per CSV: columns as numpy/lists
        self.extra: list[str] = []
        self.subset_of: dict[str, str | None] = {}
        self.listed: list[tuple[str, str | None]] = []
        self.meta_sizes: dict[str, tuple[int, int]] = {}
        self.descriptions: dict[str, str] = {}
        self.hierarchy: Any = None
        self.noted = False

    def _flags(self, tab, name: str) -> dict[str, Any]:
        import numpy as np

        out = {}
        for col, attr in FLAG_COLUMNS.items():
            if col not in tab.column_names:
                continue
            v = to_float(tab.column(col), name, col)
            out[attr] = (v == 1, np.isin(v, (0.0, 1.0)))
        return out

    def read_csv(self, path: Path, boxes: bool) -> None:
        import numpy as np

        name = str(path)
        tab = read_csv_text(path)
        tab = tab.rename_columns([c.lstrip("\ufeff").strip() for c in tab.column_names])
        need = ("ImageID", "LabelName") + (BOX_COLUMNS if boxes else ())
        for c in need:
            if c not in tab.column_names:
                raise MlcycleError(f"{name}:1: column '{c}' is missing from the header",
                                   hint="an Open Images box CSV has ImageID,Source,LabelName,Confidence,XMin,XMax,YMin,YMax,...")
        n = tab.num_rows
        num_cols = [tab.column(c) for c in (BOX_COLUMNS if boxes else ()) + ("Confidence",) if c in tab.column_names]
        comma = has_decimal_commas(num_cols)
        if comma:
            from mlcycle import reporting

            reporting.info(f"{name}: numbers are written with decimal commas (\"0,358\"); read them as decimal points")
        ids = tab.column("ImageID")
        if ids.null_count:
            row = int(np.argmin(ids.is_valid().to_numpy(zero_copy_only=False)))
            self.problems.add(f"{name}:{row + 2}: ImageID is empty")
        keep = ids.is_valid().to_numpy(zero_copy_only=False).copy() if n else np.zeros(0, bool)
        # a label without a class (LabelName empty) is invalid, as in every format
        no_label = ~tab.column("LabelName").is_valid().to_numpy(zero_copy_only=False) & keep if n else np.zeros(0, bool)
        self.problems.add_each(np.flatnonzero(no_label).tolist(), lambda i: f"{name}:{i + 2}: LabelName is empty")
        keep &= ~no_label
        part: dict[str, Any] = {"n": n, "name": name, "subset": _subset(path),
                                "ids": ids.to_pylist(), "labels": tab.column("LabelName").to_pylist()}
        if "Source" in tab.column_names:
            part["source"] = tab.column("Source").to_pylist()
        if "Confidence" in tab.column_names:
            part["conf"], bad = finite_floats(tab, "Confidence", name, self.problems, comma)
            keep &= ~bad
        if boxes:
            floats = [finite_floats(tab, c, name, self.problems, comma) for c in BOX_COLUMNS]
            xmin, xmax, ymin, ymax = (v for v, _ in floats)
            nonfinite = np.any([b for _, b in floats], axis=0)
            missing = (np.isnan(xmin) | np.isnan(xmax) | np.isnan(ymin) | np.isnan(ymax)) & ~nonfinite
            for i in np.flatnonzero(missing & keep).tolist():
                vals = ", ".join(f"{c}={printable(tab.column(c)[i].as_py(), 40)!r}" for c in BOX_COLUMNS)
                self.problems.add(f"{name}:{i + 2}: a box coordinate is empty ({vals})")
            bad = nonfinite | missing
            # the one rule for bad geometry: XMax < XMin or YMax < YMin
            bad |= ~check_box_geometry(np.stack([xmin, ymin, xmax - xmin, ymax - ymin], axis=1), self.problems,
                                       lambda i: f"{name}:{i + 2}", present=keep & ~bad,
                                       values=lambda i: ", ".join(f"{c}={tab.column(c)[i].as_py()!r}" for c in BOX_COLUMNS))
            keep &= ~bad
            part["box"] = (xmin, xmax, ymin, ymax)
            part["flags"] = self._flags(tab, name)
        part["keep"] = keep
        # an image whose every label is skipped stays, as a sample row
        self.listed.extend((part["ids"][i], part["subset"]) for i in np.flatnonzero(~keep).tolist() if part["ids"][i])
        extra = [c for c in tab.column_names if c not in STANDARD]
        part["extra"] = {c: tab.column(c).to_pylist() for c in extra}
        for c in extra:
            if c not in self.extra:
                self.extra.append(c)
        self.parts.append(part)

    def read_folder(self, path: Path) -> None:
        ann = _ann_dir(path)
        files = sorted(p for p in ann.iterdir() if p.is_file())
        for f in files:
            low = f.name.lower()
            if f.suffix.lower() != ".csv":
                if low == "images.meta":
                    self.read_meta(f)
                elif low.endswith("hierarchy.json"):
                    from mlcycle.formats._json import load_json

                    self.hierarchy = load_json(f)
                continue
            if _is_box_csv(f):
                self.read_csv(f, boxes=True)
            elif _is_label_csv(f):
                self.read_csv(f, boxes=False)
            elif "class-descriptions" in low:
                self.read_descriptions(f)
            elif _is_image_list(f) or ("ImageID" in _header(f) and ("Subset" in _header(f) or "images" in low)):
                self.read_image_list(f)

    def read_image_list(self, f: Path) -> None:
        """ImageID and Subset of each listed image (other columns ignored; rows with a
        missing trailing field, as in some published lists, are accepted)."""
        import csv as _csv

        with open(f, encoding="utf-8-sig", errors="replace", newline="") as fh:
            for row in _csv.DictReader(fh):
                iid = unescape_cell((row.get("ImageID") or "").strip())
                if iid:
                    self.listed.append((iid, unescape_cell((row.get("Subset") or "").strip()) or _subset(f)))

    def read_meta(self, f: Path) -> None:
        from mlcycle import io
        from mlcycle.formats._json import check_text_encoding, strip_bom, utf8_error

        data = strip_bom(io.read_bytes(f, allow_empty=True))
        check_text_encoding(data, str(f))
        bad = utf8_error(data, str(f))
        if bad is not None:
            raise bad
        for k, line in enumerate(data.decode("utf-8").splitlines()):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.split()
            try:
                iid, h, w = parts[0], int(parts[1]), int(parts[2])
                if not (0 <= h < 2**31 and 0 <= w < 2**31):
                    raise ValueError
            except (IndexError, ValueError):
                raise MlcycleError(f"{f}:{k + 1}: expected 'ImageID height width' (sizes in pixels), "
                                   f"got {printable(line, 80)!r}") from None
            self.meta_sizes[iid] = (w, h)

    def read_descriptions(self, f: Path) -> None:
        import csv as _csv

        with open(f, encoding="utf-8", errors="replace", newline="") as fh:
            for row in _csv.reader(fh):
                if len(row) >= 2 and row[0] != "LabelName":
                    self.descriptions[unescape_cell(row[0])] = unescape_cell(row[1])

    def image_paths(self, root: Path, ids: list[str], subsets: list[str | None]) -> list[Path | None]:
        from mlcycle.formats._images import find_images

        cache: dict[Path, dict[str, Path]] = {}
        out: list[Path | None] = []
        base = Path(self.options.images_root) if self.options.images_root is not None else root
        for iid, sub in zip(ids, subsets):
            found = None
            for folder in ([base / "images" / sub] if sub else []) + [base / "images", base]:
                if folder not in cache:
                    cache[folder] = find_images(folder) if folder.is_dir() else {}
                exact = folder / iid
                if "\0" not in iid and exact.is_file():
                    found = exact
                    break
                hit = cache[folder].get(iid) or cache[folder].get(Path(iid).stem)
                if hit is not None:
                    found = hit
                    break
            out.append(found)
        return out

    def table(self, root: Path) -> "pa.Table":
        import numpy as np
        import pyarrow as pa

        from mlcycle.formats._images import image_sizes

        opts = self.options
        pred = opts.source is not None and opts.source != T.GT_SOURCE
        ids: list[str] = []
        labels: list = []
        subsets: list = []
        src: list = []
        conf_parts, box_parts, has_box_parts = [], [], []
        flags: dict[str, list] = {a: [] for a in FLAG_COLUMNS.values()}
        extra: dict[str, list] = {c: [] for c in self.extra}
        any_flags = set()
        for part in self.parts:
            keep = part["keep"]
            idx = np.flatnonzero(keep)
            k = len(idx)
            ids.extend(part["ids"][i] for i in idx.tolist())
            labels.extend(part["labels"][i] for i in idx.tolist())
            subsets.extend([part["subset"]] * k)
            src.extend((part["source"][i] for i in idx.tolist()) if "source" in part else [None] * k)
            conf_parts.append(part["conf"][idx] if "conf" in part else np.full(k, np.nan))
            if "box" in part:
                box_parts.append(np.stack([c[idx] for c in part["box"]], axis=1))
                has_box_parts.append(np.ones(k, bool))
            else:
                box_parts.append(np.full((k, 4), np.nan))
                has_box_parts.append(np.zeros(k, bool))
            for a in flags:
                if "flags" in part and a in part["flags"]:
                    val, valid = part["flags"][a]
                    flags[a].extend(np.where(valid[idx], val[idx], None).tolist())
                    any_flags.add(a)
                else:
                    flags[a].extend([None] * k)
            for c in extra:
                vals = part["extra"].get(c)
                extra[c].extend([vals[i] for i in idx.tolist()] if vals is not None else [None] * k)
        n_lab = len(ids)
        norm = np.concatenate(box_parts) if box_parts else np.zeros((0, 4))
        has_box = np.concatenate(has_box_parts) if has_box_parts else np.zeros(0, bool)
        conf = np.concatenate(conf_parts) if conf_parts else np.zeros(0)
        # sample rows for listed images without labels
        labelled = set(ids)
        subset_of = {i: s for i, s in self.listed}
        empty = []
        for iid, sub in self.listed:
            if iid not in labelled:
                labelled.add(iid)
                empty.append((iid, sub))
        all_ids = ids + [e[0] for e in empty]
        all_subsets = [s if s is not None else subset_of.get(i) for i, s in zip(ids, subsets)] + [e[1] for e in empty]
        n = len(all_ids)
        # image sizes
        uniq = list(dict.fromkeys(all_ids))
        pos = {s: k for k, s in enumerate(uniq)}
        W = np.full(len(uniq), -1, np.int64)
        H = np.full(len(uniq), -1, np.int64)
        todo = []
        for k, s in enumerate(uniq):
            wh = self.meta_sizes.get(s)
            if wh is not None:
                W[k], H[k] = wh
            else:
                todo.append(k)
        if todo:
            first_subset = {}
            for s, sub in zip(all_ids, all_subsets):
                first_subset.setdefault(s, sub)
            t_ids = [uniq[k] for k in todo]
            paths = self.image_paths(root, t_ids, [first_subset.get(s) for s in t_ids])
            w2, h2 = image_sizes(t_ids, root, opts, paths=paths)
            W[todo], H[todo] = w2, h2
        row_pos = np.fromiter((pos[s] for s in all_ids), dtype=np.int64, count=n)
        w_row, h_row = W[row_pos].astype(np.float64), H[row_pos].astype(np.float64)
        unknown = (w_row[:n_lab] < 0) & has_box
        if unknown.any():
            from mlcycle import reporting

            reporting.warn(f"{int(unknown.sum())} box(es) on images of unknown size skipped")
        keep = np.concatenate([~unknown, np.ones(n - n_lab, bool)])
        bbox = np.full((n, 4), np.nan)
        xmin, xmax, ymin, ymax = norm.T if len(norm) else (np.zeros(0),) * 4
        wl, hl = w_row[:n_lab], h_row[:n_lab]
        bbox[:n_lab] = np.stack([xmin * wl, ymin * hl, (xmax - xmin) * wl, (ymax - ymin) * hl], axis=1) if n_lab else bbox[:0]
        valid_box = np.concatenate([has_box & ~unknown, np.zeros(n - n_lab, bool)])
        self.problems.report()

        cols: dict[str, Any] = {
            T.SAMPLE_ID: all_ids,
            T.SOURCE: [opts.source or T.GT_SOURCE] * n,
            T.LABEL_ID: pa.array(np.concatenate([np.arange(1, n_lab + 1), np.zeros(n - n_lab, np.int64)]),
                                 mask=np.concatenate([np.zeros(n_lab, bool), np.ones(n - n_lab, bool)]), type=pa.int64()),
            T.LABEL: labels + [None] * (n - n_lab),
            T.BBOX: T.bbox_array(bbox, valid=valid_box),
        }
        conf_all = np.concatenate([conf, np.full(n - n_lab, np.nan)])
        conf_arr = pa.array(conf_all, mask=np.isnan(conf_all), type=pa.float64())
        if pred:
            cols[T.SCORE] = conf_arr
        known = W[row_pos] >= 0
        cols[T.WIDTH] = pa.array(W[row_pos], mask=~known, type=pa.int32())
        cols[T.HEIGHT] = pa.array(H[row_pos], mask=~known, type=pa.int32())
        split = [opts.split] * n if opts.split is not None else all_subsets
        if any(s is not None for s in split):
            cols[T.SPLIT] = split
        if not pred and np.isfinite(conf_all).any():
            cols[T.CONFIDENCE] = conf_arr
        if any(s is not None for s in src):
            cols[T.ANNOTATION_SOURCE] = pa.array(src + [None] * (n - n_lab), type=pa.string())
        for a, vals in flags.items():
            if a in any_flags:
                cols[a] = pa.array(vals + [None] * (n - n_lab), type=pa.bool_())
        for c, vals in extra.items():
            cols[c] = pa.array(vals + [None] * (n - n_lab), type=pa.string())
        meta: dict[str, Any] = {META: {"class_descriptions": self.descriptions, "extra_columns": self.extra,
                                       "hierarchy": self.hierarchy}}
        if opts.images_root is not None:
            meta["images_root"] = str(opts.images_root)
        return filter_keeping_samples(T.from_columns(cols, meta), keep)


def read(path: Path, options: ReadOptions | None = None) -> "pa.Table":
    options = options or ReadOptions()
    path = Path(path)
    reader = _Reader(options)
    if path.is_dir():
        reader.read_folder(path)
        if not reader.parts and not reader.listed:
            raise MlcycleError(f"{path}: no Open Images annotation CSV (ImageID,LabelName,XMin,XMax,YMin,YMax) here")
        root = path
    else:
        if not path.is_file():
            raise MlcycleError(f"{path}: no such file or folder")
        from mlcycle import io

        check_csv_bytes(io.read_bytes(path), str(path))  # encoding, or a JSON/XML file given as CSV
        if _is_box_csv(path):
            reader.read_csv(path, boxes=True)
        elif _is_label_csv(path):
            reader.read_csv(path, boxes=False)
        else:
            h = ",".join(_header(path))[:120]
            raise MlcycleError(f"{path}:1: not an Open Images CSV: the header is {h!r}",
                               hint="expected ImageID,Source,LabelName,Confidence,XMin,XMax,YMin,YMax,...")
        root = path.parent
    return reader.table(root)


# --------------------------------------------------------------------------- writing

def _csv_text(header: list[str], rows: list[list[str]]) -> str:
    """CSV text; ``rows`` already have their text cells neutralised (``_text``)."""
    import csv as _csv
    import io as _io

    buf = _io.StringIO()
    w = _csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue()


def _tables(table: "pa.Table", source: str | None) -> dict[str, Any]:
    """The CSV texts (by file name relative to annotations/), plus image list and sizes."""
    import numpy as np

    meta = T.get_metadata(table).get(META) or {}
    chosen = source_rows(table, source)[0]
    pred = chosen.num_rows and chosen.column(T.SOURCE)[0].as_py() != T.GT_SOURCE
    t = chosen
    n = t.num_rows
    col = lambda c: t.column(c).to_pylist() if c in t.column_names else [None] * n  # noqa: E731
    samples, labels, splits = col(T.SAMPLE_ID), col(T.LABEL), col(T.SPLIT)
    widths, heights = col(T.WIDTH), col(T.HEIGHT)
    conf = col(T.SCORE) if pred and T.SCORE in t.column_names else col(T.CONFIDENCE)
    if not any(v is not None for v in conf):
        conf = col(T.SCORE) if T.SCORE in t.column_names else conf
    src = col(T.ANNOTATION_SOURCE)
    flags = {c: col(a) for c, a in FLAG_COLUMNS.items()}
    extra_cols = [c for c in meta.get("extra_columns", []) if c in t.column_names]
    extra = {c: col(c) for c in extra_cols}
    boxes = T.bboxes(t)
    has_box = ~np.isnan(boxes).all(axis=1)
    is_label = T.label_mask(t)
    header = list(STANDARD) + extra_cols
    box_rows: dict[str | None, list[list[str]]] = {}
    label_rows: dict[str | None, list[list[str]]] = {}
    missing = [i for i in np.flatnonzero(has_box).tolist() if not widths[i] or not heights[i]]
    if missing:
        i = missing[0]
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise MlcycleError(f"sample {samples[i]!r} has a box but no width/height{more}; Open Images stores boxes as fractions of the image size",
                           hint=f"ingest with {mention('image_sizes')} TABLE or {mention('image_size')} WxH so the table has the sizes")

    def flag(v: Any) -> str:
        return "-1" if v is None else ("1" if v else "0")

    # a crowd region is a group of objects: IsGroupOf=1 (never an ordinary object)
    crowd = col(T.ISCROWD)
    if any(crowd):
        flags["IsGroupOf"] = [True if c else g for c, g in zip(crowd, flags["IsGroupOf"])]

    # fractions as text, vectorised (shortest text that reads back to the same float)
    Wf = np.array([np.nan if v is None else float(v) for v in widths], dtype=np.float64)
    Hf = np.array([np.nan if v is None else float(v) for v in heights], dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        fr = [num_strings(v) for v in (boxes[:, 0] / Wf, (boxes[:, 0] + boxes[:, 2]) / Wf,
                                       boxes[:, 1] / Hf, (boxes[:, 1] + boxes[:, 3]) / Hf)]
    conf_s = num_strings([np.nan if v is None else v for v in conf]) if n else []
    flag_s = [[flag(v) for v in flags[k]] for k in FLAG_COLUMNS]
    for i in np.flatnonzero(is_label).tolist():
        c = "" if conf[i] is None else conf_s[i]
        s = _text(src[i])
        lab = _text(labels[i])
        if has_box[i]:
            row = [_text(samples[i]), s, lab, c, fr[0][i], fr[1][i], fr[2][i], fr[3][i]]
            row += [f[i] for f in flag_s]
            row += [_text(extra[k][i]) for k in extra_cols]
            box_rows.setdefault(splits[i], []).append(row)
        else:
            label_rows.setdefault(splits[i], []).append([_text(samples[i]), s, lab, c])
    first: dict[str, int] = {}
    for i, s in enumerate(samples):
        first.setdefault(s, i)

    dropped = writable_attributes(t, tuple(FLAG_COLUMNS.values()) + (T.CONFIDENCE, T.ANNOTATION_SOURCE) + tuple(extra_cols),
                                  commands=True)
    return {"header": header, "boxes": box_rows, "labels": label_rows, "dropped": dropped,
            "images": [(s, splits[i], widths[i], heights[i]) for s, i in first.items()],
            "descriptions": meta.get("class_descriptions") or {}}


def _text(value: Any) -> str:
    """A text cell: empty for null, formula-like text neutralised (OWASP)."""
    return "" if value is None else neutralise_cell(str(value))


def write(table: "pa.Table", output: Path | None, options: WriteOptions | None = None) -> None:
    from mlcycle import io, reporting

    options = options or WriteOptions()
    doc = _tables(table, options.source)
    if doc["dropped"]:
        reporting.warn("columns Open Images has no place for, not written: " + ", ".join(doc["dropped"]))
    folder = output is not None and (Path(output).is_dir() or str(output).endswith(("/", os.sep)) or not Path(output).suffix)
    if not folder:
        rows = [r for part in doc["boxes"].values() for r in part]
        n_labels = sum(len(v) for v in doc["labels"].values())
        if n_labels:
            reporting.warn(f"{n_labels} image-level label(s) not written: a box CSV holds boxes only (write a folder to keep them)")
        splits = sorted({sp for _, sp, _, _ in doc["images"] if sp is not None})
        if splits:
            reporting.warn(f"split ({', '.join(printable(x) for x in splits[:5])}) not written: a box CSV has no place "
                           "for it (write a folder: one file per split)")
        with io.atomic_output(output, "wb") as fh:
            fh.write(_csv_text(doc["header"], rows).encode("utf-8"))
        return
    for split in list(doc["boxes"]) + list(doc["labels"]):
        if split is not None and ("/" in split or "\\" in split or split in ("", ".", "..")):
            raise MlcycleError(f"split {printable(split)!r} cannot be part of a file name")
    with io.atomic_folder(output) as tmp:  # all files or none
        _write_folder(tmp / "annotations", doc)


def _write_folder(ann: Path, doc: dict) -> None:
    from mlcycle import io

    ann.mkdir(parents=True, exist_ok=True)

    def fname(split: str | None, kind: str) -> str:
        return f"{split}-annotations-{kind}.csv" if split else f"annotations-{kind}.csv"

    for split, rows in doc["boxes"].items():
        with io.atomic_output(ann / fname(split, "bbox"), "wb") as fh:
            fh.write(_csv_text(doc["header"], rows).encode("utf-8"))
    for split, rows in doc["labels"].items():
        with io.atomic_output(ann / fname(split, "human-imagelabels"), "wb") as fh:
            fh.write(_csv_text(["ImageID", "Source", "LabelName", "Confidence"], rows).encode("utf-8"))
    with io.atomic_output(ann / "image_ids_and_rotation.csv", "wb") as fh:
        fh.write(_csv_text(["ImageID", "Subset"], [[_text(s), _text(sp)] for s, sp, _, _ in doc["images"]]).encode("utf-8"))
    meta_lines = [f"{s} {h} {w}" for s, _, w, h in doc["images"] if w is not None and h is not None and len(s.split()) == 1 and s == s.strip()]
    with io.atomic_output(ann / "images.meta", "wb") as fh:
        fh.write(("\n".join(meta_lines) + ("\n" if meta_lines else "")).encode("utf-8"))
    if doc["descriptions"]:
        with io.atomic_output(ann / "class-descriptions.csv", "wb") as fh:
            fh.write(_csv_text(["LabelName", "DisplayName"], [[_text(k), _text(v)] for k, v in doc["descriptions"].items()]).encode("utf-8"))
