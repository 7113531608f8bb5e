"""The label table: column names, the Arrow schema of the core columns, validation.

This module owns the contract every command reads and writes (docs/label-table.md).
Column names are constants here; other modules use them instead of string literals.

A label table is a ``pyarrow.Table`` with one row per label, plus one *sample row*
(``label`` and ``label_id`` null) for each sample that has no label of a source.
Any column that is not a core column is an *attribute* and is carried through unchanged.
Table-level metadata (COCO ``info``, ``licenses``, category order, ...) lives in the
Arrow schema metadata under the key ``mlcycle`` as a JSON object holding
``schema_version``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Mapping

from mlcycle.errors import MlcycleError

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import pyarrow as pa

SCHEMA_VERSION = 1
METADATA_KEY = b"mlcycle"

# Core columns, in the order a table is written.
SAMPLE_ID = "sample_id"
SOURCE = "source"
LABEL_ID = "label_id"
LABEL = "label"
CATEGORY_ID = "category_id"
BBOX = "bbox"
SCORE = "score"
ISCROWD = "iscrowd"
AREA = "area"
SEGMENTATION = "segmentation"
WIDTH = "width"
HEIGHT = "height"
SPLIT = "split"
IMAGE_ID = "image_id"

# Well-known attribute columns (not core; read by some commands when present).
DIFFICULT = "difficult"  # VOC: ground truth neither counted nor penalised by evaluate --method voc

# Columns that commands add (still a label table). ``COMMAND_COLUMNS`` lists them all:
# exporters to annotation formats leave them out.
EVAL = "eval"
EVAL_ID = "eval_id"
EVAL_IOU = "eval_iou"
HARD_SCORE = "hard_score"
HARD_REASON = "hard_reason"
HARD_SAMPLE_SCORE = "hard_sample_score"  # mine-hard: the sample's aggregate score
HARD_MATCH = "hard_match"  # mine-hard --pool: the failure sample a pool sample resembles
VIOLATIONS = "violations"
# diff (mlcycle/curate/diff.py): one row per change between two tables
CHANGE = "change"  # added, removed, moved, relabelled, attributes
CHANGE_IOU = "change_iou"  # IoU of the new box with the old one it was matched to
OLD_LABEL = "old_label"  # the class on the old side of a matched label
OLD_BBOX = "old_bbox"  # the box on the old side of a matched label
CHANGED_ATTRIBUTES = "changed_attributes"  # list<string>: columns whose value changed
CHANGE_ADDED = "added"
CHANGE_REMOVED = "removed"
CHANGE_MOVED = "moved"
CHANGE_RELABELLED = "relabelled"
CHANGE_ATTRIBUTES = "attributes"
CHANGE_VALUES = (CHANGE_ADDED, CHANGE_REMOVED, CHANGE_MOVED, CHANGE_RELABELLED, CHANGE_ATTRIBUTES)
# dedupe (mlcycle/curate/dedupe.py): duplicate images
DUP_GROUP = "dup_group"  # int64 id of the sample's duplicate group; null when it has none
DUP_KIND = "dup_kind"  # exact (same bytes as another member) or near (perceptual/embedding)
LEAK = "leak"  # bool: the sample's duplicate group spans more than one split
DUP_EXACT = "exact"
DUP_NEAR = "near"
WEIGHT = "weight"  # rebalance --mode weight: float64, mean 1 over the samples
ORIGINAL_LABEL_ID = "original_label_id"  # merge: a label id it had to renumber
DIFF_COLUMNS = (CHANGE, CHANGE_IOU, OLD_LABEL, OLD_BBOX, CHANGED_ATTRIBUTES)
DEDUPE_COLUMNS = (DUP_GROUP, DUP_KIND, LEAK)
COMMAND_COLUMNS = (EVAL, EVAL_ID, EVAL_IOU, HARD_SCORE, HARD_REASON, HARD_SAMPLE_SCORE, HARD_MATCH, VIOLATIONS,
                   *DIFF_COLUMNS, *DEDUPE_COLUMNS)

# The values of ``eval``: a prediction matched (tp) or not (fp); a ground truth missed (fn).
TP = "tp"
FP = "fp"
FN = "fn"
EVAL_VALUES = (TP, FP, FN)

GT_SOURCE = "gt"
DEFAULT_PRED_SOURCE = "pred"

# Attribute columns that several annotation formats share (cvat, labelme, openimages, csv).
OCCLUDED = "occluded"
TRUNCATED = "truncated"
GROUP_OF = "group_of"  # Open Images IsGroupOf
DEPICTION = "depiction"  # Open Images IsDepiction
INSIDE = "inside"  # Open Images IsInside
CONFIDENCE = "confidence"  # a ground-truth label's stated confidence (Open Images Confidence)
ANNOTATION_SOURCE = "annotation_source"  # who made the label: CVAT source, Open Images Source
SHAPE = "shape"  # box, polygon, polyline, points, line, circle, ellipse, mask, tag
POINTS = "points"  # list<float64> x1, y1, x2, y2, ... for shapes that are not boxes/polygons
Z_ORDER = "z_order"
GROUP_ID = "group_id"
ROTATION = "rotation"
TRACK_ID = "track_id"
FRAME = "frame"
EMBEDDING = "embedding"  # list<float>: a sample's embedding (mine-hard --pool, dedupe)

CORE_COLUMNS = (
    SAMPLE_ID, SOURCE, LABEL_ID, LABEL, CATEGORY_ID, BBOX, SCORE, ISCROWD, AREA,
    SEGMENTATION, WIDTH, HEIGHT, SPLIT, IMAGE_ID,
)
REQUIRED_COLUMNS = (SAMPLE_ID, SOURCE)

# The one definition of the core columns' types, as names (error messages and docs use
# them as they are; ``core_types`` turns them into Arrow types).
CORE_TYPE_NAMES: dict[str, str] = {
    SAMPLE_ID: "string", SOURCE: "string", LABEL_ID: "int64", LABEL: "string",
    CATEGORY_ID: "int64", BBOX: "fixed_size_list<float64, 4>", SCORE: "float64",
    ISCROWD: "bool", AREA: "float64", SEGMENTATION: "string (COCO segmentation as JSON text)",
    WIDTH: "int32", HEIGHT: "int32", SPLIT: "string", IMAGE_ID: "int64",
}


def core_types() -> dict[str, "pa.DataType"]:
    import pyarrow as pa

    arrow = {
        "string": pa.string(), "int64": pa.int64(), "int32": pa.int32(), "float64": pa.float64(),
        "bool": pa.bool_(), "fixed_size_list<float64, 4>": pa.list_(pa.float64(), 4),
    }
    return {name: arrow[text.split(" (", 1)[0]] for name, text in CORE_TYPE_NAMES.items()}


def attribute_columns(table: "pa.Table") -> list[str]:
    """Columns that are not core columns, in table order."""
    return [n for n in table.column_names if n not in CORE_COLUMNS]


# --------------------------------------------------------------------------- metadata

def get_metadata(table: "pa.Table") -> dict[str, Any]:
    meta = table.schema.metadata or {}
    raw = meta.get(METADATA_KEY)
    if not raw:
        return {"schema_version": SCHEMA_VERSION}
    try:
        doc = json.loads(raw)
    except ValueError:
        return {"schema_version": SCHEMA_VERSION}
    return doc if isinstance(doc, dict) else {"schema_version": SCHEMA_VERSION}


def with_metadata(table: "pa.Table", metadata: Mapping[str, Any]) -> "pa.Table":
    doc = dict(metadata)
    doc.setdefault("schema_version", SCHEMA_VERSION)
    meta = dict(table.schema.metadata or {})
    meta[METADATA_KEY] = json.dumps(doc, separators=(",", ":")).encode()
    return table.replace_schema_metadata(meta)


def merge_metadata(*docs: Mapping[str, Any]) -> dict[str, Any]:
    """Later documents add keys; nested dicts are merged one level deep."""
    out: dict[str, Any] = {"schema_version": SCHEMA_VERSION}
    for doc in docs:
        for k, v in doc.items():
            if isinstance(v, dict) and isinstance(out.get(k), dict):
                merged = dict(out[k])
                merged.update(v)
                out[k] = merged
            else:
                out[k] = v
    return out


# --------------------------------------------------------------------------- building

def from_columns(columns: Mapping[str, Any], metadata: Mapping[str, Any] | None = None) -> "pa.Table":
    """Build a label table from column arrays/lists (core columns typed per contract).

    Core columns given as Python lists or numpy arrays are converted with the contract
    type; ``bbox`` may be an (n, 4) float array. Other columns keep their inferred type.
    """
    import numpy as np
    import pyarrow as pa

    types = core_types()
    arrays: dict[str, pa.Array] = {}
    for name, values in columns.items():
        if name == BBOX and isinstance(values, np.ndarray) and values.ndim == 2:
            arrays[name] = bbox_array(values)
        elif isinstance(values, (pa.Array, pa.ChunkedArray)):
            arrays[name] = values
        elif name in types:
            arrays[name] = pa.array(values, type=types[name])
        else:
            arrays[name] = pa.array(values)
    table = pa.table(arrays)
    table = normalize(table, origin="<internal>")
    if metadata is not None:
        table = with_metadata(table, metadata)
    return table


def bbox_array(boxes: "np.ndarray", valid: "np.ndarray | None" = None) -> "pa.Array":
    """(n, 4) float64 numpy array -> fixed_size_list<float64, 4>; rows where ``valid`` is
    False (or where all four values are NaN when ``valid`` is None) become null."""
    import numpy as np
    import pyarrow as pa

    boxes = np.ascontiguousarray(boxes, dtype=np.float64).reshape(-1, 4)
    if valid is None:
        valid = ~np.all(np.isnan(boxes), axis=1)
    flat = pa.array(boxes.ravel(), type=pa.float64())
    mask = pa.array(~np.asarray(valid, dtype=bool))
    return pa.FixedSizeListArray.from_arrays(flat, 4, mask=mask)


def bboxes(table: "pa.Table") -> "np.ndarray":
    """The ``bbox`` column as an (n, 4) float64 array; null boxes are NaN rows."""
    import numpy as np
    import pyarrow as pa

    n = table.num_rows
    if BBOX not in table.column_names:
        return np.full((n, 4), np.nan)
    col = table.column(BBOX).combine_chunks()
    if isinstance(col, pa.ChunkedArray):  # pragma: no cover - old pyarrow
        col = col.combine_chunks()
    if n == 0:
        return np.zeros((0, 4))
    values = col.values.to_numpy(zero_copy_only=False).astype(np.float64, copy=False)
    # .values skips nothing for fixed-size lists: every slot has 4 children
    out = values[col.offset * 4:(col.offset + n) * 4].reshape(n, 4).copy()
    if col.null_count:
        out[~col.is_valid().to_numpy(zero_copy_only=False)] = np.nan
    return out


def column_or_null(table: "pa.Table", name: str) -> "pa.ChunkedArray":
    """The column, or an all-null column of the core type when the table lacks it."""
    import pyarrow as pa

    if name in table.column_names:
        return table.column(name)
    typ = core_types().get(name, pa.null())
    return pa.chunked_array([pa.nulls(table.num_rows, type=typ)])


def numpy_column(table: "pa.Table", name: str, fill: Any = None, dtype=None) -> "np.ndarray":
    """A column as numpy, nulls replaced by ``fill`` (numeric columns: NaN by default)."""
    import pyarrow.compute as pc

    col = column_or_null(table, name)
    if fill is not None:
        col = pc.fill_null(col, fill) if col.null_count else col
    arr = col.to_numpy(zero_copy_only=False) if col.num_chunks != 1 else col.chunk(0).to_numpy(zero_copy_only=False)
    return arr.astype(dtype) if dtype is not None else arr


def label_mask(table: "pa.Table") -> "np.ndarray":
    """True on label rows, False on sample rows (label and bbox both null)."""
    import numpy as np

    n = table.num_rows
    lab = column_or_null(table, LABEL).is_valid().to_numpy(zero_copy_only=False) if n else np.zeros(0, bool)
    if BBOX in table.column_names and n:
        lab = lab | table.column(BBOX).is_valid().to_numpy(zero_copy_only=False)
    return np.asarray(lab, dtype=bool)


def dictionary_codes(column: "pa.ChunkedArray | pa.Array") -> tuple["np.ndarray", list]:
    """A column as integer codes into its distinct values: (codes, values), with -1 for
    null. The one way every command factorises a column (classes, samples, attributes)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    if not pa.types.is_dictionary(column.type):
        column = pc.dictionary_encode(column)
    indices = column.indices
    codes = indices.to_numpy(zero_copy_only=False)
    if indices.null_count:
        codes = np.where(indices.is_valid().to_numpy(zero_copy_only=False), codes, -1)
    return codes.astype(np.int64, copy=False), column.dictionary.to_pylist()


