"""The streaming side of ``diff``: two tables sorted by sample_id, diffed chunk by chunk.

Both inputs are scanned in batches (``io.scan``) and walked in step like a merge join
on ``sample_id``: a chunk holds every row of its samples on both sides (the trailing
sample of a batch waits for the next batch), so ``diff.core`` on the chunk gives exactly
the rows and counts the whole-table diff gives for those samples. The changes are
written chunk by chunk (``_stream.write_batches``). Samples present in NEW only come
last in the whole-table output (rows are ordered by a sample's first appearance in OLD,
then NEW): their ids are kept (one string per such sample) and their rows written by a
second pass over NEW. Memory is bounded by the batch size plus those ids.

``check_sorted`` first checks both sides' order (reading sample_id and source only);
when a side is not sorted, ``Unsorted`` is raised and ``diff.diff_files`` falls back to
the whole-table diff. The order is checked again while streaming.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterator

from mlcycle import table as T

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa


class Unsorted(Exception):
    """A side is not sorted by sample_id (not an error: the caller falls back)."""


class _Side:
    """The pending rows of one input, checked to be sorted by sample_id as they come."""

    def __init__(self, batches: Iterator["pa.Table"], name: str = "") -> None:
        self.name = name
        self.it = batches
        self.buf: "pa.Table | None" = None
        self.done = False
        self.last: Any = None  # last sample_id read

    def read(self) -> None:
        import pyarrow as pa
        import pyarrow.compute as pc

        from mlcycle.curate.diff import strip_diff_columns

        while True:
            batch = next(self.it, None)
            if batch is None:
                self.done = True
                return
            batch = strip_diff_columns(batch)
            n = batch.num_rows
            if not n:
                if self.buf is None:
                    self.buf = batch
                continue
            sid = batch.column(T.SAMPLE_ID)
            if sid.null_count:
                raise Unsorted(self.name)
            if n > 1 and pc.any(pc.less(sid.slice(1), sid.slice(0, n - 1))).as_py():
                raise Unsorted(self.name)
            first = sid[0].as_py()
            if self.last is not None and first < self.last:
                raise Unsorted(self.name)
            self.last = sid[n - 1].as_py()
            if self.buf is None or not self.buf.num_rows:
                self.buf = batch
            else:
                self.buf = pa.concat_tables([self.buf, batch.replace_schema_metadata(self.buf.schema.metadata)],
                                            promote_options="permissive")
            return

    def rows(self) -> int:
        return 0 if self.buf is None else self.buf.num_rows

    def cut(self, bound: Any) -> "pa.Table":
        """Take the rows with sample_id < ``bound`` (all rows when ``bound`` is None)."""
        import pyarrow.compute as pc

        if self.buf is None:
            return None
        if bound is None:
            k = self.buf.num_rows
        else:
            k = int(pc.sum(pc.less(self.buf.column(T.SAMPLE_ID), bound)).as_py() or 0)
        head, self.buf = self.buf.slice(0, k), self.buf.slice(k)
        return head


def chunks(old_batches: Iterator["pa.Table"], new_batches: Iterator["pa.Table"],
           names: tuple[str, str] = ("OLD", "NEW")) -> Iterator[tuple["pa.Table", "pa.Table"]]:
    """(old, new) chunks holding whole samples of both sides, in sample_id order."""
    o, n = _Side(old_batches, names[0]), _Side(new_batches, names[1])
    o.read()
    n.read()
    while True:
        if o.done and n.done:
            yield o.cut(None), n.cut(None)
            return
        # rows below the smallest last id of a side still being read are complete
        open_lasts = [s.last for s in (o, n) if not s.done and s.last is not None]
        bound = min(open_lasts) if open_lasts else None
        if bound is not None:
            a, b = o.cut(bound), n.cut(bound)
            if (a is not None and a.num_rows) or (b is not None and b.num_rows):
                yield a, b
        for s in (o, n):
            if not s.done and (s.last is None or s.last == bound):
                s.read()


class Summary:
    """The whole-table summary (``diff._summary``), gathered chunk by chunk."""

    def __init__(self, old_schema: "pa.Schema", new_schema: "pa.Schema") -> None:
        self.side = {"old": [0, 0, 0], "new": [0, 0, 0]}  # rows, labels, samples
        self.counts: dict[str, int] = {}
        self.by: dict[str, int] = {}
        self.samples = {"added": [0, []], "removed": [0, []]}
        self.attr_cols: list[str] = []
        self.attrs: dict[str, int] = {}
        self.rank: dict[str, dict] = {T.LABEL: {}, T.OLD_LABEL: {}, T.CHANGE: {}}
        self.per_class: dict[tuple, int] = {}
        self.relabels: dict[tuple, int] = {}
        self.rows_written = 0
        self.cols = {"added": [c for c in new_schema.names if c not in old_schema.names],
                     "removed": [c for c in old_schema.names if c not in new_schema.names]}

    def add_chunk(self, old, new, counts, by, d) -> None:
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        from mlcycle.curate.diff import _EXAMPLES

        for key, t in (("old", old), ("new", new)):
            s = self.side[key]
            s[0] += t.num_rows
            s[1] += int(T.label_mask(t).sum())
            s[2] += len(pc.unique(t.column(T.SAMPLE_ID)))
        for k, v in counts.items():
            self.counts[k] = self.counts.get(k, 0) + v
        for k, v in by.items():
            self.by[k] = self.by.get(k, 0) + v
        for key, t, mask in (("added", new, d["only_new"]), ("removed", old, d["only_old"])):
            if mask.any():
                ids = pc.unique(t.column(T.SAMPLE_ID).filter(pa.array(mask)))
                self.samples[key][0] += len(ids)
                room = _EXAMPLES - len(self.samples[key][1])
                if room > 0:
                    self.samples[key][1] += ids.slice(0, room).to_pylist()
        self.attr_cols = d["attr_cols"]
        if len(d["attr_cols"]):
            for c, k in zip(d["attr_cols"], np.asarray(d["changed"]).sum(axis=0).tolist()):
                self.attrs[c] = self.attrs.get(c, 0) + int(k)

    def add_output(self, out: "pa.Table") -> None:
        """Count the rows written, in the order they are written."""
        import numpy as np

        self.rows_written += out.num_rows
        if not out.num_rows:
            return
        codes = {}
        for name in (T.LABEL, T.OLD_LABEL, T.CHANGE):
            c, names = T.dictionary_codes(T.column_or_null(out, name))
            rank = self.rank[name]
            for v in names:
                rank.setdefault(v, len(rank))
            codes[name] = (c, names)
        lab, lab_names = codes[T.LABEL]
        ch, ch_names = codes[T.CHANGE]
        prev, prev_names = codes[T.OLD_LABEL]
        keep = lab >= 0
        if keep.any():
            keys, n = np.unique(np.stack([lab[keep], ch[keep]]), axis=1, return_counts=True)
            for (li, ci), k in zip(keys.T.tolist(), n.tolist()):
                key = (lab_names[li], ch_names[ci])
                self.per_class[key] = self.per_class.get(key, 0) + k
        if T.CHANGE_RELABELLED in ch_names:
            rel = ch == ch_names.index(T.CHANGE_RELABELLED)
            if rel.any():
                keys, n = np.unique(np.stack([prev[rel], lab[rel]]), axis=1, return_counts=True)
                for (a, b), k in zip(keys.T.tolist(), n.tolist()):
                    key = (prev_names[a] if a >= 0 else None, lab_names[b] if b >= 0 else None)
                    self.relabels[key] = self.relabels.get(key, 0) + k

    def finish(self, old_name, new_name, iou, same_iou) -> dict[str, Any]:
        from mlcycle.curate.diff import _EXAMPLES

        def rank(name, v):
            return -1 if v is None else self.rank[name][v]

        ch_rank = self.rank[T.CHANGE]
        per_class: dict[str, dict[str, int]] = {}
        for (cls, ch), k in sorted(self.per_class.items(), key=lambda kv: (rank(T.LABEL, kv[0][0]), ch_rank[kv[0][1]])):
            per_class.setdefault(str(cls), {})[ch] = k
        relabels = sorted(self.relabels.items(),
                          key=lambda kv: (-kv[1], rank(T.OLD_LABEL, kv[0][0]), rank(T.LABEL, kv[0][1])))
        zero = {T.CHANGE_ADDED: 0, T.CHANGE_REMOVED: 0, T.CHANGE_MOVED: 0, T.CHANGE_RELABELLED: 0,
                T.CHANGE_ATTRIBUTES: 0, "unchanged": 0}
        counts = {**zero, **self.counts}
        by = {"label_id": 0, "geometry": 0, "relabel": 0, **self.by}
        o, n = self.side["old"], self.side["new"]
        return {
            "diff_version": 1,
            "old": {"name": old_name, "rows": o[0], "labels": o[1], "samples": o[2]},
            "new": {"name": new_name, "rows": n[0], "labels": n[1], "samples": n[2]},
            "iou": iou, "same_iou": same_iou,
            "changes": sum(v for k, v in counts.items() if k != "unchanged"),
            "counts": counts,
            "matched_by": by,
            "samples": {"added": self.samples["added"][0], "removed": self.samples["removed"][0],
                        "added_examples": self.samples["added"][1][:_EXAMPLES],
                        "removed_examples": self.samples["removed"][1][:_EXAMPLES]},
            "columns": self.cols,
            "attributes": {c: self.attrs[c] for c in self.attr_cols if self.attrs.get(c)},
            "relabels": [{"from": a, "to": b, "count": k} for (a, b), k in relabels[:_EXAMPLES]],
            "per_class": dict(sorted(per_class.items())),
            "rows_written": self.rows_written,
        }


def _null_row(schema: "pa.Schema") -> "pa.Table":
    import pyarrow as pa

    return pa.Table.from_arrays([pa.nulls(1, f.type) for f in schema], schema=schema.remove_metadata())


def _added(stub_old: "pa.Table", new: "pa.Table", rows) -> "pa.Table":
    """Rows of ``new`` written as added (samples in NEW only)."""
    import numpy as np

    from mlcycle.curate.diff import _build

    e = np.zeros(0, np.int64)
    return _build(stub_old, new, e, rows, e, e, np.zeros(0), e, np.zeros((0, 0), bool), [], np.zeros((0, 4)))


def run(old_scan, new_scan, *, iou: float, same_iou: float, old_name: str, new_name: str,
        chunk_pairs: int, sink) -> dict[str, Any]:
    """Diff two scans; ``sink(batches, schema, metadata)`` consumes the changed rows.
    Raises ``Unsorted`` (before ``sink`` has finished) when a side is not sorted."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    from mlcycle.curate.diff import _build, core, strip_diff_columns

    old_schema = strip_diff_columns(old_scan.empty()).schema
    new_schema = strip_diff_columns(new_scan.empty()).schema
    stub_old = _null_row(old_schema)
    e = np.zeros(0, np.int64)
    # the output's columns and types: what the whole-table diff builds, on no rows
    schema = _build(stub_old.slice(0, 0), new_schema.empty_table(), e, e, e, e, np.zeros(0), e,
                    np.zeros((0, 0), bool), [], np.zeros((0, 4))).schema.remove_metadata()
    metadata = T.merge_metadata(T.get_metadata(old_schema.empty_table()), T.get_metadata(new_schema.empty_table()))
    acc = Summary(old_schema, new_schema)
    only_new_ids: list = []

    def changes() -> Iterator["pa.Table"]:
        for a, b in chunks(old_scan.batches(), new_scan.batches(), (old_name, new_name)):
            a = old_schema.empty_table() if a is None else a
            b = new_schema.empty_table() if b is None else b
            if not a.num_rows and not b.num_rows:
                continue
            out, counts, by, d = core(a, b, iou, same_iou, chunk_pairs)
            acc.add_chunk(a, b, counts, by, d)
            tail = int(d["only_new"].sum())  # samples in NEW only: last, written by the second pass
            if tail:
                only_new_ids.append(pc.unique(b.column(T.SAMPLE_ID).filter(pa.array(d["only_new"]))))
            out = out.slice(0, out.num_rows - tail)
            acc.add_output(out)
            yield out
        if not only_new_ids:
            return
        ids = pa.chunked_array(only_new_ids, type=pa.string()).combine_chunks()
        only_new_ids.clear()
        p = 0
        for batch in new_scan.batches():
            if p >= len(ids):
                break
            batch = strip_diff_columns(batch)
            if not batch.num_rows:
                continue
            window = ids.slice(p, batch.num_rows + 1)
            last = batch.column(T.SAMPLE_ID)[batch.num_rows - 1]
            k = int(pc.sum(pc.less_equal(window, last)).as_py() or 0)
            if not k:
                continue
            hit = pc.is_in(batch.column(T.SAMPLE_ID), value_set=window.slice(0, k))
            p += int(pc.sum(pc.less(window, last)).as_py() or 0)  # the last sample may go on
            rows = np.flatnonzero(hit.to_numpy(zero_copy_only=False))
            out = _added(stub_old, batch, rows)
            acc.add_output(out)
            yield out

    sink(changes(), schema, metadata)
    return acc.finish(old_name, new_name, iou, same_iou)


def check_sorted(scan, name: str) -> None:
    """A pass over ``scan`` reading sample_id and source only: raises ``Unsorted`` unless
    it is sorted by sample_id (a few % of a diff's time; an unsorted input is then found
    before any work is done and before anything is written)."""
    side = _Side(scan.batches(columns=[T.SAMPLE_ID]), name)  # sample_id and source only
    while not side.done:
        side.read()
        side.buf = None
