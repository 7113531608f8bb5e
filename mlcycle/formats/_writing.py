"""What writers share: the rows of one source, the class order, the samples, the
attribute columns a format may carry, and numbers as text that read back exactly."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable

from mlcycle import table as T
from mlcycle.errors import OptionError

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import pyarrow as pa


def source_rows(table: "pa.Table", source: str | None, default: str = T.GT_SOURCE) -> tuple["pa.Table", str]:
    """The rows a writer writes, and their source: ``source``, else ``default``, else the
    only source there is. The sources left out are named in a note."""
    avail = T.sources(table) if table.num_rows else [default]
    chosen = source or default
    if chosen not in avail:
        if source is None and len(avail) == 1:
            chosen = avail[0]
        else:
            raise OptionError("source", f"no rows with source '{chosen}' to export (sources: {', '.join(avail) or 'none'})",
                              hint="choose one of the sources")
    others = [s for s in avail if s != chosen]
    if others:
        from mlcycle import reporting

        reporting.info(f"writing the rows of source '{chosen}'; not written: {', '.join(others)} (choose the source to write)")
    return T.filter_source(table, chosen), chosen


def class_names(table: "pa.Table", meta_key: str | None = None) -> list[str]:
    """Class names in index order: the order a reader stored in the metadata (``classes``
    under ``meta_key``), then ``category_id`` order for the rest, then by name."""
    meta = T.get_metadata(table)
    names: list[str] = []
    if meta_key and isinstance(meta.get(meta_key), dict):
        names = [str(c) for c in meta[meta_key].get("classes", [])]
    labels = T.column_or_null(table, T.LABEL).to_pylist()
    cids = T.column_or_null(table, T.CATEGORY_ID).to_pylist()
    known = set(names)
    extra: dict[str, int | None] = {}
    for lab, cid in zip(labels, cids):
        if lab is not None and lab not in known and (lab not in extra or extra[lab] is None):
            extra[lab] = cid
    names += sorted(extra, key=lambda s: (extra[s] is None, extra[s] or 0, s))
    return names


def unique_samples(table: "pa.Table") -> tuple[list[str], "np.ndarray", list]:
    """(sample ids in first-seen order, row -> sample index, per-sample first split)."""
    import numpy as np
    import pyarrow.compute as pc

    sids = table.column(T.SAMPLE_ID)
    uniq = pc.unique(sids)
    idx = pc.index_in(sids, value_set=uniq).to_numpy(zero_copy_only=False).astype(np.int64)
    splits = T.column_or_null(table, T.SPLIT).to_pylist()
    first = np.full(len(uniq), -1, dtype=np.int64)
    rows = np.arange(len(idx))[::-1]
    first[idx[::-1]] = rows
    return uniq.to_pylist(), idx, [splits[i] for i in first.tolist()]


def writable_attributes(table: "pa.Table", exclude: Iterable[str] = (), commands: bool = False) -> list[str]:
    """Attribute columns a writer may copy into a format: not the ones the format handles
    itself (``exclude``), not nested, and not command columns (``eval``, ``hard_score``
    ...) unless ``commands``."""
    import pyarrow as pa

    skip = set(exclude) | (set() if commands else set(T.COMMAND_COLUMNS))
    return [c for c in T.attribute_columns(table)
            if c not in skip and not pa.types.is_nested(table.column(c).type)]


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


