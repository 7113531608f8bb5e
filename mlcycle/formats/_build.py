"""Assemble a label table from per-sample and per-label arrays (shared by the yolo, voc,
kitti and images readers), and small helpers for writers and invalid-input handling.

Rows come in sample order; within a sample, its labels in file order; a sample without
labels is one sample row (``label``/``label_id``/``bbox`` null). ``label_id`` numbers
the labels 1..n in that order.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, Sequence

from mlcycle import table as T
from mlcycle.errors import MlcycleError

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import pyarrow as pa

SPLIT_NAMES = ("train", "val", "valid", "validation", "test", "trainval", "training", "testing")


def assemble(*, sample_ids: Sequence[str], label_sample: "np.ndarray", labels: Sequence[Any],
             boxes: "np.ndarray", source: str, splits: Sequence[str | None] | None = None,
             widths: "np.ndarray | None" = None, heights: "np.ndarray | None" = None,
             category_ids: "np.ndarray | None" = None, scores: "np.ndarray | None" = None,
             attributes: Mapping[str, Sequence[Any]] | None = None,
             metadata: Mapping[str, Any] | None = None) -> "pa.Table":
    import numpy as np
    import pyarrow as pa

    n_samples = len(sample_ids)
    label_sample = np.asarray(label_sample, dtype=np.int64)
    n = len(label_sample)
    has = np.zeros(n_samples, dtype=bool)
    has[label_sample] = True
    empty = np.flatnonzero(~has)
    row_sample = np.concatenate([label_sample, empty])
    order = np.argsort(row_sample, kind="stable")
    row_sample = row_sample[order]
    is_label = order < n
    label_idx = np.where(is_label, order, 0)

    def per_label(values: Any, typ: "pa.DataType") -> "pa.Array":
        if isinstance(values, np.ndarray) and values.dtype != object:
            if n == 0:
                return pa.nulls(len(order), typ)
            return pa.array(values[label_idx], type=typ, mask=~is_label)
        if typ == pa.string():
            uniq, inverse = _factorize(values)
            idx = pa.array(inverse[label_idx] if n else np.zeros(len(order), np.int32), type=pa.int32(),
                           mask=~is_label)
            return pa.DictionaryArray.from_arrays(idx, pa.array(uniq, type=pa.string())).cast(pa.string())
        vals = list(values)
        out = [vals[j] if ok else None for j, ok in zip(label_idx.tolist(), is_label.tolist())]
        return pa.array(out, type=typ)

    def per_sample(values: Any, typ: "pa.DataType") -> "pa.Array":
        if isinstance(values, np.ndarray) and values.dtype != object:
            return pa.array(values[row_sample], type=typ)
        if typ == pa.string():
            uniq, inverse = _factorize(values)
            return pa.DictionaryArray.from_arrays(pa.array(inverse[row_sample], type=pa.int32()),
                                                  pa.array(uniq, type=pa.string())).cast(pa.string())
        vals = list(values)
        return pa.array([vals[i] for i in row_sample.tolist()], type=typ)

    # (pyarrow imports pandas to convert numpy object arrays: take strings via lists or
    # dictionary indices instead)
    sid_list = list(sample_ids)
    cols: dict[str, Any] = {
        T.SAMPLE_ID: pa.DictionaryArray.from_arrays(pa.array(row_sample, type=pa.int32()),
                                                    pa.array(sid_list, type=pa.string())).cast(pa.string())
        if n_samples else pa.array([], type=pa.string()),
        T.SOURCE: pa.repeat(pa.scalar(source, pa.string()), len(order)) if hasattr(pa, "repeat")
        else pa.array([source] * len(order), type=pa.string()),
    }
    lid = np.arange(1, n + 1, dtype=np.int64)
    cols[T.LABEL_ID] = per_label(lid, pa.int64())
    cols[T.LABEL] = per_label(labels, pa.string())
    if category_ids is not None:
        cols[T.CATEGORY_ID] = per_label(np.asarray(category_ids, dtype=np.int64), pa.int64())
    bx = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    full = np.full((len(order), 4), np.nan)
    if n:
        full[is_label] = bx[order[is_label]]
    cols[T.BBOX] = T.bbox_array(full, valid=is_label & ~np.isnan(full).all(axis=1))
    if scores is not None:
        cols[T.SCORE] = per_label(np.asarray(scores, dtype=np.float64), pa.float64())
    if widths is not None and heights is not None:
        w = np.asarray(widths, dtype=np.int64)[row_sample]
        h = np.asarray(heights, dtype=np.int64)[row_sample]
        cols[T.WIDTH] = pa.array(w, type=pa.int32(), mask=w < 0)
        cols[T.HEIGHT] = pa.array(h, type=pa.int32(), mask=h < 0)
    if splits is not None and any(s is not None for s in splits):
        cols[T.SPLIT] = per_sample(splits, pa.string())
    for name, values in (attributes or {}).items():
        if isinstance(values, np.ndarray) and values.dtype != object:
            typ = pa.from_numpy_dtype(values.dtype)
            cols[name] = per_label(values, typ)
        else:
            vals = list(values)
            cols[name] = pa.array([vals[j] if ok else None for j, ok in zip(label_idx.tolist(), is_label.tolist())])
    return T.from_columns(cols, metadata or {})


def _factorize(values: Sequence[Any]) -> tuple[list, "np.ndarray"]:
    """(distinct values in first-seen order, int32 index of each value)."""
    import numpy as np

    index: dict[Any, int] = {}
    inverse = np.fromiter((index.setdefault(v, len(index)) for v in values), dtype=np.int32, count=len(values))
    return list(index), inverse


class Problems:
    """Invalid input: an error at once, or (``--skip-invalid``) counted and reported once."""

    def __init__(self, skip: bool, what: str = "label") -> None:
        self.skip = skip
        self.what = what
        self.count = 0
        self.first: str | None = None

    def add(self, message: str, hint: str | None = None, count: int = 1) -> None:
        if not self.skip:
            raise MlcycleError(message, hint=hint or "fix the file, or pass --skip-invalid to skip such lines with a warning")
        self.count += count
        if self.first is None:
            self.first = message

    def report(self) -> None:
        if self.count:
            from mlcycle import reporting

            reporting.warn(f"skipped {self.count} invalid {self.what}(s); first: {self.first}")


def source_rows(table: "pa.Table", source: str | None, default: str = T.GT_SOURCE) -> tuple["pa.Table", str]:
    """The rows of one source for a writer: ``source``, else ``default``, else the only one."""
    avail = T.sources(table)
    chosen = source or default
    if chosen not in avail:
        if source is None and len(avail) == 1:
            chosen = avail[0]
        elif not avail:
            return table, chosen
        else:
            raise MlcycleError(f"no rows with source '{chosen}' to export (sources: {', '.join(avail)})",
                               hint="choose one with --source")
    return T.filter_source(table, chosen), chosen


def class_names(table: "pa.Table", meta_key: str | None = None) -> list[str]:
    """Class names in index order: the order a reader stored in the metadata (``classes``
    under ``meta_key``), then ``category_id`` order for the rest, then by name."""
    meta = T.get_metadata(table)
    names: list[str] = []
    if meta_key and isinstance(meta.get(meta_key), dict):
        names = [str(c) for c in meta[meta_key].get("classes", [])]
    labels = T.column_or_null(table, T.LABEL).to_pylist()
    cids = T.column_or_null(table, T.CATEGORY_ID).to_pylist()
    known = set(names)
    extra: dict[str, int | None] = {}
    for lab, cid in zip(labels, cids):
        if lab is not None and lab not in known and (lab not in extra or extra[lab] is None):
            extra[lab] = cid
    names += sorted(extra, key=lambda s: (extra[s] is None, extra[s] or 0, s))
    return names


def unique_samples(table: "pa.Table") -> tuple[list[str], "np.ndarray", list]:
    """(sample ids in first-seen order, row -> sample index, per-sample first split)."""
    import numpy as np
    import pyarrow.compute as pc

    sids = table.column(T.SAMPLE_ID)
    uniq = pc.unique(sids)
    idx = pc.index_in(sids, value_set=uniq).to_numpy(zero_copy_only=False).astype(np.int64)
    splits = T.column_or_null(table, T.SPLIT).to_pylist()
    first = np.full(len(uniq), -1, dtype=np.int64)
    rows = np.arange(len(idx))[::-1]
    first[idx[::-1]] = rows
    return uniq.to_pylist(), idx, [splits[i] for i in first.tolist()]


def tokenize(contents: list[bytes]) -> dict[str, Any]:
    """Whitespace tokens of many text files at once (numpy over the joined bytes).

    Returns ``tokens`` (list of bytes), ``line`` (global line index of each token),
    ``counts`` (tokens per global line), ``first_line`` (global index of each file's
    first line) and ``where(line) -> (file index, 1-based line number)``.
    """
    import numpy as np

    data = b"\n".join(contents) + b"\n"
    buf = np.frombuffer(data, dtype=np.uint8)
    is_nl = buf == 10
    is_space = np.isin(buf, (9, 10, 11, 12, 13, 32))
    nl_before = np.cumsum(is_nl) - is_nl
    starts = np.flatnonzero(~is_space & np.concatenate(([True], is_space[:-1])))
    tok_line = nl_before[starts]
    n_lines = int(is_nl.sum())
    counts = np.bincount(tok_line, minlength=n_lines)
    lengths = np.fromiter((len(c) for c in contents), dtype=np.int64, count=len(contents))
    file_start = np.concatenate(([0], np.cumsum(lengths + 1)[:-1])).astype(np.int64)
    first_line = nl_before[file_start] if len(contents) else np.zeros(0, np.int64)

    def where(line: int) -> tuple[int, int]:
        f = int(np.searchsorted(first_line, line, side="right") - 1)
        return f, line - int(first_line[f]) + 1

    return {"tokens": data.split(), "line": tok_line, "counts": counts, "first_line": first_line,
            "where": where}


def floats(tokens: "np.ndarray", index: "np.ndarray") -> tuple["np.ndarray", "np.ndarray"]:
    """``tokens[index]`` (a numpy bytes array) as float64, and a mask of the tokens that
    are not numbers (NaN there)."""
    import numpy as np

    sel = tokens[index]
    try:
        return sel.astype(np.float64), np.zeros(len(sel), bool)
    except ValueError:
        out = np.full(len(sel), np.nan)
        bad = np.zeros(len(sel), dtype=bool)
        for i, t in enumerate(sel.tolist()):
            try:
                out[i] = float(t)
            except ValueError:
                bad[i] = True
        return out, bad
