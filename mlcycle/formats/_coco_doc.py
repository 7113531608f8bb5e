"""The pieces of a COCO document, read and checked (shared by ``coco`` and
``coco_results``): the fast msgspec decoding of standard files, images and their ids,
categories, boxes, and the conversions of annotation values into Arrow columns. Bad
input is an error naming the file and the entry (``images[3]``, ``annotations[7]``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlcycle import table as T
from mlcycle.errors import MlcycleError

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa

_IMG_CORE = ("id", "file_name", "width", "height")


# Fast path: most COCO files have only the standard annotation keys. msgspec decodes
# those straight into small structs (ids, box as a tuple, the segmentation kept as its raw
# JSON text instead of tens of millions of float objects): about 3x faster and with half
# the memory of building dicts. A file with any other annotation key, or anything msgspec
# rejects, takes the general path (orjson dicts), which also gives the precise errors.
_ANN_STRUCT = None


def _ann_struct():
    global _ANN_STRUCT
    if _ANN_STRUCT is None:
        from typing import Optional, Tuple

        import msgspec

        # defstruct, not a class body: this module's annotations are strings
        Annotation = msgspec.defstruct("Annotation", [
            ("id", int), ("image_id", int),
            ("category_id", Optional[int], None),
            ("segmentation", msgspec.Raw, msgspec.Raw()),
            ("area", Optional[float], None),
            ("bbox", Optional[Tuple[float, float, float, float]], None),
            ("iscrowd", Optional[int], None),
            ("attributes", Optional[dict], None),
            ("score", Optional[float], None),
        ], forbid_unknown_fields=True)
        _ANN_STRUCT = Annotation
    return _ANN_STRUCT


def _fast_decode(data: bytes) -> dict | None:
    try:
        import msgspec
    except ImportError:  # pragma: no cover - a declared dependency
        return None
    Annotation = _ann_struct()
    try:
        top = msgspec.json.decode(data, type=dict[str, msgspec.Raw])
        if "annotations" not in top or "images" not in top:
            return None
        doc = {k: msgspec.json.decode(v) for k, v in top.items() if k != "annotations"}
        doc["annotations"] = msgspec.json.decode(top["annotations"], type=list[Annotation])
        return doc
    except (msgspec.DecodeError, msgspec.ValidationError, TypeError):
        return None


def _fail(name: str, message: str, hint: str | None = None) -> MlcycleError:
    return MlcycleError(f"{name}: {message}", hint=hint)


def _check_int_ids(values: list, name: str, what: str) -> None:
    for i, v in enumerate(values):
        if type(v) is not int:
            kind = "a string" if isinstance(v, str) else type(v).__name__
            raise _fail(name, f"{what}[{i}].id is {kind} ({v!r}); COCO ids must be integers",
                        hint="string ids are not supported: renumber the ids, keeping file_name")


def load_images(doc: dict, name: str) -> dict[str, Any]:
    """The images list as columns plus an id -> row-index map (shared with coco-results)."""
    import numpy as np

    if not isinstance(doc, dict):
        raise _fail(name, "expected a JSON object with 'images', 'annotations' and 'categories'")
    images = doc.get("images")
    if not isinstance(images, list):
        raise _fail(name, "not a COCO instances file: the 'images' list is missing")
    if not all(isinstance(im, dict) for im in images):
        bad = next(i for i, im in enumerate(images) if not isinstance(im, dict))
        raise _fail(name, f"images[{bad}] is not an object")
    try:
        ids = [im["id"] for im in images]
    except KeyError:
        bad = next(i for i, im in enumerate(images) if "id" not in im)
        raise _fail(name, f"images[{bad}] has no 'id'") from None
    _check_int_ids(ids, name, "images")
    id_arr = np.array(ids, dtype=np.int64)
    uniq, counts = np.unique(id_arr, return_counts=True)
    if (counts > 1).any():
        raise _fail(name, f"image id {int(uniq[counts > 1][0])} appears {int(counts[counts > 1][0])} times in 'images'")
    file_names = [im.get("file_name") for im in images]
    for i, fn in enumerate(file_names):
        if not isinstance(fn, str) or not fn:
            raise _fail(name, f"images[{i}] (id {ids[i]}) has no 'file_name'")
    if len(set(file_names)) != len(file_names):
        seen: set[str] = set()
        dup = next(fn for fn in file_names if fn in seen or seen.add(fn))
        raise _fail(name, f"file_name {dup!r} is used by two images")
    widths = [im.get("width") for im in images]
    heights = [im.get("height") for im in images]
    extra_keys: list[str] = []
    for im in images:
        for k in im:
            if k not in _IMG_CORE and k not in extra_keys:
                extra_keys.append(k)
    order = np.argsort(id_arr, kind="stable")
    return {
        "ids": id_arr, "file_names": file_names, "widths": widths, "heights": heights,
        "extra": {k: [im.get(k) for im in images] for k in extra_keys},
        "sorted_ids": id_arr[order], "sorted_index": order,
    }


def image_rows(images: dict[str, Any], image_ids: "Any", name: str, what: str) -> "Any":
    """Row index into ``images`` for each image id; an unknown id is an error naming it."""
    import numpy as np

    sorted_ids = images["sorted_ids"]
    if len(sorted_ids) == 0:
        if len(image_ids):
            raise _fail(name, f"{what}[0] refers to image id {int(image_ids[0])}, but there are no images")
        return np.zeros(0, dtype=np.int64)
    pos = np.searchsorted(sorted_ids, image_ids)
    pos = np.clip(pos, 0, len(sorted_ids) - 1)
    found = sorted_ids[pos] == image_ids
    if not found.all():
        bad = int(np.argmin(found))
        raise _fail(name, f"{what}[{bad}] refers to unknown image id {int(image_ids[bad])}")
    return images["sorted_index"][pos]


def load_categories(doc: dict, name: str) -> tuple[list[dict], dict[int, str]]:
    cats = doc.get("categories")
    if cats is None:
        cats = []
    if not isinstance(cats, list) or not all(isinstance(c, dict) for c in cats):
        raise _fail(name, "'categories' must be a list of objects")
    by_id: dict[int, str] = {}
    for i, c in enumerate(cats):
        cid = c.get("id")
        if type(cid) is not int:
            raise _fail(name, f"categories[{i}].id must be an integer, got {cid!r}")
        if cid in by_id:
            raise _fail(name, f"category id {cid} appears twice in 'categories'")
        cname = c.get("name")
        if not isinstance(cname, str):
            raise _fail(name, f"categories[{i}] (id {cid}) has no 'name'")
        by_id[cid] = cname
    return cats, by_id


def check_boxes(boxes_list: list, name: str, what: str, ann_ids: list | None = None):
    """Lists of [x, y, w, h] -> (n, 4) float array; None entries become NaN rows.
    Non-numeric, wrong-length or non-finite boxes are errors naming the annotation."""
    import numpy as np

    n = len(boxes_list)
    present = np.fromiter((b is not None for b in boxes_list), dtype=bool, count=n)
    try:
        filled = [b if b is not None else (np.nan, np.nan, np.nan, np.nan) for b in boxes_list]
        arr = np.array(filled, dtype=np.float64) if n else np.zeros((0, 4))
        ok = arr.ndim == 2 and arr.shape[1] == 4
    except (ValueError, TypeError):
        ok = False
    if not ok:
        for i, b in enumerate(boxes_list):
            if b is None:
                continue
            if not isinstance(b, list) or len(b) != 4 or not all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) for v in b):
                ident = f" (id {ann_ids[i]})" if ann_ids is not None else ""
                raise _fail(name, f"{what}[{i}]{ident}: bbox {b!r} is not four numbers [x, y, w, h]")
        raise _fail(name, f"{what}: malformed bbox values")  # pragma: no cover
    bad = present & ~np.isfinite(arr).all(axis=1)
    if bad.any():
        i = int(np.argmax(bad))
        ident = f" (id {ann_ids[i]})" if ann_ids is not None else ""
        raise _fail(name, f"{what}[{i}]{ident}: bbox {boxes_list[i]!r} has a non-finite value")
    return arr, present


def _json_text(values: list) -> list:
    import orjson

    dumps = orjson.dumps
    return [None if v is None else dumps(v).decode() for v in values]


def _attribute_array(values: list, column: str):
    """An Arrow array for an attribute column; mixed-type values fall back to JSON text."""
    import pyarrow as pa

    try:
        return pa.array(values), False
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        return pa.array(_json_text(values), type=pa.string()), True


def _int_array(values: list, name: str, what: str, field: str, ann_ids: list | None = None):
    """A list of Python ints -> int64 array; anything else is an error naming the entry."""
    import numpy as np
    import pyarrow as pa

    try:
        arr = pa.array(values, type=pa.int64())
        if arr.null_count == 0 and not any(type(v) is bool for v in values[:1]):
            return arr.to_numpy()
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        pass
    for i, v in enumerate(values):
        if type(v) is not int:
            ident = f" (id {ann_ids[i]})" if ann_ids is not None and field != "id" else ""
            kind = "missing" if v is None else f"{v!r}, not an integer"
            raise _fail(name, f"{what}[{i}]{ident}: {field} is {kind}")
    return np.array(values, dtype=np.int64)  # pragma: no cover - bools caught above


def _polygon_texts(segs: list) -> list:
    """Segmentation values (parsed JSON) as JSON text."""
    import orjson

    dumps = orjson.dumps
    return [v if v is None or type(v) is str else dumps(v).decode() for v in segs]


def _all_int(values: list) -> bool:
    return all(v is None or (type(v) is int) for v in values)
