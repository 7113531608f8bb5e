"""Attribute columns (every column that is neither core nor added by a command),
summarised over label rows by type: booleans (true/false/missing), numbers (quantiles),
categories (the most common values), lists (lengths) — overall and per class."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

from mlcycle import table as T
from mlcycle.stats.codes import (Shared, add_counts, arrow_codes, grow, grow_stats, keyed_counts, sort_key,
                                 to_numpy)
from mlcycle.stats.sketches import Merger, Quantiles, exact_mean, exact_sums_by, json_number

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import pyarrow as pa

TOP_VALUES = 20
MAX_DISTINCT = 10_000
# Columns that commands add: summarised in their own sections (outcomes.py), not here.
ADDED_COLUMNS = (T.EVAL, T.EVAL_ID, T.EVAL_IOU, T.HARD_SCORE, T.HARD_REASON)


class Attribute:
    def __init__(self, name: str, kind: str, arrow_type: str) -> None:
        import numpy as np

        self.name = name
        self.kind = kind
        self.arrow_type = arrow_type
        self.rows = 0
        self.missing = 0
        self.bool_counts = np.zeros((0, 3), np.int64)  # per class: false, true, missing
        self.quant = Quantiles()
        self.length = Quantiles()
        self.num_class = np.zeros((0, 4))  # per class: count, (unused), min, max
        self.num_sum: dict[int, int] = {}   # per class: the exact sum (sketches.exact_sum)
        self.values = Merger(["value"], ["n"])
        self.class_values = Merger(["cls", "value"], ["n"])
        self.high_cardinality = False
        self.missing_class = np.zeros(0, np.int64)

    def check_cardinality(self) -> None:
        """Past ``MAX_DISTINCT`` distinct values, stop counting values (the flag depends
        only on the number of distinct values, so shards merge to the same answer)."""
        if sum(p.num_rows for p in self.values.parts) > MAX_DISTINCT:
            self.values._compact()
            if self.values.parts[0].num_rows > MAX_DISTINCT:
                self.high_cardinality = True
                self.values = Merger(["value"], ["n"])
                self.class_values = Merger(["cls", "value"], ["n"])

    def merge(self, other: "Attribute", maps) -> None:
        """Add another shard's summary of the same column."""
        import numpy as np

        from mlcycle.stats.counts import remap_add

        ncls = len(maps.classes) and int(maps.classes.max()) + 1
        self.rows += other.rows
        self.missing += other.missing
        if self.arrow_type == "null" and other.arrow_type != "null":
            self.kind, self.arrow_type = other.kind, other.arrow_type
        self.missing_class = remap_add(self.missing_class, other.missing_class, maps.classes,
                                       max(ncls, len(self.missing_class)))
        self.bool_counts = remap_add(self.bool_counts, other.bool_counts, maps.classes,
                                     max(ncls, len(self.bool_counts)))
        self.quant.merge(other.quant)
        self.length.merge(other.length)
        if len(other.num_class):
            size = max(ncls, len(self.num_class))
            self.num_class = grow_stats(self.num_class, size)
            theirs = grow_stats(other.num_class, len(other.num_class))
            to = maps.classes[: len(theirs)]
            self.num_class[to, 0] += theirs[:, 0]
            self.num_class[to, 2] = np.minimum(self.num_class[to, 2], theirs[:, 2])
            self.num_class[to, 3] = np.maximum(self.num_class[to, 3], theirs[:, 3])
        for code, total in other.num_sum.items():
            new = int(maps.classes[code])
            self.num_sum[new] = self.num_sum.get(new, 0) + total
        if other.high_cardinality:
            self.high_cardinality = True
        if self.high_cardinality:
            self.values = Merger(["value"], ["n"])
            self.class_values = Merger(["cls", "value"], ["n"])
            return
        self.values.merge(other.values)
        self.class_values.merge(other.class_values, {"cls": maps.classes})
        self.check_cardinality()


