"""remap: rename, merge or drop classes; category ids and COCO categories follow.

``mapping`` is ``{old: new}``; ``new`` None drops the class's label rows (a sample left
with no label stays as a sample row). Several old classes mapped to one new name merge
them. Classes not in the mapping stay as they are, or are dropped with
``drop_unmapped``. With ``ignore_case`` the mapping's keys match class names whatever
their case (the table's spelling of unmapped classes is kept).

Category ids (when the table has ``category_id``): a class that keeps its name keeps its
id; a new name takes the id of the first class mapped to it, in category order (COCO
categories order, else by id); classes with no id get ids above the largest. The COCO
``categories`` metadata is rebuilt in that order (a merged class keeps the
supercategory of its first source).

``remap_labels`` works on a table in memory (``evaluate --remap`` uses it);
``remap_files`` streams files to an output in two passes (classes first, then rows).
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Mapping, Sequence

from mlcycle import reporting
from mlcycle import table as T
from mlcycle import yamlsafe
from mlcycle.errors import MlcycleError, OptionError, mention
from mlcycle.results import Result

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa

COCO = "coco"


# --------------------------------------------------------------------------- mapping

def _name(value: Any, where: str, what: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise MlcycleError(f"{where}: {what} {value!r} is a boolean",
                           hint="YAML reads yes/no/on/off/true/false as booleans: quote the class name")
    if isinstance(value, (int, float, str)):
        text = str(value)
        if not text.strip():
            return None
        return text
    raise MlcycleError(f"{where}: {what} {value!r} is not a class name", hint="write `old: new` per line")


def load_mapping(path_or_pairs: str | os.PathLike | Mapping[str, Any] | Iterable[str]) -> dict[str, str | None]:
    """A class mapping ``{old: new or None}`` from a YAML file (``old: new``, ``old: null``
    or ``old: ~`` drops), a dict, or ``"old=new"`` strings (comma lists allowed;
    ``old=`` drops)."""
    if isinstance(path_or_pairs, Mapping):
        return {_name(k, "mapping", "class") or "": _name(v, "mapping", "target") for k, v in path_or_pairs.items()}
    if isinstance(path_or_pairs, (str, os.PathLike)) and not (isinstance(path_or_pairs, str) and "=" in path_or_pairs):
        return _load_yaml(Path(path_or_pairs))
    pairs = [path_or_pairs] if isinstance(path_or_pairs, str) else list(path_or_pairs)
    out: dict[str, str | None] = {}
    for item in pairs:
        for part in str(item).split(","):
            if not part.strip():
                continue
            if "=" not in part:
                raise OptionError("mapping", f"expected OLD=NEW, got '{part.strip()}'", hint="e.g. car=vehicle,truck=vehicle")
            old, new = (s.strip() for s in part.split("=", 1))
            if not old:
                raise OptionError("mapping", f"empty class name in '{part.strip()}'")
            if old in out and out[old] != (new or None):
                raise OptionError("mapping", f"class '{old}' is mapped twice ('{out[old]}' and '{new}')")
            out[old] = new or None
    return out


def _load_yaml(path: Path) -> dict[str, str | None]:
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise MlcycleError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise MlcycleError(f"{path}: cannot read: {exc}") from None
    try:
        doc = yamlsafe.load(text, str(path))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
        raise MlcycleError(f"{where}: not valid YAML ({getattr(exc, 'problem', None) or exc})") from None
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise MlcycleError(f"{path}: expected a mapping of `old: new` lines, got a {type(doc).__name__}")
    out: dict[str, str | None] = {}
    for k, v in doc.items():
        key = _name(k, str(path), "class")
        if key is None:
            raise MlcycleError(f"{path}: an empty class name")
        out[key] = _name(v, str(path), f"target of '{key}'")
    return out


# --------------------------------------------------------------------------- plan

@dataclass
class RemapPlan:
    """What each old class becomes, and the output's category ids and COCO categories."""

    targets: dict[str, str | None]  # old class (as in the table) -> new class or None (drop)
    category_ids: dict[str, int] = field(default_factory=dict)  # new class -> id
    coco_categories: list[dict] | None = None
    unmapped: list[str] = field(default_factory=list)
    unused_keys: list[str] = field(default_factory=list)


