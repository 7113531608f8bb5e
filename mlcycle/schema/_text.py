"""Vectorised text for violations: row selections, values and messages built as Arrow
string arrays, never one Python string per row."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa


def rows_where(mask: "np.ndarray") -> "np.ndarray":
    """The indices of the True rows (int64)."""
    return np.flatnonzero(mask).astype(np.int64)


def take(arr: "pa.Array", rows: "np.ndarray") -> "pa.Array":
    """The values of ``arr`` at ``rows``."""
    import pyarrow as pa

    return arr.take(pa.array(rows, pa.int64()))


def join_text(*parts: Any) -> "pa.Array":
    """Element-wise string concatenation of arrays and constant strings."""
    import pyarrow as pa
    import pyarrow.compute as pc

    arrays = [p if isinstance(p, (pa.Array, pa.ChunkedArray)) else pa.scalar(str(p), pa.string()) for p in parts]
    arrays = [pc.fill_null(a, "null") if isinstance(a, (pa.Array, pa.ChunkedArray)) else a for a in arrays]
    return pc.binary_join_element_wise(*arrays, "")


def num_text(values: "np.ndarray") -> "pa.Array":
    """Numbers as text, rounded to 4 decimals."""
    import pyarrow as pa
    import pyarrow.compute as pc

    return pc.cast(pa.array(np.round(np.asarray(values, dtype=np.float64), 4)), pa.string())


def fmt_number(x: float | None) -> str:
    """One number as short text ('?' for None)."""
    if x is None:
        return "?"
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def box_text(b: "np.ndarray") -> "pa.Array":
    """(n, 4) boxes as '[x, y, w, h]' text."""
    return join_text("[", num_text(b[:, 0]), ", ", num_text(b[:, 1]), ", ", num_text(b[:, 2]), ", ",
                     num_text(b[:, 3]), "]")


def text_array(values: Any, k: int) -> "pa.Array":
    """A rule's values or messages (None, one string for all, or an array) as k strings."""
    import pyarrow as pa

    if values is None:
        return pa.nulls(k, pa.string())
    if isinstance(values, str):
        return pa.array(np.full(k, values, dtype=object), pa.string())
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    return values.cast(pa.string()) if values.type != pa.string() else values
