"""merge: several label tables (same or different sources) into one.

Rules (docs/curate.md has the long form):

- **Rows.** Every row of every input is kept, in input order. Inputs are read twice,
  batch by batch: once for the small columns (samples, sizes, ids, classes), once to
  write; memory holds one batch plus per-sample facts.
- **Image size.** A sample has one ``width``/``height``. When two inputs (or two rows)
  disagree, ``on_conflict="error"`` (the default) stops naming the sample and both
  files; ``"first"`` keeps the first input's size on every row of the sample (with a
  warning giving the count). A size missing in one input is filled from another.
- **image_id.** A sample keeps the first ``image_id`` any input gives it; if that
  leaves two samples sharing an id, the later samples get new ids above the largest.
- **label_id.** Unique within a source: the first input keeps its ids; an input whose
  ids in a source collide with ids already used there (or repeat within it) has that
  source's labels renumbered above the largest id used, in row order, with a warning;
  the old id stays in the attribute ``original_label_id``.
- **Classes.** One class list: the first input's classes in its category order, then
  classes new in later inputs in theirs. ``category_id``: a class keeps the id the first
  input that has one gives it; new classes whose id is taken get ids above the largest.
  Every label row gets its class's id (when any input has ``category_id``). The COCO
  ``categories`` metadata is rebuilt from the list (supercategory: the first non-empty).
- **Metadata.** Merged key by key; where inputs disagree the first input wins.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator, Sequence

from mlcycle import reporting
from mlcycle import table as T
from mlcycle.errors import MlcycleError, OptionError, mention
from mlcycle.results import Result

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import pyarrow as pa

ORIGINAL_LABEL_ID = T.ORIGINAL_LABEL_ID  # defined in mlcycle/table.py
ON_CONFLICT = ("error", "first")
COCO = "coco"
_PASS1 = [T.LABEL_ID, T.LABEL, T.CATEGORY_ID, T.WIDTH, T.HEIGHT, T.IMAGE_ID, T.BBOX]


@dataclass
class _Input:
    name: str
    schema: "pa.Schema"
    batches: Any  # callable(columns=None) -> iterator of tables


def _table_input(table: "pa.Table", name: str) -> _Input:
    def batches(columns=None):
        t = table if columns is None else table.select([c for c in table.column_names if c in set(columns) | {T.SAMPLE_ID, T.SOURCE}])
        yield t
    return _Input(name, table.schema, batches)


def _scan_input(path, batch_rows: int) -> _Input:
    from mlcycle import io

    scan = io.scan([path], batch_rows=batch_rows)
    return _Input(io.display_name(path), scan.schema, scan.batches)


class _Plan:
    """Pass 1: what each input's rows become."""

    def __init__(self, inputs: list[_Input], on_conflict: str) -> None:
        import numpy as np
        import pyarrow as pa

        from mlcycle.curate.remap import _classes_and_ids

        self.inputs = inputs
        self.on_conflict = on_conflict
        names = set()
        for i in inputs:
            names |= set(i.schema.names)
        self.has = {c: c in names for c in (T.WIDTH, T.HEIGHT, T.IMAGE_ID, T.CATEGORY_ID, T.LABEL_ID)}
        metas = [T.get_metadata(i.schema.empty_table()) for i in inputs]
        self.metadata = T.merge_metadata(*reversed(metas))  # the first input wins
        sample_rows = []  # per input: table (sample_id, width, height, image_id, input)
        self.label_ids: list[dict[str, "np.ndarray"]] = []  # per input: source -> ids in row order
        class_order: list[str] = []
        class_ids: dict[str, int] = {}
        self.rows_in = []
        self.labels_in = []
        for k, inp in enumerate(inputs):
            pieces = list(inp.batches(columns=_PASS1))
            t = pa.concat_tables([p.replace_schema_metadata(None) for p in pieces], promote_options="permissive") if len(pieces) > 1 else pieces[0]
            self.rows_in.append(t.num_rows)
            is_label = T.label_mask(t)
            self.labels_in.append(int(is_label.sum()))
            cols = {T.SAMPLE_ID: t.column(T.SAMPLE_ID)}
            for c in (T.WIDTH, T.HEIGHT, T.IMAGE_ID):
                cols[c] = T.column_or_null(t, c)
            s = pa.table(cols).group_by([T.SAMPLE_ID, T.WIDTH, T.HEIGHT, T.IMAGE_ID], use_threads=False).aggregate([])
            sample_rows.append(s.append_column("input", pa.array(np.full(s.num_rows, k, np.int64))))
            ids = {}
            if T.LABEL_ID in t.column_names:
                lid = t.column(T.LABEL_ID)
                valid = lid.is_valid().to_numpy(zero_copy_only=False)
                src_codes, srcs = T.dictionary_codes(t.column(T.SOURCE))
                vals = T.numpy_column(t, T.LABEL_ID, fill=0, dtype=np.int64)
                for j, src in enumerate(srcs):
                    ids[src] = vals[(src_codes == j) & valid]
            self.label_ids.append(ids)
            order, idmap = _classes_and_ids([t], metas[k])
            for name in order:
                if name not in class_order:
                    class_order.append(name)
            for name in order:
                if name in idmap and name not in class_ids and int(idmap[name]) not in class_ids.values():
                    class_ids[name] = int(idmap[name])
        self.classes = class_order
        nxt = max(class_ids.values(), default=0) + 1
        for name in class_order:
            if name not in class_ids:
                class_ids[name] = nxt
                nxt += 1
        self.class_ids = class_ids
        self._samples(pa.concat_tables(sample_rows))
        self._label_ids()
        self._coco(metas)

    # ---- samples: sizes and image ids
    def _samples(self, s: "pa.Table") -> None:
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        self.samples = pc.unique(s.column(T.SAMPLE_ID)) if s.num_rows else pa.array([], pa.string())
        code = pc.index_in(s.column(T.SAMPLE_ID), value_set=self.samples).to_numpy(zero_copy_only=False).astype(np.int64)
        inp = s.column("input").to_numpy()
        order = np.lexsort((inp, code))
        code, inp = code[order], inp[order]
        n = len(self.samples)
        self.size_conflicts: list[dict] = []
        self.resolved: dict[str, "np.ndarray"] = {}
        self.filled = 0
        for c in (T.WIDTH, T.HEIGHT, T.IMAGE_ID):
            col = s.column(c).combine_chunks().take(pa.array(order))
            valid = col.is_valid().to_numpy(zero_copy_only=False)
            vals = pc.fill_null(col, 0).to_numpy(zero_copy_only=False).astype(np.int64)
            first = np.full(n, -1, dtype=np.int64)
            # the first valid value per sample (rows are sorted by sample, then input)
            idx = np.flatnonzero(valid)
            _, pos = np.unique(code[idx], return_index=True)
            firsts = idx[pos]
            first[code[firsts]] = firsts
            self.resolved[c] = np.where(first >= 0, vals[np.maximum(first, 0)], -1)
            self.resolved[c + "_valid"] = first >= 0
            if c == T.IMAGE_ID:
                continue
            differs = valid & (first[code] >= 0) & (vals != vals[np.maximum(first[code], 0)])
            for r in np.flatnonzero(differs)[:1000]:
                f = first[code[r]]
                self.size_conflicts.append({"sample_id": self.samples[int(code[r])].as_py(), "column": c,
                                            "first": int(vals[f]), "first_input": self.inputs[int(inp[f])].name,
                                            "other": int(vals[r]), "other_input": self.inputs[int(inp[r])].name})
        conflicted = sorted({d["sample_id"] for d in self.size_conflicts})
        self.conflicted_samples = len(conflicted)
        if conflicted and self.on_conflict == "error":
            d = self.size_conflicts[0]
            where = d["first_input"] if d["first_input"] == d["other_input"] else f"{d['first_input']} but {d['other']} in {d['other_input']}"
            more = f" (and {len(conflicted) - 1} more samples)" if len(conflicted) > 1 else ""
            if d["first_input"] == d["other_input"]:
                msg = (f"sample '{d['sample_id']}' has {d['column']} {d['first']} and {d['other']} in {d['first_input']}{more}")
            else:
                msg = (f"sample '{d['sample_id']}' has {d['column']} {d['first']} in {where}{more}")
            raise MlcycleError(msg, hint=f"the inputs disagree about the image size; {mention('on_conflict')} first keeps the first input's size")
        if conflicted:
            reporting.warn(f"{len(conflicted)} samples have different sizes in different inputs; kept the first input's "
                           f"(e.g. '{conflicted[0]}')")
        # image ids: first wins; ids shared by several samples are renumbered above the largest
        self.image_ids_renumbered = 0
        if self.has[T.IMAGE_ID]:
            ids, ok = self.resolved[T.IMAGE_ID], self.resolved[T.IMAGE_ID + "_valid"]
            seen_idx = np.flatnonzero(ok)
            _, first_pos = np.unique(ids[seen_idx], return_index=True)
            dup = np.ones(len(seen_idx), dtype=bool)
            dup[first_pos] = False
            dups = seen_idx[dup]
            if len(dups):
                top = int(ids[ok].max())
                ids = ids.copy()
                ids[dups] = top + 1 + np.arange(len(dups))
                self.resolved[T.IMAGE_ID] = ids
                self.image_ids_renumbered = len(dups)
                reporting.warn(f"{len(dups)} samples shared an image_id with another sample; gave them new ids above {top}")

    # ---- label ids
    def _label_ids(self) -> None:
        import numpy as np

        used: dict[str, "np.ndarray"] = {}
        self.renumber: list[dict[str, int]] = []  # per input: source -> first new id
        self.renumbered: list[dict] = []
        for k, ids in enumerate(self.label_ids):
            plan = {}
            for src, arr in ids.items():
                before = used.get(src, np.zeros(0, np.int64))
                clash = len(np.unique(arr)) != len(arr) or bool(np.isin(arr, before).any())
                if clash:
                    start = int(before.max() if len(before) else 0) + 1
                    plan[src] = start
                    new = start + np.arange(len(arr))
                    used[src] = np.concatenate([before, new])
                    self.renumbered.append({"input": self.inputs[k].name, "source": src, "labels": int(len(arr)),
                                            "first_new_id": start})
                    reporting.warn(f"{self.inputs[k].name}: {len(arr)} label ids of source '{src}' were already used; "
                                   f"renumbered from {start} (old ids in '{ORIGINAL_LABEL_ID}')")
                else:
                    used[src] = np.concatenate([before, arr])
            self.renumber.append(plan)

    # ---- COCO categories
    def _coco(self, metas: list[dict]) -> None:
        cats_by_name: dict[str, dict] = {}
        any_coco = False
        for m in metas:
            coco = m.get(COCO) if isinstance(m.get(COCO), dict) else None
            for c in (coco or {}).get("categories") or []:
                any_coco = True
                if not isinstance(c, dict):
                    continue
                name = str(c.get("name"))
                entry = cats_by_name.setdefault(name, dict(c))
                if not entry.get("supercategory") and c.get("supercategory"):
                    entry["supercategory"] = c["supercategory"]
        if any_coco:
            cats = []
            for name in sorted(self.classes, key=lambda n: self.class_ids[n]):
                entry = dict(cats_by_name.get(name, {}))
                entry.update(id=self.class_ids[name], name=name)
                entry.setdefault("supercategory", "")
                cats.append(entry)
            coco = dict(self.metadata.get(COCO) or {})
            coco["categories"] = cats
            self.metadata[COCO] = coco

    # ---- pass 2
    def schema(self) -> "pa.Schema":
        import pyarrow as pa

        schemas = [i.schema.remove_metadata() for i in self.inputs]
        try:
            schema = pa.unify_schemas(schemas, promote_options="permissive") if len(schemas) > 1 else schemas[0]
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise MlcycleError(f"cannot combine the inputs: {str(exc).splitlines()[0]}",
                               hint="an attribute column has different types in different inputs") from None
        schema = T.normalize(schema.empty_table(), origin="<inputs>").schema
        if self.renumbered and ORIGINAL_LABEL_ID not in schema.names:
            schema = schema.append(pa.field(ORIGINAL_LABEL_ID, pa.int64()))
        return schema

    def rows(self, k: int) -> Iterator["pa.Table"]:
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        from mlcycle.curate._samples import set_column

        counters: dict[str, int] = {}
        types = T.core_types()
        for b in self.inputs[k].batches():
            if b.num_rows == 0:
                continue
            idx = pc.index_in(b.column(T.SAMPLE_ID), value_set=self.samples).to_numpy(zero_copy_only=False).astype(np.int64)
            for c in (T.WIDTH, T.HEIGHT, T.IMAGE_ID):
                if self.has[c]:
                    vals, ok = self.resolved[c][idx], self.resolved[c + "_valid"][idx]
                    b = set_column(b, c, pa.array(vals, mask=~ok).cast(types[c]))
            if self.has[T.CATEGORY_ID] and T.LABEL in b.column_names:
                codes, uniques = T.dictionary_codes(b.column(T.LABEL))
                lut = np.array([self.class_ids.get(u, -1) for u in uniques] + [-1], dtype=np.int64)
                cat = lut[codes]
                b = set_column(b, T.CATEGORY_ID, pa.array(cat, mask=cat < 0, type=pa.int64()))
            plan = self.renumber[k]
            if plan and T.LABEL_ID in b.column_names:
                lid = b.column(T.LABEL_ID)
                valid = lid.is_valid().to_numpy(zero_copy_only=False)
                old = T.numpy_column(b, T.LABEL_ID, fill=0, dtype=np.int64)
                new = old.copy()
                src_codes, srcs = T.dictionary_codes(b.column(T.SOURCE))
                touched = np.zeros(b.num_rows, dtype=bool)
                for j, src in enumerate(srcs):
                    if src not in plan:
                        continue
                    rows = (src_codes == j) & valid
                    n = int(rows.sum())
                    done = counters.get(src, 0)
                    new[rows] = plan[src] + done + np.arange(n)
                    counters[src] = done + n
                    touched |= rows
                b = set_column(b, T.LABEL_ID, pa.array(new, mask=~valid, type=pa.int64()))
                orig = pa.array(old, mask=~touched, type=pa.int64())
                b = set_column(b, ORIGINAL_LABEL_ID, orig)
            yield b

    def summary(self, rows_out: int) -> dict:
        return {
            "inputs": [{"input": i.name, "rows": r, "labels": n} for i, r, n in zip(self.inputs, self.rows_in, self.labels_in)],
            "rows_out": rows_out,
            "samples": len(self.samples),
            "on_conflict": self.on_conflict,
            "size_conflicts": {"samples": self.conflicted_samples, "examples": self.size_conflicts[:10]},
            "label_ids_renumbered": self.renumbered,
            "image_ids_renumbered": self.image_ids_renumbered,
            "classes": len(self.classes),
            "category_ids": dict(sorted(self.class_ids.items(), key=lambda kv: kv[1])) if self.has[T.CATEGORY_ID] else None,
        }


