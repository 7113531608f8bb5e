"""Small integer codes for the values statistics count, and counting over them.

Per-class, per-split, per-source and per-sample numbers are ``numpy.bincount`` over
codes. The code books here *grow across batches* (a value keeps its code in every batch
and every group), which ``mlcycle.table.dictionary_codes`` — codes into one column's own
distinct values — does not give on its own: it is used to factorise each batch, and the
code books map its values to their global codes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlcycle import table as T

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import pyarrow as pa


class CodeBook:
    """A growing global dictionary: value -> small int code (classes, splits, sources)."""

    def __init__(self) -> None:
        self.values: list[Any] = []
        self.index: dict[Any, int] = {}

    def __len__(self) -> int:
        return len(self.values)

    def code(self, value: Any) -> int:
        c = self.index.get(value)
        if c is None:
            c = self.index[value] = len(self.values)
            self.values.append(value)
        return c

    def encode(self, column: "pa.ChunkedArray | pa.Array") -> "np.ndarray":
        """Codes per row (nulls get the code of None)."""
        import numpy as np

        if len(column) == 0:
            return np.zeros(0, np.int64)
        local, values = T.dictionary_codes(column)
        # local code -1 (null) picks the last entry: the code of None
        mapping = np.array([self.code(v) for v in values] + [self.code(None)], dtype=np.int64)
        return mapping[local]


class SampleCodes:
    """Global integer codes for sample ids: each batch's (small) dictionary of sample ids
    is looked up in the ids seen so far with ``pyarrow.compute.index_in``."""

    def __init__(self) -> None:
        self.known = None
        self.count = 0

    def codes(self, dictionary: "pa.Array") -> "np.ndarray":
        """Global codes for the entries of one batch's dictionary of sample ids."""
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        if not pa.types.is_string(dictionary.type):
            dictionary = dictionary.cast(pa.string())
        enc = pc.dictionary_encode(dictionary)  # a Parquet dictionary may repeat a value
        uniq = enc.dictionary
        remap = enc.indices.to_numpy(zero_copy_only=False).astype(np.int64)
        codes = np.full(len(uniq), -1, np.int64)
        if self.known is not None and len(uniq):
            # probe the ids seen so far against this batch's (small) set of ids
            pos = pc.index_in(self.known, value_set=uniq)
            valid = to_numpy(pos.is_valid())
            codes[to_numpy(pos.filter(pos.is_valid())).astype(np.int64)] = np.flatnonzero(valid)
        new = codes < 0
        if new.any():
            codes[new] = self.count + np.arange(int(new.sum()))
            fresh = uniq.filter(pa.array(new))
            self.known = fresh if self.known is None else pa.concat_arrays([self.known, fresh])
            self.count = len(self.known)
        return codes[remap]


@dataclass
class Shared:
    """Dictionaries shared by every group, so codes mean the same everywhere."""

    classes: CodeBook
    splits: CodeBook
    sources: CodeBook
    samples: SampleCodes


def to_numpy(column) -> "np.ndarray":
    """A (chunked) array as numpy without going through pandas."""
    import pyarrow as pa

    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    return column.to_numpy(zero_copy_only=False)


def unique(values: "np.ndarray", inverse: bool = False):
    """Sorted distinct values (and the inverse index): numpy's np.unique hashes since 2.3,
    which is far slower than sorting for integer codes."""
    import numpy as np

    if not inverse:
        v = np.sort(values)
        return v[np.concatenate(([True], v[1:] != v[:-1]))] if len(v) else v
    order = np.argsort(values, kind="stable")
    v = values[order]
    first = np.concatenate(([True], v[1:] != v[:-1])) if len(v) else np.zeros(0, bool)
    inv = np.empty(len(values), np.int64)
    inv[order] = np.cumsum(first) - 1
    return v[first], inv


def keyed_counts(key: "np.ndarray", size: int, weights: "np.ndarray | None" = None):
    """(distinct keys, rows per key, weight sums per key) by bincount when the key space
    is small compared with the rows, else by sorting."""
    import numpy as np

    if size <= 4 * len(key) + 4096:
        rows = np.bincount(key, minlength=size)
        nz = np.flatnonzero(rows)
        w = np.bincount(key, weights=weights, minlength=size)[nz] if weights is not None else None
        return nz, rows[nz], w
    uniq, inv = unique(key, inverse=True)
    rows = np.bincount(inv, minlength=len(uniq))
    w = np.bincount(inv, weights=weights, minlength=len(uniq)) if weights is not None else None
    return uniq, rows, w


def arrow_codes(column) -> tuple["np.ndarray", "pa.Array"]:
    """(indices with -1 for null, dictionary) of a string column, encoding it if needed.

    ``table.dictionary_codes`` with the values kept as an Arrow array instead of a Python
    list: a batch holds up to hundreds of thousands of distinct sample ids or attribute
    values, which are then probed (``index_in``) and taken in Arrow, never as objects."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    if not pa.types.is_dictionary(column.type):
        column = pc.dictionary_encode(column)
    idx = column.indices
    if idx.null_count:
        idx = pc.fill_null(idx, -1)
    return idx.to_numpy(zero_copy_only=False).astype(np.int64, copy=False), column.dictionary


def grow(arr: "np.ndarray", size: int) -> "np.ndarray":
    import numpy as np

    if arr.shape[0] >= size:
        return arr
    out = np.zeros((size,) + arr.shape[1:], dtype=arr.dtype)
    out[: arr.shape[0]] = arr
    return out


def grow_stats(arr: "np.ndarray", size: int) -> "np.ndarray":
    """Per-class [count, sum, min, max] rows; new rows start empty."""
    import numpy as np

    old = arr.shape[0]
    if old >= size:
        return arr
    out = np.empty((size, 4))
    out[:old] = arr
    out[old:] = [0.0, 0.0, np.inf, -np.inf]
    return out


def add_counts(acc: "np.ndarray", codes: "np.ndarray", size: int, weights=None) -> "np.ndarray":
    import numpy as np

    if acc.shape[0] < size:  # grow with room to spare: per-sample arrays grow every batch
        acc = grow(acc, max(size, acc.shape[0] + acc.shape[0] // 2))
    if len(codes):
        counts = np.bincount(codes, weights=weights, minlength=size)
        acc[: len(counts)] += counts.astype(acc.dtype, copy=False)
    return acc


def float_column(table: "pa.Table", name: str) -> "np.ndarray":
    import numpy as np

    if name not in table.column_names:
        return np.full(table.num_rows, np.nan)
    col = table.column(name)
    import pyarrow.compute as pc

    col = col.cast("float64") if not str(col.type) == "double" else col
    if col.null_count:
        col = pc.fill_null(col, float("nan"))
    return to_numpy(col).astype(np.float64, copy=False) if len(col) else np.zeros(0)


def sort_key(value: Any) -> tuple:
    return (value is None, str(value) if value is not None else "")
