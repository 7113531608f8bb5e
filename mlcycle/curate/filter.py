"""filter: keep the rows of a label table that match a condition, batch by batch.

The condition is the ``--where`` expression (``mlcycle.curate.expression``) and-ed with
the convenience options (labels, splits, sources, min_score, evals, reasons). It decides
about *label rows*. Samples stay consistent: a (sample, source) whose label rows are all
filtered out stays as one *sample row* (label columns null; the sample's columns and the
attributes that have one value over the sample's rows kept), unless the condition is
false on that sample row itself (e.g. ``split == 'val'`` on a train sample) or
``drop_empty`` is set. Input sample rows follow the same rule. A condition that is
unknown on a sample row (it reads a label column, which is null there) keeps it.

Memory is bounded by the batch (plus the set of (sample, source) keys seen). Sample rows
are written where the sample's first row was, so the input's order is kept. Batches are
re-cut so that a run of one sample's rows is never split; for a table whose rows of one
sample are not contiguous, a sample emptied in one place and labelled in another keeps
a (harmless) extra sample row.
"""

from __future__ import annotations

import itertools
import os
from typing import TYPE_CHECKING, Iterable, Iterator, Sequence

from mlcycle import reporting
from mlcycle import table as T
from mlcycle.errors import OptionError
from mlcycle.results import Result

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import pyarrow as pa

# Columns that describe a label, not a sample: null on a sample row.
LABEL_COLUMNS = (T.LABEL_ID, T.LABEL, T.CATEGORY_ID, T.BBOX, T.SCORE, T.ISCROWD, T.AREA, T.SEGMENTATION,
                 T.EVAL, T.EVAL_ID, T.EVAL_IOU, T.HARD_SCORE, T.HARD_REASON, T.VIOLATIONS)
SAMPLE_COLUMNS = (T.SAMPLE_ID, T.SOURCE, T.WIDTH, T.HEIGHT, T.SPLIT, T.IMAGE_ID, T.HARD_SAMPLE_SCORE, T.HARD_MATCH)
_KEY_SEP = "\x1f"
_CONVENIENCE_COLUMNS = {"labels": T.LABEL, "splits": T.SPLIT, "sources": T.SOURCE, "evals": T.EVAL,
                        "reasons": T.HARD_REASON, "min_score": T.SCORE}


def _quote(value) -> str:
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return repr(value)


def build_condition(where: str | None = None, *, labels: Sequence[str] | None = None,
                    splits: Sequence[str] | None = None, sources: Sequence[str] | None = None,
                    min_score: float | None = None, evals: Sequence[str] | None = None,
                    reasons: Sequence[str] | None = None) -> list[tuple[str, str]]:
    """The (parameter, expression) parts of a filter: ``where`` and the conveniences.
    ``min_score`` keeps rows without a score (ground truth) and scores >= it."""
    parts: list[tuple[str, str]] = []
    if where is not None:
        if not where.strip():
            raise OptionError("where", "empty expression", hint="e.g. \"label == 'cat' and score >= 0.5\"")
        parts.append(("where", where))
    for param, col, values in (("labels", T.LABEL, labels), ("splits", T.SPLIT, splits),
                               ("sources", T.SOURCE, sources), ("evals", T.EVAL, evals),
                               ("reasons", T.HARD_REASON, reasons)):
        if values:
            if param == "evals":
                bad = [v for v in values if v not in T.EVAL_VALUES]
                if bad:
                    raise OptionError(param, f"unknown value '{bad[0]}'", hint="choose from " + ", ".join(T.EVAL_VALUES))
            parts.append((param, f"`{col}` in [" + ", ".join(_quote(v) for v in values) + "]"))
    if min_score is not None:
        parts.append(("min_score", f"`{T.SCORE}` is null or `{T.SCORE}` >= {float(min_score)!r}"))
    return parts


