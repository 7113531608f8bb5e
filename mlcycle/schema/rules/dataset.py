"""The dataset rules: labels per class (overall and per split), class balance, duplicate
labels (same class, same image, overlapping boxes), repeated label ids, and images that
are in more than one split."""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterator

import numpy as np

from mlcycle import table as T
from mlcycle.schema.context import Context, Found, rule
from mlcycle._pairs import pair_chunks
from mlcycle.geometry import iou_xywh
from mlcycle.schema._text import fmt_number, join_text, num_text, take

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa


def _dataset_found(rule_id: str, items: list[tuple[str, str]], column: str = T.LABEL) -> Found:
    """Dataset-scope findings (no row): (value, message) per item."""
    import pyarrow as pa

    return Found(rule_id, np.full(len(items), -1, np.int64), column,
                 pa.array([v for v, _ in items], pa.string()), pa.array([m for _, m in items], pa.string()))


def _class_universe(s, counts: dict[str, int]) -> list[str]:
    """The classes the count rules speak about: the schema's, else those present."""
    names = s.class_names() if s.classes is not None else None
    return names if names is not None else sorted(k for k, v in counts.items() if v)


@rule("dataset.min-examples")
def rule_dataset_min_examples(ctx: Context) -> Iterator[Found]:
    yield from min_examples_found(ctx.schema, ctx.class_counts(ctx.gt_label))


def min_examples_found(s, counts: dict) -> Iterator[Found]:
    """dataset.min-examples from the ground-truth labels per class (also what a sharded
    check calls with the shards' counts added up)."""
    per_class = {c.name: c.min_examples for c in s.classes or () if c.min_examples is not None}
    if s.min_examples is None and not per_class:
        return
    found = []
    for name in _class_universe(s, counts):          # a loop over classes, not rows
        need = per_class.get(name, s.min_examples)
        have = counts.get(name, 0)
        if need is not None and have < need:
            found.append((name, f"class '{name}' has {have} labels, fewer than {need}"))
    if found:
        yield _dataset_found("dataset.min-examples", found)


@rule("dataset.min-examples-per-split")
def rule_dataset_min_examples_per_split(ctx: Context) -> Iterator[Found]:
    if ctx.schema.min_examples_per_split is None or T.SPLIT not in ctx.table.column_names:
        return
    yield from min_examples_per_split_found(ctx.schema, ctx.class_counts(ctx.gt_label), split_class_counts(ctx))


