"""The prediction rules: every row whose source is not ``gt`` is a prediction; its score,
class and box are checked."""

from __future__ import annotations

from typing import Iterator

import numpy as np

from mlcycle import table as T
from mlcycle.schema.context import Context, Found, rule
from mlcycle.schema._text import box_text, join_text, num_text, rows_where, take


def _pred_scores(ctx: Context) -> tuple["np.ndarray", "np.ndarray"]:
    """(score as float with NaN for null, True where the score is a NaN value, not null)."""
    score = T.numpy_column(ctx.table, T.SCORE, dtype=np.float64)
    if T.SCORE in ctx.table.column_names:
        nan_value = ctx.table.column(T.SCORE).is_valid().to_numpy(zero_copy_only=False) & np.isnan(score)
    else:
        nan_value = np.zeros(ctx.n, bool)
    return score, nan_value


@rule("pred.score-missing")
def rule_pred_score_missing(ctx: Context) -> Iterator[Found]:
    if not ctx.schema.score_required or not ctx.pred_label.any():
        return
    score, nan_value = _pred_scores(ctx)
    rows = rows_where(ctx.pred_label & np.isnan(score) & ~nan_value)
    if rows.size:
        yield Found("pred.score-missing", rows, T.SCORE, None, "the prediction has no score")


@rule("pred.score-range")
def rule_pred_score_range(ctx: Context) -> Iterator[Found]:
    if not ctx.pred_label.any():
        return
    score, nan_value = _pred_scores(ctx)
    with np.errstate(all="ignore"):
        bad = ~((score >= 0) & (score <= 1)) & (~np.isnan(score) | nan_value)
    rows = rows_where(ctx.pred_label & bad)
    if rows.size:
        yield Found("pred.score-range", rows, T.SCORE, num_text(score[rows]),
                    join_text("score ", num_text(score[rows]), " is outside [0, 1]"))


@rule("pred.class-unknown")
def rule_pred_class_unknown(ctx: Context) -> Iterator[Found]:
    s = ctx.schema
    if s.classes is None or not s.pred_classes_known or not ctx.pred_label.any():
        return
    known = ctx.in_classes(s.class_names())
    has_label = ctx.label_codes < len(ctx.label_dict)
    rows = rows_where(ctx.pred_label & has_label & ~known)
    if rows.size:
        text = take(ctx.label_text, rows)
        yield Found("pred.class-unknown", rows, T.LABEL, text,
                    join_text("predicted class '", text, "' is not in the schema"))


@rule("pred.box-invalid")
def rule_pred_box_invalid(ctx: Context) -> Iterator[Found]:
    if not ctx.pred_label.any() or T.BBOX not in ctx.table.column_names:
        return
    has_box = ctx.table.column(T.BBOX).is_valid().to_numpy(zero_copy_only=False)
    b = ctx.boxes
    with np.errstate(all="ignore"):
        bad = ~(np.isfinite(b).all(axis=1) & (b[:, 2] > 0) & (b[:, 3] > 0))
    rows = rows_where(ctx.pred_label & has_box & bad)
    if rows.size:
        yield Found("pred.box-invalid", rows, T.BBOX, box_text(b[rows]), "the predicted box is not a valid box")
