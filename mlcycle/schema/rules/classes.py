"""The class rules: every ground-truth label's class is a schema class, by its name
(not a synonym), with the id the schema gives it."""

from __future__ import annotations

from typing import Iterator

import numpy as np

from mlcycle import table as T
from mlcycle.schema.context import Context, Found, rule
from mlcycle.schema._text import join_text, num_text, rows_where, take


def _class_masks(ctx: Context) -> tuple["np.ndarray", "np.ndarray", dict]:
    """(known class, synonym of a class, synonym -> class) per row; cached."""
    if "classes" not in ctx.cache:
        s = ctx.schema
        synonyms = {syn: c.name for c in s.classes for syn in c.synonyms}
        ctx.cache["classes"] = (ctx.in_classes(s.class_names()), ctx.in_classes(synonyms), synonyms)
    return ctx.cache["classes"]


@rule("class.unknown")
def rule_class_unknown(ctx: Context) -> Iterator[Found]:
    import pyarrow as pa
    import pyarrow.compute as pc

    if ctx.schema.classes is None:
        return
    known, is_syn, _ = _class_masks(ctx)
    rows = rows_where(ctx.gt_label & ~known & ~is_syn)   # a box with no class is unknown too
    if rows.size:
        text = take(ctx.label_text, rows)
        msg = pc.if_else(pc.is_valid(text), join_text("class '", text, "' is not in the schema"),
                         pa.scalar("the label has a box but no class", pa.string()))
        yield Found("class.unknown", rows, T.LABEL, text, msg)


@rule("class.synonym")
def rule_class_synonym(ctx: Context) -> Iterator[Found]:
    import pyarrow as pa

    if ctx.schema.classes is None:
        return
    _, is_syn, synonyms = _class_masks(ctx)
    rows = rows_where(ctx.gt_label & is_syn)
    if rows.size:
        target = pa.array(ctx.per_label(synonyms, "", dtype=object)[rows], pa.string())
        text = take(ctx.label_text, rows)
        yield Found("class.synonym", rows, T.LABEL, text, join_text("'", text, "' is a synonym: use '", target, "'"))


@rule("class.id-mismatch")
def rule_class_id_mismatch(ctx: Context) -> Iterator[Found]:
    s = ctx.schema
    ids = {c.name: float(c.id) for c in s.classes or () if c.id is not None}
    if not ids or T.CATEGORY_ID not in ctx.table.column_names:
        return
    want = ctx.per_label(ids, np.nan, dtype=np.float64)
    have = T.numpy_column(ctx.table, T.CATEGORY_ID, dtype=np.float64)
    rows = rows_where(ctx.gt_label & ~np.isnan(want) & ~np.isnan(have) & (have != want))
    if rows.size:
        yield Found("class.id-mismatch", rows, T.CATEGORY_ID, num_text(have[rows]),
                    join_text("category_id ", num_text(have[rows]), " but the schema gives '",
                              take(ctx.label_text, rows), "' id ", num_text(want[rows])))
