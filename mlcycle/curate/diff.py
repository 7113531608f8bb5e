"""diff: what changed between two versions of a label table.

Labels are matched within a source and sample, in three passes (docs/curate-diff.md):

1. **by label_id** — rows with the same ``(source, sample_id, label_id)`` on both sides
   whose boxes overlap: IoU >= ``iou``, or IoU > 0 and the same class (image-level labels
   without boxes match when their ids do);
2. **by geometry, same class** — the rest, greedily by IoU (highest first) among pairs
   with IoU >= ``iou``;
3. **by geometry, other class** — the rest again, across classes: these are relabels.

A matched pair is *relabelled* when its class differs, else *moved* when its IoU is
below ``same_iou`` (0.99), else *attributes* when a column other than sample_id,
source, label_id, label and bbox differs, else unchanged (not written). Unmatched old
labels are *removed*, unmatched new ones *added*; samples present on one side only
appear with all their rows (sample rows too) as added/removed.

Greedy matching is computed without a loop over pairs: pairs are enumerated per group
(sorted ``(source, sample[, class])`` keys) in chunks of about ``chunk_pairs``
(``_pairs.pair_chunks``; a group is never split), and each chunk is resolved by
rounds of *mutually best* pairs (a pair that is the best remaining pair of both its
ends) — which is exactly the greedy matching by descending IoU, ties broken by row
order.

``diff_files`` (the command) streams two tables sorted by sample_id chunk by chunk
(``_diff_stream``: memory bounded by the batch) and reads unsorted ones whole.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlcycle import table as T
from mlcycle.errors import OptionError, printable
from mlcycle.results import Result

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import pyarrow as pa

__all__ = ["diff", "diff_files"]

# Columns that identify a label rather than describe it: never "changed attributes".
_IDENTITY = (T.SAMPLE_ID, T.SOURCE, T.LABEL_ID, T.LABEL, T.BBOX)
_EXAMPLES = 20


def diff(old: "pa.Table", new: "pa.Table", *, iou: float = 0.5, same_iou: float = 0.99,
         old_name: str = "OLD", new_name: str = "NEW", chunk_pairs: int = 4_000_000) -> Result:
    """The changes from ``old`` to ``new``: a label table of changed rows (``change``,
    ``change_iou``, ``old_label``, ``old_bbox``, ``changed_attributes``) and a summary."""
    check_options(iou, same_iou)
    old, new = strip_diff_columns(old), strip_diff_columns(new)
    out, counts, by, d = core(old, new, iou, same_iou, chunk_pairs)
    out = T.with_metadata(out, T.merge_metadata(T.get_metadata(old), T.get_metadata(new)))
    summary = _summary(old, new, old_name, new_name, iou, same_iou, counts, by, out,
                       d["s_old"], d["s_new"], d["only_old"], d["only_new"], d["attr_cols"], d["changed"])
    return Result(out, summary, ())


def diff_files(old: str | None, new: str | None, output: str | None = None, encoding: str | None = None, *,
               iou: float = 0.5, same_iou: float = 0.99, write: bool = True, batch_rows: int = 65536,
               chunk_pairs: int = 4_000_000) -> dict[str, Any]:
    """``diff`` of two label table files, writing the changes to ``output`` (unless
    ``write`` is false) and returning the summary.

    When both tables are sorted by sample_id, they are streamed in batches of
    ``batch_rows`` rows and diffed sample by sample (``_diff_stream``): memory is bounded
    by the batch, not the tables. Otherwise both are read whole (an info note says so).
    The output is the same either way."""
    from mlcycle import io, reporting
    from mlcycle.curate import _diff_stream as stream
    from mlcycle.curate._stream import write_batches

    check_options(iou, same_iou)
    old_name, new_name = io.display_name(old), io.display_name(new)
    a = io.scan(old, batch_rows=batch_rows)
    b = io.scan(new, batch_rows=batch_rows)

    def sink(batches, schema, metadata):
        if write:
            write_batches(batches, schema, output, encoding, metadata=metadata)
        else:
            for _ in batches:
                pass

    try:
        stream.check_sorted(a, old_name)  # cheap (two columns): no streaming work wasted when unsorted
        stream.check_sorted(b, new_name)
        return stream.run(a, b, iou=iou, same_iou=same_iou, old_name=old_name, new_name=new_name,
                          chunk_pairs=chunk_pairs, sink=sink)
    except stream.Unsorted as exc:
        reporting.info(f"diff: {printable(str(exc))} is not sorted by sample_id: both tables are read whole "
                       "(sorted by sample_id, they are streamed in batches)")
    result = diff(_whole(a), _whole(b), iou=iou, same_iou=same_iou,
                  old_name=old_name, new_name=new_name, chunk_pairs=chunk_pairs)
    if write:
        io.write_table(result.table, output, encoding)
    return result.summary


def _whole(scan) -> "pa.Table":
    """The whole table of a scan (not read again: standard input can be read once, and
    the scan already recorded the input's provenance)."""
    import pyarrow as pa

    batches = list(scan.batches())
    return pa.concat_tables(batches, promote_options="permissive") if len(batches) > 1 else batches[0]


def check_options(iou: float, same_iou: float) -> None:
    if not 0.0 < iou <= 1.0:
        raise OptionError("iou", f"must be in (0, 1], got {iou}")
    if not iou <= same_iou <= 1.0:
        raise OptionError("same_iou", f"must be between the matching IoU ({iou}) and 1, got {same_iou}")


def strip_diff_columns(t: "pa.Table") -> "pa.Table":
    """``t`` without the columns a diff adds (diffing a diff compares its labels)."""
    return t.drop_columns([c for c in T.DIFF_COLUMNS if c in t.column_names])


def core(old: "pa.Table", new: "pa.Table", iou: float, same_iou: float, chunk_pairs: int):
    """The matching and the changed rows (sorted, no metadata), the counts, the passes'
    counts and the arrays the summary is made of. Works on any set of whole samples:
    the streaming diff (``_diff_stream``) calls it chunk by chunk."""
    import numpy as np
    import pyarrow as pa

    n_old, n_new = old.num_rows, new.num_rows

    sample, _ = _joint_codes(old, new, T.SAMPLE_ID)
    source, _ = _joint_codes(old, new, T.SOURCE)
    label, label_names = _joint_codes(old, new, T.LABEL)
    n_samples = int(sample.max()) + 1 if len(sample) else 1
    group = source * n_samples + sample  # (source, sample)
    g_old, g_new = group[:n_old], group[n_old:]
    s_old, s_new = sample[:n_old], sample[n_old:]
    l_old, l_new = label[:n_old], label[n_old:]
    is_lab_old, is_lab_new = T.label_mask(old), T.label_mask(new)
    b_old, b_new = T.bboxes(old), T.bboxes(new)

    # samples on one side only (by sample_id, whatever the source)
    only_old = ~np.isin(s_old, s_new)
    only_new = ~np.isin(s_new, s_old)

    free_old = is_lab_old.copy()
    free_new = is_lab_new.copy()
    pairs: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    by: dict[str, int] = {}

    # 1. by label_id
    a, b = _match_ids(old, new, g_old, g_new, free_old, free_new)
    ious = _iou(b_old[a], b_new[b])
    keep = (ious >= iou) | ((ious > 0) & (l_old[a] == l_new[b]))
    a, b, ious = a[keep], b[keep], ious[keep]
    pairs.append((a, b, ious))
    free_old[a] = False
    free_new[b] = False
    by["label_id"] = len(a)

    # 2. geometry within class, 3. geometry across classes
    n_labels = len(label_names) + 1
    for name, k_old, k_new in (("geometry", g_old * n_labels + (l_old + 1), g_new * n_labels + (l_new + 1)),
                               ("relabel", g_old, g_new)):
        a, b, ious = _greedy(np.flatnonzero(free_old), np.flatnonzero(free_new), k_old, k_new,
                             b_old, b_new, iou, chunk_pairs)
        pairs.append((a, b, ious))
        free_old[a] = False
        free_new[b] = False
        by[name] = len(a)

    m_old = np.concatenate([p[0] for p in pairs])
    m_new = np.concatenate([p[1] for p in pairs])
    m_iou = np.concatenate([p[2] for p in pairs])
    order = np.argsort(m_new, kind="stable")
    m_old, m_new, m_iou = m_old[order], m_new[order], m_iou[order]

    attr_cols, changed = _changed_attributes(old, new, m_old, m_new)
    relabel = l_old[m_old] != l_new[m_new]
    moved = ~relabel & (m_iou < same_iou)
    attrs = ~relabel & ~moved & changed.any(axis=1)
    kind = np.full(len(m_old), -1, dtype=np.int64)
    kind[relabel] = 3
    kind[moved] = 2
    kind[attrs] = 4
    show = kind >= 0

    removed = np.flatnonzero(free_old | (only_old & ~is_lab_old))
    added = np.flatnonzero(free_new | (only_new & ~is_lab_new))
    out = _build(old, new, removed, added, m_old[show], m_new[show], m_iou[show], kind[show],
                 changed[show], attr_cols, b_old)
    # keep the rows of one sample together, in the order samples first appear
    key = np.concatenate([s_old[removed], s_new[added], s_new[m_new[show]]])
    out = out.take(pa.array(np.argsort(key, kind="stable")))

    counts = {T.CHANGE_ADDED: int(free_new.sum()), T.CHANGE_REMOVED: int(free_old.sum()),
              T.CHANGE_MOVED: int(moved.sum()), T.CHANGE_RELABELLED: int(relabel.sum()),
              T.CHANGE_ATTRIBUTES: int(attrs.sum()), "unchanged": int((~show).sum())}
    return out, counts, by, {"s_old": s_old, "s_new": s_new, "only_old": only_old, "only_new": only_new,
                             "attr_cols": attr_cols, "changed": changed[show]}


# --------------------------------------------------------------------------- matching

def _joint_codes(old: "pa.Table", new: "pa.Table", name: str) -> tuple["np.ndarray", list]:
    """Codes of a column over both tables at once (-1 for null)."""
    import pyarrow as pa

    cols = []
    for t in (old, new):
        c = T.column_or_null(t, name)
        c = c.combine_chunks() if c.num_chunks != 1 else c.chunk(0)
        if pa.types.is_dictionary(c.type):
            c = c.dictionary_decode()
        cols.append(c.cast(pa.string()))
    return T.dictionary_codes(pa.concat_arrays(cols))


def _iou(a: "np.ndarray", b: "np.ndarray") -> "np.ndarray":
    """IoU; 1 where both boxes are null (image-level labels), 0 where one is."""
    import numpy as np

    from mlcycle.geometry import iou_xywh

    out = iou_xywh(a, b)
    na, nb = np.isnan(a).any(axis=1), np.isnan(b).any(axis=1)
    out[na | nb] = 0.0
    out[na & nb] = 1.0
    return out


def _match_ids(old, new, g_old, g_new, free_old, free_new):
    """Rows with the same (group, label_id) on both sides (the first of duplicates)."""
    import numpy as np

    lid_old = T.column_or_null(old, T.LABEL_ID)
    lid_new = T.column_or_null(new, T.LABEL_ID)
    ok_old = free_old & lid_old.is_valid().to_numpy(zero_copy_only=False)
    ok_new = free_new & lid_new.is_valid().to_numpy(zero_copy_only=False)
    if not ok_old.any() or not ok_new.any():
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    io, in_ = np.flatnonzero(ok_old), np.flatnonzero(ok_new)
    vo = T.numpy_column(old, T.LABEL_ID, fill=0, dtype=np.int64)[io]
    vn = T.numpy_column(new, T.LABEL_ID, fill=0, dtype=np.int64)[in_]
    values, inv = np.unique(np.concatenate([vo, vn]), return_inverse=True)
    ko = g_old[io] * len(values) + inv[:len(io)]
    kn = g_new[in_] * len(values) + inv[len(io):]
    _, a, b = np.intersect1d(ko, kn, assume_unique=False, return_indices=True)
    return io[a], in_[b]


def _greedy(rows_old, rows_new, key_old, key_new, b_old, b_new, min_iou, chunk_pairs):
    """Greedy IoU matching of ``rows_old`` with ``rows_new`` within equal keys."""
    import numpy as np

    from mlcycle._pairs import pair_chunks

    empty = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0))
    if not len(rows_old) or not len(rows_new):
        return empty
    ro = rows_old[np.argsort(key_old[rows_old], kind="stable")]
    rn = rows_new[np.argsort(key_new[rows_new], kind="stable")]
    ko, start_o, count_o = np.unique(key_old[ro], return_index=True, return_counts=True)
    kn, start_n, count_n = np.unique(key_new[rn], return_index=True, return_counts=True)
    common, i, j = np.intersect1d(ko, kn, assume_unique=True, return_indices=True)
    so, co, sn, cn = start_o[i], count_o[i], start_n[j], count_n[j]
    out = []
    for grp, off in pair_chunks(co * cn, chunk_pairs):
        a = ro[so[grp] + off // cn[grp]]
        b = rn[sn[grp] + off % cn[grp]]
        w = _iou(b_old[a], b_new[b])
        keep = w >= min_iou
        if keep.any():
            out.append(_mutual_best(a[keep], b[keep], w[keep]))
    if not out:
        return empty
    return tuple(np.concatenate(x) for x in zip(*out))


def _mutual_best(a, b, w):
    """Greedy matching by descending ``w`` (ties: smaller a, then smaller b), found by
    rounds of pairs that are the best remaining pair of both their ends."""
    import numpy as np

    order = np.lexsort((b, a, -w))
    a, b, w = a[order], b[order], w[order]
    took_a, took_b, took_w = [], [], []
    while len(a):
        _, first_a = np.unique(a, return_index=True)
        _, first_b = np.unique(b, return_index=True)
        best = np.zeros(len(a), bool)
        best[first_a] = True
        best_b = np.zeros(len(a), bool)
        best_b[first_b] = True
        acc = best & best_b
        took_a.append(a[acc])
        took_b.append(b[acc])
        took_w.append(w[acc])
        alive = ~np.isin(a, a[acc]) & ~np.isin(b, b[acc])
        a, b, w = a[alive], b[alive], w[alive]
    return np.concatenate(took_a), np.concatenate(took_b), np.concatenate(took_w)


# --------------------------------------------------------------------------- attributes

def _changed_attributes(old, new, m_old, m_new) -> tuple[list[str], "np.ndarray"]:
    """(columns compared, bool matrix matched pair x column: the value differs)."""
    import numpy as np
    import pyarrow as pa

    cols = [c for c in new.column_names if c in old.column_names and c not in _IDENTITY]
    out = np.zeros((len(m_old), len(cols)), dtype=bool)
    if not len(m_old):
        return cols, out
    ia, ib = pa.array(m_old), pa.array(m_new)
    for k, name in enumerate(cols):
        x = old.column(name).take(ia).combine_chunks()
        y = new.column(name).take(ib).combine_chunks()
        out[:, k] = ~_equal(x, y)
    return cols, out


def _equal(x: "pa.Array", y: "pa.Array") -> "np.ndarray":
    """Element-wise equality with null == null (and NaN == NaN)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_dictionary(x.type):
        x = x.dictionary_decode()
    if pa.types.is_dictionary(y.type):
        y = y.dictionary_decode()
    if x.type != y.type:
        try:
            y = y.cast(x.type)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            return np.asarray([u == v for u, v in zip(x.to_pylist(), y.to_pylist())], dtype=bool)
    nx = x.is_null().to_numpy(zero_copy_only=False)
    ny = y.is_null().to_numpy(zero_copy_only=False)
    t = x.type
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        vt = t.value_type
        if pa.types.is_integer(vt) or pa.types.is_floating(vt) or pa.types.is_boolean(vt):
            return _equal_lists(x, y, nx, ny)
    if pa.types.is_nested(t):
        return np.asarray([u == v for u, v in zip(x.to_pylist(), y.to_pylist())], dtype=bool)
    eq = pc.fill_null(pc.equal(x, y), False).to_numpy(zero_copy_only=False)
    if pa.types.is_floating(t):
        eq |= (pc.fill_null(pc.is_nan(x), False).to_numpy(zero_copy_only=False)
               & pc.fill_null(pc.is_nan(y), False).to_numpy(zero_copy_only=False))
    return (eq & ~nx & ~ny) | (nx & ny)


def _equal_lists(x, y, nx, ny):
    import numpy as np
    import pyarrow.compute as pc

    lx = pc.fill_null(pc.list_value_length(x), 0).to_numpy(zero_copy_only=False)
    ly = pc.fill_null(pc.list_value_length(y), 0).to_numpy(zero_copy_only=False)
    same_len = (lx == ly) & ~nx & ~ny
    eq = (nx & ny).copy()
    rows = np.flatnonzero(same_len)
    if not len(rows):
        return eq
    import pyarrow as pa

    idx = pa.array(rows)
    fx = pc.list_flatten(x.take(idx)).to_numpy(zero_copy_only=False).astype(np.float64)
    fy = pc.list_flatten(y.take(idx)).to_numpy(zero_copy_only=False).astype(np.float64)
    diff = ~((fx == fy) | (np.isnan(fx) & np.isnan(fy)))
    n = lx[rows]
    bad = np.zeros(len(rows), np.int64)
    nz = n > 0
    if nz.any():
        starts = np.concatenate([[0], np.cumsum(n)[:-1]])
        bad[nz] = np.add.reduceat(diff.astype(np.int64), starts[nz]) if len(diff) else 0
    eq[rows] = bad == 0
    return eq


# --------------------------------------------------------------------------- output

def _build(old, new, removed, added, m_old, m_new, m_iou, kind, changed, attr_cols, b_old) -> "pa.Table":
    import numpy as np
    import pyarrow as pa

    from mlcycle.io import concat

    names = np.asarray(T.CHANGE_VALUES + ("",), dtype=object)
    n_rem, n_add, n_chg = len(removed), len(added), len(m_new)
    parts = []
    for t, rows, change, iou, old_label, old_box, attrs in (
        (old, removed, np.full(n_rem, 1), None, None, None, None),
        (new, np.concatenate([added, m_new]), np.concatenate([np.full(n_add, 0), kind]),
         np.concatenate([np.full(n_add, np.nan), m_iou]),
         np.concatenate([np.full(n_add, -1), m_old]),
         np.concatenate([np.full((n_add, 4), np.nan), b_old[m_old]]),
         np.concatenate([np.zeros((n_add, len(attr_cols)), bool), changed])),
    ):
        part = t.take(pa.array(rows, type=pa.int64()))
        n = len(rows)
        part = part.append_column(T.CHANGE, pa.array(names[change].tolist(), type=pa.string()))
        if iou is None:
            part = part.append_column(T.CHANGE_IOU, pa.nulls(n, pa.float64()))
            part = part.append_column(T.OLD_LABEL, pa.nulls(n, pa.string()))
            part = part.append_column(T.OLD_BBOX, pa.nulls(n, pa.list_(pa.float64(), 4)))
            part = part.append_column(T.CHANGED_ATTRIBUTES, pa.nulls(n, pa.list_(pa.string())))
        else:
            has = old_label >= 0
            part = part.append_column(T.CHANGE_IOU, pa.array(iou, mask=~has))
            labels = T.column_or_null(old, T.LABEL)
            if has.any():
                labels = _where_valid(has, labels.take(pa.array(np.where(has, old_label, 0), type=pa.int64())))
            else:  # no old row to take from (OLD may be empty)
                t = labels.type.value_type if pa.types.is_dictionary(labels.type) else labels.type
                labels = pa.nulls(len(has), t)
            part = part.append_column(T.OLD_LABEL, labels)
            part = part.append_column(T.OLD_BBOX, T.bbox_array(old_box, valid=has & ~np.isnan(old_box).any(axis=1)))
            r, c = np.nonzero(attrs)
            offsets = np.concatenate([[0], np.cumsum(attrs.sum(axis=1))]).astype(np.int32)
            values = pa.array(np.asarray(attr_cols, dtype=object)[c].tolist() if len(c) else [], type=pa.string())
            lists = pa.ListArray.from_arrays(pa.array(offsets), values)
            part = part.append_column(T.CHANGED_ATTRIBUTES, _null_where(lists, ~has))
        parts.append(part.replace_schema_metadata(None))
    return concat(parts)


def _where_valid(mask, values):
    import pyarrow as pa
    import pyarrow.compute as pc

    values = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    if pa.types.is_dictionary(values.type):
        values = values.dictionary_decode()
    return pc.if_else(pa.array(mask), values, pa.nulls(len(values), values.type))


def _null_where(lists, null):
    import pyarrow as pa

    if not null.any():
        return lists
    return pa.ListArray.from_arrays(lists.offsets, lists.values, mask=pa.array(null))


def _summary(old, new, old_name, new_name, iou, same_iou, counts, by, out,
             s_old, s_new, only_old, only_new, attr_cols, changed) -> dict[str, Any]:
    import numpy as np
    import pyarrow.compute as pc

    def side(t, name, lab):
        return {"name": name, "rows": t.num_rows, "labels": int(lab.sum()),
                "samples": len(pc.unique(t.column(T.SAMPLE_ID)))}

    def sample_list(t, mask):
        ids = pc.unique(t.column(T.SAMPLE_ID).filter(mask)).to_pylist() if mask.any() else []
        return len(ids), ids[:_EXAMPLES]

    n_sa, ex_sa = sample_list(new, only_new)
    n_sr, ex_sr = sample_list(old, only_old)
    per_class: dict[str, dict[str, int]] = {}
    relabels: list[tuple[Any, Any, int]] = []
    if out.num_rows:
        ch, ch_names = T.dictionary_codes(out.column(T.CHANGE))
        lab, lab_names = T.dictionary_codes(T.column_or_null(out, T.LABEL))
        prev, prev_names = T.dictionary_codes(out.column(T.OLD_LABEL))
        keep = lab >= 0
        keys, n = np.unique(np.stack([lab[keep], ch[keep]]), axis=1, return_counts=True)
        for (li, ci), k in zip(keys.T.tolist(), n.tolist()):  # one step per (class, change)
            per_class.setdefault(str(lab_names[li]), {})[ch_names[ci]] = k
        rel = ch == ch_names.index(T.CHANGE_RELABELLED) if T.CHANGE_RELABELLED in ch_names else np.zeros(len(ch), bool)
        if rel.any():
            keys, n = np.unique(np.stack([prev[rel], lab[rel]]), axis=1, return_counts=True)
            relabels = [(prev_names[a] if a >= 0 else None, lab_names[b] if b >= 0 else None, k)
                        for (a, b), k in zip(keys.T.tolist(), n.tolist())]
            relabels.sort(key=lambda r: -r[2])
    return {
        "diff_version": 1,
        "old": side(old, old_name, T.label_mask(old)),
        "new": side(new, new_name, T.label_mask(new)),
        "iou": iou, "same_iou": same_iou,
        "changes": sum(v for k, v in counts.items() if k != "unchanged"),
        "counts": counts,
        "matched_by": by,
        "samples": {"added": n_sa, "removed": n_sr, "added_examples": ex_sa, "removed_examples": ex_sr},
        "columns": {"added": [c for c in new.column_names if c not in old.column_names],
                    "removed": [c for c in old.column_names if c not in new.column_names]},
        "attributes": {c: int(n) for c, n in zip(attr_cols, changed.sum(axis=0)) if n} if len(attr_cols) else {},
        "relabels": [{"from": a, "to": b, "count": k} for a, b, k in relabels[:_EXAMPLES]],
        "per_class": dict(sorted(per_class.items())),
        "rows_written": out.num_rows,
    }
