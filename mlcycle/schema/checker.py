"""Running a schema over a table: ``find_violations`` (every rule that is not off, each
over the whole table at once) and ``check``, the entry point that returns a ``Result``."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import numpy as np

from mlcycle import reporting
from mlcycle import table as T
from mlcycle.errors import OptionError
from mlcycle.results import Result
from mlcycle.schema._text import rows_where, take, text_array
from mlcycle.schema.context import Context
from mlcycle.schema.rules import RULE_FUNCS
from mlcycle.schema.loader import load
from mlcycle.schema.model import KEEP_CHOICES, OFF, RULES, Schema
from mlcycle.schema.report import CheckResult

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa


def check(table: "pa.Table", schema: "Schema | str | os.PathLike", *, annotate: bool = False, keep: str = "all",
          strict: bool = False, examples: int = 3) -> Result:
    """Check every row of a label table against a schema (a ``Schema`` or a schema file).

    Returns a ``Result``: ``table`` is the table to pass on (with a ``violations`` column
    when ``annotate``; only the ``"valid"`` or ``"invalid"`` rows with ``keep``, where
    invalid means breaking an error rule, or with ``strict`` a warning rule too),
    ``summary`` the report document (per-rule counts and the first ``examples``
    violations; ``summary["passed"]`` says whether the check passed) and ``warnings``.
    ``find_violations`` gives the violations themselves.
    """
    validate_options(keep=keep, examples=examples)
    with reporting.collect() as seen:
        spec = schema if isinstance(schema, Schema) else load(schema)
        found = find_violations(table, spec)
        out = found.apply(table, annotate=annotate, keep=keep, strict=strict)
        summary = found.summary(examples=examples, strict=strict)
    return Result(out, summary, tuple(seen.warnings))


def validate_options(*, keep: str = "all", examples: int = 3) -> None:
    """``OptionError`` for a ``keep`` or ``examples`` that ``check`` cannot take."""
    if keep not in KEEP_CHOICES:
        raise OptionError("keep", f"expected one of {', '.join(KEEP_CHOICES)}, got {keep!r}")
    if isinstance(examples, bool) or not isinstance(examples, int) or examples < 0:
        raise OptionError("examples", f"expected a whole number >= 0, got {examples!r}")


def find_violations(table: "pa.Table", schema: Schema) -> CheckResult:
    """Run every rule of ``schema`` that is not off over ``table``: the violations, and the
    rows they mark."""
    import pyarrow as pa
    import pyarrow.compute as pc

    ctx = Context(table, schema)
    rule_ids = [r for r in RULES if schema.severity_of(r) != OFF]
    rule_index = {r: i for i, r in enumerate(rule_ids)}
    parts: list[pa.Table] = []
    mark_rows, mark_rules = [], []
    sample_codes = None
    label_id = T.column_or_null(table, T.LABEL_ID).combine_chunks()
    sample_id = table.column(T.SAMPLE_ID).combine_chunks() if table.num_rows else pa.array([], pa.string())
    source = table.column(T.SOURCE).combine_chunks() if table.num_rows else pa.array([], pa.string())
    for rule_id in rule_ids:                   # rules that are off are not computed
        for f in RULE_FUNCS[rule_id](ctx):
            rows = np.asarray(f.rows, dtype=np.int64)
            k = rows.size
            scope = RULES[f.rule][1]
            real = rows >= 0
            safe = np.where(real, rows, 0)
            null_s = pa.nulls(k, pa.string())
            sid = take(sample_id, safe) if k and table.num_rows else null_s
            src = take(source, safe) if k and table.num_rows else null_s
            lid = take(label_id, safe) if k and table.num_rows else pa.nulls(k, pa.int64())
            if not real.all():
                mask = pa.array(~real)
                sid = pc.if_else(mask, pa.scalar(None, pa.string()), sid)
                src = pc.if_else(mask, pa.scalar(None, pa.string()), src)
                lid = pc.if_else(mask, pa.scalar(None, pa.int64()), lid)
            if scope == "sample":
                lid = pa.nulls(k, pa.int64())
            parts.append(pa.table({
                "rule": pa.array(np.full(k, f.rule, dtype=object), pa.string()),
                "severity": pa.array(np.full(k, schema.severity_of(f.rule), dtype=object), pa.string()),
                "sample_id": sid,
                "label_id": lid,
                "column": pa.nulls(k, pa.string()) if f.column is None else pa.array(np.full(k, f.column, dtype=object), pa.string()),
                "value": text_array(f.values, k),
                "message": text_array(f.messages, k),
                "row": pa.array(rows, pa.int64()),
                "source": src,
            }))
            if scope == "label":
                mark_rows.append(rows[real])
                mark_rules.append(np.full(int(real.sum()), rule_index[f.rule], np.int64))
            elif scope == "sample":
                if sample_codes is None:
                    sample_codes, _ = ctx.samples()
                flagged = np.zeros(int(sample_codes.max()) + 1 if sample_codes.size else 0, bool)
                flagged[sample_codes[rows[real]]] = True
                hit = ctx.gt & flagged[sample_codes]
                r = rows_where(hit)
                mark_rows.append(r)
                mark_rules.append(np.full(r.size, rule_index[f.rule], np.int64))
    if parts:
        violations = pa.concat_tables(parts)
    else:
        violations = pa.table({
            "rule": pa.array([], pa.string()), "severity": pa.array([], pa.string()),
            "sample_id": pa.array([], pa.string()), "label_id": pa.array([], pa.int64()),
            "column": pa.array([], pa.string()), "value": pa.array([], pa.string()),
            "message": pa.array([], pa.string()), "row": pa.array([], pa.int64()), "source": pa.array([], pa.string()),
        })
    mr = np.concatenate(mark_rows) if mark_rows else np.zeros(0, np.int64)
    mu = np.concatenate(mark_rules) if mark_rules else np.zeros(0, np.int64)
    return CheckResult(violations=violations, mark_rows=mr, mark_rules=mu, rule_ids=rule_ids, schema=schema,
                       num_rows=table.num_rows, num_labels=int(ctx.is_label.sum()))