# --------------------------------------------------------------------------- validation

def _is_listlike(t: "pa.DataType") -> bool:
    import pyarrow as pa

    return pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)


def normalize(table: "pa.Table", origin: str = "<stdin>", keep_dictionaries: bool = False) -> "pa.Table":
    """Check a table against the contract and cast core columns to their types.

    Raises ``MlcycleError`` naming the column (and the first bad row) when a core column
    is missing or cannot be read as its type. Attribute columns are left untouched.
    Core columns come first, in contract order; attributes follow in their order.
    With ``keep_dictionaries``, string core columns that arrive dictionary-encoded (as
    Parquet stores them) stay so: code-based statistics count the codes directly.
    """
    import pyarrow as pa

    types = core_types()
    for name in REQUIRED_COLUMNS:
        if name not in table.column_names:
            raise MlcycleError(
                f"{origin}: not a label table: required column '{name}' is missing",
                hint="every row needs 'sample_id' and 'source' (see docs/label-table.md)",
            )
    if len(set(table.column_names)) != len(table.column_names):
        dup = sorted({n for n in table.column_names if table.column_names.count(n) > 1})
        raise MlcycleError(f"{origin}: duplicate column name(s): {', '.join(dup)}")
    metadata = table.schema.metadata
    cols: dict[str, pa.ChunkedArray] = {}
    for name in table.column_names:
        col = table.column(name)
        want = types.get(name)
        if want is not None and col.type != want and not (keep_dictionaries and _is_string_dictionary(col.type)):
            col = _cast_core(col, name, want, origin)
        cols[name] = col
    for name in REQUIRED_COLUMNS:
        if cols[name].null_count:
            row = _first_null(cols[name])
            raise MlcycleError(f"{origin}: row {row + 1}: column '{name}' is null; it never may be")
    if ISCROWD in cols and cols[ISCROWD].null_count:
        import pyarrow.compute as pc  # only here: its import costs ~40 ms of start-up

        cols[ISCROWD] = pc.fill_null(cols[ISCROWD], False)
    order = [n for n in CORE_COLUMNS if n in cols] + [n for n in table.column_names if n not in types]
    out = pa.table({n: cols[n] for n in order})
    if metadata:
        out = out.replace_schema_metadata(metadata)
    return out


