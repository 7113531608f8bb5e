"""Segmentation masks: the ``segmentation`` column decoded into pycocotools RLEs.

``Masks`` holds the masks of some table rows and decodes them only when the matcher asks
(most predictions never meet a ground truth of their class on their image); ``mask_areas``
gives pycocotools' areas. A segmentation is JSON text: polygons, an uncompressed RLE or a
compressed RLE (docs/label-table.md).

Every mask is checked before pycocotools' C routines see it, because they trust their
input: a polygon with a NaN crashes them, an RLE whose runs do not add up to its size makes
their IoU loop forever, a coordinate of 1e9 makes the rasteriser allocate tens of GB. The
limits (docs/evaluate.md, "Masks"):

- a mask is at most ``MAX_PIXELS`` (2^31 - 1) pixels: the rasteriser computes pixel
  indices in 32-bit integers, and beyond that it overflows and never finishes;
- polygon coordinates are finite and lie within one image size of the image (x in
  [-W, 2W], y in [-H, 2H]), and an object's outline is at most ``MAX_OUTLINE`` pixels
  long (the rasteriser's memory grows with it: about 80 bytes per pixel of outline);
- an RLE's size is two positive integers and equals the row's image size when the row
  has one; its runs are non-negative and add up to height x width; a compressed RLE is
  COCO's character encoding ('0'..'o').

``decode`` turns parsed segmentations into RLEs and says what is wrong with each one it
cannot take; coco-results ingest uses it too (boxes and areas of mask-only results).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from mlcycle.errors import MlcycleError

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import pyarrow as pa

MAX_PIXELS = 2**31 - 1
MAX_OUTLINE = 2_000_000


class Masks:
    """The masks of some table rows, turned into pycocotools RLEs only when asked for
    (``take``), in batches: most predictions never meet a ground truth of their class on
    their image, and their masks are never needed.

    RLEs are built as ``COCO.annToRLE`` builds them: polygons -> ``frPyObjects`` +
    ``merge`` (image height/width from the row), an uncompressed RLE -> ``frPyObjects``, a
    compressed RLE as it is; a row with a box but no mask gets the box as a polygon (as
    ``loadRes`` does for box results). ``where(row)`` names a table row in errors."""

    def __init__(self, col: "pa.Array", rows: "np.ndarray", boxes, W, H, origin: str, cache=None,
                 where: Callable[[int], str] | None = None):
        self.col, self.rows, self.boxes, self.W, self.H, self.origin = col, rows, boxes, W, H, origin
        self.cache: dict[int, Any] = {} if cache is None else cache  # table row -> RLE, shared by subsets
        self.where = where or (lambda r: f"row {r + 1}")

    def __len__(self) -> int:
        return len(self.rows)

    def subset(self, idx: "np.ndarray") -> "Masks":
        return Masks(self.col, self.rows[idx], self.boxes, self.W, self.H, self.origin, self.cache, self.where)

    def take(self, idx: "np.ndarray") -> list:
        """RLE dicts for the objects at positions ``idx``."""
        import gc

        import numpy as np

        idx = np.asarray(idx, dtype=np.int64)
        if not len(idx):
            return []
        enabled = gc.isenabled()
        gc.disable()  # many small dicts: the collector would rescan them again and again
        try:
            rows = self.rows[idx].tolist()
            cache = self.cache
            missing = np.array([r for r in rows if r not in cache], dtype=np.int64)
            if len(missing):
                rles = _rles(self.col, missing, self.boxes, self.W, self.H, self.origin, self.where)
                cache.update(zip(missing.tolist(), rles))
            return [cache[r] for r in rows]
        finally:
            if enabled:
                gc.enable()

    def areas(self, idx: "np.ndarray") -> "np.ndarray":
        return mask_areas(self.take(idx))


# the JSON text mlcycle's readers write for a compressed RLE (orjson, no spaces); the
# counts characters are '0'..'o', of which JSON escapes only the backslash (as two)
_RLE_TEXT = r'^\{"size":\[(?P<h>[0-9]{1,10}),(?P<w>[0-9]{1,10})\],"counts":"(?P<c>(?:[^"\\]|\\\\)*)"\}$'


def _rles(col, rows, boxes, W, H, origin, where):
    import numpy as np
    import orjson
    import pyarrow as pa
    import pyarrow.compute as pc

    def fail(j: int, reason: str):
        hint = ("the row's width and height columns are empty" if "image size" in reason and "needs" in reason
                else None)
        return MlcycleError(f"{origin}: {where(int(rows[j]))}: segmentation {reason}", hint=hint)

    out: list = [None] * len(rows)
    sub = col.take(pa.array(rows))
    # fast path: compressed RLE text parsed by a vectorised regex instead of JSON
    m = pc.extract_regex(sub, _RLE_TEXT)
    okm = m.is_valid()
    ok = okm.to_numpy(zero_copy_only=False)
    fast = np.flatnonzero(ok)
    if len(fast):
        hh = pc.cast(m.field("h").filter(okm), "int64").to_numpy()
        ww = pc.cast(m.field("w").filter(okm), "int64").to_numpy()
        cf = m.field("c").filter(okm)
        if pc.any(pc.match_substring(cf, "\\")).as_py():
            cf = pc.replace_substring(cf, "\\\\", "\\")  # JSON's escaped backslash
        # bytes: pycocotools reads them as they are (a str is encoded on every use)
        cc = cf.cast(pa.binary()).to_pylist()
        problems = _check_compressed(hh, ww, cc, H[rows[fast]], W[rows[fast]])
        if problems:
            k = min(problems)
            raise fail(int(fast[k]), problems[k])
        fast_rles = [{"size": [h_, w_], "counts": c_} for h_, w_, c_ in zip(hh.tolist(), ww.tolist(), cc)]
        if len(fast) == len(rows):
            return fast_rles
        for j, r_ in zip(fast.tolist(), fast_rles):
            out[j] = r_
    slow_idx = np.flatnonzero(~ok)
    segs = sub.filter(pc.invert(okm)).to_pylist() if len(slow_idx) else []
    objs: list = [None] * len(slow_idx)
    have = [j for j, t in enumerate(segs) if t is not None]
    texts = [segs[j] for j in have]
    try:
        parsed = orjson.loads("[" + ",".join(texts) + "]") if texts else []
    except orjson.JSONDecodeError:
        bad = next(j for j in have if _bad_json(segs[j]))
        raise fail(int(slow_idx[bad]), "is not valid JSON") from None
    if len(parsed) != len(have):  # a text such as '1,2' spans two elements
        bad = next(j for j in have if _bad_json(segs[j]))
        raise fail(int(slow_idx[bad]), "is not one JSON value")
    for j, o in zip(have, parsed):
        objs[j] = o
    rws = rows[slow_idx]
    for j, obj in enumerate(objs):
        if obj is None or obj == []:  # no mask ('[]': no polygon): the box as a polygon, as loadRes makes one
            x, y, w, h = boxes[int(rws[j])].tolist()
            objs[j] = [[x, y, x, y + h, x + w, y + h, x + w, y]]
    rles, problems = decode(objs, H[rws], W[rws])
    if problems:
        k = min(problems)
        raise fail(int(slow_idx[k]), problems[k])
    for j, r_ in zip(slow_idx.tolist(), rles):
        out[j] = r_
    return out


def _bad_json(text: str) -> bool:
    import orjson

    try:
        orjson.loads(text)
        return False
    except orjson.JSONDecodeError:
        return True


# --------------------------------------------------------------------------- checks

def _size_of(size: Any) -> tuple[int, int] | None:
    """An RLE's [height, width] as two positive integers (640.0 read as 640), else None."""
    if type(size) is not list or len(size) != 2:
        return None
    out = []
    for v in size:
        if type(v) is float and v == v and v not in (float("inf"), float("-inf")) and v.is_integer():
            v = int(v)
        if type(v) is not int or v < 1 or v > MAX_PIXELS:
            return None
        out.append(v)
    return out[0], out[1]


