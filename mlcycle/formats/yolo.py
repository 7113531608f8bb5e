"""YOLO txt labels <-> label table (detection boxes; predictions with a confidence).

Layouts read (found from the folder's structure, not from file names alone):

- **Ultralytics**: ``data.yaml`` (``names`` as a list or an index map) with
  ``images/<split>/`` + ``labels/<split>/`` or ``<split>/images/`` + ``<split>/labels/``
  (Roboflow); the image of ``labels/train/a/x.txt`` is ``images/train/a/x.*``.
- **Darknet** (CVAT, Datumaro): ``obj.names``, ``obj.data``, list files such as
  ``train.txt`` (``data/obj_train_data/x.jpg``) and ``obj_<split>_data/`` with the txt
  files next to the images.
- **Flat** (labelImg): ``classes.txt`` and ``x.txt`` next to ``x.jpg``.

Class names come from ``data.yaml``/``*.yaml`` ``names``, else ``classes.txt``,
``obj.names`` or another ``*.names`` file; without one the read fails (class indices
alone are not names).

Each line is ``class cx cy w h`` with the centre and size as fractions of the image
size, or ``class cx cy w h conf`` (Ultralytics ``save_conf``): then the rows are
predictions (source ``pred`` unless ``--source``) with ``score`` = conf. The pixel box
is ``x = (cx - w/2) * W``, ``y = (cy - h/2) * H``, ``w * W``, ``h * H``; the image size
comes from the image header, ``--image-size`` or ``--image-sizes`` (see ``_images``).

``sample_id`` is the image path relative to its split's image folder
(``images/train/a/x.jpg`` -> ``a/x.jpg``, split ``train``); ``category_id`` is the class
index. Invalid lines (not 5 or 6 numbers, class index out of range, negative size,
values outside 0..1) are errors naming file and line; ``--skip-invalid`` skips them
with a counted warning.

Writing produces the Ultralytics layout by default (``data.yaml``, ``labels/<split>/``,
one list file per split naming the images so that empty images and file extensions
survive; images are copied into ``images/<split>/`` when ``--images-root`` is given),
or the darknet layout (``layout=darknet``: ``obj.names``, ``obj.data``, ``<split>.txt``,
``obj_<split>_data/``). Values are written with 6 decimals, as CVAT and Datumaro do:
a box corner moves by at most about 1e-6 x the image size. Crowd regions (``iscrowd``)
are not written (YOLO has no flag for them; a warning counts them); a class name with a
control character, or empty, is refused (it would shift the class list). The folder is
written all or nothing; images are copied only as regular files inside the images root.

Size: three layouts (Ultralytics, darknet, flat) read by one folder walk and written
by one writer, plus the bounded data.yaml loader (aliases expanded at most
``YAML_MAX_NODES`` values); splitting them would scatter one layout's rules.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from mlcycle import table as T
from mlcycle import yamlsafe
from mlcycle.errors import MlcycleError, OptionError, mention, printable
from mlcycle.formats import ReadOptions
from mlcycle.formats import WriteOptions as CommonWriteOptions
from mlcycle.formats._assemble import assemble
from mlcycle.formats._invalid import InvalidInput
from mlcycle.formats._paths import SPLIT_NAMES, read_head, read_regular, relative_entry
from mlcycle.formats._tokens import floats, text_files, tokenize
from mlcycle.formats._writing import class_names, source_rows, unique_samples
from mlcycle.formats._images import IMAGE_EXTENSIONS

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa

META = "yolo"
NAME_FILES = ("classes.txt", "obj.names", "names.txt", "classes.names")
_OBJ_DATA = re.compile(r"^obj_(.+)_data$")
_TOL = 1e-3  # normalised values a hair outside 0..1 (rounding in other tools) are accepted


# --------------------------------------------------------------------------- detection

def _yaml_files(root: Path) -> list[Path]:
    return sorted(p for p in root.glob("*.y*ml") if p.suffix.lower() in (".yaml", ".yml"))


def _has_names(root: Path) -> bool:
    if any((root / n).is_file() for n in NAME_FILES) or any(root.glob("*.names")):
        return True
    for y in _yaml_files(root):
        head = read_head(y)
        if head is None:
            continue
        if re.search(rb"(?m)^names\s*:", head):
            return True
    return False


def detect(path: Path) -> bool:
    if path.is_file():
        return path.name in ("data.yaml", "obj.data") and _has_names(path.parent)
    if not path.is_dir() or not _has_names(path):
        return False
    for sub in ("labels", "Annotations"):
        d = path / sub
        if d.is_dir() and next(d.rglob("*.txt"), None) is not None:
            return True
    for d in path.iterdir():
        if d.is_dir() and (_OBJ_DATA.match(d.name) or (d / "labels").is_dir()):
            if next(d.rglob("*.txt"), None) is not None:
                return True
    # flat: label txt files next to the names file, their first line numeric
    for p in sorted(path.glob("*.txt"))[:20]:
        if p.name in NAME_FILES:
            continue
        head = read_head(p, 200)
        if head is None:
            continue
        line = head.split(b"\n", 1)[0].split()
        if len(line) in (5, 6) and line[0].isdigit():
            return True
    return False


LAYOUTS = ("ultralytics", "darknet", "flat")


@dataclass(frozen=True)
class WriteOptions(CommonWriteOptions):
    """YOLO's write options: ``layout`` is ``"ultralytics"``, ``"darknet"`` or ``"flat"``
    (default: the layout the table was read from, else ultralytics)."""

    layout: str | None = None

    def __post_init__(self) -> None:
        if self.layout is not None and self.layout not in LAYOUTS:
            raise OptionError("layout", f"unknown YOLO layout {self.layout!r}", hint="ultralytics, darknet or flat")


# --------------------------------------------------------------------------- layout

YAML_MAX_BYTES = 1 << 20  # a data.yaml is a few lines; a bigger one is not a YOLO data.yaml


def _load_yaml(y: Path) -> Any:
    """A data.yaml, loaded safely and in bounded time: the document is composed first
    (aliases shared, not copied), and refused when expanding its aliases would give more
    than ``yamlsafe.MAX_NODES`` values (the "billion laughs" bomb), before anything is built;
    a file over ``YAML_MAX_BYTES`` is refused unread."""
    import yaml

    data = read_regular(y)
    if len(data) > YAML_MAX_BYTES:
        raise MlcycleError(f"{y}: {len(data)} bytes is too big for a YOLO data.yaml (limit {YAML_MAX_BYTES})")
    text = text_files([data], [str(y)])[0].decode("utf-8")
    try:
        return yamlsafe.load(text, str(y))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{y}:{mark.line + 1}" if mark is not None else str(y)
        raise MlcycleError(f"{where}: cannot read YAML: {printable(getattr(exc, 'problem', None) or str(exc).splitlines()[0])}") from None


def _name(v: Any, y: Path, k: Any) -> str:
    if isinstance(v, (list, dict)):
        raise MlcycleError(f"{y}: 'names' entry {printable(k)} is a {type(v).__name__}, not a class name")
    return str(v)


def _read_names(root: Path) -> tuple[list[str], str]:
    for y in _yaml_files(root):
        doc = _load_yaml(y)
        if isinstance(doc, dict) and "names" in doc:
            names = doc["names"]
            if isinstance(names, dict):
                try:
                    keys = sorted(int(k) for k in names)
                except (TypeError, ValueError, OverflowError):
                    raise MlcycleError(f"{y}: 'names' keys must be class indices") from None
                if keys != list(range(len(keys))):
                    raise MlcycleError(f"{y}: 'names' indices must be 0..{len(keys) - 1}")
                by = {int(k): v for k, v in names.items()}
                return [_name(by[k], y, k) for k in keys], str(y)
            if isinstance(names, list):
                return [_name(n, y, k) for k, n in enumerate(names)], str(y)
            raise MlcycleError(f"{y}: 'names' must be a list or a map of index -> name")
    candidates = [root / n for n in NAME_FILES] + sorted(root.glob("*.names"))
    obj_data = root / "obj.data"
    if obj_data.is_file():
        for line in read_regular(obj_data).decode("utf-8", errors="replace").splitlines():
            k, _, v = line.partition("=")
            if k.strip() == "names" and v.strip():
                candidates.insert(0, root / PurePosixPath(v.strip().replace("\x00", "")).name)
    for c in candidates:
        if c.is_file():
            text = text_files([read_regular(c)], [str(c)])[0].decode("utf-8")
            names = [ln.strip() for ln in text.split("\n")]  # as written: one name a line
            while names and not names[-1]:
                names.pop()
            return names, str(c)
    raise MlcycleError(f"{root}: missing classes.txt (no classes.txt, obj.names or data.yaml with 'names')",
                       hint="YOLO labels hold class indices; put the class names, one a line, in classes.txt")


def _yaml_splits(root: Path) -> set[str] | None:
    """Split folder names declared in data.yaml (``train: images/train`` -> train,
    ``val: ../valid/images`` -> valid); None without a YAML file naming splits."""
    found: set[str] | None = None
    for y in _yaml_files(root):
        try:
            doc = _load_yaml(y)
        except MlcycleError:
            continue
        if not isinstance(doc, dict):
            continue
        for key in ("train", "val", "test", "valid", "minival"):
            vals = doc.get(key)
            for v in (vals if isinstance(vals, list) else [vals]):
                if not isinstance(v, str):
                    continue
                parts = PurePosixPath(v.replace("\\", "/")).parts
                found = found if found is not None else set()
                if "images" in parts:
                    k = len(parts) - 1 - parts[::-1].index("images")
                    if k + 1 < len(parts):
                        found.add(parts[k + 1])
                    elif k > 0:
                        found.add(parts[k - 1])
                elif parts and PurePosixPath(parts[-1]).suffix == ".txt":
                    found.add(PurePosixPath(parts[-1]).stem)
    return found


_split_names: set[str] | None = None


def _is_split(name: str) -> bool:
    if _split_names is not None:
        return name in _split_names
    return name.lower() in SPLIT_NAMES


def _locate(parts: tuple[str, ...], kind: str, last: bool = False) -> tuple[str | None, tuple[str, ...], tuple[str, ...]]:
    """For a file's folder parts (relative to the root): (split, folder parts of the
    sample id, folder parts of the image folder). ``kind`` is 'labels' or 'images'.
    The ``labels``/``images`` folder is the first one under the root (a sample id may
    itself start with ``images/``); ``last``: the last one (an absolute path in a list
    file, written on another machine)."""
    for lab, img in (("labels", "images"), ("Annotations", "Images")):
        own = lab if kind == "labels" else img
        if own in parts:
            k = len(parts) - 1 - parts[::-1].index(own) if last else parts.index(own)
            image_base = list(parts[:k]) + [img]
            if k + 1 < len(parts) and _is_split(parts[k + 1]):  # labels/<split>/...
                split = parts[k + 1]
                return split, parts[k + 2:], tuple(image_base + [split])
            if k > 0:  # <split>/labels/...
                return parts[k - 1], parts[k + 1:], tuple(image_base)
            return None, parts[k + 1:], tuple(image_base)
    for k in range(len(parts) - 1, -1, -1):
        m = _OBJ_DATA.match(parts[k])
        if m:
            return m.group(1), parts[k + 1:], parts[:k + 1]
    return None, parts, parts


def _list_entries(root: Path) -> dict[tuple[str | None, str], str]:
    """Image list files (darknet ``train.txt``, Ultralytics ``train: train.txt``):
    (split, sample path without extension) -> sample id with extension."""
    out: dict[tuple[str | None, str], str] = {}
    for p in sorted(root.glob("*.txt")):
        if p.name in NAME_FILES:
            continue
        data = read_head(p, 1 << 30)
        if data is None:
            continue
        text = data.decode("utf-8", errors="replace")
        lines = [ln.strip() for ln in text.split("\n") if ln.strip()]
        if not lines or not all(PurePosixPath(ln).suffix.lower() in IMAGE_EXTENSIONS for ln in lines[:50]):
            continue
        for ln in lines:
            pp = PurePosixPath(ln.replace("\\", "/"))
            absolute = pp.is_absolute() or ".." in pp.parts
            parts = tuple(x for x in pp.parts[:-1] if x not in (".", "", "/"))
            if parts and parts[0] == "data" and not (root / "data").is_dir():
                parts = parts[1:]
            split, rel, _ = _locate(parts, "images", last=absolute)
            if absolute and split is None and rel == parts:
                continue  # outside this folder, with no images/ or obj_<split>_data/ to anchor it
            if split is None and p.stem in SPLIT_NAMES and not any(_OBJ_DATA.match(x) or x == "images" for x in parts):
                split = p.stem
            sid = "/".join((*rel, pp.name))
            if not relative_entry(sid):
                # not an image under this folder (or a damaged line): the list only
                # adds images without labels and file extensions, so it is not used
                continue
            out.setdefault((split, "/".join((*rel, pp.stem))), sid)
    return out


def _scan(root: Path) -> tuple[list[tuple[str, ...]], list[tuple[str, ...]]]:
    """Relative paths (as parts) of txt files and image files under root."""
    txts: list[tuple[str, ...]] = []
    images: list[tuple[str, ...]] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        rel = os.path.relpath(dirpath, root)
        base = () if rel == "." else tuple(PurePosixPath(rel.replace(os.sep, "/")).parts)
        for f in sorted(filenames):
            ext = os.path.splitext(f)[1].lower()
            if ext == ".txt":
                txts.append(base + (f,))
            elif ext in IMAGE_EXTENSIONS:
                images.append(base + (f,))
    return txts, images


# --------------------------------------------------------------------------- reading

def read(path: Path, options: ReadOptions | None = None) -> "pa.Table":
    import numpy as np

    from mlcycle.formats._images import image_sizes

    options = options or ReadOptions()
    path = Path(path)
    root = path.parent if path.is_file() else path
    if not root.is_dir():
        raise MlcycleError(f"{path}: no such folder")
    names, names_file = _read_names(root)
    global _split_names
    _split_names = _yaml_splits(root)
    txts, imgs = _scan(root)
    deep = any(len(t) > 1 and (t[0] in ("labels", "Annotations") or _OBJ_DATA.match(t[0])
                   or (len(t) > 2 and t[1] == "labels")) for t in txts)
    entries = _list_entries(root)
    label_files = [t for t in txts if (len(t) > 1 and not (deep and len(t) == 2 and _is_list_file(root.joinpath(*t))))
                   or (not deep and t[-1] not in NAME_FILES and not _is_list_file(root / t[-1]))]

    # samples: key (split, path without extension) -> [sample_id, image path or None, label file]
    # (plain strings: this loop runs once per image and once per label file)
    base = str(root)
    join = os.path.join
    splitext = os.path.splitext
    samples: dict[tuple[str | None, str], list[Any]] = {}
    for parts in imgs:
        if len(parts) == 1 and deep:
            continue
        split, rel, _ = _locate(parts[:-1], "images")
        stem, ext = splitext(parts[-1])
        prefix = "/".join(rel) + "/" if rel else ""
        samples.setdefault((split, prefix + stem), [prefix + parts[-1], join(base, *parts), None])
    for (split, key_path), sid in entries.items():
        samples.setdefault((split, key_path), [sid, None, None])
    for parts in label_files:
        split, rel, image_dir = _locate(parts[:-1], "labels")
        stem = splitext(parts[-1])[0]
        prefix = "/".join(rel) + "/" if rel else ""
        key = (split, prefix + stem)
        rec = samples.get(key)
        if rec is None:
            rec = samples[key] = [prefix + stem + ".jpg", None, None]
        if rec[1] is None:
            rec[1] = join(base, *image_dir, *rec[0].split("/"))
        rec[2] = join(base, *parts)
    keys = sorted(samples, key=lambda k: (k[0] or "", samples[k][0]))
    sample_ids = [samples[k][0] for k in keys]
    splits = [k[0] for k in keys]
    files = [samples[k][2] for k in keys]
    with_labels = [i for i, f in enumerate(files) if f is not None]
    contents = text_files([_read(files[i]) for i in with_labels], [files[i] for i in with_labels])
    problems = InvalidInput(options.skip_invalid, "YOLO line")
    parsed = parse_lines(contents, [str(files[i]) for i in with_labels], len(names), problems, names_file)
    file_idx, cls, norm, conf = parsed
    label_sample = np.asarray(with_labels, dtype=np.int64)[file_idx] if len(file_idx) else np.zeros(0, np.int64)

    paths = None if options.images_root is not None else [samples[k][1] for k in keys]
    widths, heights = image_sizes(sample_ids, root, options, paths=paths)
    W = widths[label_sample].astype(np.float64)
    H = heights[label_sample].astype(np.float64)
    known = (W > 0) & (H > 0)
    if not known.all():
        from mlcycle import reporting

        reporting.warn(f"skipped {int((~known).sum())} box(es) on images of unknown size")
        keep = known
        label_sample, cls, norm, W, H = label_sample[keep], cls[keep], norm[keep], W[keep], H[keep]
        conf = conf[keep] if conf is not None else None
    boxes = np.empty((len(cls), 4))
    boxes[:, 0] = (norm[:, 0] - norm[:, 2] / 2) * W
    boxes[:, 1] = (norm[:, 1] - norm[:, 3] / 2) * H
    boxes[:, 2] = norm[:, 2] * W
    boxes[:, 3] = norm[:, 3] * H
    problems.report()
    name_arr = np.asarray(names, dtype=object)
    source = options.source or (T.DEFAULT_PRED_SOURCE if conf is not None else T.GT_SOURCE)
    if options.split is not None:
        splits = [options.split] * len(splits)
    layout = "darknet" if any(_OBJ_DATA.match(p) for t in label_files for p in t[:-1]) else (
        "ultralytics" if deep else "flat")
    meta: dict[str, Any] = {META: {"classes": names, "layout": layout}}
    if options.images_root is not None:
        meta["images_root"] = str(options.images_root)
    return assemble(sample_ids=sample_ids, splits=splits, widths=widths, heights=heights,
                    label_sample=label_sample, labels=name_arr[cls] if len(cls) else [],
                    category_ids=cls, boxes=boxes, scores=conf, source=source, metadata=meta)


def _read(path: str) -> bytes:
    return read_regular(path)


def _is_list_file(p: Path) -> bool:
    head = read_head(p, 1 << 14)
    if head is None:
        return False
    lines = [ln.strip() for ln in head.decode("utf-8", errors="replace").split("\n")[:20] if ln.strip()]
    return bool(lines) and all(PurePosixPath(ln).suffix.lower() in IMAGE_EXTENSIONS for ln in lines)


def parse_lines(contents: list[bytes], names: list[str], n_classes: int, problems: InvalidInput,
                names_file: str = "classes.txt"):
    """Parse all label files at once (numpy over the joined bytes, no per-line Python).

    Returns (file index per label, class index, (n, 4) normalised cx cy w h, conf or None).
    """
    import numpy as np

    if not contents:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 4)), None
    tk = tokenize(contents)
    tok_line, counts, file_first_line = tk["line"], tk["counts"], tk["first_line"]

    def where(line: int) -> str:
        f, ln = tk["where"](line)
        return f"{names[f]}:{ln}"

    tokens = np.array(tk["tokens"])
    values, bad = floats(tokens, np.arange(len(tokens)))
    bad_tok = bad if bad.any() else None
    used = counts > 0
    bad_count = used & (counts != 5) & (counts != 6)
    bad_line = bad_count.copy()
    if bad_tok is not None:
        bad_line[np.unique(tok_line[bad_tok])] = True
    line_ids = np.flatnonzero(used)
    first_tok = (np.cumsum(counts) - counts)[line_ids]
    lc = counts[line_ids]
    ok_shape = ~bad_line[line_ids]
    safe_first = np.where(ok_shape, first_tok, 0)
    cls_f = values[safe_first] if len(values) else np.zeros(len(line_ids))
    norm = np.stack([values[np.minimum(safe_first + k, len(values) - 1)] for k in range(1, 5)], axis=1) \
        if len(values) else np.zeros((len(line_ids), 4))
    has_conf = ok_shape & (lc == 6)
    conf = np.where(has_conf, values[np.minimum(safe_first + 5, len(values) - 1)], np.nan) if len(values) else np.zeros(0)

    reasons: list[tuple[np.ndarray, str]] = []
    if bad_count.any() or bad_line.any():
        reasons.append((~ok_shape, "malformed"))
    with np.errstate(invalid="ignore"):
        cls_ok = ok_shape & np.isfinite(cls_f) & (cls_f == np.round(cls_f)) & (cls_f >= 0)
        range_bad = cls_ok & (cls_f >= n_classes)
        fin = np.isfinite(norm).all(axis=1) & np.where(has_conf, np.isfinite(conf), True)
        neg = ok_shape & fin & ((norm[:, 2] < 0) | (norm[:, 3] < 0))
        outside = ok_shape & fin & ~neg & ((norm < -_TOL) | (norm > 1 + _TOL)).any(axis=1)
    reasons += [
        (ok_shape & ~cls_ok, "class"),
        (range_bad, "range"),
        (ok_shape & cls_ok & ~fin, "finite"),
        (neg, "negative"),
        (outside, "outside"),
    ]
    invalid = np.zeros(len(line_ids), dtype=bool)
    for mask, _ in reasons:
        invalid |= mask
    if invalid.any():
        first = int(np.argmax(invalid))
        kinds = [k for mask, k in reasons if mask[first]]
        line = int(line_ids[first])
        n_tokens = int(lc[first])
        msg = {
            "malformed": f"malformed line: expected 'class cx cy w h' (5 numbers) or with a confidence (6), got {n_tokens} value(s)"
                         + (" that are not all numbers" if bad_tok is not None and n_tokens in (5, 6) else ""),
            "class": f"class index {tokens[first_tok[first]].decode('utf-8', 'replace')!r} is not a non-negative integer",
            "range": f"class index {cls_f[first]:.15g} is out of range: {names_file} names {n_classes} class(es) (0..{n_classes - 1})",
            "finite": "a value is not finite (nan or inf)",
            "negative": "box has negative width or height (x2 < x1 or y2 < y1)",
            "outside": "values must be fractions of the image size (0..1); are these pixel coordinates?",
        }[kinds[0]]
        problems.add(f"{where(line)}: {msg}", count=int(invalid.sum()))
    keep = ~invalid
    file_idx = np.searchsorted(file_first_line, line_ids[keep], side="right") - 1
    confs = conf[keep] if has_conf.any() else None
    return file_idx.astype(np.int64), cls_f[keep].astype(np.int64), norm[keep], confs


# --------------------------------------------------------------------------- writing

def check_class_names(names: list[str], fmt: str = "YOLO") -> None:
    """Refuse class names a one-name-a-line file cannot hold: a control character
    (a newline would shift every class after it), an empty name, or spaces around it."""
    for k, n in enumerate(names):
        if _CONTROL.search(n) or not n.strip() or n != n.strip():
            what = "is empty" if not n.strip() else (
                "has a control character (newline, tab ...)" if _CONTROL.search(n) else "starts or ends with a space")
            raise MlcycleError(f"class '{printable(n)}' (index {k}) {what}: {fmt} keeps one class name a line, "
                               "so it would not read back as the same classes",
                               hint="rename the class (e.g. mlcycle remap), then export again")


_CONTROL = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]")


def write(table: "pa.Table", output: Path | None, options: CommonWriteOptions | None = None) -> None:
    import numpy as np

    from mlcycle import io
    from mlcycle.formats._paths import safe_join

    options = WriteOptions.of(options)
    if output is None:
        raise OptionError("output", "yolo writes a folder, not to standard output", hint="name the folder to write")
    final = Path(output)
    rows, _ = source_rows(table, options.source)
    names = class_names(table, META)
    check_class_names(names)
    meta = T.get_metadata(table).get(META, {})
    layout = options.layout or (meta.get("layout") if isinstance(meta, dict) else None) or "ultralytics"
    if layout not in LAYOUTS:
        raise MlcycleError(f"the table's metadata names an unknown YOLO layout {layout!r}", hint="ultralytics, darknet or flat")
    sids, row_sample, splits = unique_samples(rows)
    if layout == "darknet":
        splits = [s or "train" for s in splits]
    images_root = options.images_root
    # -- where each sample's label file and image go
    label_paths: list[Path] = []
    image_paths: list[Path] = []
    out = final
    for sid, split in zip(sids, splits):
        rel = PurePosixPath(str(sid).replace("\\", "/"))
        safe_join(out, str(sid))  # refuse absolute paths and '..' in the sample id itself
        stem_txt = str(rel.with_suffix(".txt")) if rel.suffix else str(rel) + ".txt"
        if layout == "ultralytics":
            lab = f"labels/{split}/{stem_txt}" if split else f"labels/{stem_txt}"
            img = f"images/{split}/{rel}" if split else f"images/{rel}"
        elif layout == "darknet":
            lab = f"obj_{split}_data/{stem_txt}"
            img = f"obj_{split}_data/{rel}"
        else:
            lab, img = stem_txt, str(rel)
        if split is not None and ("/" in split or split in ("..", ".", "")):
            raise MlcycleError(f"split {split!r} cannot be a folder name")
        label_paths.append(PurePosixPath(lab))
        image_paths.append(PurePosixPath(img))
        safe_join(out, lab)
        safe_join(out, img)

    # -- label lines, grouped by sample
    is_label = T.label_mask(rows)
    boxes = T.bboxes(rows)
    has_box = is_label & ~np.isnan(boxes).any(axis=1)
    labels = T.column_or_null(rows, T.LABEL).to_pylist()
    index = {n: i for i, n in enumerate(names)}
    cls = np.array([index.get(lab, -1) if lab is not None else -1 for lab in labels], dtype=np.int64)
    W = T.numpy_column(rows, T.WIDTH, fill=0).astype(np.float64)
    H = T.numpy_column(rows, T.HEIGHT, fill=0).astype(np.float64)
    crowd = has_box & T.numpy_column(rows, T.ISCROWD, fill=False).astype(bool) if T.ISCROWD in rows.column_names \
        else np.zeros(len(has_box), bool)
    if crowd.any():
        from mlcycle import reporting

        reporting.warn(f"{int(crowd.sum())} crowd region(s) (iscrowd) not written: YOLO has no crowd flag, "
                       "and a crowd box written as an ordinary object would be one")
        has_box = has_box & ~crowd
    nobox = is_label & ~has_box & ~crowd
    if nobox.any():
        from mlcycle import reporting

        reporting.warn(f"{int(nobox.sum())} label(s) without a box are not written (YOLO holds boxes only)")
    nosize = has_box & ((W <= 0) | (H <= 0))
    if nosize.any():
        i = int(np.argmax(nosize))
        raise MlcycleError(f"sample {sids[row_sample[i]]!r} has no width/height; YOLO boxes are fractions of the image size",
                           hint=f"ingest with {mention('image_size')} or {mention('image_sizes')}, or add width and height columns")
    sel = np.flatnonzero(has_box)
    b = boxes[sel]
    cx = (b[:, 0] + b[:, 2] / 2) / W[sel]
    cy = (b[:, 1] + b[:, 3] / 2) / H[sel]
    nw = b[:, 2] / W[sel]
    nh = b[:, 3] / H[sel]
    scores = T.numpy_column(rows, T.SCORE, fill=np.nan).astype(np.float64)[sel] if T.SCORE in rows.column_names else None
    with_conf = scores is not None and not np.isnan(scores).all()
    fmt = "%d %.6f %.6f %.6f %.6f" + (" %.6f" if with_conf else "")
    cols = [cls[sel], cx, cy, nw, nh] + ([np.nan_to_num(scores, nan=1.0)] if with_conf else [])
    lines = [fmt % t for t in zip(*cols)]
    per_sample: list[list[str]] = [[] for _ in sids]
    for s, line in zip(row_sample[sel].tolist(), lines):
        per_sample[s].append(line)

    with io.atomic_folder(final) as out:
        _write_files(out, layout, names, sids, splits, label_paths, image_paths, per_sample, images_root)


def _write(path: Path, text: str) -> None:
    """One file inside the temporary output folder (no rename needed: the folder is)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
    except OSError as exc:
        raise MlcycleError(f"{path}: cannot write: {exc.strerror or exc}") from None


