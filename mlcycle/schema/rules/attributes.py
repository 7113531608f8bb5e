"""The attribute rules: required attributes present, values of the declared type, range,
set or pattern, on the classes they apply to; undeclared attribute columns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np

from mlcycle import table as T
from mlcycle.schema.context import Context, Found, rule
from mlcycle.schema._text import fmt_number, join_text, num_text, rows_where, take
from mlcycle.schema.model import NOT_ATTRIBUTES, AttrSpec, full_match_pattern

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa


_INT_RE = r"^\s*[+-]?\d+\s*$"
_FLOAT_RE = r"^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$|^\s*[+-]?(inf|nan)\s*$"


@dataclass
class _AttrState:
    """What every attribute rule needs to know about one attribute, computed once."""

    spec: AttrSpec
    absent: bool
    applies: "np.ndarray"        # label rows of the classes it applies to
    required: "np.ndarray"       # label rows on which it is required
    valid: "np.ndarray"          # value present (not null, not NaN)
    present: "np.ndarray"        # ground-truth label rows with a value
    bad_type: "np.ndarray"
    numbers: "np.ndarray | None"
    _text: Any = None
    ctx: Any = None

    @property
    def text(self) -> "pa.Array":
        if self._text is None:
            self._text = self.ctx.text(self.spec.name)
        return self._text

    @property
    def ok(self) -> "np.ndarray":
        return self.present & ~self.bad_type


def _attr_states(ctx: Context) -> list[_AttrState]:
    if "attrs" in ctx.cache:
        return ctx.cache["attrs"]
    import pyarrow as pa

    out = []
    L = ctx.gt_label
    for spec in ctx.schema.attributes or ():
        applies = L & ctx.in_classes(spec.classes) if spec.classes is not None else L
        req_classes = spec.required_classes()
        if req_classes is None:
            required = L
        elif req_classes:
            required = L & ctx.in_classes(req_classes)
        else:
            required = np.zeros(ctx.n, bool)
        absent = spec.name not in ctx.table.column_names
        if absent:
            none = np.zeros(ctx.n, bool)
            out.append(_AttrState(spec, True, applies, required, none, none, none, None, ctx=ctx))
            continue
        col = ctx.table.column(spec.name)
        valid = col.is_valid().to_numpy(zero_copy_only=False) if ctx.n else np.zeros(0, bool)
        if pa.types.is_floating(col.type):  # NaN counts as missing
            valid = valid & ~np.isnan(col.to_numpy(zero_copy_only=False))
        present = L & valid
        if present.any():
            bad_type, numbers = _attr_values(ctx, spec, present)
        else:
            bad_type, numbers = np.zeros(ctx.n, bool), None
        out.append(_AttrState(spec, False, applies, required, valid, present, bad_type, numbers, ctx=ctx))
    ctx.cache["attrs"] = out
    return out


def _attr_values(ctx: Context, spec: AttrSpec, present: "np.ndarray") -> tuple["np.ndarray", "np.ndarray | None"]:
    """(rows of ``present`` whose value has the wrong type, float values for numbers)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    col = ctx.table.column(spec.name).combine_chunks()
    if pa.types.is_dictionary(col.type):
        col = col.cast(col.type.value_type)
    t = col.type
    bad = np.zeros(ctx.n, bool)
    numbers = None
    is_text = pa.types.is_string(t) or pa.types.is_large_string(t)
    if spec.type == "bool":
        if pa.types.is_boolean(t):
            pass
        elif pa.types.is_integer(t) or pa.types.is_floating(t):
            v = col.to_numpy(zero_copy_only=False).astype(np.float64)
            bad = present & ~np.isin(v, (0.0, 1.0))
        elif is_text:
            ok = pc.is_in(pc.utf8_lower(col), value_set=pa.array(["true", "false", "0", "1"])).to_numpy(zero_copy_only=False)
            bad = present & ~ok
        else:
            bad = present.copy()
    elif spec.type in ("int", "float"):
        if pa.types.is_integer(t) or pa.types.is_floating(t):
            numbers = pc.cast(col, pa.float64()).to_numpy(zero_copy_only=False)
        elif is_text:
            ok = pc.fill_null(pc.match_substring_regex(col, _INT_RE if spec.type == "int" else _FLOAT_RE), False)
            bad = present & ~ok.to_numpy(zero_copy_only=False)
            safe = pc.if_else(ok, col, pa.scalar(None, pa.string()))
            numbers = pc.cast(pc.utf8_trim_whitespace(safe), pa.float64()).to_numpy(zero_copy_only=False)
        else:
            bad = present.copy()
        if numbers is not None and spec.type == "int":
            finite = np.isfinite(numbers)
            with np.errstate(all="ignore"):
                frac = finite & (numbers != np.round(numbers))
            bad = bad | (present & (frac | (~finite & ~np.isnan(numbers))))
    elif spec.type == "string":
        if not is_text:
            bad = present.copy()
    return bad, numbers