class RowFilter:
    """The filter's state over a stream of batches (see the module docstring)."""

    def __init__(self, schema: "pa.Schema", parts: list[tuple[str, str]], drop_empty: bool = False) -> None:
        from mlcycle.curate.expression import compile_expression

        self.schema = schema
        for param, text in parts:
            col = _CONVENIENCE_COLUMNS.get(param)
            if col is not None and col not in schema.names:
                raise OptionError(param, f"the table has no '{col}' column",
                                  hint="columns: " + ", ".join(schema.names[:30]))
        self.compiled = [compile_expression(text, schema, option=param) for param, text in parts]
        self.drop_empty = drop_empty
        self.label_columns = [c for c in schema.names if c in LABEL_COLUMNS]
        self.attributes = [c for c in schema.names if c not in LABEL_COLUMNS and c not in SAMPLE_COLUMNS]
        self.seen_keys: set[str] = set()  # (sample, source) keys with a kept row or a sample row written
        self.sample_rows = 0
        self.rows_in = 0
        self.labels_in = 0
        self.labels_kept = 0

    def _condition(self, table: "pa.Table", unknown: Sequence[str] = ()):
        import pyarrow as pa
        import pyarrow.compute as pc

        mask = None
        for c in self.compiled:
            m = c.evaluate(table, unknown)
            mask = m if mask is None else pc.and_kleene(mask, m)
        if mask is None:
            return pa.nulls(table.num_rows, pa.bool_()) if unknown else pa.array([True] * table.num_rows)
        return mask

    def apply(self, batch: "pa.Table", keep: "np.ndarray | None" = None) -> "pa.Table":
        """The label rows of ``batch`` that pass (or where ``keep`` is True, when given);
        emptied samples are remembered."""
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        n = batch.num_rows
        self.rows_in += n
        if n == 0:
            return batch
        is_label = T.label_mask(batch)
        self.labels_in += int(is_label.sum())
        if keep is None:
            passed = pc.fill_null(self._condition(batch), False).to_numpy(zero_copy_only=False)
        else:
            passed = keep
        passed = np.asarray(passed, dtype=bool) & is_label
        self.labels_kept += int(passed.sum())
        codes, uniques = _key_codes(batch)
        kept_any = np.bincount(codes, weights=passed, minlength=len(uniques)) > 0
        empty_rows = None
        if not self.drop_empty and not kept_any.all():
            empty_rows, at = self._empty_rows(batch, codes, uniques, kept_any)
        self.seen_keys.update(itertools.compress(uniques, kept_any))
        if empty_rows is None or empty_rows.num_rows == 0:
            return batch.filter(pa.array(passed)) if not passed.all() else batch
        # sample rows go where the sample's first row was: the order of the input is kept
        self.sample_rows += empty_rows.num_rows
        empty_rows = empty_rows.cast(batch.schema)
        if empty_rows.equals(batch.take(pa.array(at))):
            # the sample rows are the input's rows as they are (typically input sample
            # rows): keep them in place, no concatenation and reordering
            passed = passed.copy()
            passed[at] = True
            return batch.filter(pa.array(passed)) if not passed.all() else batch
        kept = batch.filter(pa.array(passed)) if not passed.all() else batch
        order = np.argsort(np.concatenate([np.flatnonzero(passed), at]), kind="stable")
        both = pa.concat_tables([kept, empty_rows])
        return both.take(pa.array(order))

    def _empty_rows(self, batch, codes, uniques, kept_any):
        """Sample rows for the (sample, source) keys of ``batch`` with no kept label row
        and not seen before, with the index of the key's first row."""
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        empty_codes = np.array([c for c in np.flatnonzero(~kept_any) if uniques[c] not in self.seen_keys], dtype=np.int64)
        if not len(empty_codes):
            return None, None
        rows_mask = np.isin(codes, empty_codes)
        sub_index = np.flatnonzero(rows_mask)
        sub = batch.take(pa.array(sub_index))
        sub_codes = codes[rows_mask]
        _, first = np.unique(sub_codes, return_index=True)
        rows = sub.take(pa.array(first))
        row_codes = sub_codes[first]
        rows = self._as_sample_rows(rows, sub, sub_codes, row_codes)
        # the condition on the sample row itself: false drops the sample, unknown keeps it
        ok = pc.fill_null(self._condition(rows), True).to_numpy(zero_copy_only=False)
        self.seen_keys.update(uniques[c] for c in row_codes)
        return rows.filter(pa.array(ok)), sub_index[first][ok]

    def _as_sample_rows(self, rows, sub, sub_codes, row_codes):
        """First rows of emptied samples -> sample rows: label columns null, attributes
        kept where they have one value over the sample's rows."""
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        for name in self.label_columns:
            i = rows.column_names.index(name)
            typ = rows.schema.field(name).type
            fill = pa.array([False] * rows.num_rows) if name == T.ISCROWD else pa.nulls(rows.num_rows, typ)
            rows = rows.set_column(i, name, fill)
        for name in self.attributes:
            col = sub.column(name)
            if col.null_count == len(col):
                continue
            try:
                sub_vals, _ = T.dictionary_codes(col)
            except Exception:  # nested values: not comparable, not kept
                sub_vals = None
            i = rows.column_names.index(name)
            if sub_vals is None:
                rows = rows.set_column(i, name, pa.nulls(rows.num_rows, rows.schema.field(name).type))
                continue
            order = np.lexsort((sub_vals, sub_codes))
            sc, sv = sub_codes[order], sub_vals[order]
            change = np.ones(len(sc), dtype=bool)
            change[1:] = (sc[1:] != sc[:-1]) | (sv[1:] != sv[:-1])
            distinct = np.bincount(sc, weights=change)
            single = distinct[row_codes] <= 1
            if not single.all():
                rows = rows.set_column(i, name, pc.if_else(pa.array(single), rows.column(name),
                                                           pa.scalar(None, rows.schema.field(name).type)))
        return rows

    def finish(self) -> "pa.Table | None":
        """Nothing is held back (sample rows are written in place); kept for symmetry."""
        return None

    def summary(self, rows_out: int, sample_rows: int) -> dict:
        return {
            "where": " and ".join(f"({c.text})" for c in self.compiled) or None,
            "rows_in": self.rows_in, "rows_out": rows_out,
            "labels_in": self.labels_in, "labels_kept": self.labels_kept,
            "labels_dropped": self.labels_in - self.labels_kept,
            "sample_rows": sample_rows, "drop_empty": self.drop_empty,
        }


