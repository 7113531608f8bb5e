"""Segmentation masks: the ``segmentation`` column decoded into pycocotools RLEs.

``Masks`` holds the masks of some table rows and decodes them only when the matcher asks
(most predictions never meet a ground truth of their class on their image); ``mask_areas``
gives pycocotools' areas. A segmentation is JSON text: polygons, an uncompressed RLE or a
compressed RLE (docs/label-table.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlcycle.errors import MlcycleError

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import pyarrow as pa


class Masks:
    """The masks of some table rows, turned into pycocotools RLEs only when asked for
    (``take``), in batches: most predictions never meet a ground truth of their class on
    their image, and their masks are never needed.

    RLEs are built as ``COCO.annToRLE`` builds them: polygons -> ``frPyObjects`` +
    ``merge`` (image height/width from the row), an uncompressed RLE -> ``frPyObjects``, a
    compressed RLE as it is; a row with a box but no mask gets the box as a polygon (as
    ``loadRes`` does for box results)."""

    def __init__(self, col: "pa.Array", rows: "np.ndarray", boxes, W, H, origin: str, cache=None):
        self.col, self.rows, self.boxes, self.W, self.H, self.origin = col, rows, boxes, W, H, origin
        self.cache: dict[int, Any] = {} if cache is None else cache  # table row -> RLE, shared by subsets

    def __len__(self) -> int:
        return len(self.rows)

    def subset(self, idx: "np.ndarray") -> "Masks":
        return Masks(self.col, self.rows[idx], self.boxes, self.W, self.H, self.origin, self.cache)

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
                cache.update(zip(missing.tolist(), _rles(self.col, missing, self.boxes, self.W, self.H, self.origin)))
            return [cache[r] for r in rows]
        finally:
            if enabled:
                gc.enable()

    def areas(self, idx: "np.ndarray") -> "np.ndarray":
        return mask_areas(self.take(idx))


# the JSON text mlcycle's readers write for a compressed RLE (orjson, no spaces); the
# counts characters are '0'..'o', of which JSON escapes only the backslash (as two)
_RLE_TEXT = r'^\{"size":\[(?P<h>[0-9]+),(?P<w>[0-9]+)\],"counts":"(?P<c>(?:[^"\\]|\\\\)*)"\}$'


def _rles(col, rows, boxes, W, H, origin):
    import numpy as np
    import orjson
    import pyarrow as pa
    import pyarrow.compute as pc
    from pycocotools import mask as mask_utils

    out: list = [None] * len(rows)
    sub = col.take(pa.array(rows))
    # fast path: compressed RLE text parsed by a vectorised regex instead of JSON
    m = pc.extract_regex(sub, _RLE_TEXT)
    okm = m.is_valid()
    ok = okm.to_numpy(zero_copy_only=False)
    fast = np.flatnonzero(ok)
    if len(fast):
        hh = pc.cast(m.field("h").filter(okm), "int64").to_numpy().tolist()
        ww = pc.cast(m.field("w").filter(okm), "int64").to_numpy().tolist()
        cf = m.field("c").filter(okm)
        if pc.any(pc.match_substring(cf, "\\")).as_py():
            cf = pc.replace_substring(cf, "\\\\", "\\")  # JSON's escaped backslash
        # bytes: pycocotools reads them as they are (a str is encoded on every use)
        cc = cf.cast(pa.binary()).to_pylist()
        fast_rles = [{"size": [h_, w_], "counts": c_} for h_, w_, c_ in zip(hh, ww, cc)]
        if len(fast) == len(rows):
            return fast_rles
        for j, r_ in zip(fast.tolist(), fast_rles):
            out[j] = r_
    slow_idx = np.flatnonzero(~ok)
    segs = sub.filter(pc.invert(okm)).to_pylist() if len(slow_idx) else []
    have = [int(slow_idx[j]) for j, t in enumerate(segs) if t is not None]
    texts = [t for t in segs if t is not None]
    try:
        parsed = orjson.loads("[" + ",".join(texts) + "]") if texts else []
    except orjson.JSONDecodeError:
        bad = next(j for j, t in zip(have, texts) if _bad_json(t))
        raise MlcycleError(f"{origin}: row {int(rows[bad]) + 1}: segmentation is not valid JSON") from None
    objs: list = [None] * len(rows)
    for j, o in zip(have, parsed):
        if type(o) is dict and type(o.get("counts")) is str:
            out[j] = o  # compressed RLE: used as it is
        else:
            objs[j] = o
    rest = [j for j in range(len(rows)) if out[j] is None]
    if not rest:
        return out
    Hs = H[rows[rest]]
    Ws = W[rows[rest]]
    polys: dict[tuple[int, int], list] = {}
    for j, h_, w_ in zip(rest, Hs.tolist(), Ws.tolist()):
        r = int(rows[j])
        obj = objs[j]
        if obj is None:
            x, y, w, h = boxes[r].tolist()
            obj = [[x, y, x, y + h, x + w, y + h, x + w, y]]
        if type(obj) is dict:
            if "size" in obj and isinstance(obj.get("counts"), list):
                out[j] = mask_utils.frPyObjects(obj, obj["size"][0], obj["size"][1])
                continue
            raise MlcycleError(f"{origin}: row {r + 1}: segmentation is neither polygons nor RLE")
        if h_ != h_ or w_ != w_:  # NaN
            raise MlcycleError(f"{origin}: row {r + 1}: polygon segmentation needs the image size",
                               hint="the row's width and height columns are empty")
        if type(obj) is not list or not obj or type(obj[0]) is not list:
            raise MlcycleError(f"{origin}: row {r + 1}: segmentation is neither polygons nor RLE")
        hw = (int(h_), int(w_))
        if len(obj[0]) > 4 and (len(obj) == 1 or all(type(p) is list and len(p) > 4 for p in obj)):
            polys.setdefault(hw, []).append((j, obj))
        else:  # frPyObjects treats a first list of 4 numbers as boxes: keep its exact call
            try:
                rl = mask_utils.frPyObjects(obj, hw[0], hw[1])
            except Exception as exc:
                raise MlcycleError(f"{origin}: row {r + 1}: bad segmentation ({exc})") from None
            out[j] = mask_utils.merge(rl) if isinstance(rl, list) else rl
    for (h, w), items in polys.items():
        flat = [p for _, obj in items for p in obj]
        try:
            rl = mask_utils.frPyObjects(flat, h, w)
        except Exception:  # find the bad one and say which row it is
            for j, obj in items:
                try:
                    mask_utils.frPyObjects(obj, h, w)
                except Exception as exc:
                    raise MlcycleError(f"{origin}: row {int(rows[j]) + 1}: bad polygon segmentation ({exc})") from None
            raise
        k = 0
        for j, obj in items:
            m = len(obj)
            out[j] = rl[k] if m == 1 else mask_utils.merge(rl[k:k + m])
            k += m
    return out


def _bad_json(text: str) -> bool:
    import orjson

    try:
        orjson.loads(text)
        return False
    except orjson.JSONDecodeError:
        return True


def mask_areas(rles: list) -> "np.ndarray":
    """Areas of RLEs (pycocotools' ``area``; chunked: it overflows past 255 objects)."""
    import numpy as np
    from pycocotools import mask as mask_utils

    if not rles:
        return np.zeros(0)
    return np.concatenate([np.asarray(mask_utils.area(rles[i:i + 255]), dtype=np.float64).reshape(-1)
                           for i in range(0, len(rles), 255)])