def _image_mismatch(h: int, w: int, img_h: float, img_w: float) -> str | None:
    if img_h == img_h and img_w == img_w and (h != img_h or w != img_w):  # NaN: size unknown
        return f"RLE size {h}x{w} (height x width) is not the image's {int(img_h)}x{int(img_w)}"
    return None


def _too_large(h: int, w: int) -> str | None:
    if h * w > MAX_PIXELS:
        return (f"mask of {w}x{h} pixels is larger than the limit of {MAX_PIXELS} pixels "
                "(pycocotools' mask routines count pixels in 32-bit integers)")
    return None


def rle_totals(counts: list, chunk: int = 1 << 16) -> tuple["np.ndarray", "np.ndarray"]:
    """``_rle_totals`` over batches of about ``chunk`` characters: the temporaries stay in
    the CPU cache (three times faster than one pass over millions of characters)."""
    import numpy as np

    raw = [c.encode("latin-1", "replace") if type(c) is str else c for c in counts]
    lens = np.fromiter(map(len, raw), dtype=np.int64, count=len(raw))
    if lens.sum() <= chunk:
        return _rle_totals(raw)
    ends = np.searchsorted(np.cumsum(lens), np.arange(chunk, int(lens.sum()) + chunk, chunk), side="right")
    parts, a = [], 0
    for b in ends.tolist() + [len(raw)]:
        b = max(b, a + 1) if a < len(raw) else a
        if b > a:
            parts.append(_rle_totals(raw[a:b]))
            a = b
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _rle_totals(counts: list) -> tuple["np.ndarray", "np.ndarray"]:
    """(sum of the runs, valid) of compressed RLE counts (bytes or str), decoded as
    pycocotools' ``rleFrString`` does, all at once with numpy. Not valid: a character
    outside '0'..'o', a number left unfinished or longer than 7 characters, or a run that
    is negative or does not fit 32 bits."""
    import numpy as np

    raw = [c.encode("latin-1", "replace") if type(c) is str else c for c in counts]
    n = len(raw)
    lens = np.fromiter(map(len, raw), dtype=np.int64, count=n)
    total = np.zeros(n, np.int64)
    valid = np.ones(n, bool)
    nz = np.flatnonzero(lens)
    if not len(nz):
        return total, valid
    c = np.frombuffer(b"".join(raw), dtype=np.uint8) - np.uint8(48)  # below '0' wraps: > 63
    bounds = np.cumsum(lens)
    if (c > 63).any():
        valid[np.searchsorted(bounds, np.flatnonzero(c > 63), side="right")] = False
    cont = (c & 0x20).astype(bool)
    last = bounds[nz] - 1
    valid[nz[cont[last]]] = False                   # a number left unfinished
    cont[last] = False                              # numbers never span strings
    ends = np.flatnonzero(~cont)                    # last character of each number
    M = len(ends)
    length = np.diff(ends, prepend=-1)
    starts = ends - (length - 1)
    is_first = np.zeros(len(c), bool)
    is_first[bounds[nz] - lens[nz]] = True
    fpos = np.flatnonzero(is_first[starts])         # first number of each (non-empty) string
    if (length > 7).any():
        valid[nz[np.searchsorted(fpos, np.flatnonzero(length > 7), side="right") - 1]] = False
        length = np.minimum(length, 7)
    x = (c[starts] & 0x1F).astype(np.int64)
    idx = np.flatnonzero(length > 1)
    k = 1
    while len(idx):
        x[idx] |= (c[starts[idx] + k] & 0x1F).astype(np.int64) << (5 * k)
        k += 1
        idx = idx[length[idx] > k]
    neg = np.flatnonzero(c[ends] & 0x10)
    x[neg] -= np.int64(1) << (5 * length[neg])      # the sign, as rleFrString
    # run m >= 3 adds run m - 2 (m: the number's index in its string): cumulative sums
    # over every other number, minus the sum before the string's chain starts
    f_of = np.repeat(fpos, np.diff(np.r_[fpos, M]))
    odd = (np.arange(M) - f_of) & 1
    z = x.copy()
    z[fpos] = 0
    A = np.empty(M + 1, np.int64)
    A[0] = 0
    A[1::2] = np.cumsum(z[0::2])
    A[2::2] = np.cumsum(z[1::2])
    run = A[1:] - A[f_of - odd + 1]
    run[fpos] = x[fpos]
    bad = (run < 0) | (run >= 2**32)
    if bad.any():
        valid[nz[np.searchsorted(fpos, np.flatnonzero(bad), side="right") - 1]] = False
        run[bad] = 0
    total[nz] = np.add.reduceat(run, fpos)
    return total, valid