def plan_remap(classes: Sequence[str], old_ids: Mapping[str, int], mapping: Mapping[str, str | None],
               ignore_case: bool = False, drop_unmapped: bool = False,
               coco_categories: list[dict] | None = None) -> RemapPlan:
    """Decide the class mapping for ``classes`` (in category order)."""
    lookup: dict[str, str | None] = {}
    if ignore_case:
        for k, v in mapping.items():
            f = k.casefold()
            if f in lookup and lookup[f] != v:
                raise OptionError("mapping", f"'{k}' and another key differ only in case but map differently",
                                  hint=f"drop {mention('ignore_case')} or make them agree")
            lookup[f] = v
    else:
        lookup = dict(mapping)
    key = (lambda s: s.casefold()) if ignore_case else (lambda s: s)
    targets: dict[str, str | None] = {}
    unmapped = []
    for c in classes:
        k = key(c)
        if k in lookup:
            targets[c] = lookup[k]
        elif drop_unmapped:
            targets[c] = None
            unmapped.append(c)
        else:
            targets[c] = c
            unmapped.append(c)
    present = {key(c) for c in classes}
    unused = [k for k in mapping if key(k) not in present]
    # category ids: a class that keeps its name keeps its id, a new name takes the first source's
    ids: dict[str, int] = {}
    for c in classes:
        t = targets[c]
        if t is not None and t == c and c in old_ids:
            ids[t] = int(old_ids[c])
    for c in classes:
        t = targets[c]
        if t is not None and t not in ids and c in old_ids and int(old_ids[c]) not in ids.values():
            ids[t] = int(old_ids[c])
    nxt = max(ids.values(), default=0) + 1
    order: list[str] = []
    for c in classes:
        t = targets[c]
        if t is not None and t not in order:
            order.append(t)
            if t not in ids:
                ids[t] = nxt
                nxt += 1
    cats = None
    if coco_categories is not None:
        by_name = {str(cat.get("name")): cat for cat in coco_categories if isinstance(cat, dict)}
        cats = []
        for t in sorted(order, key=lambda n: ids[n]):
            first = next((c for c in classes if targets[c] == t and c in by_name), None)
            entry = dict(by_name[t] if t in by_name and targets.get(t) == t else by_name.get(first, {}))
            entry.update(id=ids[t], name=t)
            entry.setdefault("supercategory", "")
            cats.append(entry)
    return RemapPlan(targets, ids, cats, unmapped, unused)


def _classes_and_ids(tables: Iterable["pa.Table"], meta: Mapping[str, Any]) -> tuple[list[str], dict[str, int]]:
    """Class names in category order and each one's (most common) category id."""
    import numpy as np
    import pyarrow as pa

    counts: dict[tuple[str, int | None], int] = {}
    first_seen: dict[str, int] = {}
    for t in tables:
        if t.num_rows == 0 or T.LABEL not in t.column_names:
            continue
        # codes, not strings: a dictionary-encoded label column (as Parquet stores it) is
        # counted without decoding a string per row
        codes, uniques = T.dictionary_codes(t.column(T.LABEL))
        valid = codes >= 0
        if not valid.any():
            continue
        first_code: dict[str, int] = {}
        canon = np.array([first_code.setdefault(u, i) for i, u in enumerate(uniques)], dtype=np.int64)
        codes = canon[codes[valid]]
        if T.CATEGORY_ID in t.column_names:
            cat = t.column(T.CATEGORY_ID).filter(pa.array(valid))
            g = pa.table({"l": codes, "c": cat}).group_by(["l", "c"], use_threads=False).aggregate([([], "count_all")])
            found = zip(g.column("l").to_pylist(), g.column("c").to_pylist(), g.column("count_all").to_pylist())
        else:
            n_per = np.bincount(codes, minlength=len(uniques))
            present, first = np.unique(codes, return_index=True)
            present = present[np.argsort(first, kind="stable")]  # in order of first appearance
            found = ((int(k), None, int(n_per[k])) for k in present)
        for k, c, n in found:
            l = uniques[k]
            counts[(l, c)] = counts.get((l, c), 0) + n
            first_seen.setdefault(l, len(first_seen))
    ids: dict[str, int] = {}
    best: dict[str, int] = {}
    for (l, c), n in counts.items():
        if c is not None and n > best.get(l, 0):
            ids[l], best[l] = int(c), n
    coco = meta.get(COCO) if isinstance(meta.get(COCO), dict) else {}
    cat_order = {str(c.get("name")): i for i, c in enumerate(coco.get("categories") or []) if isinstance(c, dict)}
    for c in coco.get("categories") or []:
        name = str(c.get("name")) if isinstance(c, dict) else None
        if name is not None and name not in ids and isinstance(c.get("id"), int):
            ids[name] = c["id"]
    names = set(first_seen) | set(cat_order)
    big = np.iinfo(np.int64).max
    ordered = sorted(names, key=lambda n: (cat_order.get(n, big), ids.get(n, big), first_seen.get(n, big), n))
    return ordered, ids