def _key_codes(batch: "pa.Table") -> tuple["np.ndarray", list]:
    """(sample, source) keys of ``batch`` as codes into their distinct joined values (in
    first-seen order). Rows of one key are usually contiguous: the keys are built and
    hashed once per run of equal (sample, source), not once per row."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    n = batch.num_rows
    sid, src = _flat(batch.column(T.SAMPLE_ID)), _flat(batch.column(T.SOURCE))
    if n > 1:
        head, tail = slice(0, n - 1), slice(1, n)
        differ = pc.or_(pc.not_equal(sid[tail], sid[head]), pc.not_equal(src[tail], src[head]))
        starts = np.flatnonzero(np.concatenate([[True], differ.to_numpy(zero_copy_only=False)]))
    else:
        starts = np.zeros(n, dtype=np.int64)
    idx = pa.array(starts)
    keys = pc.binary_join_element_wise(sid.take(idx), src.take(idx), _KEY_SEP)
    run_codes, uniques = T.dictionary_codes(keys)
    return np.repeat(run_codes, np.diff(np.append(starts, n))), uniques


def _flat(col):
    import pyarrow as pa

    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
    if pa.types.is_dictionary(col.type):
        col = col.cast(col.type.value_type)
    return col


def _tail_start(batch: "pa.Table") -> int:
    """Where the trailing run of rows of the last row's (sample, source) starts."""
    import numpy as np
    import pyarrow.compute as pc

    n = batch.num_rows
    sid, src = batch.column(T.SAMPLE_ID), batch.column(T.SOURCE)
    last_sid, last_src = sid[n - 1], src[n - 1]
    width = 256
    while True:
        lo = max(0, n - width)
        same = pc.and_(pc.equal(sid.slice(lo), last_sid), pc.equal(src.slice(lo), last_src))
        differ = np.flatnonzero(~same.to_numpy(zero_copy_only=False))
        if len(differ):
            return lo + int(differ[-1]) + 1
        if lo == 0:
            return 0
        width *= 16


