"""The sample rules: required and allowed values of sample columns, and the number of
labels per sample. A violation names the sample (on its first ground-truth row)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterator

import numpy as np

from mlcycle import table as T
from mlcycle.schema.context import Context, Found, rule
from mlcycle.schema._text import join_text, num_text, take

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa


def first_rows(codes: "np.ndarray", mask: "np.ndarray") -> tuple["np.ndarray", "np.ndarray"]:
    """For each code that occurs on a ``mask`` row: (code, its first such row)."""
    idx = np.flatnonzero(mask)
    u, first = np.unique(codes[idx], return_index=True)
    return u, idx[first].astype(np.int64)


@rule("sample.missing-value")
def rule_sample_missing_value(ctx: Context) -> Iterator[Found]:
    import pyarrow as pa

    if not ctx.gt.any():
        return
    table = ctx.table
    codes, _ = ctx.samples()
    for name in ctx.schema.required_columns:
        if name in table.column_names:
            col = table.column(name)
        elif name in T.CORE_COLUMNS:
            col = T.column_or_null(table, name)
        else:
            col = pa.chunked_array([pa.nulls(ctx.n)])
        valid = col.is_valid().to_numpy(zero_copy_only=False)
        _, rows = first_rows(codes, ctx.gt & ~valid)
        if rows.size:
            what = "is absent" if name not in table.column_names else "is null"
            yield Found("sample.missing-value", rows, name, None, f"required column '{name}' {what}")


@rule("sample.value")
def rule_sample_value(ctx: Context) -> Iterator[Found]:
    import pyarrow as pa
    import pyarrow.compute as pc

    if not ctx.gt.any():
        return
    codes, _ = ctx.samples()
    for name, allowed in ctx.schema.allowed_values.items():
        if name not in ctx.table.column_names:
            continue
        text = ctx.text(name)
        ok = pc.fill_null(pc.is_in(text, value_set=pa.array(list(allowed), pa.string())), True)
        _, rows = first_rows(codes, ctx.gt & ~ok.to_numpy(zero_copy_only=False))
        if rows.size:
            yield Found("sample.value", rows, name, take(text, rows),
                        join_text("'", name, "' = ", take(text, rows), " is not one of ", ", ".join(allowed)))


def _labels_per_sample(ctx: Context) -> tuple["np.ndarray", "np.ndarray"]:
    """(ground-truth labels, first ground-truth row) per sample that has ground-truth rows."""
    if "per_sample" not in ctx.cache:
        codes, sample_ids = ctx.samples()
        counts = np.bincount(codes[ctx.gt_label], minlength=len(sample_ids))
        u, first = first_rows(codes, ctx.gt)
        ctx.cache["per_sample"] = (counts[u], first)
    return ctx.cache["per_sample"]


@rule("sample.empty")
def rule_sample_empty(ctx: Context) -> Iterator[Found]:
    if ctx.schema.allow_empty or not ctx.gt.any():
        return
    c, first = _labels_per_sample(ctx)
    rows = first[c == 0]
    if rows.size:
        yield Found("sample.empty", rows, T.LABEL, "0", "the sample has no labels")


@rule("sample.too-few-labels")
def rule_sample_too_few(ctx: Context) -> Iterator[Found]:
    lo = ctx.schema.min_labels
    if lo is None or not ctx.gt.any():
        return
    c, first = _labels_per_sample(ctx)
    sel = (c > 0) & (c < lo)
    if sel.any():
        yield Found("sample.too-few-labels", first[sel], T.LABEL, num_text(c[sel]),
                    join_text(num_text(c[sel]), " labels, fewer than ", lo))


@rule("sample.too-many-labels")
def rule_sample_too_many(ctx: Context) -> Iterator[Found]:
    hi = ctx.schema.max_labels
    if hi is None or not ctx.gt.any():
        return
    c, first = _labels_per_sample(ctx)
    sel = c > hi
    if sel.any():
        yield Found("sample.too-many-labels", first[sel], T.LABEL, num_text(c[sel]),
                    join_text(num_text(c[sel]), " labels, more than ", hi))
