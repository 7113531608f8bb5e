"""The box rules: present, finite, of positive size, inside the image, not too small and
not too elongated (limits per class where the schema gives them)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator

import numpy as np

from mlcycle import table as T
from mlcycle.schema.context import Context, Found, rule
from mlcycle.schema._text import box_text, join_text, num_text, rows_where, take

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa


@dataclass
class _BoxState:
    has_box: "np.ndarray"
    finite: "np.ndarray"
    good: "np.ndarray"           # ground-truth label rows with a finite box of positive size
    W: "np.ndarray"
    H: "np.ndarray"
    sized: "np.ndarray"          # the image size is known


def _box_state(ctx: Context) -> _BoxState:
    if "boxes" not in ctx.cache:
        table = ctx.table
        has_box = table.column(T.BBOX).is_valid().to_numpy(zero_copy_only=False) if (
            ctx.n and T.BBOX in table.column_names) else np.zeros(ctx.n, bool)
        b = ctx.boxes
        finite = np.isfinite(b).all(axis=1)
        with np.errstate(all="ignore"):
            pos = finite & (b[:, 2] > 0) & (b[:, 3] > 0)
        W = T.numpy_column(table, T.WIDTH, dtype=np.float64)
        H = T.numpy_column(table, T.HEIGHT, dtype=np.float64)
        with np.errstate(all="ignore"):
            sized = np.isfinite(W) & np.isfinite(H) & (W > 0) & (H > 0)
        ctx.cache["boxes"] = _BoxState(has_box, finite, ctx.gt_label & has_box & pos, W, H, sized)
    return ctx.cache["boxes"]


def _box_limit(ctx: Context, attr: str) -> "np.ndarray | None":
    """Per-row limit (NaN: none) from the default box rules and the per-class overrides."""
    s = ctx.schema
    default = getattr(s.box_rules, attr)
    per = {k: getattr(r, attr) for k, r in s.box_overrides.items()}
    if default is None and all(v is None for v in per.values()):
        return None
    per = {k: (np.nan if v is None else v) for k, v in per.items()}
    return ctx.per_label(per, np.nan if default is None else default, dtype=np.float64)


@rule("box.missing")
def rule_box_missing(ctx: Context) -> Iterator[Found]:
    if not ctx.schema.boxes_required:
        return
    rows = rows_where(ctx.gt_label & ~_box_state(ctx).has_box)
    if rows.size:
        yield Found("box.missing", rows, T.BBOX, None, join_text("label of class '", take(ctx.label_text, rows), "' has no box"))


@rule("box.not-finite")
def rule_box_not_finite(ctx: Context) -> Iterator[Found]:
    st = _box_state(ctx)
    rows = rows_where(ctx.gt_label & st.has_box & ~st.finite)
    if rows.size:
        yield Found("box.not-finite", rows, T.BBOX, box_text(ctx.boxes[rows]), "a box coordinate is NaN or infinite")


@rule("box.non-positive")
def rule_box_non_positive(ctx: Context) -> Iterator[Found]:
    st = _box_state(ctx)
    rows = rows_where(ctx.gt_label & st.has_box & st.finite & ~st.good)
    if rows.size:
        b = ctx.boxes[rows]
        yield Found("box.non-positive", rows, T.BBOX, box_text(b),
                    join_text("box width ", num_text(b[:, 2]), " x height ", num_text(b[:, 3]), " is not positive"))


@rule("box.no-image-size")
def rule_box_no_image_size(ctx: Context) -> Iterator[Found]:
    s = ctx.schema
    relative = any(getattr(r, k) is not None for r in (s.box_rules, *s.box_overrides.values())
                   for k in ("min_relative_width", "min_relative_height"))
    if not (s.inside_image or relative):
        return
    st = _box_state(ctx)
    rows = rows_where(st.good & ~st.sized)
    if rows.size:
        yield Found("box.no-image-size", rows, T.WIDTH, None,
                    "the image width/height is unknown, so the box could not be checked against it")


@rule("box.outside-image")
def rule_box_outside_image(ctx: Context) -> Iterator[Found]:
    s = ctx.schema
    if not s.inside_image:
        return
    st = _box_state(ctx)
    b, tol = ctx.boxes, s.tolerance
    with np.errstate(all="ignore"):
        out = (b[:, 0] < -tol) | (b[:, 1] < -tol) | (b[:, 0] + b[:, 2] > st.W + tol) | (b[:, 1] + b[:, 3] > st.H + tol)
    rows = rows_where(st.good & st.sized & out)
    if rows.size:
        yield Found("box.outside-image", rows, T.BBOX, box_text(b[rows]),
                    join_text("box ", box_text(b[rows]), " leaves the ", num_text(st.W[rows]), "x",
                              num_text(st.H[rows]), " image"))


@rule("box.too-small")
def rule_box_too_small(ctx: Context) -> Iterator[Found]:
    st = _box_state(ctx)
    b = ctx.boxes
    w, h = b[:, 2], b[:, 3]
    small = np.zeros(ctx.n, bool)
    with np.errstate(all="ignore"):
        for attr, value, relative in (("min_width", w, None), ("min_height", h, None),
                                      ("min_relative_width", w, st.W), ("min_relative_height", h, st.H)):
            limit = _box_limit(ctx, attr)
            if limit is None:
                continue
            small |= (value < limit) if relative is None else (st.sized & (value / relative < limit))
    rows = rows_where(st.good & small)
    if rows.size:
        yield Found("box.too-small", rows, T.BBOX, box_text(b[rows]),
                    join_text("box ", num_text(w[rows]), "x", num_text(h[rows]), " of class '",
                              take(ctx.label_text, rows), "' is below the minimum size"))


@rule("box.aspect-ratio")
def rule_box_aspect_ratio(ctx: Context) -> Iterator[Found]:
    limit = _box_limit(ctx, "max_aspect_ratio")
    if limit is None:
        return
    st = _box_state(ctx)
    w, h = ctx.boxes[:, 2], ctx.boxes[:, 3]
    with np.errstate(all="ignore"):
        ratio = np.maximum(w / h, h / w)
        over = ratio > limit
    rows = rows_where(st.good & over)
    if rows.size:
        yield Found("box.aspect-ratio", rows, T.BBOX, num_text(ratio[rows]),
                    join_text("aspect ratio ", num_text(ratio[rows]), " of class '", take(ctx.label_text, rows),
                              "' is above the maximum"))