@rule("attr.missing")
def rule_attr_missing(ctx: Context) -> Iterator[Found]:
    for a in _attr_states(ctx):
        name = a.spec.name
        rows = rows_where(a.required & ~a.valid)
        if rows.size:
            how = "is absent (class '" if a.absent else "is missing on class '"
            yield Found("attr.missing", rows, name, None,
                        join_text("required attribute '", name, "' ", how, take(ctx.label_text, rows), "'" + (")" if a.absent else "")))


@rule("attr.type")
def rule_attr_type(ctx: Context) -> Iterator[Found]:
    for a in _attr_states(ctx):
        rows = rows_where(a.bad_type)
        if rows.size:
            text = take(a.text, rows)
            yield Found("attr.type", rows, a.spec.name, text,
                        join_text("'", a.spec.name, "' should be ", a.spec.type, ", got ", text))


@rule("attr.range")
def rule_attr_range(ctx: Context) -> Iterator[Found]:
    for a in _attr_states(ctx):
        spec = a.spec
        if a.numbers is None or (spec.min is None and spec.max is None):
            continue
        out = np.zeros(ctx.n, bool)
        with np.errstate(all="ignore"):
            if spec.min is not None:
                out |= ~(a.numbers >= spec.min)
            if spec.max is not None:
                out |= ~(a.numbers <= spec.max)
        rows = rows_where(a.ok & out)
        if rows.size:
            vals = num_text(a.numbers[rows])
            yield Found("attr.range", rows, spec.name, vals,
                        join_text("'", spec.name, "' = ", vals, " is outside [",
                                  fmt_number(spec.min) if spec.min is not None else "-inf", ", ",
                                  fmt_number(spec.max) if spec.max is not None else "inf", "]"))


@rule("attr.enum")
def rule_attr_enum(ctx: Context) -> Iterator[Found]:
    import pyarrow as pa
    import pyarrow.compute as pc

    for a in _attr_states(ctx):
        if a.spec.type != "enum" or not a.present.any():
            continue
        member = pc.is_in(a.text, value_set=pa.array(list(a.spec.values), pa.string())).to_numpy(zero_copy_only=False)
        rows = rows_where(a.ok & ~member)
        if rows.size:
            text = take(a.text, rows)
            yield Found("attr.enum", rows, a.spec.name, text,
                        join_text("'", a.spec.name, "' = ", text, " is not one of ", ", ".join(a.spec.values)))


@rule("attr.pattern")
def rule_attr_pattern(ctx: Context) -> Iterator[Found]:
    import pyarrow.compute as pc

    for a in _attr_states(ctx):
        if a.spec.type != "string" or a.spec.pattern is None or not a.present.any():
            continue
        match = pc.fill_null(pc.match_substring_regex(a.text, full_match_pattern(a.spec.pattern)), False)
        rows = rows_where(a.ok & ~match.to_numpy(zero_copy_only=False))
        if rows.size:
            text = take(a.text, rows)
            yield Found("attr.pattern", rows, a.spec.name, text,
                        join_text("'", a.spec.name, "' = ", text, " does not match ", a.spec.pattern))


@rule("attr.not-applicable")
def rule_attr_not_applicable(ctx: Context) -> Iterator[Found]:
    for a in _attr_states(ctx):
        if a.spec.classes is None:
            continue
        rows = rows_where(ctx.gt_label & ~a.applies & a.valid)
        if rows.size:
            yield Found("attr.not-applicable", rows, a.spec.name, take(a.text, rows),
                        join_text("'", a.spec.name, "' does not apply to class '", take(ctx.label_text, rows), "'"))


@rule("attr.unknown")
def rule_attr_unknown(ctx: Context) -> Iterator[Found]:
    s = ctx.schema
    if s.attributes is None:
        return
    declared = {a.name for a in s.attributes}
    for name in T.attribute_columns(ctx.table):
        if name in declared or name in NOT_ATTRIBUTES:
            continue
        valid = ctx.table.column(name).is_valid().to_numpy(zero_copy_only=False) if ctx.n else np.zeros(0, bool)
        rows = rows_where(ctx.gt_label & valid)
        if rows.size:
            yield Found("attr.unknown", rows, name, take(ctx.text(name), rows),
                        f"column '{name}' is not an attribute in the schema")
