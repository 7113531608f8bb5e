"""The pieces of a COCO document, read and checked (shared by ``coco`` and
``coco_results``): images and their ids, categories, boxes, and the conversions of
annotation values into Arrow columns (the fast msgspec decoding is ``_coco_fast``). Bad
input is an error naming the file and the entry (``images[3]``, ``annotations[7]``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlcycle import table as T
from mlcycle.errors import MlcycleError, mention, printable

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa

_IMG_CORE = ("id", "file_name", "width", "height")


def _fail(name: str, message: str, hint: str | None = None) -> MlcycleError:
    return MlcycleError(f"{name}: {message}", hint=hint)


_INT64 = 2**63


def int_values(values: list, name: str, what: str, key: str, ann_ids: list | None = None,
               problems: Any = None, nullable: bool = False, low: int = -_INT64, high: int = _INT64):
    """COCO integers -> (int64 array, bad mask, null mask).

    Integers in ``[low, high)``, and floats with an integral value (``640.0``, ``1.0``:
    pycocotools accepts them) read as those integers. Anything else -- a fraction,
    ``NaN``, a number out of range (``2**64``), a string, a boolean, a missing value
    unless ``nullable`` -- is an error naming ``what[i].key`` (with ``problems``, an
    ``InvalidInput``, each is reported there and marked in the bad mask instead)."""
    import numpy as np
    import pyarrow as pa

    n = len(values)
    types = set(map(type, values))
    if types <= ({int, type(None)} if nullable else {int}):
        try:
            arr = pa.array(values, type=pa.int64())
            null = ~arr.is_valid().to_numpy(zero_copy_only=False) if arr.null_count else np.zeros(n, bool)
            out = arr.fill_null(0).to_numpy() if arr.null_count else arr.to_numpy()
            if low == -_INT64 and high == _INT64 or not n or (out.min() >= low and out.max() < high):
                return out, np.zeros(n, bool), null
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            pass
    out = np.zeros(n, np.int64)
    bad = np.zeros(n, bool)
    null = np.zeros(n, bool)
    problem: dict[int, str] = {}
    for i, v in enumerate(values):
        t = type(v)
        if v is None:
            if nullable:
                null[i] = True
                continue
            problem[i] = "is missing"
        elif t is int or (t is float and v == v and v not in (float("inf"), float("-inf")) and v.is_integer()):
            if low <= v < high:
                out[i] = int(v)
                continue
            problem[i] = f"{v!r} is out of range" + (" (64-bit integers)" if low == -_INT64 else f" ({low}..{high - 1})")
        else:
            kind = "a string" if t is str else ("a boolean" if t is bool else "not an integer")
            problem[i] = f"{printable(repr(v), 60)} is {kind}" + ("" if kind == "not an integer" else ", not an integer")
        bad[i] = True

    def message(i: int) -> str:
        ident = f" (id {ann_ids[i]})" if ann_ids is not None and key != "id" else ""
        return f"{name}: {what}[{i}]{ident}: {key} {problem[i]}"

    if problem:
        if problems is None:
            raise MlcycleError(message(next(iter(problem))),
                               hint="string ids are not supported: renumber the ids, keeping file_name"
                               if key == "id" and any(type(values[i]) is str for i in problem) else None)
        problems.add_each(list(problem), message)
    return out, bad, null


def load_images(doc: dict, name: str) -> dict[str, Any]:
    """The images list as columns plus an id -> row-index map (shared with coco-results)."""
    import numpy as np

    if not isinstance(doc, dict):
        if isinstance(doc, list) and (not doc or (isinstance(doc[0], dict) and "image_id" in doc[0])):
            raise _fail(name, "this is a COCO results file (a JSON list of detections), not COCO instances",
                        hint=f"read it as format coco-results, with {mention('images')} naming the ground truth "
                             "(its COCO instances file or label table)")
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
    id_arr = int_values(ids, name, "images", "id")[0]
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
    # sizes: non-negative 32-bit integers (640.0 read as 640); missing is allowed
    sizes = []
    for key in ("width", "height"):
        arr, _, null = int_values([im.get(key) for im in images], name, "images", key, nullable=True, low=0, high=2**31)
        sizes.append(arr.tolist() if not null.any() else [None if m else v for v, m in zip(arr.tolist(), null.tolist())])
    widths, heights = sizes
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
    return find_image_rows(images, image_ids, name, what)[0]


def find_image_rows(images: dict[str, Any], image_ids: "Any", name: str, what: str,
                    problems: Any = None, ann_ids: list | None = None, skip: "Any" = None) -> tuple:
    """(row index into ``images`` for each image id, mask of unknown ids). An unknown id
    is an error naming the entry, or with ``problems`` reported there; entries already
    marked in ``skip`` are not looked at."""
    import numpy as np

    sorted_ids = images["sorted_ids"]
    n = len(image_ids)
    if len(sorted_ids) == 0:
        found = np.zeros(n, bool)
        pos = np.zeros(n, np.int64)
    else:
        pos = np.clip(np.searchsorted(sorted_ids, image_ids), 0, len(sorted_ids) - 1)
        found = sorted_ids[pos] == image_ids
    unknown = ~found if skip is None else ~found & ~skip
    if unknown.any():
        def message(i: int) -> str:
            ident = f" (id {ann_ids[i]})" if ann_ids is not None else ""
            tail = ", but there are no images" if len(sorted_ids) == 0 else ""
            return f"{name}: {what}[{i}]{ident} refers to unknown image id {int(image_ids[i])}{tail}"

        if problems is None:
            raise MlcycleError(message(int(np.argmax(unknown))))
        problems.add_each(np.flatnonzero(unknown).tolist(), message)
    rows = images["sorted_index"][pos] if len(sorted_ids) else np.zeros(n, np.int64)
    return rows, unknown


def load_categories(doc: dict, name: str) -> tuple[list[dict], dict[int, str]]:
    cats = doc.get("categories")
    if cats is None:
        cats = []
    if not isinstance(cats, list) or not all(isinstance(c, dict) for c in cats):
        raise _fail(name, "'categories' must be a list of objects")
    by_id: dict[int, str] = {}
    for i, c in enumerate(cats):
        cid = c.get("id")
        if type(cid) is float and cid.is_integer():
            cid = int(cid)  # 1.0: pycocotools accepts it
        if type(cid) is not int or not -_INT64 <= cid < _INT64:
            raise _fail(name, f"categories[{i}].id must be an integer, got {printable(repr(cid), 60)}")
        if cid in by_id:
            raise _fail(name, f"category id {cid} appears twice in 'categories'")
        cname = c.get("name")
        if not isinstance(cname, str) or not cname:
            raise _fail(name, f"categories[{i}] (id {cid}) has no 'name'")
        by_id[cid] = cname
    return cats, by_id


def check_boxes(boxes_list: list, name: str, what: str, ann_ids: list | None = None):
    """Lists of [x, y, w, h] -> (n, 4) float array; None entries become NaN rows.
    Non-numeric, wrong-length or non-finite boxes are errors naming the annotation."""
    arr, present, _ = read_boxes(boxes_list, name, what, ann_ids)
    return arr, present


def read_boxes(boxes_list: list, name: str, what: str, ann_ids: list | None = None, problems: Any = None):
    """(boxes (n, 4), present mask, bad mask): like ``check_boxes``, but with
    ``problems`` (an ``InvalidInput``) a malformed or non-finite box is reported there
    and marked bad (its row NaN) instead of raising."""
    import numpy as np

    n = len(boxes_list)
    present = np.fromiter((b is not None for b in boxes_list), dtype=bool, count=n)
    bad = np.zeros(n, bool)
    try:
        filled = [b if b is not None else (np.nan, np.nan, np.nan, np.nan) for b in boxes_list]
        arr = np.array(filled, dtype=np.float64) if n else np.zeros((0, 4))
        ok = arr.ndim == 2 and arr.shape[1] == 4
    except (ValueError, TypeError, OverflowError):
        ok = False
    problem: dict[int, str] = {}
    if not ok:
        arr = np.full((n, 4), np.nan)
        for i, b in enumerate(boxes_list):
            if b is None:
                continue
            if not isinstance(b, (list, tuple)) or len(b) != 4 or not all(
                    type(v) in (int, float) for v in b):
                problem[i] = f"bbox {printable(repr(b), 80)} is not four numbers [x, y, w, h]"
                continue
            try:
                arr[i] = [float(v) for v in b]
            except OverflowError:
                arr[i] = np.inf
    nonfinite = present & ~np.isfinite(arr).all(axis=1)
    for i in np.flatnonzero(nonfinite).tolist():
        problem.setdefault(i, f"bbox {printable(repr(boxes_list[i]), 80)} has a non-finite value")
    if problem:
        order = sorted(problem)

        def message(i: int) -> str:
            ident = f" (id {ann_ids[i]})" if ann_ids is not None else ""
            return f"{name}: {what}[{i}]{ident}: {problem[i]}"

        if problems is None:
            raise MlcycleError(message(order[0]))
        problems.add_each(order, message)
        bad[order] = True
        arr[bad] = np.nan
    return arr, present & ~bad, bad


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


def _polygon_texts(segs: list) -> list:
    """Segmentation values (parsed JSON) as JSON text."""
    import orjson

    dumps = orjson.dumps
    return [v if v is None or type(v) is str else dumps(v).decode() for v in segs]
