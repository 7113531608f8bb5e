"""One pass over label-table batches: the accumulators of every section, fed batch by
batch, for the whole table, for each ``by`` group and for each ``compare`` value.

Codes for classes, splits, sources and samples are shared by every accumulator
(``codes.Shared``), so a code means the same in every group. An ``Accumulator`` is the
sum of focused parts — ``Counts``, ``Boxes``, ``Attributes``, ``Evaluation``, ``Hard`` —
each owning one section of the document.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

from mlcycle import table as T
from mlcycle.errors import OptionError
from mlcycle.stats import document
from mlcycle.stats.attributes import Attributes
from mlcycle.stats.boxes import Boxes
from mlcycle.stats.codes import CodeBook, SampleCodes, Shared, arrow_codes, unique
from mlcycle.stats.counts import Counts
from mlcycle.stats.outcomes import Evaluation, Hard

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import pyarrow as pa

MAX_GROUPS = 1_000


class Accumulator:
    """Everything one (sub)document needs, updated batch by batch."""

    def __init__(self, shared: Shared) -> None:
        self.shared = shared
        self.counts = Counts(shared)
        self.boxes = Boxes(shared)
        self.evaluation = Evaluation(shared)
        self.hard = Hard(shared)
        self.attributes = Attributes(shared)

    @property
    def rows(self) -> int:
        return self.counts.rows

    def update(self, batch: "pa.Table", cls: "np.ndarray", is_label: "np.ndarray",
               src: "np.ndarray", split: "np.ndarray", sid: "np.ndarray") -> None:
        if not batch.num_rows:
            return
        ncls = len(self.shared.classes)
        lab_idx, lab_cls = self.counts.update(cls, is_label, src, split, sid)
        if len(lab_idx):
            self.boxes.update(batch, lab_idx, lab_cls, ncls)
        if T.EVAL in batch.column_names:
            self.evaluation.update(batch, cls, src, ncls)
        if T.HARD_SCORE in batch.column_names or T.HARD_REASON in batch.column_names:
            self.hard.update(batch, cls)
        self.attributes.update(batch, is_label, lab_cls, ncls)

    def document(self) -> dict[str, Any]:
        order = self.counts.class_order()
        counts, per_sample = self.counts.document(order)
        return {
            "counts": counts,
            "boxes": self.boxes.document(order),
            "per_sample": per_sample,
            "attributes": self.attributes.document(order),
            "balance": document.balance(counts["per_class"]),
            T.EVAL: self.evaluation.document(order) if self.evaluation.has_eval else None,
            "hard": self.hard.document() if self.hard.has_hard else None,
        }


def compute(batches: Iterable["pa.Table"], by: Sequence[str] = (), compare: str | None = None,
            sources: Sequence[str] = ()) -> dict[str, Any]:
    """The stats document of a label table given as batches (checked label tables).

    ``by``: columns whose value combinations each get a full sub-document (``groups``).
    ``compare``: a column whose values are compared side by side with distances.
    ``sources``: keep only rows of these sources.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    shared = Shared(CodeBook(), CodeBook(), CodeBook(), SampleCodes())
    main = Accumulator(shared)
    groups: dict[tuple, Accumulator] = {}
    compares: dict[Any, Accumulator] = {}
    group_codes = [CodeBook() for _ in by]
    compare_codes = CodeBook()
    seen_sources: list[str] = []
    # one sub-document per source once a second source shows up (ground truth and
    # predictions counted apart): until then the main accumulator *is* the one source's,
    # and it is copied when the second appears, so a one-source table pays nothing
    per_source: dict[Any, Accumulator] = {}
    rows_in = 0
    for batch in batches:
        rows_in += batch.num_rows
        check_group_columns(batch.schema, by, compare)
        if sources:
            batch = batch.filter(pc.is_in(batch.column(T.SOURCE), value_set=pa.array(list(sources), pa.string())))
        if not batch.num_rows:
            continue
        batch = batch.combine_chunks()
        if T.LABEL not in batch.column_names:
            batch = batch.append_column(T.LABEL, T.column_or_null(batch, T.LABEL))
        is_label = T.label_mask(batch)
        sid_local, sids = arrow_codes(batch.column(T.SAMPLE_ID))
        sid = shared.samples.codes(sids)[sid_local]
        cls = shared.classes.encode(batch.column(T.LABEL))
        src = shared.sources.encode(batch.column(T.SOURCE))
        split = shared.splits.encode(T.column_or_null(batch, T.SPLIT))
        for s in pc.unique(batch.column(T.SOURCE)).to_pylist():
            if s not in seen_sources:
                if len(seen_sources) == 1 and not per_source:
                    per_source[seen_sources[0]] = copy.deepcopy(main)
                    per_source[seen_sources[0]].shared = shared
                    _reshare(per_source[seen_sources[0]], shared)
                seen_sources.append(s)
        main.update(batch, cls, is_label, src, split, sid)
        if len(seen_sources) > 1:
            _feed(per_source, src, batch, (cls, is_label, src, split, sid), shared, lambda k: shared.sources.values[k])
        if by:
            keys = np.zeros(batch.num_rows, np.int64)
            for codes, name in zip(group_codes, by):
                c = codes.encode(batch.column(name))
                if len(codes) > MAX_GROUPS:
                    raise OptionError("by", f"column '{name}' has more than {MAX_GROUPS} distinct values",
                                      hint="group by a column with few values, such as split or source")
                keys = keys * (MAX_GROUPS + 1) + c
            _feed(groups, keys, batch, (cls, is_label, src, split, sid), shared,
                  lambda k: tuple(codes.values[(k // (MAX_GROUPS + 1) ** (len(by) - 1 - i)) % (MAX_GROUPS + 1)]
                                  for i, codes in enumerate(group_codes)))
        if compare:
            c = compare_codes.encode(batch.column(compare))
            if len(compare_codes) > MAX_GROUPS:
                raise OptionError("compare", f"column '{compare}' has more than {MAX_GROUPS} distinct values",
                                  hint="compare by a column with few values, such as split, source or annotator")
            _feed(compares, c, batch, (cls, is_label, src, split, sid), shared, lambda k: compare_codes.values[k])

    return document.build(main, rows=rows_in, sources_seen=seen_sources, source_filter=sources,
                          by=by, groups=groups, compare=compare, compares=compares, per_source=per_source)


def _reshare(acc: Accumulator, shared: Shared) -> None:
    """Point a copied accumulator and its parts at the live code books (a deep copy
    would otherwise keep a frozen copy of them)."""
    acc.shared = shared
    for part in (acc.counts, acc.boxes, acc.evaluation, acc.hard, acc.attributes):
        if hasattr(part, "shared"):
            part.shared = shared


def check_group_columns(schema: "pa.Schema", by: Sequence[str], compare: str | None) -> None:
    """``OptionError`` unless every ``by``/``compare`` column exists and holds single values."""
    import pyarrow as pa

    for option, name in [("by", n) for n in by] + ([("compare", compare)] if compare else []):
        if name not in schema.names:
            raise OptionError(option, f"no column '{name}' to group by", hint="columns: " + ", ".join(schema.names))
        typ = schema.field(name).type
        if pa.types.is_nested(typ) and not pa.types.is_dictionary(typ):
            raise OptionError(option, f"cannot group by column '{name}': it holds {typ}, not single values")


def _feed(accs: dict, keys: "np.ndarray", batch: "pa.Table", codes: tuple, shared: Shared,
          decode: Callable[[int], Any]) -> None:
    """Update the accumulator of each key value present in the batch with its rows."""
    import numpy as np
    import pyarrow as pa

    uniq = unique(keys)
    for k in uniq:
        value = decode(int(k))
        acc = accs.get(value)
        if acc is None:
            acc = accs[value] = Accumulator(shared)
        if len(uniq) == 1:
            acc.update(batch, *codes)
            continue
        sel = np.flatnonzero(keys == k)
        acc.update(batch.take(pa.array(sel)), *(c[sel] for c in codes))
