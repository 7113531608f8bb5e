"""The fast reading of COCO instances files: one msgspec pass, columns in bulk.

Most of a COCO file is its annotations. msgspec decodes the whole document in one pass
with the annotations as small structs (``gc=False``: no cyclic-GC bookkeeping): ids and
numbers as Python values, the box as a 4-tuple, and the ``segmentation`` (and any key
that is not a standard one: ``keypoints``, ``num_keypoints``, ``ignore`` ...) kept as the
raw JSON text of the value, so the tens of millions of polygon coordinates never become
Python floats. Segmentations become the Arrow string column by joining those slices
(one copy) with offsets from their lengths: the text is exactly the source's.

Keys that are not known in advance are found by decoding: msgspec refuses an unknown
field, naming it, and the key is added to the struct (as raw JSON) and the file decoded
again; the first annotation usually names them all, so that costs next to nothing. A file
msgspec cannot take (a value of another type than COCO's, invalid UTF-8 in a raw value,
too many odd keys) returns None: the caller then takes the general orjson path, which
also gives the precise error messages.

Arrays are built from buffers (``arrow_numbers``), not ``pa.array(ndarray)``: that call
imports ``numpy.ma`` and masks import ``pyarrow.compute``, ~50 ms of start-up that a
one-file ingest does not otherwise need.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import pyarrow as pa

# the standard annotation keys and their types (anything else is kept as raw JSON)
_STANDARD = ("id", "image_id", "category_id", "segmentation", "area", "bbox", "iscrowd", "attributes", "score")
# typed struct fields; the rarer standard keys (attributes, score) are found like extra
# keys, so that files without them do not pay for scanning them
_TYPED = _STANDARD[:7]
# Keys are discovered one decode at a time. A decode that fails early costs little; one
# that fails late (a key first met deep in the annotations, a top-level key after them)
# costs a whole pass, so few of those are allowed before the general path takes over.
_MAX_RETRIES = 32
_EARLY = 1000  # an unknown key met within the first annotations: a cheap retry
_MAX_LATE = 3
_MAX_TOP = 8  # top-level keys besides images, annotations, categories (info, licenses, type ...)
_UNKNOWN_ANN = re.compile(r"Object contains unknown field `(.*)` - at `\$\.annotations\[(\d+)\]`", re.S)
_UNKNOWN_TOP = re.compile(r"Object contains unknown field `(.*)`", re.S)
_NUMPY = {"int64": "<i8", "int32": "<i4", "double": "<f8"}
_EXTRA_PREFIX = "x_"  # struct attribute names of extra keys: x_0, x_1 ... (renamed to the JSON key)


class Fallback(Exception):
    """Raised while building columns from structs when the general path must read the
    file (it gives the precise error)."""


def _types(ann_extras: list[str], top_extras: list[str]) -> type:
    """The document struct for these extra annotation and top-level keys."""
    from typing import Any as AnyT, Optional, Tuple

    import msgspec

    fields: list[tuple] = [
        ("id", int), ("image_id", int),
        ("category_id", Optional[int], None),
        ("segmentation", msgspec.Raw, msgspec.Raw()),
        ("area", Optional[float], None),
        ("bbox", Optional[Tuple[float, float, float, float]], None),
        ("iscrowd", Optional[int], None),
    ]
    rename = {}
    for i, key in enumerate(ann_extras):
        attr = f"{_EXTRA_PREFIX}{i}"
        fields.append((attr, msgspec.Raw, msgspec.Raw()))
        rename[attr] = key
    ann = msgspec.defstruct("Annotation", fields, rename=rename, forbid_unknown_fields=True, gc=False,
                            namespace={"__coco_extras__": dict(rename)})
    doc_fields: list[tuple] = [("images", list[dict]), ("annotations", list[ann]), ("categories", AnyT, None)]
    doc_rename = {}
    for i, key in enumerate(top_extras):
        attr = f"{_EXTRA_PREFIX}{i}"
        doc_fields.append((attr, AnyT, None))
        doc_rename[attr] = key
    return msgspec.defstruct("Document", doc_fields, rename=doc_rename, forbid_unknown_fields=True)


def decode(data: bytes) -> dict | None:
    """The document as a dict (top-level keys in file order as far as they are known;
    ``annotations`` a list of structs), or None when the general path must read it."""
    try:
        import msgspec
    except ImportError:  # pragma: no cover - a declared dependency
        return None
    ann_extras: list[str] = []
    top_extras: list[str] = []
    late = 0
    for _ in range(_MAX_RETRIES + 1):
        doc_type = _types(ann_extras, top_extras)
        try:
            doc = msgspec.json.decode(data, type=doc_type)
        except msgspec.ValidationError as exc:
            message = str(exc)
            m = _UNKNOWN_ANN.fullmatch(message)
            extras = ann_extras
            if m is None and " - at `" not in message:
                m = _UNKNOWN_TOP.fullmatch(message)
                extras = top_extras
            if m is None:
                return None  # a value of another type than COCO's: the general path says where
            key = m.group(1)
            late += extras is ann_extras and int(m.group(2)) >= _EARLY
            if late > _MAX_LATE or len(top_extras) >= _MAX_TOP:
                return None
            if key in extras or key in _TYPED or (extras is top_extras and key in ("images", "annotations", "categories")):
                return None  # a message we cannot trust
            extras.append(key)
            continue
        except (msgspec.DecodeError, TypeError, RecursionError, ValueError, MemoryError):
            return None
        out: dict[str, Any] = {}
        for i, key in enumerate(top_extras):
            out[key] = getattr(doc, f"{_EXTRA_PREFIX}{i}")
        out["images"] = doc.images
        out["annotations"] = doc.annotations
        if doc.categories is not None:
            out["categories"] = doc.categories
        return out
    return None


def is_fast(anns: list) -> bool:
    return bool(anns) and getattr(type(anns[0]), "__coco_extras__", None) is not None


class Fields:
    """Columns of a list of annotation structs, each extracted once."""

    def __init__(self, anns: list):
        self.anns = anns
        self.extras: dict[str, str] = dict(type(anns[0]).__coco_extras__)  # attribute -> JSON key
        self._cache: dict[str, list] = {}

    def attr(self, key: str) -> str:
        for attr, k in self.extras.items():
            if k == key:
                return attr
        return key

    def __call__(self, key: str) -> list:
        """The values of a standard key (None where missing), or the parsed values of
        an extra key."""
        if key in self._cache:
            return self._cache[key]
        from operator import attrgetter

        attr = self.attr(key)
        if attr in self.extras:
            values = parse_raw(self.raw(attr))
        elif key in _TYPED:
            values = list(map(attrgetter(attr), self.anns))
        else:  # a key no annotation has
            values = [None] * len(self.anns)
        self._cache[key] = values
        return values

    def ints(self, key: str) -> "np.ndarray | None":
        """A standard integer key as int64 when no value is missing or beyond int64
        (msgspec checked the type), else None."""
        import numpy as np

        values = self(key)
        if None in values:
            return None
        try:
            return np.fromiter(values, dtype=np.int64, count=len(values))
        except OverflowError:
            return None

    def raw(self, attr: str) -> list:
        """The raw JSON values of a raw-kept key (empty where missing)."""
        key = "raw:" + attr
        if key not in self._cache:
            from operator import attrgetter

            self._cache[key] = list(map(attrgetter(attr), self.anns))
        return self._cache[key]

    def drop(self, attr: str) -> None:
        self._cache.pop("raw:" + attr, None)

    def present(self, key: str) -> bool:
        """Whether any annotation has the key (with a value other than null for the
        typed standard keys, as the general path sees it)."""
        attr = self.attr(key)
        if attr in self.extras or attr == "segmentation":
            return any(map(len, self.raw(attr)))
        if key not in _TYPED:
            return False
        values = self(key)
        return values.count(None) != len(values)

    def keys(self) -> list[str]:
        """The annotation keys present: the standard ones in their order, then the others."""
        out = [k for k in _STANDARD if k in ("id", "image_id") or (k in _TYPED or k in self.extras.values()) and self.present(k)]
        return out + [k for k in self.extras.values() if k not in _STANDARD and self.present(k)]


def parse_raw(raws: list) -> list:
    """Raw JSON values (empty: missing) -> Python values (None for missing or null)."""
    import msgspec

    body = b",".join([r if len(r) else b"null" for r in raws])
    try:
        return msgspec.json.decode(b"[" + body + b"]")
    except (msgspec.DecodeError, RecursionError, ValueError):  # e.g. invalid UTF-8 in a string
        raise Fallback() from None


def box_values(raw: list) -> tuple:
    """Boxes as msgspec decoded them (4-tuples of floats, or None) -> ((n, 4) float64
    with NaN rows where missing, present mask, bad mask (none: the types are checked))."""
    import numpy as np
    from itertools import chain

    n = len(raw)
    missing = raw.count(None)
    if missing:
        nan4 = (np.nan,) * 4
        has = np.fromiter(map(lambda b: b is not None, raw), dtype=bool, count=n)
        raw = [nan4 if b is None else b for b in raw]
    else:
        has = np.ones(n, dtype=bool)
    boxes = np.fromiter(chain.from_iterable(raw), dtype=np.float64, count=4 * n).reshape(n, 4)
    return boxes, has, np.zeros(n, dtype=bool)


def raw_strings(raws: list) -> "pa.Array":
    """Raw JSON values -> a string array of their text (null where missing or null),
    built from one joined buffer. ``Fallback`` when the text is not valid UTF-8 (the
    general path reports where) or too big for one array's 32-bit offsets."""
    import numpy as np
    import pyarrow as pa

    n = len(raws)
    data = b"".join(raws)
    if len(data) >= 2**31 - 1:
        raise Fallback()
    if not data.isascii():
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            raise Fallback() from None
    lengths = np.fromiter(map(len, raws), dtype=np.int32, count=n)
    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    null = lengths == 0
    maybe_null = np.flatnonzero(lengths == 4)
    if len(maybe_null):
        null[maybe_null[[bytes(raws[i]) == b"null" for i in maybe_null.tolist()]]] = True
    return pa.Array.from_buffers(pa.string(), n, [validity(null), pa.py_buffer(offsets), pa.py_buffer(data)])


