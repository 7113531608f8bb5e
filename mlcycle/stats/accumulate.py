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
from mlcycle.stats.codes import CodeBook, SampleCodes, Shared, arrow_codes, sort_key, unique
from mlcycle.stats.counts import CodeMaps, Counts
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

    def seal(self) -> None:
        self.counts.seal()

    def merge(self, other: "Accumulator", maps: CodeMaps) -> None:
        """Add another shard's sealed accumulator (its codes mapped through ``maps``)."""
        self.counts.merge(other.counts, maps)
        self.boxes.merge(other.boxes, maps)
        self.evaluation.merge(other.evaluation, maps)
        self.hard.merge(other.hard, maps)
        self.attributes.merge(other.attributes, maps)

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

    One pass is one shard: ``finish(merge([accumulate(...)]))``, the same code a sharded
    run (``mlcycle.scale``) uses on the partials of its shards.
    """
    return finish(merge([accumulate(batches, by=by, compare=compare, sources=sources)]))


class Partial:
    """The mergeable state of one shard's pass: sealed accumulators (no per-sample state:
    a shard must hold every row of its samples) and the code books their codes index.
    ``merge`` adds partials up; ``finish`` makes the document. Picklable (a sharded run
    sends partials between processes)."""

    def __init__(self, shared: Shared, main: Accumulator, *, rows: int, sources_seen: list,
                 by: Sequence[str], compare: str | None, source_filter: Sequence[str],
                 groups: dict, compares: dict, per_source: dict) -> None:
        self.shared, self.main, self.rows = shared, main, rows
        self.sources_seen = list(sources_seen)
        self.by, self.compare, self.source_filter = tuple(by), compare, tuple(source_filter)
        self.groups, self.compares, self.per_source = groups, compares, per_source


def accumulate(batches: Iterable["pa.Table"], by: Sequence[str] = (), compare: str | None = None,
               sources: Sequence[str] = ()) -> Partial:
    """One shard's partial (see ``compute`` for the options). Every row of a sample must
    be in the same shard."""
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

    for acc in [main, *per_source.values(), *groups.values(), *compares.values()]:
        acc.seal()
    shared.samples = None  # sealed: sample codes are no longer needed (nor sent)
    return Partial(shared, main, rows=rows_in, sources_seen=seen_sources, by=by, compare=compare,
                   source_filter=sources, groups=groups, compares=compares, per_source=per_source)


def merge(parts: Sequence[Partial]) -> Partial:
    """The partial of the shards together: counts and histograms added, exact sums added,
    code books unified (codes are remapped by value). Equal, document for document, to
    one pass over all the shards' rows, in any order of shards."""
    import numpy as np

    parts = list(parts)
    if len(parts) == 1:
        return parts[0]
    first = parts[0] if parts else None
    shared = Shared(CodeBook(), CodeBook(), CodeBook(), None)
    by = first.by if first else ()
    compare = first.compare if first else None
    out = Partial(shared, Accumulator(shared), rows=0, sources_seen=[], by=by, compare=compare,
                  source_filter=first.source_filter if first else (), groups={}, compares={}, per_source={})
    all_sources = sorted({s for p in parts for s in p.sources_seen}, key=lambda v: (v != T.GT_SOURCE, sort_key(v)))
    for p in parts:
        if p.by != by or p.compare != compare:
            raise ValueError("partials of different options cannot be merged")
        maps = CodeMaps(*(np.array([book.code(v) for v in theirs.values], np.int64)
                          for book, theirs in ((shared.classes, p.shared.classes), (shared.splits, p.shared.splits),
                                               (shared.sources, p.shared.sources))))
        out.rows += p.rows
        out.main.merge(p.main, maps)
        per_source = p.per_source
        if len(all_sources) > 1 and not per_source and p.sources_seen:  # one source: main is its own
            per_source = {p.sources_seen[0]: p.main}
        for mine, theirs in ((out.per_source, per_source if len(all_sources) > 1 else {}),
                             (out.groups, p.groups), (out.compares, p.compares)):
            for key, acc in theirs.items():
                if key not in mine:
                    mine[key] = Accumulator(shared)
                mine[key].merge(acc, maps)
    out.sources_seen = all_sources
    return out


def finish(part: Partial) -> dict[str, Any]:
    """The stats document of a (merged) partial."""
    sources_seen = sorted(part.sources_seen, key=lambda v: (v != T.GT_SOURCE, sort_key(v)))
    return document.build(part.main, rows=part.rows, sources_seen=sources_seen, source_filter=part.source_filter,
                          by=part.by, groups=part.groups, compare=part.compare, compares=part.compares,
                          per_source=part.per_source)


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