def _is_string_dictionary(t: "pa.DataType") -> bool:
    import pyarrow as pa

    return pa.types.is_dictionary(t) and (pa.types.is_string(t.value_type) or pa.types.is_large_string(t.value_type))


def _first_null(col: "pa.ChunkedArray") -> int:
    import numpy as np

    valid = col.is_valid().to_numpy(zero_copy_only=False)
    return int(np.argmin(valid))


def _cast_core(col: "pa.ChunkedArray", name: str, want: "pa.DataType", origin: str) -> "pa.ChunkedArray":
    import pyarrow as pa
    import pyarrow.compute as pc

    have = col.type
    bad = (
        f"{origin}: column '{name}' has type {have}, expected {CORE_TYPE_NAMES[name]}"
    )
    if pa.types.is_null(have):
        return pa.chunked_array([pa.nulls(len(col), type=want)]) if len(col) else pa.chunked_array([], type=want)
    if name == BBOX:
        if not _is_listlike(have) or not (pa.types.is_floating(have.value_type) or pa.types.is_integer(have.value_type) or pa.types.is_null(have.value_type)):
            raise MlcycleError(bad, hint="bbox is [x, y, w, h] in pixels")
        col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
        if not pa.types.is_fixed_size_list(have):
            lengths = pc.list_value_length(col).to_numpy(zero_copy_only=False)
            valid = col.is_valid().to_numpy(zero_copy_only=False)
            wrong = valid & (lengths != 4)
            if wrong.any():
                import numpy as np

                row = int(np.argmax(wrong))
                raise MlcycleError(
                    f"{origin}: row {row + 1}: column 'bbox' has {int(lengths[row])} values, expected 4 ([x, y, w, h])"
                )
        try:
            return pa.chunked_array([col.cast(want)])
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise MlcycleError(bad + f" ({exc})") from None
    if name == SEGMENTATION and not pa.types.is_string(have) and not pa.types.is_large_string(have):
        # nested segmentation (e.g. from hand-written JSON Lines): keep it as JSON text
        import orjson

        values = [None if v is None else orjson.dumps(v).decode() for v in col.to_pylist()]
        return pa.chunked_array([pa.array(values, type=pa.string())])
    if pa.types.is_integer(want) and pa.types.is_floating(have):
        arr = col.to_numpy(zero_copy_only=False)
        import numpy as np

        valid = col.is_valid().to_numpy(zero_copy_only=False)
        frac = valid & ~np.isfinite(np.where(valid, arr, 0.0))
        frac |= valid & (np.where(valid, arr, 0.0) != np.round(np.where(valid, arr, 0.0)))
        if frac.any():
            row = int(np.argmax(frac))
            raise MlcycleError(f"{origin}: row {row + 1}: column '{name}' value {arr[row]!r} is not an integer")
    if pa.types.is_string(want) and not (pa.types.is_string(have) or pa.types.is_large_string(have) or pa.types.is_dictionary(have)):
        if pa.types.is_integer(have):  # e.g. sample ids that are numbers in a CSV
            return col.cast(want)
        raise MlcycleError(bad)
    if pa.types.is_boolean(want) and pa.types.is_integer(have):
        return pc.not_equal(col, 0)
    try:
        return col.cast(want)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
        raise MlcycleError(bad + f" ({str(exc).splitlines()[0]})") from None


def empty_table() -> "pa.Table":
    import pyarrow as pa

    types = core_types()
    return pa.table({n: pa.array([], type=types[n]) for n in (SAMPLE_ID, SOURCE, LABEL_ID, LABEL, BBOX)})


def sources(table: "pa.Table") -> list[str]:
    import pyarrow.compute as pc

    return [s for s in pc.unique(table.column(SOURCE)).to_pylist() if s is not None]


def filter_source(table: "pa.Table", source: str) -> "pa.Table":
    import pyarrow.compute as pc

    return table.filter(pc.equal(table.column(SOURCE), source))
