"""Assemble a label table from per-sample and per-label arrays (the yolo, voc, kitti and
images readers), and the small column builders other readers share.

Rows come in sample order; within a sample, its labels in file order; a sample without
labels is one sample row (``label``/``label_id``/``bbox`` null). ``label_id`` numbers
the labels 1..n in that order.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from mlcycle import table as T

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import pyarrow as pa

    from mlcycle.formats._invalid import InvalidInput


def assemble(*, sample_ids: Sequence[str], label_sample: "np.ndarray", labels: Sequence[Any],
             boxes: "np.ndarray", source: str, splits: Sequence[str | None] | None = None,
             widths: "np.ndarray | None" = None, heights: "np.ndarray | None" = None,
             category_ids: "np.ndarray | None" = None, scores: "np.ndarray | None" = None,
             attributes: Mapping[str, Sequence[Any]] | None = None,
             metadata: Mapping[str, Any] | None = None) -> "pa.Table":
    import numpy as np
    import pyarrow as pa

    n_samples = len(sample_ids)
    label_sample = np.asarray(label_sample, dtype=np.int64)
    n = len(label_sample)
    has = np.zeros(n_samples, dtype=bool)
    has[label_sample] = True
    empty = np.flatnonzero(~has)
    row_sample = np.concatenate([label_sample, empty])
    order = np.argsort(row_sample, kind="stable")
    row_sample = row_sample[order]
    is_label = order < n
    label_idx = np.where(is_label, order, 0)

    def per_label(values: Any, typ: "pa.DataType") -> "pa.Array":
        if isinstance(values, np.ndarray) and values.dtype != object:
            if n == 0:
                return pa.nulls(len(order), typ)
            return pa.array(values[label_idx], type=typ, mask=~is_label)
        if typ == pa.string():
            uniq, inverse = _factorize(values)
            idx = pa.array(inverse[label_idx] if n else np.zeros(len(order), np.int32), type=pa.int32(),
                           mask=~is_label)
            return pa.DictionaryArray.from_arrays(idx, pa.array(uniq, type=pa.string())).cast(pa.string())
        vals = list(values)
        out = [vals[j] if ok else None for j, ok in zip(label_idx.tolist(), is_label.tolist())]
        return pa.array(out, type=typ)

    def per_sample(values: Any, typ: "pa.DataType") -> "pa.Array":
        if isinstance(values, np.ndarray) and values.dtype != object:
            return pa.array(values[row_sample], type=typ)
        if typ == pa.string():
            uniq, inverse = _factorize(values)
            return pa.DictionaryArray.from_arrays(pa.array(inverse[row_sample], type=pa.int32()),
                                                  pa.array(uniq, type=pa.string())).cast(pa.string())
        vals = list(values)
        return pa.array([vals[i] for i in row_sample.tolist()], type=typ)

    # (pyarrow imports pandas to convert numpy object arrays: take strings via lists or
    # dictionary indices instead)
    sid_list = list(sample_ids)
    cols: dict[str, Any] = {
        T.SAMPLE_ID: pa.DictionaryArray.from_arrays(pa.array(row_sample, type=pa.int32()),
                                                    pa.array(sid_list, type=pa.string())).cast(pa.string())
        if n_samples else pa.array([], type=pa.string()),
        T.SOURCE: pa.repeat(pa.scalar(source, pa.string()), len(order)) if hasattr(pa, "repeat")
        else pa.array([source] * len(order), type=pa.string()),
    }
    lid = np.arange(1, n + 1, dtype=np.int64)
    cols[T.LABEL_ID] = per_label(lid, pa.int64())
    cols[T.LABEL] = per_label(labels, pa.string())
    if category_ids is not None:
        cols[T.CATEGORY_ID] = per_label(np.asarray(category_ids, dtype=np.int64), pa.int64())
    bx = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    full = np.full((len(order), 4), np.nan)
    if n:
        full[is_label] = bx[order[is_label]]
    cols[T.BBOX] = T.bbox_array(full, valid=is_label & ~np.isnan(full).all(axis=1))
    if scores is not None:
        cols[T.SCORE] = per_label(np.asarray(scores, dtype=np.float64), pa.float64())
    if widths is not None and heights is not None:
        w = np.asarray(widths, dtype=np.int64)[row_sample]
        h = np.asarray(heights, dtype=np.int64)[row_sample]
        cols[T.WIDTH] = pa.array(w, type=pa.int32(), mask=w < 0)
        cols[T.HEIGHT] = pa.array(h, type=pa.int32(), mask=h < 0)
    if splits is not None and any(s is not None for s in splits):
        cols[T.SPLIT] = per_sample(splits, pa.string())
    for name, values in (attributes or {}).items():
        if isinstance(values, np.ndarray) and values.dtype != object:
            typ = pa.from_numpy_dtype(values.dtype)
            cols[name] = per_label(values, typ)
        else:
            vals = list(values)
            cols[name] = pa.array([vals[j] if ok else None for j, ok in zip(label_idx.tolist(), is_label.tolist())])
    return T.from_columns(cols, metadata or {})


def _factorize(values: Sequence[Any]) -> tuple[list, "np.ndarray"]:
    """(distinct values in first-seen order, int32 index of each value)."""
    import numpy as np

    index: dict[Any, int] = {}
    inverse = np.fromiter((index.setdefault(v, len(index)) for v in values), dtype=np.int32, count=len(values))
    return list(index), inverse


def filter_keeping_samples(tab: "pa.Table", keep: "np.ndarray") -> "pa.Table":
    """The rows where ``keep`` is true; an image that loses all its rows (an invalid box
    skipped, a size unknown) stays, as a sample row."""
    import pyarrow as pa

    from mlcycle import io

    if keep.all():
        return tab
    kept = tab.filter(pa.array(keep))
    left = set(kept.column(T.SAMPLE_ID).to_pylist())
    first: dict[str, int] = {}
    for i, (s, k) in enumerate(zip(tab.column(T.SAMPLE_ID).to_pylist(), keep.tolist())):
        if not k and s not in left and s not in first:
            first[s] = i
    if not first:
        return kept
    rows = tab.take(pa.array(list(first.values()), type=pa.int64()))
    cols = {c: rows.column(c) for c in (T.SAMPLE_ID, T.SOURCE, T.WIDTH, T.HEIGHT, T.SPLIT, T.IMAGE_ID)
            if c in rows.column_names}
    return T.with_metadata(io.concat([kept, T.from_columns(cols)]), T.get_metadata(tab))


def attribute_array(values: list) -> "pa.Array":
    """An Arrow array for an attribute column; values of mixed types become text."""
    import pyarrow as pa

    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        return pa.array([None if v is None else str(v) for v in values], type=pa.string())


def check_box_geometry(boxes: "np.ndarray", problems: "InvalidInput", where: Callable[[int], str],
                       present: "np.ndarray | None" = None,
                       values: Callable[[int], str] | None = None) -> "np.ndarray":
    """The one rule for bad geometry, applied by every reader: a box ``[x, y, w, h]``
    (pixels or fractions) with a negative width or height -- in corner formats
    ``x2 < x1`` or ``y2 < y1`` -- or a non-finite value is an invalid label.

    ``boxes`` is ``(n, 4)`` in ``[x, y, w, h]``; ``present`` marks the rows that have a
    box (default: rows not all NaN; rows without a box are fine). ``where(i)`` names
    box ``i`` for the message (``"a.txt:3"``, ``"x.json: annotations[7] (id 9)"``);
    ``values(i)``, when given, shows its values as the file has them (``"XMin='0.5',
    XMax='0.2'"``) instead of ``[x, y, w, h] = [...]``.
    Each invalid box goes to ``problems`` (an error at the first one, or counted and
    skipped with ``skip_invalid``). Returns the mask of rows to keep. Vectorised: the
    message is built only for the few boxes reported."""
    import numpy as np

    from mlcycle.errors import printable

    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if present is None:
        present = ~np.isnan(b).all(axis=1)
    with np.errstate(invalid="ignore"):
        nonfinite = present & ~np.isfinite(b).all(axis=1)
        negative = present & ~nonfinite & ((b[:, 2] < 0) | (b[:, 3] < 0))
    bad = nonfinite | negative
    if not bad.any():
        return ~bad

    def message(i: int) -> str:
        shown = values(i) if values is not None else "[x, y, w, h] = [" + ", ".join(repr(float(v)) for v in b[i]) + "]"
        what = "a non-finite value" if nonfinite[i] else "a negative width or height (x2 < x1 or y2 < y1)"
        return f"{where(i)}: the box has {what} ({printable(shown)})"

    problems.add_each(np.flatnonzero(bad).tolist(), message)
    return ~bad
