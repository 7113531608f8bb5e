"""Helpers shared by the cvat, labelme, openimages and csv format modules:

- ``Problems``: bad input is a one-line error naming file and place, or, with
  ``--skip-invalid``, a counted warning at the end;
- CSV reading with every column as text, and text -> float64 with decimal commas
  recognised (``"0,358"``) and bad cells reported by line;
- the attribute columns a writer may put into a format, and number formatting that
  round-trips (``repr`` of a float, integers without ``.0``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from mlcycle import table as T
from mlcycle.errors import MlcycleError

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import pyarrow as pa

# Columns that commands add; never written into an annotation format.
COMMAND_COLUMNS = (T.EVAL, T.EVAL_ID, T.EVAL_IOU, T.HARD_SCORE, T.HARD_REASON, T.VIOLATIONS)


class Problems:
    """Collects invalid labels: raises at the first one unless ``skip`` is set, in which
    case ``report()`` prints one counted warning naming the first few."""

    def __init__(self, skip: bool, what: str = "label", plural: str | None = None) -> None:
        self.skip = skip
        self.what = what
        self.plural = plural or what + "s"
        self.items: list[str] = []

    def add(self, message: str, hint: str | None = None) -> None:
        if not self.skip:
            raise MlcycleError(message, hint=hint or "fix the file, or pass --skip-invalid to skip such labels with a warning")
        self.items.append(message)

    def report(self) -> None:
        if not self.items:
            return
        from mlcycle import reporting

        n = len(self.items)
        first = "; ".join(self.items[:3])
        more = f" (and {n - 3} more)" if n > 3 else ""
        reporting.warn(f"skipped {n} invalid {self.what if n == 1 else self.plural}: {first}{more}")


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


def strip_bom(names: Iterable[str]) -> list[str]:
    return [n.lstrip("\ufeff").strip() for n in names]


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


def num(v: Any) -> str:
    """A number as text that reads back to the same value: integers without '.0',
    floats by their shortest round-trip ``repr``."""
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, int):
        return str(v)
    f = float(v)
    if f.is_integer() and abs(f) < 1e16:
        return str(int(f))
    return repr(f)


def num_strings(values) -> list[str]:
    """A float array as text, vectorised: the shortest text that reads back to the same
    float (pyarrow's cast; integers without '.0', e.g. '58', '0.1', '1e-07')."""
    import numpy as np
    import pyarrow as pa

    return pa.array(np.asarray(values, dtype=np.float64)).cast(pa.string()).to_pylist()


def writable_attributes(table: "pa.Table", exclude: Iterable[str] = (), commands: bool = False) -> list[str]:
    """Attribute columns a writer may copy into a format: not the ones the format handles
    itself (``exclude``), not nested, and not command columns (``eval``, ``hard_score``
    ...) unless ``commands``."""
    import pyarrow as pa

    skip = set(exclude) | (set() if commands else set(COMMAND_COLUMNS))
    return [c for c in T.attribute_columns(table)
            if c not in skip and not pa.types.is_nested(table.column(c).type)]


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


def check_relative(sample_id: str, fmt: str) -> None:
    """Refuse a sample id that is not a relative path inside the dataset folder (``..``,
    absolute paths, drive letters): the format stores it as an image path."""
    from pathlib import PurePosixPath

    rel = str(sample_id).replace("\\", "/")
    pure = PurePosixPath(rel)
    if (not rel or "\x00" in rel or pure.is_absolute() or ".." in pure.parts
            or (len(rel) > 1 and rel[1] == ":")):
        raise MlcycleError(f"sample_id {sample_id!r} would point outside the dataset folder; {fmt} stores it as an image path",
                           hint="sample ids must be relative paths without '..'")


def pick_source(table: "pa.Table", source: str | None) -> "pa.Table":
    """The rows of one source: ``source``, else ``gt``, else the only source there is."""
    avail = T.sources(table) if table.num_rows else [T.GT_SOURCE]
    want = source or T.GT_SOURCE
    if want not in avail:
        if len(avail) == 1 and source is None:
            want = avail[0]
        else:
            raise MlcycleError(f"no rows with source '{want}' to export (sources: {', '.join(avail) or 'none'})",
                               hint="choose one with --source")
    others = [s for s in avail if s != want]
    if others:
        from mlcycle import reporting

        reporting.info(f"writing the rows of source '{want}'; not written: {', '.join(others)} (choose with --source)")
    return T.filter_source(table, want)


def first_values(samples: list, values: list) -> dict:
    """sample_id -> first non-null value of a per-row column."""
    out: dict = {}
    for s, v in zip(samples, values):
        if v is not None and out.get(s) is None:
            out[s] = v
        else:
            out.setdefault(s, None)
    return out


def attribute_array(values: list) -> "pa.Array":
    """An Arrow array for an attribute column; values of mixed types become text."""
    import pyarrow as pa

    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        return pa.array([None if v is None else str(v) for v in values], type=pa.string())
