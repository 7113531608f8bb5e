"""CSV annotation files (Open Images, generic CSV) read as text: every column as text,
then text -> float64 with decimal commas recognised (``"0,358"``) and a cell that is not
a number reported by file and line."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Iterable

from mlcycle.errors import MlcycleError

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import pyarrow as pa


def read_csv_text(path: Path, data: bytes | None = None) -> "pa.Table":
    """A CSV file with a header row, every column read as text (empty cells null)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    from mlcycle import io

    name = io.display_name(path)
    if data is None:
        data = io.read_bytes(path)
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    if not data.strip():
        raise MlcycleError(f"{name}: the file is empty; expected a CSV header row")
    try:
        first = pacsv.open_csv(pa.py_buffer(data)).schema.names
        types = {c: pa.string() for c in first}
        tab = pacsv.read_csv(
            pa.py_buffer(data),
            convert_options=pacsv.ConvertOptions(column_types=types, strings_can_be_null=True,
                                                 quoted_strings_can_be_null=True),
        )
    except pa.ArrowInvalid as exc:
        msg = str(exc).splitlines()[0]
        raise MlcycleError(f"{name}: malformed CSV: {msg}") from None
    return tab


def has_decimal_commas(columns: Iterable["pa.ChunkedArray"]) -> bool:
    """True when numeric text columns use a comma as the decimal mark ("0,358")."""
    import pyarrow.compute as pc

    for col in columns:
        if col.null_count == len(col):
            continue
        if pc.any(pc.match_substring(col, ",")).as_py() and not pc.any(pc.match_substring(col, ".")).as_py():
            return True
    return False


def to_float(col: "pa.ChunkedArray", name: str, column: str, decimal_comma: bool = False,
             line_offset: int = 2) -> "np.ndarray":
    """Text column -> float64 numpy array (null -> NaN); a cell that is not a number is an
    error ``file:line: column 'X' value 'v' is not a number`` (line = row + ``line_offset``)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    if decimal_comma:
        col = pc.replace_substring(col, ",", ".")
    col = pc.utf8_trim_whitespace(col)
    try:
        arr = pc.cast(col, pa.float64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        values = col.to_pylist()
        for i, v in enumerate(values):
            if v is None:
                continue
            try:
                float(v)
            except ValueError:
                raise MlcycleError(f"{name}:{i + line_offset}: column '{column}' value {v!r} is not a number") from None
        raise MlcycleError(f"{name}: column '{column}' has values that are not numbers") from None  # pragma: no cover
    return np.asarray(arr.to_numpy(zero_copy_only=False), dtype=np.float64)