def _check_compressed(hh, ww, counts, img_h, img_w) -> dict[int, str]:
    """Problems (position -> reason) of compressed RLEs with sizes ``hh`` x ``ww``."""
    import numpy as np

    problems: dict[int, str] = {}
    hh = np.asarray(hh, dtype=np.int64)
    ww = np.asarray(ww, dtype=np.int64)
    small = (hh < 1) | (ww < 1) | (hh > MAX_PIXELS) | (ww > MAX_PIXELS)
    for j in np.flatnonzero(small).tolist():
        problems[j] = f"RLE size [{int(hh[j])}, {int(ww[j])}] is not two positive integers"
    known = ~np.isnan(img_h) & ~np.isnan(img_w)
    off = ~small & known & ((hh != np.nan_to_num(img_h)) | (ww != np.nan_to_num(img_w)))
    for j in np.flatnonzero(off).tolist():
        problems.setdefault(j, _image_mismatch(int(hh[j]), int(ww[j]), float(img_h[j]), float(img_w[j])))
    big = ~small & (hh * ww > MAX_PIXELS)
    for j in np.flatnonzero(big).tolist():
        problems.setdefault(j, _too_large(int(hh[j]), int(ww[j])))
    total, valid = rle_totals(counts)
    for j in np.flatnonzero(~valid).tolist():
        problems.setdefault(j, "is not a valid compressed RLE (counts must be COCO's encoding of "
                               "non-negative runs, characters '0'..'o')")
    for j in np.flatnonzero(valid & (total != hh * ww)).tolist():
        problems.setdefault(j, f"RLE runs add up to {int(total[j])} pixels, not height x width = {int(hh[j] * ww[j])}")
    return problems