# --------------------------------------------------------------------------- applying

class Remapper:
    """Applies a ``RemapPlan`` batch by batch; dropped rows go through the filter's rule
    (a sample left with no label stays as a sample row)."""

    def __init__(self, schema: "pa.Schema", plan: RemapPlan, sources: Sequence[str] | None = None) -> None:
        from mlcycle.curate.filter import RowFilter

        self.plan = plan
        self.sources = list(sources) if sources else None
        self.rows = RowFilter(schema, [])
        self.has_category = T.CATEGORY_ID in schema.names
        self.moved: dict[tuple[str, str | None], int] = {}

    def apply(self, batch: "pa.Table") -> "pa.Table":
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        if batch.num_rows == 0 or T.LABEL not in batch.column_names:
            return self.rows.apply(batch, np.ones(batch.num_rows, dtype=bool))
        codes, uniques = T.dictionary_codes(batch.column(T.LABEL))
        in_scope = np.ones(batch.num_rows, dtype=bool)
        if self.sources is not None:
            in_scope = pc.is_in(batch.column(T.SOURCE), value_set=pa.array(self.sources)).to_numpy(zero_copy_only=False)
        targets = [self.plan.targets.get(u, u) for u in uniques]
        counts = np.bincount(codes[(codes >= 0) & in_scope], minlength=len(uniques))
        for u, t, n in zip(uniques, targets, counts):
            if n:
                self.moved[(u, t)] = self.moved.get((u, t), 0) + int(n)
        new_names = sorted({t for t in targets if t is not None})
        pos = {n: i for i, n in enumerate(new_names)}
        tcode = np.array([pos[t] if t is not None else -1 for t in targets] + [-1], dtype=np.int64)
        new_codes = tcode[codes]  # codes -1 (null label) index the trailing -1
        drop = in_scope & (codes >= 0) & (new_codes < 0)
        if not in_scope.all():
            old_pos = {n: i for i, n in enumerate(new_names)}
            extra = [u for u in uniques if u not in old_pos]
            new_names += extra
            full = {n: i for i, n in enumerate(new_names)}
            same = np.array([full[u] for u in uniques] + [-1], dtype=np.int64)[codes]
            new_codes = np.where(in_scope, new_codes, same)
        labels = pa.DictionaryArray.from_arrays(pa.array(new_codes, mask=new_codes < 0, type=pa.int32()),
                                                pa.array(new_names, type=pa.string())).cast(pa.string())
        i = batch.column_names.index(T.LABEL)
        batch = batch.set_column(i, T.LABEL, labels)
        if self.has_category:
            ids = np.array([self.plan.category_ids.get(n, -1) for n in new_names] + [-1], dtype=np.int64)
            cat = ids[new_codes]
            old = batch.column(T.CATEGORY_ID)
            new = pa.array(cat, mask=cat < 0, type=pa.int64())
            if not in_scope.all():
                new = pc.if_else(pa.array(in_scope), new, old)
            batch = batch.set_column(batch.column_names.index(T.CATEGORY_ID), T.CATEGORY_ID, new)
        return self.rows.apply(batch, ~drop)

    def finish(self) -> "pa.Table | None":
        return self.rows.finish()

    def summary(self, rows_out: int, sample_rows: int) -> dict:
        moved = [{"from": a, "to": b, "labels": n} for (a, b), n in sorted(self.moved.items(), key=lambda kv: (-kv[1], kv[0][0]))]
        dropped = sum(n for (a, b), n in self.moved.items() if b is None)
        renamed = sum(n for (a, b), n in self.moved.items() if b is not None and a != b)
        classes_out = sorted({b for (a, b) in self.moved if b is not None})
        return {
            "rows_in": self.rows.rows_in, "rows_out": rows_out,
            "labels_in": self.rows.labels_in, "labels_renamed": renamed, "labels_dropped": dropped,
            "sample_rows": sample_rows,
            "classes_in": len({a for (a, b) in self.moved}), "classes_out": len(classes_out),
            "mapping": moved, "unmapped": self.plan.unmapped, "unused_mapping_keys": self.plan.unused_keys,
            "category_ids": dict(sorted(self.plan.category_ids.items(), key=lambda kv: kv[1])) if self.has_category else None,
        }