def _check(on_conflict: str, n: int) -> None:
    if on_conflict not in ON_CONFLICT:
        raise OptionError("on_conflict", f"unknown rule '{on_conflict}'", hint="choose error or first")
    if n < 1:
        raise OptionError(None, "nothing to merge: give at least one table")


def merge_tables(tables: Sequence["pa.Table"], names: Sequence[str] | None = None, on_conflict: str = "error") -> Result:
    """Merge label tables in memory (see the module docstring); ``names`` label the
    inputs in messages."""
    import pyarrow as pa

    from mlcycle.curate._stream import conform

    _check(on_conflict, len(tables))
    names = list(names) if names is not None else [f"<table {i + 1}>" for i in range(len(tables))]
    with reporting.collect() as seen:
        plan = _Plan([_table_input(t, n) for t, n in zip(tables, names)], on_conflict)
        schema = plan.schema()
        pieces = [conform(b, schema) for k in range(len(tables)) for b in plan.rows(k)]
        out = pa.concat_tables(pieces) if pieces else schema.empty_table()
        out = T.with_metadata(out.replace_schema_metadata(None), plan.metadata)
        summary = plan.summary(out.num_rows)
    return Result(out, summary, tuple(seen.warnings))


def merge_files(paths: Sequence[str | os.PathLike | None], output: str | os.PathLike | None = None,
                encoding: str | None = None, on_conflict: str = "error", batch_rows: int = 262144) -> Result:
    """Merge label table files into ``output``, streaming (``Result.table`` is None)."""
    from mlcycle import io
    from mlcycle.curate._stream import write_batches

    paths = list(paths) or [None]
    _check(on_conflict, len(paths))
    if sum(1 for p in paths if p is None or str(p) == "-") > 1:
        raise OptionError(None, "standard input ('-') given more than once")
    io.check_binary_to_terminal(output, io.output_encoding(output, encoding))
    with reporting.collect() as seen:
        plan = _Plan([_scan_input(p, batch_rows) for p in paths], on_conflict)
        schema = plan.schema()
        rows = write_batches((b for k in range(len(paths)) for b in plan.rows(k)), schema, output, encoding, plan.metadata)
        summary = plan.summary(rows)
    return Result(None, summary, tuple(seen.warnings))