def decode(objs: list, H: "np.ndarray", W: "np.ndarray") -> tuple[list, dict[int, str]]:
    """Parsed segmentations (polygons, uncompressed or compressed RLE) -> (pycocotools
    RLEs, {position: what is wrong}). ``H``/``W`` are each object's image size (NaN where
    unknown; polygons need it). A position with a problem gets None. RLEs are made as
    ``COCO.annToRLE`` makes them."""
    import numpy as np
    from pycocotools import mask as mask_utils

    n = len(objs)
    out: list = [None] * n
    problems: dict[int, str] = {}
    comp: list[tuple[int, int, int, Any]] = []
    polys: dict[tuple[int, int], list] = {}
    H = np.asarray(H, dtype=np.float64)
    W = np.asarray(W, dtype=np.float64)
    for j, obj in enumerate(objs):
        t = type(obj)
        if t is dict:
            hw = _size_of(obj.get("size"))
            counts = obj.get("counts")
            if hw is None:
                problems[j] = f"RLE size {_show(obj.get('size'))} is not [height, width] (two positive integers)"
                continue
            why = _image_mismatch(hw[0], hw[1], H[j], W[j]) or _too_large(*hw)
            if why:
                problems[j] = why
                continue
            if type(counts) in (str, bytes):
                comp.append((j, hw[0], hw[1], counts))
            elif type(counts) is list:
                why = _uncompressed_problem(counts, hw)
                if why:
                    problems[j] = why
                    continue
                out[j] = mask_utils.frPyObjects({"size": list(hw), "counts": counts}, hw[0], hw[1])
            else:
                problems[j] = "RLE 'counts' is neither a string nor a list of runs"
            continue
        if t is not list or not obj or not all(type(p) is list for p in obj):
            problems[j] = "is neither polygons (a list of lists of numbers) nor an RLE object"
            continue
        h_, w_ = H[j], W[j]
        if h_ != h_ or w_ != w_:
            problems[j] = "is polygons, which needs the image size"
            continue
        hw = (int(h_), int(w_))
        why = (f"is polygons on an image of {hw[1]}x{hw[0]} pixels" if hw[0] < 1 or hw[1] < 1 else None) \
            or _too_large(*hw)
        if why:
            problems[j] = why
            continue
        first = len(obj[0])
        if first == 4:  # frPyObjects takes a first list of 4 numbers as boxes [x, y, w, h]
            if not all(len(p) == 4 for p in obj):
                problems[j] = "mixes boxes (4 numbers) and polygons"
                continue
        elif first <= 4:
            problems[j] = f"polygon has {first} number(s); a polygon needs at least 3 points (6 numbers)"
            continue
        polys.setdefault(hw, []).append((j, obj))
    if comp:
        bad = _check_compressed([c[1] for c in comp], [c[2] for c in comp], [c[3] for c in comp],
                                np.full(len(comp), np.nan), np.full(len(comp), np.nan))
        for k, (j, h_, w_, counts) in enumerate(comp):
            if k in bad:
                problems[j] = bad[k]
            else:
                out[j] = {"size": [h_, w_], "counts": counts}
    for (h, w), items in polys.items():
        bad = _polygon_problems(items, h, w)
        problems.update(bad)
        good = [(j, obj) for j, obj in items if j not in bad]
        if not good:
            continue
        flat = [p for _, obj in good for p in obj]
        boxes_mode = [len(obj[0]) == 4 for _, obj in good]
        if not any(boxes_mode):
            rl = mask_utils.frPyObjects(flat, h, w)
            k = 0
            for j, obj in good:
                m = len(obj)
                out[j] = rl[k] if m == 1 else mask_utils.merge(rl[k:k + m])
                k += m
        else:
            for j, obj in good:
                rl = mask_utils.frPyObjects(obj, h, w)
                out[j] = mask_utils.merge(rl) if isinstance(rl, list) else rl
    return out, problems


