"""Running a schema over a table: ``find_violations`` (every rule that is not off, each
over the whole table at once) and ``check``, the entry point that returns a ``Result``."""

from __future__ import annotations

import os
from dataclasses import dataclass
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


# Rules that look across samples: a shard cannot decide them alone. A shard's partial
# carries what they need (class counts, label ids) and ``merge`` decides them once.
CROSS_SHARD_RULES = ("dataset.min-examples", "dataset.min-examples-per-split", "dataset.imbalance",
                     "dataset.duplicate-label-id")


def find_violations(table: "pa.Table", schema: Schema) -> CheckResult:
    """Run every rule of ``schema`` that is not off over ``table``: the violations, and the
    rows they mark. One table is one shard: ``merge([partial(table, schema)], schema)``,
    the same code a sharded check (``mlcycle.scale``) runs on its shards' partials."""
    return merge([partial(table, schema)], schema)


@dataclass
class Partial:
    """What one shard's check leaves for the merge: its violations (rows numbered in
    the whole table), the (row, rule) marks, and what the cross-sample rules need.
    A shard must hold every row of its samples (of every sample sharing a basename, with
    ``split_overlap.key: basename``). Picklable."""

    violations: "pa.Table"
    mark_rows: "np.ndarray"
    mark_rules: "np.ndarray"
    num_rows: int
    num_labels: int
    class_counts: dict
    split_counts: dict
    label_ids: "pa.Table | None"
    attribute_columns: list


def partial(table: "pa.Table", schema: Schema, rows: "np.ndarray | None" = None) -> Partial:
    """Check one shard. ``rows``: each row's index in the whole table (default: the
    shard is the whole table); the shard's rows must be in that order."""
    import pyarrow as pa

    from mlcycle.schema.rules import dataset

    ctx = Context(table, schema)
    rule_ids = [r for r in RULES if schema.severity_of(r) != OFF]
    rule_index = {r: i for i, r in enumerate(rule_ids)}
    glob = np.arange(table.num_rows, dtype=np.int64) if rows is None else np.asarray(rows, np.int64)
    parts: list[pa.Table] = []
    mark_rows, mark_rules = [], []
    sample_codes = None
    for rule_id in rule_ids:                   # rules that are off are not computed
        if rule_id in CROSS_SHARD_RULES:
            continue
        for f in RULE_FUNCS[rule_id](ctx):
            local = np.asarray(f.rows, dtype=np.int64)
            parts.append(_found_table(f, schema, local, table, glob))
            scope = RULES[f.rule][1]
            real = local >= 0
            if scope == "label":
                mark_rows.append(glob[local[real]])
                mark_rules.append(np.full(int(real.sum()), rule_index[f.rule], np.int64))
            elif scope == "sample":
                if sample_codes is None:
                    sample_codes, _ = ctx.samples()
                flagged = np.zeros(int(sample_codes.max()) + 1 if sample_codes.size else 0, bool)
                flagged[sample_codes[local[real]]] = True
                hit = ctx.gt & flagged[sample_codes]
                r = rows_where(hit)
                mark_rows.append(glob[r])
                mark_rules.append(np.full(r.size, rule_index[f.rule], np.int64))
    on = set(rule_ids)
    counts = ctx.class_counts(ctx.gt_label) if ctx.n else {}
    split_counts = (dataset.split_class_counts(ctx) if "dataset.min-examples-per-split" in on
                    and schema.min_examples_per_split is not None else {})
    ids = dataset.label_ids(ctx) if "dataset.duplicate-label-id" in on and ctx.n else None
    if ids is not None:
        local = ids.column("row").to_numpy()
        ids = ids.set_column(2, "row", pa.array(glob[local], pa.int64()))
        ids = ids.append_column("sample_id", take(table.column(T.SAMPLE_ID).combine_chunks(), local))
    return Partial(
        violations=pa.concat_tables(parts) if parts else _empty_violations(),
        mark_rows=np.concatenate(mark_rows) if mark_rows else np.zeros(0, np.int64),
        mark_rules=np.concatenate(mark_rules) if mark_rules else np.zeros(0, np.int64),
        num_rows=table.num_rows, num_labels=int(ctx.is_label.sum()), class_counts=counts,
        split_counts=split_counts, label_ids=ids, attribute_columns=list(T.attribute_columns(table)))


def merge(parts: "list[Partial]", schema: Schema) -> CheckResult:
    """The check of all shards together: their violations, the cross-sample rules
    decided on the shards' counts and label ids, in the order one check gives (by rule,
    by the column a rule looks at, then by row)."""
    import pyarrow as pa

    from mlcycle.schema.rules import dataset

    rule_ids = [r for r in RULES if schema.severity_of(r) != OFF]
    rule_index = {r: i for i, r in enumerate(rule_ids)}
    tables = [p.violations for p in parts]
    mark_rows = [p.mark_rows for p in parts]
    mark_rules = [p.mark_rules for p in parts]
    counts: dict = {}
    split_counts: dict = {}
    for p in parts:
        for k, v in p.class_counts.items():
            counts[k] = counts.get(k, 0) + v
        for sp, sc in p.split_counts.items():
            mine = split_counts.setdefault(sp, {})
            for k, v in sc.items():
                mine[k] = mine.get(k, 0) + v
    on = set(rule_ids)
    cross: list = []
    if "dataset.min-examples" in on:
        cross += list(dataset.min_examples_found(schema, counts))
    if "dataset.min-examples-per-split" in on:
        cross += list(dataset.min_examples_per_split_found(schema, counts, split_counts))
    if "dataset.imbalance" in on:
        cross += list(dataset.imbalance_found(schema, counts))
    ids_parts = [p.label_ids for p in parts if p.label_ids is not None]
    if "dataset.duplicate-label-id" in on and ids_parts:
        ids = pa.concat_tables(ids_parts) if len(ids_parts) > 1 else ids_parts[0]
        for f in dataset.duplicate_label_id_found(ids.select(["source", "label_id", "row"])):
            tables.append(_found_table_ids(f, schema, ids))
            mark_rows.append(np.asarray(f.rows, np.int64))
            mark_rules.append(np.full(len(f.rows), rule_index[f.rule], np.int64))
    for f in cross:
        tables.append(_found_table(f, schema, np.asarray(f.rows, np.int64), None, None))
    violations = pa.concat_tables(tables) if tables else _empty_violations()
    violations = _in_order(violations, schema, rule_ids, parts)
    return CheckResult(violations=violations,
                       mark_rows=np.concatenate(mark_rows) if mark_rows else np.zeros(0, np.int64),
                       mark_rules=np.concatenate(mark_rules) if mark_rules else np.zeros(0, np.int64),
                       rule_ids=rule_ids, schema=schema, num_rows=sum(p.num_rows for p in parts),
                       num_labels=sum(p.num_labels for p in parts))


