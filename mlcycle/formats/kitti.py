"""KITTI object labels (``label_2/*.txt``) <-> label table.

Layout read: ``<root>/{training,testing}/label_2/*.txt`` with images in ``image_2/``
(split ``train``/``test``), ``<root>/label_2/``, a folder of label txt files, or one
file. Each line is the KITTI object devkit's

``type truncated occluded alpha left top right bottom height width length x y z rotation_y [score]``

- ``type`` -> ``label`` (``DontCare`` regions are kept as rows with that label);
- ``left top right bottom`` -> ``bbox = [left, top, right - left, bottom - top]``: the
  devkit's own evaluation computes overlaps without a +1, so the corners are continuous
  coordinates; ``--corners inclusive`` adds 1 to width and height instead;
- ``truncated`` (float 0..1), ``occluded`` (int: 0 visible, 1 partly, 2 largely,
  3 unknown), ``alpha``, ``dim_height``/``dim_width``/``dim_length``,
  ``loc_x``/``loc_y``/``loc_z`` and ``rotation_y`` -> attribute columns, as stated;
- a 16th value is a detection ``score``: the rows are predictions (source ``pred``).

``sample_id`` is the image file name in ``image_2`` (``000030_10.png``; ``<stem>.png``
when the image is absent); width and height come from the image header when it is
there (KITTI boxes are in pixels, so a missing image is not an error).

Writing produces ``<split folder>/label_2/<stem>.txt`` with the devkit's two decimals
(``training`` for train, ``testing`` for test, else the split name; ``training`` when
there is no split); values a table lacks are written as the devkit's "unknown"
(truncated 0, occluded 3 -- or 1/0 from a bool ``occluded`` --, alpha -10, dimensions
-1, location -1000, rotation_y -10).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlcycle import table as T
from mlcycle.errors import MlcycleError, printable
from mlcycle.formats import ReadOptions as CommonReadOptions
from mlcycle.formats import WriteOptions as CommonWriteOptions
from mlcycle.formats._assemble import assemble
from mlcycle.formats._invalid import InvalidInput
from mlcycle.formats._paths import copy_images, read_head, read_regular, safe_join
from mlcycle.formats._tokens import floats, text_files, tokenize
# KITTI's options are VOC's: the corner convention of its boxes
from mlcycle.formats.voc import ReadOptions, WriteOptions, box_rows_for_export, corners_mode

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa

META = "kitti"
TRUNCATED, OCCLUDED, ALPHA = "truncated", "occluded", "alpha"
DIMS = ("dim_height", "dim_width", "dim_length")
LOCS = ("loc_x", "loc_y", "loc_z")
ROT = "rotation_y"
NUMERIC = (TRUNCATED, OCCLUDED, ALPHA, "left", "top", "right", "bottom") + DIMS + LOCS + (ROT,)
_SPLITS = {"training": "train", "testing": "test"}
_FOLDERS = {"train": "training", "test": "testing"}
_UNKNOWN = {TRUNCATED: 0.0, ALPHA: -10.0, DIMS[0]: -1.0, DIMS[1]: -1.0, DIMS[2]: -1.0,
            LOCS[0]: -1000.0, LOCS[1]: -1000.0, LOCS[2]: -1000.0, ROT: -10.0}


def _first_line_ok(p: Path) -> bool:
    head = read_head(p, 4096)
    if head is None:
        return False
    line = head.split(b"\n", 1)[0].split()
    if len(line) not in (15, 16):
        return False
    try:
        [float(v) for v in line[1:]]
    except ValueError:
        return False
    try:
        float(line[0])
        return False
    except ValueError:
        return True


def _label_dirs(path: Path) -> list[tuple[Path, str | None]]:
    if (path / "label_2").is_dir():
        return [(path / "label_2", None)]
    out = []
    for sub in sorted(path.iterdir()) if path.is_dir() else []:
        if sub.is_dir() and (sub / "label_2").is_dir():
            out.append((sub / "label_2", _SPLITS.get(sub.name, sub.name)))
    if out:
        return out
    if path.is_dir() and path.name == "label_2":
        return [(path, None)]
    return []


def _txt_files(d: Path) -> list[str]:
    """Label files under ``d`` as sorted POSIX paths relative to it."""
    out = []
    for dirpath, dirnames, filenames in os.walk(d):
        dirnames[:] = sorted(x for x in dirnames if not x.startswith("."))
        rel = os.path.relpath(dirpath, d)
        for f in filenames:
            if f.lower().endswith(".txt"):
                out.append(f if rel == "." else f"{rel.replace(os.sep, '/')}/{f}")
    return sorted(out)


def detect(path: Path) -> bool:
    if path.is_file():
        return path.suffix.lower() == ".txt" and _first_line_ok(path)
    for d, _ in _label_dirs(path):
        first = next(iter(sorted(d.glob("*.txt"))), None)
        if first is not None:
            return _first_line_ok(first)
    return False


def read(path: Path, options: CommonReadOptions | None = None) -> "pa.Table":
    import numpy as np

    from mlcycle.formats._images import find_images, header_size

    options = ReadOptions.of(options)
    path = Path(path)
    mode = corners_mode(options)
    if path.is_file():
        groups = [(path.parent, None, [path.name])]
    else:
        dirs = _label_dirs(path) or ([(path, None)] if path.is_dir() else [])
        if not dirs:
            raise MlcycleError(f"{path}: no KITTI label_2 folder found")
        groups = [(d, split, _txt_files(d)) for d, split in dirs]
    sample_ids: list[str] = []
    splits: list[str | None] = []
    files: list[Path] = []
    image_paths: list[Path | None] = []
    for d, split, names in groups:
        image_dirs: dict[str, dict[str, Path]] = {}
        for f in names:
            folder, _, name = f.rpartition("/")
            if folder not in image_dirs:
                image_dirs[folder] = find_images(d.parent / "image_2" / folder)
            img = image_dirs[folder].get(name[:-4])
            prefix = folder + "/" if folder else ""
            sample_ids.append(prefix + (img.name if img is not None else name[:-4] + ".png"))
            image_paths.append(img)
            splits.append(split)
            files.append(d / f)
    contents = text_files([read_regular(p) for p in files], [str(p) for p in files])
    problems = InvalidInput(options.skip_invalid, "KITTI line")
    if contents:
        tk = tokenize(contents)
        counts = tk["counts"]
        used = np.flatnonzero(counts > 0)
        first = (np.cumsum(counts) - counts)[used]
        lc = counts[used]
        tokens = np.array(tk["tokens"], dtype=bytes)
        ok = (lc == 15) | (lc == 16)
        safe = np.where(ok, first, 0)
        num_idx = safe[:, None] + np.arange(1, 15)[None, :]
        num_idx = np.minimum(num_idx, len(tokens) - 1)
        vals, bad = floats(tokens, num_idx.ravel())
        vals = vals.reshape(-1, 14)
        bad = bad.reshape(-1, 14).any(axis=1)
        has_score = ok & (lc == 16)
        score_v, score_bad = floats(tokens, np.minimum(safe + 15, len(tokens) - 1))
        bad |= has_score & score_bad
        # (the text is UTF-8: checked above)
        names = np.char.decode(tokens[safe], "utf-8") if len(safe) else np.zeros(0, dtype=str)
        with np.errstate(invalid="ignore"):
            nonfinite = ok & ~bad & (~np.isfinite(vals).all(axis=1) | (has_score & ~np.isfinite(score_v))
                                     | ~np.isfinite(vals[:, 5] - vals[:, 3]) | ~np.isfinite(vals[:, 6] - vals[:, 4]))
            inverted = ok & ~bad & ~nonfinite & ((vals[:, 5] < vals[:, 3]) | (vals[:, 6] < vals[:, 4]))
            occ = vals[:, 1]
            bad_occ = ok & ~bad & ~nonfinite & ~inverted & ((occ != np.round(occ)) | (np.abs(occ) > 1000))
        invalid = ~ok | bad | inverted | nonfinite | bad_occ
        if invalid.any():
            i = int(np.argmax(invalid))
            f, line = tk["where"](int(used[i]))
            if not ok[i]:
                msg = f"malformed line: expected 15 values (type truncated occluded alpha left top right bottom h w l x y z rotation_y) or 16 with a score, got {int(lc[i])}"
            elif bad[i]:
                msg = "malformed line: values after the type must be numbers"
            elif inverted[i]:
                msg = f"box has right < left or bottom < top ({' '.join(f'{v:g}' for v in vals[i, 3:7])})"
            elif nonfinite[i]:
                msg = "a value is not finite (nan, inf or beyond the float range)"
            else:
                msg = f"occluded is {vals[i, 1]:g}, not an integer state (0 visible, 1 partly, 2 largely, 3 unknown)"
            problems.add(f"{printable(files[f])}:{line}: {msg}", count=int(invalid.sum()))
        keep = ~invalid
        file_idx = np.searchsorted(tk["first_line"], used[keep], side="right") - 1
        vals, names, score_v, has_score = vals[keep], names[keep], score_v[keep], has_score[keep]
    else:
        file_idx = np.zeros(0, np.int64)
        vals = np.zeros((0, 14))
        names = np.zeros(0, dtype=str)
        score_v = np.zeros(0)
        has_score = np.zeros(0, bool)
    problems.report()
    boxes = np.stack([vals[:, 3], vals[:, 4], vals[:, 5] - vals[:, 3], vals[:, 6] - vals[:, 4]], axis=1)
    if mode == "inclusive":
        boxes[:, 2:] += 1
    n = len(sample_ids)
    widths = np.full(n, -1, dtype=np.int64)
    heights = np.full(n, -1, dtype=np.int64)
    for i in range(n):
        p = Path(options.images_root) / sample_ids[i] if options.images_root is not None else image_paths[i]
        if p is not None:
            wh = header_size(p)
            if wh is not None:
                widths[i], heights[i] = wh
    attrs: dict[str, Any] = {
        TRUNCATED: vals[:, 0], OCCLUDED: vals[:, 1].astype(np.int64), ALPHA: vals[:, 2],
    }
    for k, name in enumerate(DIMS + LOCS + (ROT,)):
        attrs[name] = vals[:, 7 + k]
    any_score = bool(has_score.any())
    source = options.source or (T.DEFAULT_PRED_SOURCE if any_score else T.GT_SOURCE)
    if options.split is not None:
        splits = [options.split] * n
    meta: dict[str, Any] = {META: {"corners": mode}}
    return assemble(sample_ids=sample_ids, splits=splits, widths=widths, heights=heights,
                    label_sample=file_idx, labels=names.tolist(), boxes=boxes,
                    scores=np.where(has_score, score_v, np.nan) if any_score else None,
                    source=source, attributes=attrs, metadata=meta)


def _numeric(rows: "pa.Table", name: str, default: float):
    """A scalar attribute column as float64 (bools as 1/0, nulls and text as ``default``)."""
    import numpy as np
    import pyarrow as pa

    if name not in rows.column_names:
        return np.full(rows.num_rows, default)
    col = rows.column(name)
    if not (pa.types.is_integer(col.type) or pa.types.is_floating(col.type) or pa.types.is_boolean(col.type)):
        return np.full(rows.num_rows, default)
    vals = col.cast(pa.float64()) if not pa.types.is_boolean(col.type) else col.cast(pa.int8()).cast(pa.float64())
    return T.numpy_column(pa.table({name: vals}), name, fill=default).astype(np.float64)


def write(table: "pa.Table", output: Path | None, options: CommonWriteOptions | None = None) -> None:
    import numpy as np

    from mlcycle import io

    options = WriteOptions.of(options)
    out, rows, mode, sids, row_sample, splits, is_label, boxes, has_box = box_rows_for_export(
        table, output, options, "kitti", META)
    wb = boxes.copy()
    if mode == "inclusive":
        wb[:, 2:] -= 1
    cols: dict[str, Any] = {}
    for name, default in list(_UNKNOWN.items()) + [(OCCLUDED, 3.0)]:
        cols[name] = _numeric(rows, name, default)
    cols[OCCLUDED] = cols[OCCLUDED].astype(np.int64)
    labels = T.column_or_null(rows, T.LABEL).to_pylist()
    scores = T.numpy_column(rows, T.SCORE, fill=np.nan).astype(np.float64) if T.SCORE in rows.column_names else None
    with_score = scores is not None and not np.isnan(scores[has_box]).all() if has_box.any() else False
    per_sample: list[list[str]] = [[] for _ in sids]
    for name in {labels[i] for i in np.flatnonzero(has_box).tolist()}:
        if name is None or not str(name).strip() or not str(name).replace(" ", "_").isprintable():
            raise MlcycleError(f"label '{printable(name)}' cannot be a KITTI type: it is empty or has a control character "
                               "(a KITTI line is space-separated values)", hint="rename the class, then export again")
    for i in np.flatnonzero(has_box).tolist():
        lab = str(labels[i]).replace(" ", "_")
        line = (f"{lab} {cols[TRUNCATED][i]:.2f} {int(cols[OCCLUDED][i])} {cols[ALPHA][i]:.2f} "
                f"{wb[i, 0]:.2f} {wb[i, 1]:.2f} {wb[i, 0] + wb[i, 2]:.2f} {wb[i, 1] + wb[i, 3]:.2f} "
                + " ".join(f"{cols[k][i]:.2f}" for k in DIMS + LOCS + (ROT,)))
        if with_score:
            line += f" {scores[i]:.6f}"  # type: ignore[index]
        per_sample[int(row_sample[i])].append(line)
    label_paths: list[str] = []
    image_paths: list[str] = []
    for sid, split in zip(sids, splits):
        safe_join(out, str(sid))  # refuse absolute paths and '..' in the sample id itself
        folder = _FOLDERS.get(split, split) if split else "training"
        stem = str(sid).rsplit(".", 1)[0] if "." in str(sid).rsplit("/", 1)[-1] else str(sid)
        label_paths.append(f"{folder}/label_2/{stem}.txt")
        image_paths.append(f"{folder}/image_2/{sid}")
        safe_join(out, label_paths[-1])
        safe_join(out, image_paths[-1])
    with io.atomic_folder(out) as tmp:
        for rel, lines in zip(label_paths, per_sample):
            path = tmp / rel
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                with open(path, "w", encoding="utf-8", newline="") as fh:
                    fh.write("".join(line + "\n" for line in lines))
            except OSError as exc:
                raise MlcycleError(f"{path}: cannot write: {exc.strerror or exc}") from None
        copy_images(options.images_root, ((sid, tmp / rel) for sid, rel in zip(sids, image_paths)))