def _write_files(out: Path, layout: str, names: list[str], sids: list[str], splits: list, label_paths: list,
                 image_paths: list, per_sample: list[list[str]], images_root: Path | None) -> None:
    from mlcycle.formats._paths import copy_images

    for path, lines_ in zip(label_paths, per_sample):
        _write(out / path, "".join(line + "\n" for line in lines_))
    copy_images(images_root, ((sid, out / img) for sid, img in zip(sids, image_paths)))
    split_names = list(dict.fromkeys(splits))
    if layout == "ultralytics":
        import yaml

        lists = {}
        for split in split_names:
            list_name = f"{split or 'all'}.txt"
            _write(out / list_name, "".join((f"./images/{split}/{sid}\n" if split else f"./images/{sid}\n")
                                            for sid, s in zip(sids, splits) if s == split))
            lists[split] = list_name
        doc: dict[str, Any] = {"path": "."}
        for split in split_names:
            key = {"valid": "val"}.get(split or "train", split or "train")
            value = f"images/{split}" if split else "images"
            if key in doc:  # e.g. samples without a split next to a 'train' split
                doc[key] = (doc[key] if isinstance(doc[key], list) else [doc[key]]) + [value]
            else:
                doc[key] = value
        if "val" not in doc and split_names:
            doc["val"] = doc.get("train") or next(v for k, v in doc.items() if k != "path")
        doc["nc"] = len(names)
        doc["names"] = {i: n for i, n in enumerate(names)}
        class Dumper(yaml.SafeDumper):  # values in full, no &anchors / *aliases
            def ignore_aliases(self, data: Any) -> bool:
                return True

        _write(out / "data.yaml", yaml.dump(doc, Dumper=Dumper, sort_keys=False, allow_unicode=True))
    elif layout == "darknet":
        _write(out / "obj.names", "".join(n + "\n" for n in names))
        data_lines = [f"classes = {len(names)}"]
        for split in split_names:
            key = "valid" if split in ("val", "valid") else split
            data_lines.append(f"{key} = data/{split}.txt")
            _write(out / f"{split}.txt", "".join(f"data/obj_{split}_data/{sid}\n" for sid, s in zip(sids, splits) if s == split))
        data_lines += ["names = data/obj.names", "backup = backup/"]
        _write(out / "obj.data", "\n".join(data_lines) + "\n")
    else:
        _write(out / "classes.txt", "".join(n + "\n" for n in names))
        _write(out / "images.txt", "".join(f"{sid}\n" for sid in sids))