def split_class_counts(ctx: Context) -> dict:
    """{split: {class: ground-truth labels}} (splits with ground-truth labels)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    L = ctx.gt_label
    if T.SPLIT not in ctx.table.column_names or not ctx.n:
        return {}
    split = ctx.text(T.SPLIT)
    splits = [x for x in pc.unique(pc.filter(split, pa.array(L))).to_pylist() if x is not None]
    return {sp: ctx.class_counts(L & pc.fill_null(pc.equal(split, sp), False).to_numpy(zero_copy_only=False))
            for sp in splits}


def min_examples_per_split_found(s, counts: dict, split_counts: dict) -> Iterator[Found]:
    need = s.min_examples_per_split
    if need is None:
        return
    universe = _class_universe(s, counts)
    found = []
    for sp in sorted(split_counts):
        sc = split_counts[sp]
        for name in universe:
            have = sc.get(name, 0)
            if have < need:
                found.append((f"{name}@{sp}", f"class '{name}' has {have} labels in split '{sp}', fewer than {need}"))
    if found:
        yield _dataset_found("dataset.min-examples-per-split", found)


@rule("dataset.imbalance")
def rule_dataset_imbalance(ctx: Context) -> Iterator[Found]:
    yield from imbalance_found(ctx.schema, ctx.class_counts(ctx.gt_label))


def imbalance_found(s, counts: dict) -> Iterator[Found]:
    if s.max_imbalance is None:
        return
    names = set(s.class_names()) if s.classes is not None else None
    present = {k: v for k, v in counts.items() if v > 0 and (names is None or k in names)}
    if len(present) < 2:
        return
    most = max(present, key=present.get)
    least = min(present, key=present.get)
    ratio = present[most] / present[least]
    if ratio > s.max_imbalance:
        yield _dataset_found("dataset.imbalance", [(
            f"{ratio:.4g}", f"'{most}' ({present[most]}) outnumbers '{least}' ({present[least]}) "
                            f"{ratio:.4g}:1, more than {fmt_number(s.max_imbalance)}:1")])


@rule("dataset.duplicate-label")
def rule_dataset_duplicate_label(ctx: Context) -> Iterator[Found]:
    if ctx.schema.duplicate_iou is None:
        return
    i, j, iou = duplicate_pairs(ctx, ctx.schema.duplicate_iou)
    if j.size:
        # report each duplicate once, against the first label it repeats
        jj, first = np.unique(j, return_index=True)
        i, iou = i[first], iou[first]
        ids = T.numpy_column(ctx.table, T.LABEL_ID, dtype=np.float64)
        yield Found("dataset.duplicate-label", jj, T.BBOX, num_text(iou),
                    join_text("same class '", take(ctx.label_text, jj), "' as label_id ", num_text(ids[i]),
                              " with IoU ", num_text(iou)))


@rule("dataset.duplicate-label-id")
def rule_dataset_duplicate_label_id(ctx: Context) -> Iterator[Found]:
    ids = label_ids(ctx)
    if ids is not None:
        yield from duplicate_label_id_found(ids)


def label_ids(ctx: Context) -> "pa.Table | None":
    """(source, label_id, row) of the label rows with a label_id, when the rule applies:
    what dataset.duplicate-label-id looks at (a sharded check gathers these)."""
    import pyarrow as pa

    if not ctx.schema.unique_label_ids or T.LABEL_ID not in ctx.table.column_names:
        return None
    ids = T.numpy_column(ctx.table, T.LABEL_ID, dtype=np.float64)
    rows = np.flatnonzero(ctx.is_label & ~np.isnan(ids))
    source = ctx.table.column(T.SOURCE).combine_chunks()
    return pa.table({"source": take(source, rows), "label_id": pa.array(ids[rows]), "row": pa.array(rows, pa.int64())})


def duplicate_label_id_found(ids: "pa.Table") -> Iterator[Found]:
    """Every repeat (after the first, by row) of a label_id within its source; rows are
    the ``row`` column's (a sharded check's global rows)."""
    if not ids.num_rows:
        return
    src, _ = T.dictionary_codes(ids.column("source"))
    lid = ids.column("label_id").to_numpy()
    row = ids.column("row").to_numpy()
    order = np.lexsort((row, lid, src))
    same = (lid[order][1:] == lid[order][:-1]) & (src[order][1:] == src[order][:-1])
    pick = order[1:][same]
    pick = pick[np.argsort(row[pick], kind="stable")]     # every repeat after the first
    if pick.size:
        source = ids.column("source").combine_chunks()
        yield Found("dataset.duplicate-label-id", row[pick].astype(np.int64), T.LABEL_ID, num_text(lid[pick]),
                    join_text("label_id ", num_text(lid[pick]), " is used more than once in source '",
                              take(source, pick), "'"))


def duplicate_pairs(ctx: Context, min_iou: float, chunk_pairs: int = 4_000_000) -> tuple["np.ndarray", "np.ndarray", "np.ndarray"]:
    """Pairs (i, j), i before j, of ground-truth labels with the same class in the same
    sample whose IoU is above ``min_iou``. Vectorised: rows are sorted by (sample, class);
    every pair within a group is generated with numpy, in chunks of ``chunk_pairs``."""
    b = ctx.boxes
    with np.errstate(all="ignore"):
        ok = ctx.gt_label & np.isfinite(b).all(axis=1) & (b[:, 2] > 0) & (b[:, 3] > 0)
    if T.ISCROWD in ctx.table.column_names:
        ok &= ~T.numpy_column(ctx.table, T.ISCROWD, fill=False, dtype=bool)
    empty = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0))
    idx = np.flatnonzero(ok)
    if idx.size < 2:
        return empty
    codes, _ = ctx.samples()
    key = codes[idx] * (len(ctx.label_dict) + 1) + ctx.label_codes[idx]
    order = idx[np.argsort(key, kind="stable")]   # by (sample, class), then row order
    sc, lc = codes[order], ctx.label_codes[order]
    m = order.size
    new = np.ones(m, bool)
    new[1:] = (sc[1:] != sc[:-1]) | (lc[1:] != lc[:-1])
    gid = np.cumsum(new) - 1
    starts = np.flatnonzero(new)
    sizes = np.diff(np.append(starts, m))
    pos_in_group = np.arange(m) - starts[gid]
    later = (sizes[gid] - 1 - pos_in_group).astype(np.int64)   # partners after each row
    if not later.any():
        return empty
    out_i, out_j, out_iou = [], [], []
    for pi, offset in pair_chunks(later, chunk_pairs):
        pj = pi + offset + 1
        iou = iou_xywh(b[order[pi]], b[order[pj]])
        hit = iou > min_iou
        out_i.append(order[pi[hit]])
        out_j.append(order[pj[hit]])
        out_iou.append(iou[hit])
    i, j, iou = (np.concatenate(out_i).astype(np.int64), np.concatenate(out_j).astype(np.int64),
                 np.concatenate(out_iou))
    srt = np.lexsort((i, j))
    return i[srt], j[srt], iou[srt]


@rule("dataset.split-overlap")
def rule_dataset_split_overlap(ctx: Context) -> Iterator[Found]:
    import pyarrow as pa
    import pyarrow.compute as pc

    s = ctx.schema
    if not s.split_overlap or T.SPLIT not in ctx.table.column_names:
        return
    split = ctx.text(T.SPLIT)
    valid = ctx.gt & split.is_valid().to_numpy(zero_copy_only=False)
    if not valid.any():
        return
    if s.split_overlap_key == "basename":
        key = pc.replace_substring_regex(ctx.table.column(T.SAMPLE_ID).combine_chunks(), r"^.*/", "")
        kcodes, _ = T.dictionary_codes(key)
    else:
        kcodes, _ = ctx.samples()
        key = ctx.table.column(T.SAMPLE_ID).combine_chunks()
    scodes, split_values = T.dictionary_codes(split)   # -1 (null) only on rows that are not used
    nspl = len(split_values)
    idx = np.flatnonzero(valid)
    pair = kcodes[idx] * nspl + scodes[idx]
    upair, first = np.unique(pair, return_index=True)
    ukey = upair // nspl
    nsplits = np.bincount(ukey, minlength=int(kcodes.max()) + 1 if kcodes.size else 0)
    bad_keys = np.flatnonzero(nsplits > 1)
    if not bad_keys.size:
        return
    # one violation per key, on its first row; the value lists the splits
    sel = np.isin(ukey, bad_keys)
    rows_all = idx[first[sel]]
    keys_all = ukey[sel]
    split_text = take(split, rows_all)
    tab = pa.table({"k": keys_all, "row": rows_all, "split": split_text})
    agg = tab.group_by("k").aggregate([("row", "min"), ("split", "list")]).sort_by("row_min")
    rows = agg.column("row_min").to_numpy().astype(np.int64)
    splits = pc.binary_join(pc.list_sort(agg.column("split_list")) if hasattr(pc, "list_sort") else agg.column("split_list"), ", ")
    splits = splits.combine_chunks() if isinstance(splits, pa.ChunkedArray) else splits
    yield Found("dataset.split-overlap", rows, T.SPLIT, splits,
                join_text("'", take(key, rows), "' is in splits ", splits))