def _warn_unused(plan: RemapPlan, classes: Sequence[str]) -> None:
    for k in plan.unused_keys:
        close = difflib.get_close_matches(k, list(classes), n=1)
        reporting.warn(f"class '{k}' of the mapping is not in the table" + (f" (did you mean '{close[0]}'?)" if close else ""))


def _metadata(meta: dict, plan: RemapPlan) -> dict:
    meta = dict(meta)
    if plan.coco_categories is not None and isinstance(meta.get(COCO), dict):
        coco = dict(meta[COCO])
        coco["categories"] = plan.coco_categories
        meta[COCO] = coco
    return meta


def _run(batches: Iterable["pa.Table"], rm: Remapper, counter: dict) -> Iterator["pa.Table"]:
    from mlcycle.curate.filter import aligned

    for b in aligned(batches):
        out = rm.apply(b)
        counter["rows"] += out.num_rows
        yield out
    counter["sample_rows"] = rm.rows.sample_rows


def _plan_for(tables: Iterable["pa.Table"], meta: dict, mapping, ignore_case, drop_unmapped) -> tuple[RemapPlan, list[str]]:
    if not isinstance(mapping, Mapping):
        mapping = load_mapping(mapping)
    classes, ids = _classes_and_ids(tables, meta)
    coco = meta.get(COCO) if isinstance(meta.get(COCO), dict) else None
    cats = coco.get("categories") if coco and isinstance(coco.get("categories"), list) else None
    plan = plan_remap(classes, ids, mapping, ignore_case, drop_unmapped, cats)
    return plan, classes


def remap_labels(table: "pa.Table", mapping: Mapping[str, str | None] | str | os.PathLike | Iterable[str],
                 ignore_case: bool = False, drop_unmapped: bool = False,
                 sources: Sequence[str] | None = None) -> Result:
    """Rename/merge/drop classes of ``table`` (see the module docstring). ``sources``
    limits the remap to rows of these sources (e.g. only the predictions)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    with reporting.collect() as seen:
        meta = T.get_metadata(table)
        scoped = table if not sources else table.filter(
            pc.is_in(table.column(T.SOURCE), value_set=pa.array(list(sources))))
        plan, classes = _plan_for([scoped], meta, mapping, ignore_case, drop_unmapped)
        _warn_unused(plan, classes)
        rm = Remapper(table.schema, plan, sources)
        counter = {"rows": 0, "sample_rows": 0}
        pieces = list(_run([table], rm, counter))
        out = pa.concat_tables(pieces) if pieces else table.schema.empty_table()
        out = T.with_metadata(out.replace_schema_metadata(None), _metadata(meta, plan))
        summary = rm.summary(out.num_rows, counter["sample_rows"])
    return Result(out, summary, tuple(seen.warnings))


def remap_files(paths: Sequence[str | os.PathLike | None] | None, output: str | os.PathLike | None,
                encoding: str | None, mapping: Mapping[str, str | None] | str | os.PathLike | Iterable[str],
                ignore_case: bool = False, drop_unmapped: bool = False, sources: Sequence[str] | None = None,
                batch_rows: int = 262144) -> Result:
    """``remap_labels`` streaming from files to ``output`` (``Result.table`` is None)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from mlcycle import io
    from mlcycle.curate._stream import write_batches

    io.check_binary_to_terminal(output, io.output_encoding(output, encoding))
    with reporting.collect() as seen:
        if not isinstance(mapping, Mapping):
            mapping = load_mapping(mapping)
        scan = io.scan(paths, batch_rows=batch_rows)
        meta = T.get_metadata(scan.empty())

        def class_batches():
            # the class pass reads labels as dictionaries: codes are what it counts
            keep, scan.keep_dictionaries = scan.keep_dictionaries, True
            try:
                for b in scan.batches(columns=[T.LABEL, T.CATEGORY_ID]):
                    if sources:
                        src = b.column(T.SOURCE)
                        if pa.types.is_dictionary(src.type):
                            src = src.cast(src.type.value_type)
                        b = b.filter(pc.is_in(src, value_set=pa.array(list(sources))))
                    yield b
            finally:
                scan.keep_dictionaries = keep

        plan, classes = _plan_for(class_batches(), meta, mapping, ignore_case, drop_unmapped)
        _warn_unused(plan, classes)
        rm = Remapper(scan.schema, plan, sources)
        counter = {"rows": 0, "sample_rows": 0}
        write_batches(_run(scan.batches(), rm, counter), scan.schema, output, encoding, _metadata(meta, plan), prefetch=True)
        summary = rm.summary(counter["rows"], counter["sample_rows"])
    return Result(None, summary, tuple(seen.warnings))
