"""Image sizes for formats that need them (YOLO's normalised boxes, Open Images, csv
``--normalized``), without decoding pixels.

API (stable; other format modules import it):

``image_sizes(sample_ids, root, options, paths=None) -> (widths, heights)``
    Two int64 numpy arrays, one entry per sample id, ``-1`` where the size is unknown
    (only possible with ``options.allow_missing``). For each sample, in this order:

    1. ``options.image_sizes`` (``--image-sizes TABLE``): the ``width``/``height`` of
       that sample in another label table. Sample ids are matched exactly, then by
       file name without folders, then by file stem (``a/b/x.jpg`` ~ ``x.png``) when
       that name is unique in the table.
    2. ``options.image_size`` (``--image-size WxH``): one size for every sample left.
    3. The image header of ``paths[i]`` (or ``root / sample_id``): PNG, JPEG, GIF and
       BMP headers are parsed directly from their first bytes, other formats with
       Pillow in lazy mode (``Image.open(...).size``); no pixels are decoded, and EXIF
       orientation is not applied (the stored size is what boxes refer to, as in COCO).

    A sample whose size cannot be found is an ``MlcycleError`` naming the image (and
    how many more are missing) with a hint about ``--image-size``/``--image-sizes``;
    with ``options.allow_missing`` it is a counted warning instead.

``find_images(folder) -> dict[str, Path]``
    Image files directly in ``folder`` by stem (``{"0001": Path(".../0001.jpg")}``),
    for label files that do not say the image's extension (YOLO, KITTI).

``IMAGE_EXTENSIONS``: the file endings treated as images (lower case, with the dot).
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Sequence

from mlcycle.errors import MlcycleError, mention

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from mlcycle.formats import ReadOptions

IMAGE_EXTENSIONS = (
    ".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm",
    ".pbm", ".jp2", ".jfif", ".ico", ".dng", ".mpo",
)


def is_image(path: Path | str) -> bool:
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def find_images(folder: Path) -> dict[str, Path]:
    """Image files directly in ``folder``, keyed by stem (first one wins, sorted by name)."""
    out: dict[str, Path] = {}
    try:
        entries = sorted(Path(folder).iterdir())
    except OSError:
        return out
    for p in entries:
        if p.suffix.lower() in IMAGE_EXTENSIONS and p.stem not in out:
            out[p.stem] = p
    return out


_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def _parse_header(fh) -> tuple[int, int] | None:
    """(width, height) of a PNG, JPEG, GIF or BMP from its first bytes, None for other
    formats (Pillow handles those). Reads only the header (JPEG: up to the frame marker)."""
    import struct

    head = fh.read(32)
    if head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":
        return struct.unpack(">II", head[16:24])
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return struct.unpack("<HH", head[6:10])
    if head[:2] == b"BM" and len(head) >= 26:
        size = struct.unpack("<I", head[14:18])[0]
        if size >= 40:
            w, h = struct.unpack("<ii", head[18:26])
            return w, abs(h)
        return None
    if head[:2] == b"\xff\xd8":
        data = head
        i = 2
        while True:
            while len(data) < i + 9:
                more = fh.read(65536)
                if not more:
                    return None
                data += more
            if data[i] != 0xFF:
                return None
            marker = data[i + 1]
            if marker == 0xFF:  # fill byte
                i += 1
                continue
            if marker in _SOF:
                h, w = struct.unpack(">HH", data[i + 5:i + 9])
                return w, h
            if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
                i += 2
                continue
            length = struct.unpack(">H", data[i + 2:i + 4])[0]
            i += 2 + length
    return None


def header_size(path: Path | str) -> tuple[int, int] | None:
    """(width, height) from the image header, None when the file does not exist.
    PNG, JPEG, GIF and BMP headers are parsed directly (a few bytes); other formats go
    through Pillow's lazy ``Image.open(...).size``. No pixels are decoded, and EXIF
    orientation is not applied (the stored size is what boxes refer to, as in COCO).
    A file that exists but is not a readable image is an error naming it, and so is
    anything that is not a regular file (a FIFO would block the read forever)."""
    import stat
    import struct

    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except ValueError:  # a NUL byte in the name
        from mlcycle.errors import printable

        raise MlcycleError(f"{printable(path)}: not a valid file name (it contains a NUL byte)") from None
    except OSError as exc:
        raise MlcycleError(f"{path}: cannot read the image header: {exc.strerror or exc}") from None
    if stat.S_ISDIR(st.st_mode):
        return None
    if not stat.S_ISREG(st.st_mode):
        raise MlcycleError(f"{path}: not a regular file (a FIFO, socket or device), expected an image",
                           hint=f"pass {mention('image_size')} WxH or {mention('image_sizes')} TABLE, or put the image there")
    try:
        with open(path, "rb") as fh:
            try:
                wh = _parse_header(fh)
            except (IndexError, ValueError, struct.error):  # odd header: let Pillow decide
                wh = None
            if wh is not None and wh[0] > 0 and wh[1] > 0:
                return int(wh[0]), int(wh[1])
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None
    except OSError as exc:
        raise MlcycleError(f"{path}: cannot read the image header: {exc.strerror or exc}") from None
    return _pillow_size(path)


def _pillow_size(path: Path | str) -> tuple[int, int] | None:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:  # lazy: reads the header only
            return int(im.size[0]), int(im.size[1])
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        return None
    except UnidentifiedImageError:
        raise MlcycleError(f"{path}: not an image Pillow can read (needed for its width and height)",
                           hint=f"pass {mention('image_size')} WxH or {mention('image_sizes')} TABLE") from None
    except OSError as exc:
        raise MlcycleError(f"{path}: cannot read the image header: {exc.strerror or exc}") from None


def _size_table(path: Path) -> dict[str, dict[str, tuple[int, int]]]:
    """sample_id / file name / stem -> (w, h) from a label table; ambiguous names dropped."""
    import pyarrow.compute as pc

    from mlcycle import io
    from mlcycle import table as T

    tab = io.read_table(path)
    for col in (T.WIDTH, T.HEIGHT):
        if col not in tab.column_names:
            raise MlcycleError(f"{path}: the {mention('image_sizes')} table has no '{col}' column")
    tab = tab.filter(pc.and_(pc.is_valid(tab.column(T.WIDTH)), pc.is_valid(tab.column(T.HEIGHT))))
    sids = tab.column(T.SAMPLE_ID).to_pylist()
    ws = tab.column(T.WIDTH).to_pylist()
    hs = tab.column(T.HEIGHT).to_pylist()
    exact: dict[str, tuple[int, int]] = {}
    for s, w, h in zip(sids, ws, hs):
        exact.setdefault(s, (int(w), int(h)))
    by_name: dict[str, tuple[int, int] | None] = {}
    by_stem: dict[str, tuple[int, int] | None] = {}
    for s, wh in exact.items():
        p = PurePosixPath(s.replace("\\", "/"))
        for key, d in ((p.name, by_name), (p.stem, by_stem)):
            if key in d and d[key] != wh:
                d[key] = None  # ambiguous: two different sizes under one name
            else:
                d.setdefault(key, wh)
    return {
        "exact": exact,
        "name": {k: v for k, v in by_name.items() if v is not None},
        "stem": {k: v for k, v in by_stem.items() if v is not None},
    }


def image_sizes(sample_ids: Sequence[str], root: Path | None, options: "ReadOptions",
                paths: Sequence[Path | None] | None = None) -> tuple["np.ndarray", "np.ndarray"]:
    """Width and height of each sample (see the module docstring); -1 where unknown."""
    import numpy as np

    from mlcycle import reporting

    n = len(sample_ids)
    widths = np.full(n, -1, dtype=np.int64)
    heights = np.full(n, -1, dtype=np.int64)
    todo = np.ones(n, dtype=bool)
    if options.image_sizes is not None:
        lookup = _size_table(Path(options.image_sizes))
        for i, s in enumerate(sample_ids):
            p = PurePosixPath(str(s).replace("\\", "/"))
            wh = lookup["exact"].get(s) or lookup["name"].get(p.name) or lookup["stem"].get(p.stem)
            if wh is not None:
                widths[i], heights[i] = wh
                todo[i] = False
    if options.image_size is not None:
        widths[todo], heights[todo] = options.image_size
        todo[:] = False
    base = Path(options.images_root) if options.images_root is not None else root
    missing: list[str] = []
    base_s = str(base) if base is not None else None
    for i in np.flatnonzero(todo).tolist():
        if paths is not None and paths[i] is not None:
            target = str(paths[i])
        elif base_s is not None:
            target = os.path.join(base_s, str(sample_ids[i]))
        else:
            target = str(sample_ids[i])
        wh = header_size(target)
        if wh is None:
            missing.append(target if target.endswith(str(sample_ids[i])) else f"{target} (sample {sample_ids[i]})")
            continue
        widths[i], heights[i] = wh
    if missing:
        from mlcycle.errors import printable

        missing = [printable(m) for m in missing]
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        if not options.allow_missing:
            raise MlcycleError(
                f"{missing[0]}: image not found{more}; its width and height are needed",
                hint=f"pass {mention('images_root')} DIR, {mention('image_size')} WxH or {mention('image_sizes')} TABLE, "
                     f"or {mention('allow_missing')} to go on without them")
        reporting.warn(f"{len(missing)} image(s) not found, their sizes are unknown: {missing[0]}{more}")
    return widths, heights