class Attributes:
    """The ``attributes`` section of a (sub)document: one ``Attribute`` per column."""

    def __init__(self, shared: Shared) -> None:
        self.shared = shared
        self.attrs: dict[str, Attribute] = {}

    def update(self, batch: "pa.Table", is_label: "np.ndarray", lab_cls: "np.ndarray", ncls: int) -> None:
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        names = [c for c in T.attribute_columns(batch) if c not in ADDED_COLUMNS]
        for name in set(self.attrs) - set(names):  # absent in this batch: all missing
            a = self.attrs[name]
            nl = int(is_label.sum())
            a.rows += nl
            a.missing += nl
            a.missing_class = add_counts(a.missing_class, lab_cls, ncls)
        if not is_label.any():
            for name in names:
                if name not in self.attrs:
                    col = batch.column(name)
                    self.attrs[name] = Attribute(name, attr_kind(col.type), type_name(col.type))
            return
        take_all = bool(is_label.all())
        take = None if take_all else pa.array(np.flatnonzero(is_label))
        for name in names:
            col = batch.column(name).combine_chunks()
            a = self.attrs.get(name)
            if a is None:
                a = self.attrs[name] = Attribute(name, attr_kind(col.type), type_name(col.type))
            if not take_all:
                col = col.take(take)
            valid = to_numpy(col.is_valid())
            a.rows += len(col)
            a.missing += int((~valid).sum())
            a.missing_class = add_counts(a.missing_class, lab_cls[~valid], ncls)
            kind = attr_kind(col.type)
            if a.arrow_type == "null" and not pa.types.is_null(col.type):  # all null so far
                a.kind, a.arrow_type = kind, type_name(col.type)
            if kind != a.kind and pa.types.is_null(col.type):
                continue  # all missing in this batch: counted above
            if kind != a.kind:  # the column changed type between inputs: summarise as text
                if a.kind == "categorical" or kind in ("categorical", "number", "bool"):
                    a.kind = "categorical"
                    kind = "categorical"
                    col = col.cast(pa.string())
                else:
                    continue
            if kind == "bool":
                state = np.where(valid, to_numpy(col.fill_null(False)).astype(np.int64), 2)
                a.bool_counts = grow(a.bool_counts, ncls)
                a.bool_counts += np.bincount(lab_cls * 3 + state, minlength=ncls * 3)[: ncls * 3].reshape(ncls, 3)
            elif kind == "number":
                vals = to_numpy(col.cast(pa.float64()).fill_null(float("nan")))
                a.quant.add(vals)
                fin = np.isfinite(vals)
                if fin.any():
                    t = pa.table({"cls": pa.array(lab_cls[fin]), "v": pa.array(vals[fin])})
                    g = t.group_by("cls").aggregate([("v", "count"), ("v", "min"), ("v", "max")])
                    c = g.column("cls").to_numpy()
                    a.num_class = grow_stats(a.num_class, ncls)
                    a.num_class[c, 0] += g.column("v_count").to_numpy()
                    for code, total in exact_sums_by(lab_cls[fin], vals[fin], ncls).items():
                        a.num_sum[code] = a.num_sum.get(code, 0) + total
                    a.num_class[c, 2] = np.minimum(a.num_class[c, 2], g.column("v_min").to_numpy())
                    a.num_class[c, 3] = np.maximum(a.num_class[c, 3], g.column("v_max").to_numpy())
            elif kind in ("categorical", "list_categorical"):
                if kind == "list_categorical":  # lengths count whatever the cardinality
                    lengths = pc.fill_null(pc.list_value_length(col), 0).to_numpy(zero_copy_only=False)
                    a.length.add(np.where(valid, lengths, np.nan))
                if a.high_cardinality:
                    continue
                if kind == "list_categorical":
                    values = pc.list_flatten(col).cast(pa.string())
                    vcls = np.repeat(lab_cls, lengths)
                else:
                    values = col
                    vcls = lab_cls
                if not len(values):
                    continue
                vt, ct = value_partials(values, vcls)
                a.values.add(vt)
                a.class_values.add(ct)
                a.check_cardinality()
            elif kind == "list":
                lengths = pc.fill_null(pc.list_value_length(col), 0).to_numpy(zero_copy_only=False)
                a.length.add(np.where(valid, lengths, np.nan).astype(np.float64))

    def merge(self, other: "Attributes", maps) -> None:
        for name, a in other.attrs.items():
            mine = self.attrs.get(name)
            if mine is None:
                mine = self.attrs[name] = Attribute(name, a.kind, a.arrow_type)
            mine.merge(a, maps)

    def document(self, order: Sequence[int]) -> list[dict[str, Any]]:
        return [self._attr_doc(a, order) for a in self.attrs.values()]

    def _attr_doc(self, a: Attribute, order) -> dict[str, Any]:
        classes = self.shared.classes.values
        ncls = len(classes)
        kind = "categorical" if a.kind == "list_categorical" else a.kind
        doc: dict[str, Any] = {
            "name": a.name, "type": kind, "arrow_type": a.arrow_type, "list": a.kind in ("list", "list_categorical"),
            "rows": a.rows, "missing": a.missing, "missing_share": a.missing / a.rows if a.rows else None,
        }
        miss = grow(a.missing_class, ncls)
        if a.kind == "bool":
            bc = grow(a.bool_counts, ncls)
            tot = bc.sum(axis=0)
            doc["true"] = int(tot[1])
            doc["false"] = int(tot[0])
            present = tot[0] + tot[1]
            doc["true_share"] = tot[1] / present if present else None
            doc["per_class"] = [{"label": classes[c], "true": int(bc[c, 1]), "false": int(bc[c, 0]), "missing": int(bc[c, 2]),
                                 "true_share": bc[c, 1] / (bc[c, 0] + bc[c, 1]) if bc[c, 0] + bc[c, 1] else None}
                                for c in order]
        elif a.kind == "number":
            doc["quantiles"] = a.quant.summary()
            nc = grow_stats(a.num_class, ncls)
            rows = []
            for c in order:
                cnt = int(nc[c, 0])
                rows.append({"label": classes[c], "count": cnt, "missing": int(miss[c]),
                             "mean": json_number(exact_mean(a.num_sum.get(c, 0), cnt)) if cnt else None,
                             "min": json_number(nc[c, 2]) if cnt else None, "max": json_number(nc[c, 3]) if cnt else None})
            doc["per_class"] = rows
        elif a.kind in ("categorical", "list_categorical"):
            doc["high_cardinality"] = a.high_cardinality
            vt = None if a.high_cardinality else a.values.result()
            if vt is None or not vt.num_rows:
                doc["distinct"] = None if a.high_cardinality else 0
                doc["values"] = []
                doc["per_class"] = []
            else:
                vals = vt.column("value").to_pylist()
                ns = vt.column("n").to_numpy()
                idx = sorted(range(len(vals)), key=lambda i: (-ns[i], sort_key(vals[i])))
                tot = int(ns.sum())
                doc["distinct"] = len(vals)
                top = [vals[i] for i in idx[:TOP_VALUES]]
                doc["values"] = [{"value": vals[i], "count": int(ns[i]), "share": ns[i] / tot} for i in idx[:TOP_VALUES]]
                doc["other_values"] = int(tot - sum(int(ns[i]) for i in idx[:TOP_VALUES]))
                ct = a.class_values.result()
                table: dict[int, dict] = {}
                if ct is not None:
                    topset = {v: j for j, v in enumerate(top)}
                    for c, v, n in zip(ct.column("cls").to_pylist(), ct.column("value").to_pylist(), ct.column("n").to_pylist()):
                        row = table.setdefault(c, {})
                        key = v if v in topset else None
                        if key is None:
                            row["__other__"] = row.get("__other__", 0) + n
                        else:
                            row[v] = row.get(v, 0) + n
                doc["per_class"] = [
                    {"label": classes[c], "missing": int(miss[c]),
                     "values": [{"value": v, "count": table.get(c, {}).get(v, 0)} for v in top if table.get(c, {}).get(v, 0)],
                     "other_values": table.get(c, {}).get("__other__", 0)}
                    for c in order
                ]
            if a.kind == "list_categorical":
                doc["length"] = a.length.summary()
        elif a.kind == "list":
            doc["length"] = a.length.summary()
        return doc