def _in_order(v: "pa.Table", schema: Schema, rule_ids: list, parts: "list[Partial]") -> "pa.Table":
    """Violations sorted as one check yields them: by rule (catalogue order), by the
    column a rule iterates over (the schema's order; table columns in table order),
    then by row; dataset-level findings (row -1) keep their order."""
    import pyarrow as pa

    if not v.num_rows:
        return v
    rank = {r: i for i, r in enumerate(RULES)}
    columns: dict = {}
    for names in ([a.name for a in schema.attributes or ()], list(schema.required_columns),
                  list(schema.allowed_values), *[p.attribute_columns for p in parts]):
        for n in names:
            columns.setdefault(n, len(columns))
    rule_rank = np.array([rank[r] for r in v.column("rule").to_pylist()], np.int64)
    col = v.column("column").to_pylist()
    col_rank = np.array([columns.get(c, -1) if c is not None else -1 for c in col], np.int64)
    row = v.column("row").to_numpy()
    dataset_level = row < 0
    key_row = np.where(dataset_level, 0, row)
    pos = np.arange(v.num_rows)
    order = np.lexsort((pos, key_row, col_rank, rule_rank))
    return v.take(pa.array(order))


def _empty_violations() -> "pa.Table":
    import pyarrow as pa

    return pa.table({
        "rule": pa.array([], pa.string()), "severity": pa.array([], pa.string()),
        "sample_id": pa.array([], pa.string()), "label_id": pa.array([], pa.int64()),
        "column": pa.array([], pa.string()), "value": pa.array([], pa.string()),
        "message": pa.array([], pa.string()), "row": pa.array([], pa.int64()), "source": pa.array([], pa.string()),
    })


def _found_table(f, schema: Schema, local: "np.ndarray", table: "pa.Table | None",
                 glob: "np.ndarray | None") -> "pa.Table":
    """One rule's findings as report rows (``row``: the row in the whole table)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    k = local.size
    scope = RULES[f.rule][1]
    real = local >= 0
    safe = np.where(real, local, 0)
    null_s = pa.nulls(k, pa.string())
    have = table is not None and k and table.num_rows
    sid = take(table.column(T.SAMPLE_ID).combine_chunks(), safe) if have else null_s
    src = take(table.column(T.SOURCE).combine_chunks(), safe) if have else null_s
    lid = take(T.column_or_null(table, T.LABEL_ID).combine_chunks(), safe) if have else pa.nulls(k, pa.int64())
    if have and not real.all():
        mask = pa.array(~real)
        sid = pc.if_else(mask, pa.scalar(None, pa.string()), sid)
        src = pc.if_else(mask, pa.scalar(None, pa.string()), src)
        lid = pc.if_else(mask, pa.scalar(None, pa.int64()), lid)
    if scope == "sample":
        lid = pa.nulls(k, pa.int64())
    rows = np.where(real, glob[safe], -1) if glob is not None else local
    return _report_rows(f, schema, k, sid, lid, src, rows)


def _found_table_ids(f, schema: Schema, ids: "pa.Table") -> "pa.Table":
    """Findings of dataset.duplicate-label-id, placed with the gathered label ids."""
    import pyarrow as pa

    rows = np.asarray(f.rows, np.int64)
    order = np.argsort(ids.column("row").to_numpy(), kind="stable")
    pos = order[np.searchsorted(ids.column("row").to_numpy()[order], rows)]
    lid = pa.array(ids.column("label_id").to_numpy()[pos].astype(np.int64))
    return _report_rows(f, schema, rows.size, take(ids.column("sample_id").combine_chunks(), pos), lid,
                        take(ids.column("source").combine_chunks(), pos), rows)


def _report_rows(f, schema: Schema, k: int, sid, lid, src, rows) -> "pa.Table":
    import pyarrow as pa

    return pa.table({
        "rule": pa.array(np.full(k, f.rule, dtype=object), pa.string()),
        "severity": pa.array(np.full(k, schema.severity_of(f.rule), dtype=object), pa.string()),
        "sample_id": sid,
        "label_id": lid,
        "column": pa.nulls(k, pa.string()) if f.column is None else pa.array(np.full(k, f.column, dtype=object), pa.string()),
        "value": text_array(f.values, k),
        "message": text_array(f.messages, k),
        "row": pa.array(rows, pa.int64()),
        "source": src,
    })