def validity(null: "np.ndarray | None") -> "pa.Buffer | None":
    """An Arrow validity bitmap (None when nothing is null)."""
    import numpy as np
    import pyarrow as pa

    if null is None or not null.any():
        return None
    return pa.py_buffer(np.packbits(~null, bitorder="little"))


def arrow_numbers(values: "np.ndarray", typ: "pa.DataType", null: "np.ndarray | None" = None) -> "pa.Array":
    """A numeric or boolean numpy array as an Arrow array of ``typ`` (``null`` marks
    nulls), from its buffers."""
    import numpy as np
    import pyarrow as pa

    n = len(values)
    if pa.types.is_boolean(typ):
        data = pa.py_buffer(np.packbits(np.asarray(values, dtype=bool), bitorder="little"))
    else:
        data = pa.py_buffer(np.ascontiguousarray(values, dtype=_NUMPY[str(typ)]))
    return pa.Array.from_buffers(typ, n, [validity(null), data])


def box_array(boxes: "np.ndarray", valid: "np.ndarray", typ: "pa.DataType") -> "pa.Array":
    """(n, 4) float64 boxes -> the ``bbox`` column's fixed-size lists (null where not
    ``valid``), from buffers."""
    import numpy as np
    import pyarrow as pa

    n = len(boxes)
    flat = arrow_numbers(np.ascontiguousarray(boxes, dtype=np.float64).reshape(-1), pa.float64())
    return pa.Array.from_buffers(typ, n, [validity(~np.asarray(valid, dtype=bool))], children=[flat])