def type_name(typ: "pa.DataType") -> str:
    """The Arrow type as written in the table (dictionaries read from Parquet: their values)."""
    import pyarrow as pa

    return str(typ.value_type) if pa.types.is_dictionary(typ) else str(typ)


def attr_kind(typ: "pa.DataType") -> str:
    import pyarrow as pa

    if pa.types.is_dictionary(typ):
        typ = typ.value_type
    if pa.types.is_boolean(typ):
        return "bool"
    if pa.types.is_integer(typ) or pa.types.is_floating(typ) or pa.types.is_decimal(typ):
        return "number"
    if pa.types.is_string(typ) or pa.types.is_large_string(typ):
        return "categorical"
    if pa.types.is_list(typ) or pa.types.is_large_list(typ) or pa.types.is_fixed_size_list(typ):
        vt = typ.value_type
        if pa.types.is_string(vt) or pa.types.is_large_string(vt) or pa.types.is_dictionary(vt):
            return "list_categorical"
        return "list"
    return "other"


def value_partials(values, cls: "np.ndarray"):
    """Partial (value, n) and (cls, value, n) tables of a string column (nulls skipped)."""
    import numpy as np
    import pyarrow as pa

    idx, dictionary = arrow_codes(values)
    ok = idx >= 0
    idx, cls = idx[ok], cls[ok]
    nd = len(dictionary)
    if nd == 0 or not len(idx):
        return None, None
    if pa.types.is_large_string(dictionary.type) or not pa.types.is_string(dictionary.type):
        dictionary = dictionary.cast(pa.string())
    keys, n, _ = keyed_counts(idx, nd)
    values_t = pa.table({"value": dictionary.take(pa.array(keys)), "n": pa.array(n.astype(np.int64))})
    ck, cn, _ = keyed_counts(cls * nd + idx, (int(cls.max()) + 1) * nd)
    class_t = pa.table({"cls": pa.array((ck // nd).astype(np.int32)), "value": dictionary.take(pa.array(ck % nd)),
                        "n": pa.array(cn.astype(np.int64))})
    return values_t, class_t
