"""CSV annotation files (Open Images, generic CSV) read as text: every column as text,
then text -> float64 with decimal commas recognised (``"0,358"``) and a cell that is not
a number reported by file and line.

Encodings: UTF-8 with or without a BOM; UTF-16/32 text, invalid UTF-8 (at its line) and
a JSON or XML file given as CSV are one clear error each.

Formula injection (OWASP's "CSV injection"): text cells that start with ``=``, ``+``,
``-``, ``@``, a tab or a carriage return are written with a leading ``'`` so that a
spreadsheet shows them as text instead of running them (``neutralise``); numbers in
numeric columns are not text and are written as they are. Reading takes such a ``'``
off again (``read_csv_text``), so mlcycle's own CSV files read back unchanged."""

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

    from mlcycle.errors import printable
    from mlcycle.formats._json import strip_bom, utf8_error

    name = io.display_name(path)
    if data is None:
        data = io.read_bytes(path)
    data = strip_bom(data)
    check_csv_bytes(data, name)
    try:
        first = pacsv.open_csv(pa.py_buffer(data)).schema.names
        types = {c: pa.string() for c in first}
        tab = pacsv.read_csv(
            pa.py_buffer(data),
            # only an empty cell is null: "NA", "null" or "nan" are text (a class may be
            # called NA; a number "nan" is reported as not finite, not taken for empty)
            convert_options=pacsv.ConvertOptions(column_types=types, strings_can_be_null=True,
                                                 quoted_strings_can_be_null=True, null_values=[""]),
        )
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:  # (a header that is not UTF-8: the latter)
        bad = utf8_error(data, name)
        if bad is not None:
            raise bad from None
        msg = printable(str(exc).splitlines()[0] if str(exc).strip() else type(exc).__name__)
        raise MlcycleError(f"{name}: malformed CSV: {msg}") from None
    return unescape_table(tab)


def check_csv_bytes(data: bytes, name: str) -> None:
    """Refuse, with one clear line, what cannot be a CSV annotation file: nothing at all,
    UTF-16/32 text, a JSON or XML file (saying what it looks like)."""
    from mlcycle.formats._json import check_text_encoding, strip_bom, utf8_error

    data = strip_bom(data)
    if not data.strip():
        raise MlcycleError(f"{name}: the file is empty; expected a CSV header row")
    check_text_encoding(data, name)
    bad = utf8_error(data[:data.find(b"\n") if b"\n" in data else len(data)], name)  # the header
    if bad is not None:
        raise bad
    kind = _not_csv(data)
    if kind is not None:
        raise MlcycleError(f"{name}: not CSV: this looks like {kind}")


def _not_csv(data: bytes) -> str | None:
    """What a JSON or XML file given as CSV looks like (with the format that reads it)."""
    head = data[:4096].lstrip()
    if head.startswith(b"<"):
        low = head.lower()
        return "CVAT XML (read it as cvat)" if b"<annotations" in low else (
            "Pascal VOC XML (read it as voc)" if b"<annotation" in low else "XML")
    if head.startswith(b"["):
        return "JSON: a list, e.g. COCO results (read it as coco-results)"
    if head.startswith(b"{"):
        if b'"shapes"' in head:
            return "LabelMe JSON (read it as labelme)"
        if b'"images"' in head or b'"annotations"' in head:
            return "COCO JSON (read it as coco)"
        if b'"sample_id"' in head or b'"__mlcycle__"' in head:
            return "a label table in JSON Lines (mlcycle commands read it as it is)"
        return "JSON"
    return None


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_FORMULA_RE = r"^[=+\-@\t\r]"


def neutralise_cell(text: str) -> str:
    """``text`` with a leading ``'`` when a spreadsheet would take it for a formula."""
    return "'" + text if text.startswith(FORMULA_START) else text


def unescape_cell(text: str) -> str:
    """Undo ``neutralise_cell``."""
    return text[1:] if text.startswith("'") and text[1:2] and text[1] in "=+-@\t\r" else text


def neutralise(table: "pa.Table") -> "pa.Table":
    """Every text column of ``table`` with ``neutralise_cell`` applied (vectorised);
    numeric, boolean and other columns as they are."""
    import pyarrow as pa
    import pyarrow.compute as pc

    for k, col in enumerate(table.columns):
        typ = col.type.value_type if pa.types.is_dictionary(col.type) else col.type
        if not (pa.types.is_string(typ) or pa.types.is_large_string(typ)):
            continue
        if pa.types.is_dictionary(col.type):
            col = col.cast(typ)
        risky = pc.match_substring_regex(col, _FORMULA_RE)
        if pc.any(risky).as_py():
            col = pc.if_else(risky, pc.binary_join_element_wise("'", col, ""), col)
            table = table.set_column(k, table.field(k).name, col)
    return table


def unescape_table(tab: "pa.Table") -> "pa.Table":
    """Take the ``'`` that ``neutralise`` adds off again (text columns, vectorised)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    for k, col in enumerate(tab.columns):
        if not pa.types.is_string(col.type) or col.null_count == len(col) or not pc.any(pc.starts_with(col, "'")).as_py():
            continue
        col = pc.replace_substring_regex(col, r"^'([=+\-@\t\r])", r"\1")
        tab = tab.set_column(k, tab.field(k).name, col)
    return tab


def finite_floats(tab: "pa.Table", column: str, name: str, problems, decimal_comma: bool = False,
                  line_offset: int = 2) -> tuple["np.ndarray", "np.ndarray"]:
    """``to_float`` of a column, and the mask of rows whose cell is a number that is not
    finite (``inf``, ``nan``, ``1e309``): each reported to ``problems`` (an
    ``InvalidInput``) as ``file:line``. Empty cells are NaN and not reported."""
    import numpy as np

    from mlcycle.errors import printable

    col = tab.column(column)
    v = to_float(col, name, column, decimal_comma, line_offset)
    given = col.is_valid().to_numpy(zero_copy_only=False) if len(col) else np.zeros(0, bool)
    bad = given & ~np.isfinite(v)
    problems.add_each(np.flatnonzero(bad).tolist(),
                      lambda i: f"{name}:{i + line_offset}: column '{printable(column)}' value "
                                f"{printable(col[i].as_py(), 40)!r} is not a finite number")
    return v, bad


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

    from mlcycle.errors import printable

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
                raise MlcycleError(f"{name}:{i + line_offset}: column '{printable(column)}' value "
                                   f"{printable(v, 60)!r} is not a number") from None
        raise MlcycleError(f"{name}: column '{column}' has values that are not numbers") from None  # pragma: no cover
    return np.asarray(arr.to_numpy(zero_copy_only=False), dtype=np.float64)