_NUMBER_TEXT = b"0123456789,- \n\r\t"


def int_column(raws: list) -> "pa.Array | None":
    """An extra key's raw values as int64 or list<int64> (what ``pa.array`` infers from
    the parsed values), parsed in bulk from the text (numpy) when every value is an
    integer, a flat list of integers or null; None otherwise (the caller parses them).
    Person keypoints (51 integers per annotation) would cost ~10x more as Python ints."""
    from itertools import repeat

    import numpy as np
    import pyarrow as pa

    n = len(raws)
    lengths = np.fromiter(map(len, raws), dtype=np.int64, count=n)
    null = lengths == 0
    for i in np.flatnonzero(lengths == 4).tolist():
        null[i] = null[i] or bytes(raws[i]) == b"null"
    rows = [r for r, z in zip(raws, null.tolist()) if not z]
    if not rows:
        return None
    joined = b"".join(rows)
    n_lists = joined.count(b"[")
    if n_lists not in (0, len(rows)) or joined.count(b"]") != n_lists:
        return None  # nested lists, or lists mixed with numbers
    if joined.translate(None, _NUMBER_TEXT + (b"[]" if n_lists else b"")):
        return None  # floats, strings, booleans, objects ...
    if n_lists:
        lens = lengths[~null]
        starts = np.zeros(len(rows), dtype=np.int64)
        np.cumsum(lens[:-1], out=starts[1:])
        if not (np.frombuffer(joined, dtype=np.uint8)[starts] == ord("[")).all():
            return None
        # numbers per list: its commas + 1, or 0 for an empty list
        count = joined.count
        commas = np.fromiter(map(count, repeat(b","), starts.tolist(), (starts + lens).tolist()),
                             dtype=np.int64, count=len(rows))
        has_digit = commas > 0
        for i in np.flatnonzero(~has_digit).tolist():  # "[5]" or "[]"
            has_digit[i] = bool(bytes(rows[i]).strip(b"[] \n\r\t"))
        counts = np.where(has_digit, commas + 1, 0)
        if has_digit.all():  # "[1,2][3]" -> " 1,2, 3,"
            text = joined.translate(bytes.maketrans(b"[]", b" ,"))
        else:
            text = b",".join([r for r, c in zip(rows, has_digit.tolist()) if c]).translate(bytes.maketrans(b"[]", b"  "))
    else:
        counts = None
        text = b",".join(rows)
    del joined
    total = len(rows) if counts is None else int(counts.sum())
    if not total:
        return None  # only empty lists: list<null>, as parsing gives
    try:
        values = np.fromstring(text, dtype=np.int64, sep=",")
    except ValueError:
        return None
    del text
    if len(values) != total or values.min() <= -10**18 or values.max() >= 10**18:
        return None  # out of int64 (or suspect): the parsed path decides
    if counts is None:
        full = np.zeros(n, dtype=np.int64)
        full[~null] = values
        return arrow_numbers(full, pa.int64(), null)
    per_row = np.zeros(n, dtype=np.int32)
    per_row[~null] = counts
    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(per_row, out=offsets[1:])
    child = arrow_numbers(values, pa.int64())
    return pa.Array.from_buffers(pa.list_(pa.int64()), n, [validity(null), pa.py_buffer(offsets)], children=[child])