def aligned(batches: Iterable["pa.Table"]) -> Iterator["pa.Table"]:
    """Re-cut batches so that a run of rows of one (sample, source) is never split across
    two batches (the trailing run of a batch moves to the next), making the result
    independent of the batch size for tables whose samples' rows are contiguous."""
    import pyarrow as pa

    carry = None
    for batch in batches:
        if carry is not None and carry.num_rows:
            batch = pa.concat_tables([carry, batch.replace_schema_metadata(carry.schema.metadata)],
                                     promote_options="permissive")
        n = batch.num_rows
        if n == 0:
            carry = batch
            continue
        cut = _tail_start(batch)
        if cut == 0:
            carry = batch
            continue
        yield batch.slice(0, cut)
        carry = batch.slice(cut)
    if carry is not None and carry.num_rows:
        yield carry


def _run(batches: Iterable["pa.Table"], flt: RowFilter, counter: dict) -> Iterator["pa.Table"]:
    for batch in aligned(batches):
        out = flt.apply(batch)
        counter["rows"] += out.num_rows
        yield out
    counter["sample_rows"] = flt.sample_rows


def filter_table(table: "pa.Table", where: str | None = None, *, labels: Sequence[str] | None = None,
                 splits: Sequence[str] | None = None, sources: Sequence[str] | None = None,
                 min_score: float | None = None, evals: Sequence[str] | None = None,
                 reasons: Sequence[str] | None = None, drop_empty: bool = False) -> Result:
    """Filter an in-memory label table (see the module docstring)."""
    import pyarrow as pa

    parts = build_condition(where, labels=labels, splits=splits, sources=sources, min_score=min_score,
                            evals=evals, reasons=reasons)
    with reporting.collect() as seen:
        flt = RowFilter(table.schema, parts, drop_empty)
        counter = {"rows": 0, "sample_rows": 0}
        pieces = list(_run([table], flt, counter))
        out = pa.concat_tables(pieces) if pieces else table.schema.empty_table()
        out = out.replace_schema_metadata(table.schema.metadata)
        summary = flt.summary(out.num_rows, counter["sample_rows"])
    return Result(out, summary, tuple(seen.warnings))


def filter_files(paths: Sequence[str | os.PathLike | None] | None, output: str | os.PathLike | None = None,
                 encoding: str | None = None, where: str | None = None, *, labels: Sequence[str] | None = None,
                 splits: Sequence[str] | None = None, sources: Sequence[str] | None = None,
                 min_score: float | None = None, evals: Sequence[str] | None = None,
                 reasons: Sequence[str] | None = None, drop_empty: bool = False,
                 batch_rows: int = 262144) -> Result:
    """Stream label tables through the filter into ``output`` (``Result.table`` is None)."""
    from mlcycle import io
    from mlcycle.curate._stream import write_batches

    parts = build_condition(where, labels=labels, splits=splits, sources=sources, min_score=min_score,
                            evals=evals, reasons=reasons)
    io.check_binary_to_terminal(output, io.output_encoding(output, encoding))
    with reporting.collect() as seen:
        scan = io.scan(paths, batch_rows=batch_rows)
        flt = RowFilter(scan.schema, parts, drop_empty)  # errors in the expression: before any output
        counter = {"rows": 0, "sample_rows": 0}
        write_batches(_run(scan.batches(), flt, counter), scan.schema, output, encoding, prefetch=True)
        summary = flt.summary(counter["rows"], counter["sample_rows"])
    return Result(None, summary, tuple(seen.warnings))