def _show(value: Any) -> str:
    from mlcycle.errors import printable

    return printable(repr(value), 60)


def _uncompressed_problem(counts: list, hw: tuple[int, int]) -> str | None:
    import numpy as np

    if not all(type(v) is int or (type(v) is float and v.is_integer()) for v in counts):
        return "RLE 'counts' must be a string or a list of whole numbers"
    try:
        runs = np.array(counts, dtype=np.float64)
    except (ValueError, OverflowError):
        return "RLE 'counts' must be a string or a list of whole numbers"
    if (runs < 0).any() or (runs >= 2**32).any():
        return "RLE 'counts' has a negative (or too large) run"
    if runs.sum() != hw[0] * hw[1]:
        return f"RLE runs add up to {int(runs.sum())} pixels, not height x width = {hw[0] * hw[1]}"
    return None


def _polygon_problems(items: list, h: int, w: int) -> dict[int, str]:
    """Polygons (or COCO boxes) of one image size: finite numbers, within one image size
    of the image, an outline of at most ``MAX_OUTLINE`` pixels. All at once with numpy."""
    import itertools

    import numpy as np

    problems: dict[int, str] = {}
    lens = [len(p) for _, obj in items for p in obj]
    try:
        flat = np.fromiter(itertools.chain.from_iterable(p for _, obj in items for p in obj),
                           dtype=np.float64, count=sum(lens))
        numeric = True
    except (TypeError, ValueError, OverflowError):
        numeric = False
    if not numeric:  # find the objects with a value that is not a number
        for j, obj in items:
            try:
                if not all(type(v) in (int, float, bool) for p in obj for v in p):
                    raise TypeError
                np.fromiter(itertools.chain.from_iterable(obj), dtype=np.float64)
            except (TypeError, ValueError, OverflowError):
                problems[j] = "polygon has a value that is not a number"
        if len(problems) == len(items):
            return problems
        rest = [(j, obj) for j, obj in items if j not in problems]
        problems.update(_polygon_problems(rest, h, w))
        return problems
    lens_a = np.array(lens, dtype=np.int64)
    obj_of_poly = np.repeat(np.arange(len(items)), [len(obj) for _, obj in items])
    box_obj = np.array([len(obj[0]) == 4 for _, obj in items])
    starts = np.r_[0, np.cumsum(lens_a)[:-1]]
    # points: (x, y) pairs of each polygon (a trailing odd value is ignored, as pycocotools
    # does); a box [x, y, w, h] becomes its corners
    npts = lens_a // 2
    pstart = np.repeat(starts, npts)
    idx = pstart + 2 * (np.arange(npts.sum()) - np.repeat(np.r_[0, np.cumsum(npts)[:-1]], npts))
    x, y = flat[idx], flat[idx + 1]
    pobj = np.repeat(obj_of_poly, npts)
    ppoly = np.repeat(np.arange(len(lens_a)), npts)
    isbox = box_obj[pobj]
    if isbox.any():  # corner 2 of a box is x + w, y + h (boxes have 2 "points": (x, y), (w, h))
        second = isbox & (np.r_[False, ppoly[1:] == ppoly[:-1]])
        x = np.where(second, x + np.roll(x, 1), x)
        y = np.where(second, y + np.roll(y, 1), y)
    finite = np.isfinite(x) & np.isfinite(y)
    inside = (x >= -w) & (x <= 2 * w) & (y >= -h) & (y <= 2 * h)
    # outline: Chebyshev length of every edge, the closing edge included
    nxt = np.arange(len(x)) + 1
    last = np.r_[ppoly[1:] != ppoly[:-1], True] if len(x) else np.zeros(0, bool)
    first_of = np.flatnonzero(np.r_[True, ppoly[1:] != ppoly[:-1]]) if len(x) else np.zeros(0, np.int64)
    nxt[last] = first_of
    with np.errstate(invalid="ignore"):
        edge = np.maximum(np.abs(x - x[nxt % max(len(x), 1)]), np.abs(y - y[nxt % max(len(x), 1)]))
    edge = np.where(finite & finite[nxt % max(len(x), 1)], edge, 0)
    outline = np.bincount(pobj, weights=edge, minlength=len(items))
    for k in np.flatnonzero(np.bincount(pobj, weights=~finite, minlength=len(items)) > 0).tolist():
        problems[items[k][0]] = "polygon has a value that is not finite (NaN or infinity)"
    far = ~inside & finite
    for k in np.flatnonzero(np.bincount(pobj, weights=far, minlength=len(items)) > 0).tolist():
        p = int(np.flatnonzero(far & (pobj == k))[0])
        problems.setdefault(items[k][0], f"polygon point ({x[p]:.6g}, {y[p]:.6g}) is far outside the {w}x{h} image "
                                         "(points must lie within one image size of it)")
    for k in np.flatnonzero(outline > MAX_OUTLINE).tolist():
        problems.setdefault(items[k][0], f"polygon outline of {outline[k]:.0f} pixels is longer than the limit "
                                         f"of {MAX_OUTLINE}")
    return problems


def mask_areas(rles: list) -> "np.ndarray":
    """Areas of RLEs (pycocotools' ``area``; chunked: it overflows past 255 objects)."""
    import numpy as np
    from pycocotools import mask as mask_utils

    if not rles:
        return np.zeros(0)
    return np.concatenate([np.asarray(mask_utils.area(rles[i:i + 255]), dtype=np.float64).reshape(-1)
                           for i in range(0, len(rles), 255)])


def mask_boxes(rles: list) -> "np.ndarray":
    """Boxes [x, y, w, h] of RLEs (pycocotools' ``toBbox``), (n, 4) float64."""
    import numpy as np
    from pycocotools import mask as mask_utils

    if not rles:
        return np.zeros((0, 4))
    return np.concatenate([np.asarray(mask_utils.toBbox(rles[i:i + 255]), dtype=np.float64).reshape(-1, 4)
                           for i in range(0, len(rles), 255)])
