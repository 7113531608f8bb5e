"""Sample-level passes shared by split and rebalance: the per-sample view of a table
(sample ids, classes per sample, a group column) and writing a per-sample decision back
on every row, batch by batch."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable, Sequence

from mlcycle import table as T
from mlcycle.errors import MlcycleError, OptionError

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import pyarrow as pa


@dataclass
class SampleView:
    """``samples``: distinct sample ids (in first-seen order); ``pairs``: (sample index,
    class index, count of labels) rows for the rows that count; ``classes``: class names;
    ``groups``: a group index per sample (or None)."""

    samples: "pa.Array"
    classes: list
    pair_sample: "np.ndarray"
    pair_class: "np.ndarray"
    pair_count: "np.ndarray"
    groups: "np.ndarray | None"
    group_names: list | None
    counted_source: str | None


def sample_view(batches: Iterable["pa.Table"], by: str | None, group: str | None, origin: str,
                schema: "pa.Schema", by_option: str = "by", group_option: str = "group") -> SampleView:
    """One pass over ``batches`` (only sample_id, source, ``by`` and ``group`` are needed).
    Labels of the ``gt`` source count when the table has one, else every label row."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    for col, option in ((by, by_option), (group, group_option)):
        if col is not None and col not in schema.names:
            import difflib

            close = difflib.get_close_matches(col, schema.names, n=1)
            raise OptionError(option, f"{origin}: no column '{col}'" + (f" (did you mean '{close[0]}'?)" if close else ""))
    pieces = []
    for b in batches:
        cols = {T.SAMPLE_ID: b.column(T.SAMPLE_ID), T.SOURCE: b.column(T.SOURCE)}
        if by is not None:
            cols["by"] = b.column(by)
            cols["is_label"] = pa.array(T.label_mask(b)) if by == T.LABEL else pc.is_valid(b.column(by))
        if group is not None:
            cols["group"] = b.column(group)
        pieces.append(pa.table(cols))
    t = pa.concat_tables(pieces) if pieces else pa.table({T.SAMPLE_ID: pa.array([], pa.string()), T.SOURCE: pa.array([], pa.string())})
    samples = pc.unique(t.column(T.SAMPLE_ID))
    samples = samples.combine_chunks() if isinstance(samples, pa.ChunkedArray) else samples
    sample_codes = pc.index_in(t.column(T.SAMPLE_ID), value_set=samples).to_numpy(zero_copy_only=False).astype(np.int64)
    counted = None
    empty = np.zeros(0, np.int64)
    pair_s, pair_c, pair_n, classes = empty, empty, empty, []
    if by is not None:
        src = t.column(T.SOURCE)
        use = np.asarray(t.column("is_label").to_numpy(zero_copy_only=False), dtype=bool)
        if T.GT_SOURCE in pc.unique(src).to_pylist():
            counted = T.GT_SOURCE
            use &= pc.equal(src, T.GT_SOURCE).to_numpy(zero_copy_only=False)
        col = t.column("by")
        if pa.types.is_nested(col.type):
            raise OptionError(by_option, f"{origin}: column '{by}' holds lists; stratify by a column of single values")
        ccodes, classes = T.dictionary_codes(col)
        use &= ccodes >= 0
        s, c = sample_codes[use], ccodes[use]
        key = s * max(len(classes), 1) + c
        uk, counts = np.unique(key, return_counts=True)
        pair_s, pair_c, pair_n = uk // max(len(classes), 1), uk % max(len(classes), 1), counts
        classes = [str(x) for x in classes]
    groups = group_names = None
    if group is not None:
        gcol = t.column("group")
        if pa.types.is_nested(gcol.type):
            raise OptionError(group_option, f"{origin}: column '{group}' holds lists; group by a column of single values")
        gcodes, group_names = T.dictionary_codes(gcol)
        ok = gcodes >= 0
        n = len(samples)
        groups = np.full(n, -1, dtype=np.int64)
        s_ok, g_ok = sample_codes[ok], gcodes[ok]
        groups[s_ok] = g_ok
        bad = groups[s_ok] != g_ok
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            sid = samples[int(s_ok[i])].as_py()
            raise MlcycleError(f"{origin}: sample '{sid}' has more than one value in column '{group}' "
                               f"('{group_names[groups[s_ok[i]]]}' and '{group_names[g_ok[i]]}')",
                               hint="a group column must have one value per sample")
        missing = groups < 0  # a sample without a group is a group of its own
        groups[missing] = len(group_names) + np.arange(int(missing.sum()))
    return SampleView(samples, classes, pair_s, pair_c, pair_n, groups, group_names, counted)


def per_sample_column(batch: "pa.Table", samples: "pa.Array", values: "pa.Array") -> "pa.Array":
    """``values[i]`` (one per distinct sample) spread onto the rows of ``batch``."""
    import pyarrow.compute as pc

    idx = pc.index_in(batch.column(T.SAMPLE_ID), value_set=samples)
    return pc.take(values, idx)


def set_column(batch: "pa.Table", name: str, values) -> "pa.Table":
    if name in batch.column_names:
        return batch.set_column(batch.column_names.index(name), name, values)
    return batch.append_column(name, values)


def parse_ratios(text: str | dict, option: str = "ratio") -> dict[str, float]:
    """'train=0.8,val=0.1,test=0.1' -> normalised ratios (weights like 8,1,1 work too)."""
    if isinstance(text, dict):
        items = list(text.items())
    else:
        items = []
        for part in str(text).split(","):
            if not part.strip():
                continue
            if "=" not in part:
                raise OptionError(option, f"expected NAME=RATIO, got '{part.strip()}'", hint="e.g. train=0.8,val=0.1,test=0.1")
            k, v = part.split("=", 1)
            try:
                items.append((k.strip(), float(v)))
            except ValueError:
                raise OptionError(option, f"'{v.strip()}' is not a number (in '{part.strip()}')") from None
    if not items:
        raise OptionError(option, "no ratios given", hint="e.g. train=0.8,val=0.1,test=0.1")
    names = [k for k, _ in items]
    if len(set(names)) != len(names) or any(not k for k in names):
        raise OptionError(option, "each split is named once, with a non-empty name")
    if any(not (v >= 0) or v == float("inf") for _, v in items):
        raise OptionError(option, "ratios must be finite and >= 0")
    total = sum(v for _, v in items)
    if total <= 0:
        raise OptionError(option, "the ratios add up to 0")
    return {k: v / total for k, v in items}


def stream(paths: Sequence[str | os.PathLike | None] | None, batch_rows: int):
    from mlcycle import io

    return io.scan(paths, batch_rows=batch_rows)
