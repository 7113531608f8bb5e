"""CSV cells that a spreadsheet would run as formulas, made inert (OWASP "CSV injection").

A text cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return gets a
leading ``'`` when written, so Excel/LibreOffice show it as text instead of evaluating
it; mlcycle's own CSV reader takes the ``'`` off again, so a round trip is lossless.
Numeric columns are never touched (-3.5 stays a number). Vectorised with pyarrow.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa

_RISKY = r"^[=+\-@\t\r]"
_GUARDED = r"^'[=+\-@\t\r]"


def _is_text(t: "pa.DataType") -> bool:
    import pyarrow as pa

    return pa.types.is_string(t) or pa.types.is_large_string(t)


def neutralize(column: "pa.Array | pa.ChunkedArray") -> "pa.Array | pa.ChunkedArray":
    """Prefix risky text cells with ``'``; other columns are returned as they are."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    if not _is_text(column.type):
        return column
    risky = pc.fill_null(pc.match_substring_regex(column, _RISKY), False)
    if not pc.any(risky).as_py():
        return column
    return pc.if_else(risky, pc.binary_join_element_wise("'", column, ""), column)


def restore(column: "pa.Array | pa.ChunkedArray") -> "pa.Array | pa.ChunkedArray":
    """Undo ``neutralize`` on a column read back from CSV."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if not _is_text(column.type):
        return column
    guarded = pc.fill_null(pc.match_substring_regex(column, _GUARDED), False)
    if not pc.any(guarded).as_py():
        return column
    return pc.if_else(guarded, pc.utf8_slice_codeunits(column, 1), column)


def neutralize_table(table: "pa.Table") -> "pa.Table":
    import pyarrow as pa

    return pa.table({n: neutralize(table.column(n)) for n in table.column_names})


def restore_table(table: "pa.Table") -> "pa.Table":
    import pyarrow as pa

    return pa.table({n: restore(table.column(n)) for n in table.column_names}).replace_schema_metadata(
        table.schema.metadata)
