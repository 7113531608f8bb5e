"""Dataset statistics: one pass over a label table in record batches, vectorised.

``compute(batches, by=..., compare=...)`` returns a plain dict (the *stats document*,
documented key by key in docs/stats.md) that the CLI prints as JSON or renders as rich
tables (``mlcycle.stats_render``).

How it stays fast and small:

- Input is consumed batch by batch (``iter_batches`` streams Parquet files row group by
  row group); nothing keeps per-row state.
- Per-class, per-split, per-source and per-bucket numbers are ``numpy.bincount`` over
  small integer codes (global dictionaries of classes, splits and sources).
- Per-sample numbers (labels per sample, classes per sample, co-occurrence, samples per
  class) need one record per sample: each batch is aggregated with pyarrow's
  ``Table.group_by`` into a partial table, and partial tables are merged (group_by again)
  whenever they grow. Memory is bounded by the number of groups (samples, classes,
  sample-class pairs, distinct attribute values), not by the number of rows.
- Quantiles are exact up to ``EXACT_QUANTILE_LIMIT`` values per statistic; beyond that a
  logarithmic sketch keeps them within 0.5 % relative error (min, max, mean stay exact).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Sequence

from mlcycle import table as T
from mlcycle.errors import MlcycleError, OptionError

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import pyarrow as pa

STATS_VERSION = 1
BATCH_ROWS = 1 << 19

# COCO's object size buckets (pixels of area); half-open here: small < 32², medium < 96².
SMALL_AREA = 32.0 ** 2
LARGE_AREA = 96.0 ** 2
SIZE_BUCKETS = ("small", "medium", "large")
# sqrt(box area / image area)
RELATIVE_SIZE_EDGES = (0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0)
# width / height
ASPECT_EDGES = (0.0, 1 / 8, 1 / 4, 1 / 2, 1 / 1.5, 1.5, 2.0, 4.0, 8.0, math.inf)
GRID = 5
BORDER_TOLERANCE = 1.0  # pixels
TOP_PAIRS = 20
TOP_VALUES = 20
MAX_DISTINCT = 10_000
MAX_GROUPS = 1_000
EXACT_QUANTILE_LIMIT = 200_000
QUANTILES = (("min", 0.0), ("p01", 0.01), ("p05", 0.05), ("p25", 0.25), ("p50", 0.5),
             ("p75", 0.75), ("p95", 0.95), ("p99", 0.99), ("max", 1.0))

# Columns that commands add: summarised in their own sections, not as attributes.
_SPECIAL = (T.EVAL, T.EVAL_ID, T.EVAL_IOU, T.HARD_SCORE, T.HARD_REASON)
_EVAL_KINDS = ("tp", "fp", "fn")
# Columns no statistic reads: not even decoded when streaming Parquet.
_UNUSED = (T.SEGMENTATION, T.LABEL_ID, T.CATEGORY_ID, T.IMAGE_ID, T.SCORE, T.EVAL_ID, T.EVAL_IOU)


# =========================================================================== input

def iter_batches(paths: Sequence[str | os.PathLike | None] | None, rows: int = BATCH_ROWS) -> Iterator["pa.Table"]:
    """Label-table batches from files or standard input, checked against the contract.

    Parquet files are streamed row group by row group (memory bounded by the batch);
    other encodings and standard input are read whole by ``mlcycle.io`` and then sliced.
    """
    from mlcycle import io

    if not paths:
        paths = [None]
    if sum(1 for p in paths if p is None or str(p) == "-") > 1:
        raise OptionError(None, "standard input ('-') given more than once")
    for path in paths:
        if path is not None and str(path) != "-" and _is_parquet_file(Path(path)):
            yield from _parquet_batches(Path(path), rows)
        else:
            table = io.read_table(path)
            for offset in range(0, max(table.num_rows, 1), rows):
                yield table.slice(offset, rows)


def _is_parquet_file(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(4) == b"PAR1"
    except OSError:
        return False  # io.read_table says what is wrong


def _parquet_batches(path: Path, rows: int) -> Iterator["pa.Table"]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    name = str(path)
    try:
        schema = pq.ParquetFile(path).schema_arrow
        # strings come as dictionaries: Parquet stores them so, and codes are what we count
        strings = [f.name for f in schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]
        # pre_buffer=False: reading column by column keeps less in memory and costs less CPU
        pf = pq.ParquetFile(path, read_dictionary=strings, pre_buffer=False)
        try:
            meta = pf.schema_arrow.metadata
            columns = [n for n in schema.names if n not in _UNUSED]
            for batch in pf.iter_batches(batch_size=rows, columns=columns):
                table = pa.Table.from_batches([batch])
                if meta:
                    table = table.replace_schema_metadata(meta)
                yield _conform(table, name)
            if pf.metadata.num_rows == 0:
                yield T.normalize(schema.empty_table(), origin=name)
        finally:
            pf.close()
    except (pa.ArrowInvalid, OSError) as exc:
        first = str(exc).strip().splitlines()
        raise MlcycleError(f"{name}: not a readable Parquet file ({first[0] if first else type(exc).__name__})",
                           hint="the file may be truncated or still being written") from None


def _EMPTY_STRING() -> "pa.Array":
    import pyarrow as pa

    return pa.array([""], pa.string())


def _conform(table: "pa.Table", origin: str) -> "pa.Table":
    """``table.normalize`` for a batch, but string core columns may stay dictionaries."""
    import numpy as np
    import pyarrow as pa

    for name in T.REQUIRED_COLUMNS:
        if name not in table.column_names:
            raise MlcycleError(f"{origin}: not a label table: required column '{name}' is missing",
                               hint="every row needs 'sample_id' and 'source' (see docs/label-table.md)")
    keep = {}
    for i, name in enumerate(table.column_names):
        typ = table.schema.field(i).type
        if (name in T.CORE_COLUMNS and pa.types.is_dictionary(typ)
                and (pa.types.is_string(typ.value_type) or pa.types.is_large_string(typ.value_type))):
            keep[name] = table.column(name)
            if name in T.REQUIRED_COLUMNS and keep[name].null_count:
                raise MlcycleError(f"{origin}: column '{name}' is null in some row; it never may be")
    if not keep:
        return T.normalize(table, origin=origin)
    stand_in = table.select([n for n in table.column_names if n not in keep])
    for name in keep:
        if name in T.REQUIRED_COLUMNS:
            stand_in = stand_in.append_column(name, _EMPTY_STRING().take(pa.array(np.zeros(table.num_rows, np.int32))))
    out = T.normalize(stand_in, origin=origin)
    for name, col in keep.items():
        if name in out.column_names:
            out = out.set_column(out.column_names.index(name), name, col)
        else:
            out = out.append_column(name, col)
    return out


# =========================================================================== helpers

def _np(column) -> "np.ndarray":
    """A (chunked) array as numpy without going through pandas."""
    import pyarrow as pa

    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    return column.to_numpy(zero_copy_only=False)


def _label_mask(table: "pa.Table") -> "np.ndarray":
    """True on label rows (label or bbox present), False on sample rows."""
    import numpy as np

    mask = np.zeros(table.num_rows, bool)
    for name in (T.LABEL, T.BBOX):
        if name in table.column_names:
            mask |= _np(table.column(name).is_valid())
    return mask


def _unique(values: "np.ndarray", inverse: bool = False):
    """Sorted distinct values (and the inverse index): numpy's np.unique hashes since 2.3,
    which is far slower than sorting for integer codes."""
    import numpy as np

    if not inverse:
        v = np.sort(values)
        return v[np.concatenate(([True], v[1:] != v[:-1]))] if len(v) else v
    order = np.argsort(values, kind="stable")
    v = values[order]
    first = np.concatenate(([True], v[1:] != v[:-1])) if len(v) else np.zeros(0, bool)
    inv = np.empty(len(values), np.int64)
    inv[order] = np.cumsum(first) - 1
    return v[first], inv


def _keyed_counts(key: "np.ndarray", size: int, weights: "np.ndarray | None" = None):
    """(distinct keys, rows per key, weight sums per key) by bincount when the key space
    is small compared with the rows, else by sorting."""
    import numpy as np

    if size <= 4 * len(key) + 4096:
        rows = np.bincount(key, minlength=size)
        nz = np.flatnonzero(rows)
        w = np.bincount(key, weights=weights, minlength=size)[nz] if weights is not None else None
        return nz, rows[nz], w
    uniq, inv = _unique(key, inverse=True)
    rows = np.bincount(inv, minlength=len(uniq))
    w = np.bincount(inv, weights=weights, minlength=len(uniq)) if weights is not None else None
    return uniq, rows, w


def _dictionary(column) -> tuple["np.ndarray", "pa.Array"]:
    """(indices with -1 for null, dictionary) of a string column, encoding it if needed."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    if not pa.types.is_dictionary(column.type):
        column = pc.dictionary_encode(column)
    idx = column.indices
    if idx.null_count:
        idx = pc.fill_null(idx, -1)
    return idx.to_numpy(zero_copy_only=False).astype(np.int64, copy=False), column.dictionary


def _value_partials(values, cls: "np.ndarray"):
    """Partial (value, n) and (cls, value, n) tables of a string column (nulls skipped)."""
    import numpy as np
    import pyarrow as pa

    idx, dictionary = _dictionary(values)
    ok = idx >= 0
    idx, cls = idx[ok], cls[ok]
    nd = len(dictionary)
    if nd == 0 or not len(idx):
        return None, None
    if pa.types.is_large_string(dictionary.type) or not pa.types.is_string(dictionary.type):
        dictionary = dictionary.cast(pa.string())
    keys, n, _ = _keyed_counts(idx, nd)
    values_t = pa.table({"value": dictionary.take(pa.array(keys)), "n": pa.array(n.astype(np.int64))})
    ck, cn, _ = _keyed_counts(cls * nd + idx, (int(cls.max()) + 1) * nd)
    class_t = pa.table({"cls": pa.array((ck // nd).astype(np.int32)), "value": dictionary.take(pa.array(ck % nd)),
                        "n": pa.array(cn.astype(np.int64))})
    return values_t, class_t


class Quantiles:
    """count, mean, min, max and quantiles of a stream of numbers.

    Exact (numpy's linear interpolation) up to ``EXACT_QUANTILE_LIMIT`` values; beyond
    that, a logarithmic sketch with relative accuracy ``ALPHA`` (DDSketch-style).
    Non-finite values are ignored.
    """

    ALPHA = 0.005
    _MIN_EXP = -30.0  # log(1e-13)
    _MAX_EXP = 35.0   # log(1.6e15)

    def __init__(self) -> None:

        self.n = 0
        self.total = 0.0
        self.lo = math.inf
        self.hi = -math.inf
        self._parts: list[np.ndarray] = []
        self._buffered = 0
        self._pos = None
        self._neg = None
        self._zero = 0
        self._gamma_log = math.log((1 + self.ALPHA) / (1 - self.ALPHA))

    def add(self, values: "np.ndarray") -> None:
        import numpy as np

        values = np.asarray(values, dtype=np.float64)
        values = values[np.isfinite(values)]
        if not len(values):
            return
        self.n += len(values)
        self.total += float(values.sum())
        self.lo = min(self.lo, float(values.min()))
        self.hi = max(self.hi, float(values.max()))
        if self._pos is None:
            self._parts.append(values)
            self._buffered += len(values)
            if self._buffered > EXACT_QUANTILE_LIMIT:
                nbins = int((self._MAX_EXP - self._MIN_EXP) / self._gamma_log) + 2
                self._pos = np.zeros(nbins, np.int64)
                self._neg = np.zeros(nbins, np.int64)
                self._sketch(np.concatenate(self._parts))
                self._parts = []
        else:
            self._sketch(values)

    def _index(self, magnitude: "np.ndarray") -> "np.ndarray":
        import numpy as np

        logs = np.clip(np.log(magnitude), self._MIN_EXP, self._MAX_EXP)
        return np.ceil((logs - self._MIN_EXP) / self._gamma_log).astype(np.int64)

    def _sketch(self, values: "np.ndarray") -> None:
        import numpy as np

        pos = values[values > 0]
        neg = -values[values < 0]
        self._zero += int(len(values) - len(pos) - len(neg))
        if len(pos):
            self._pos += np.bincount(self._index(pos), minlength=len(self._pos))
        if len(neg):
            self._neg += np.bincount(self._index(neg), minlength=len(self._neg))

    def _value(self, i: int) -> float:
        g = math.exp(self._gamma_log)
        upper = math.exp(self._MIN_EXP + i * self._gamma_log)
        return 2 * upper / (g + 1)

    def _sketch_quantile(self, p: float) -> float:
        import numpy as np

        rank = p * (self.n - 1)
        neg_counts = self._neg[::-1]  # most negative first
        cum = np.cumsum(neg_counts)
        if rank < cum[-1]:
            i = int(np.searchsorted(cum, rank, side="right"))
            return -self._value(len(self._neg) - 1 - i)
        rank -= cum[-1]
        if rank < self._zero:
            return 0.0
        rank -= self._zero
        cum = np.cumsum(self._pos)
        i = int(np.searchsorted(cum, rank, side="right"))
        return self._value(min(i, len(self._pos) - 1))

    @property
    def exact(self) -> bool:
        return self._pos is None

    def summary(self) -> dict[str, Any]:
        import numpy as np

        out: dict[str, Any] = {"count": self.n, "mean": _num(self.total / self.n) if self.n else None}
        if not self.n:
            out.update({k: None for k, _ in QUANTILES})
            return out
        if self._pos is None:
            values = np.concatenate(self._parts) if len(self._parts) != 1 else self._parts[0]
            qs = np.quantile(values, [p for _, p in QUANTILES])
            out.update({k: _num(float(q)) for (k, _), q in zip(QUANTILES, qs)})
        else:
            for k, p in QUANTILES:
                v = self.lo if p == 0 else self.hi if p == 1 else self._sketch_quantile(p)
                out[k] = _num(min(max(v, self.lo), self.hi))
        return out


def _num(x: float | None) -> float | None:
    """JSON-safe float (NaN/inf -> None), integral floats kept as floats."""
    if x is None or not math.isfinite(x):
        return None
    return float(x)


class _Merger:
    """Sums of value columns per key, merged across batches with pyarrow group_by."""

    def __init__(self, keys: Sequence[str], values: Sequence[str]) -> None:
        self.keys = list(keys)
        self.values = list(values)
        self.parts: list[pa.Table] = []
        self.rows = 0
        self.limit = 1 << 20
        self.merged = False

    def add(self, partial: "pa.Table | None") -> None:
        if partial is None or not partial.num_rows:
            return
        self.merged = False
        self.parts.append(partial)
        self.rows += partial.num_rows
        if self.rows > self.limit:
            self._compact()
            self.limit = max(self.limit, 2 * self.rows)

    def _compact(self) -> None:
        import pyarrow as pa

        if len(self.parts) <= 1 and self.merged:
            return
        self.merged = True
        table = pa.concat_tables(self.parts, promote_options="permissive")
        self.parts = [_group_sum(table, self.keys, self.values)]
        self.rows = self.parts[0].num_rows

    def result(self) -> "pa.Table":
        import pyarrow as pa

        if not self.parts:
            return None
        if not self.merged:
            # partials may repeat a key (dictionaries that repeat a value): group once more
            table = pa.concat_tables(self.parts, promote_options="permissive")
            self.parts = [_group_sum(table, self.keys, self.values)]
            self.merged = True
        return self.parts[0]


def _group_sum(table: "pa.Table", keys: Sequence[str], values: Sequence[str]) -> "pa.Table":
    out = table.group_by(list(keys), use_threads=True).aggregate([(v, "sum") for v in values])
    return out.rename_columns([f"{c[:-4]}" if c.endswith("_sum") and c[:-4] in values else c for c in out.column_names])


class _Codes:
    """A growing global dictionary: value -> small int code (classes, splits, sources)."""

    def __init__(self) -> None:
        self.values: list[Any] = []
        self.index: dict[Any, int] = {}

    def __len__(self) -> int:
        return len(self.values)

    def code(self, value: Any) -> int:
        c = self.index.get(value)
        if c is None:
            c = self.index[value] = len(self.values)
            self.values.append(value)
        return c

    def encode(self, column: "pa.ChunkedArray | pa.Array") -> "np.ndarray":
        """Codes per row (nulls get the code of None)."""
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        if isinstance(column, pa.ChunkedArray):
            column = column.combine_chunks()
        n = len(column)
        if n == 0:
            return np.zeros(0, np.int64)
        if not pa.types.is_dictionary(column.type):
            column = pc.dictionary_encode(column)
        dictionary = column.dictionary.to_pylist()
        mapping = np.array([self.code(v) for v in dictionary] + [self.code(None)], dtype=np.int64)
        idx = column.indices
        idx = pc.fill_null(idx, len(dictionary)) if idx.null_count else idx
        return mapping[idx.to_numpy(zero_copy_only=False).astype(np.int64, copy=False)]


def _grow(arr: "np.ndarray", size: int) -> "np.ndarray":
    import numpy as np

    if arr.shape[0] >= size:
        return arr
    out = np.zeros((size,) + arr.shape[1:], dtype=arr.dtype)
    out[: arr.shape[0]] = arr
    return out


def _grow_stats(arr: "np.ndarray", size: int) -> "np.ndarray":
    """Per-class [count, sum, min, max] rows; new rows start empty."""
    import numpy as np

    old = arr.shape[0]
    if old >= size:
        return arr
    out = np.empty((size, 4))
    out[:old] = arr
    out[old:] = [0.0, 0.0, np.inf, -np.inf]
    return out


def _add_counts(acc: "np.ndarray", codes: "np.ndarray", size: int, weights=None) -> "np.ndarray":
    import numpy as np

    if acc.shape[0] < size:  # grow with room to spare: per-sample arrays grow every batch
        acc = _grow(acc, max(size, acc.shape[0] + acc.shape[0] // 2))
    if len(codes):
        counts = np.bincount(codes, weights=weights, minlength=size)
        acc[: len(counts)] += counts.astype(acc.dtype, copy=False)
    return acc


def _float_column(table: "pa.Table", name: str) -> "np.ndarray":
    import numpy as np

    if name not in table.column_names:
        return np.full(table.num_rows, np.nan)
    col = table.column(name)
    import pyarrow.compute as pc

    col = col.cast("float64") if not str(col.type) == "double" else col
    if col.null_count:
        col = pc.fill_null(col, float("nan"))
    return _np(col).astype(np.float64, copy=False) if len(col) else np.zeros(0)


def _type_name(typ: "pa.DataType") -> str:
    """The Arrow type as written in the table (dictionaries read from Parquet: their values)."""
    import pyarrow as pa

    return str(typ.value_type) if pa.types.is_dictionary(typ) else str(typ)


def _attr_kind(typ: "pa.DataType") -> str:
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


# =========================================================================== accumulator

_CLS_BITS = 20  # (sample, class) pairs are packed as sample << 20 | class


class _Samples:
    """Global integer codes for sample ids: each batch's (small) dictionary of sample ids
    is looked up in the ids seen so far with ``pyarrow.compute.index_in``."""

    def __init__(self) -> None:
        self.known = None
        self.count = 0

    def codes(self, dictionary: "pa.Array") -> "np.ndarray":
        """Global codes for the entries of one batch's dictionary of sample ids."""
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        if not pa.types.is_string(dictionary.type):
            dictionary = dictionary.cast(pa.string())
        enc = pc.dictionary_encode(dictionary)  # a Parquet dictionary may repeat a value
        uniq = enc.dictionary
        remap = enc.indices.to_numpy(zero_copy_only=False).astype(np.int64)
        codes = np.full(len(uniq), -1, np.int64)
        if self.known is not None and len(uniq):
            # probe the ids seen so far against this batch's (small) set of ids
            pos = pc.index_in(self.known, value_set=uniq)
            valid = _np(pos.is_valid())
            codes[_np(pos.filter(pos.is_valid())).astype(np.int64)] = np.flatnonzero(valid)
        new = codes < 0
        if new.any():
            codes[new] = self.count + np.arange(int(new.sum()))
            fresh = uniq.filter(pa.array(new))
            self.known = fresh if self.known is None else pa.concat_arrays([self.known, fresh])
            self.count = len(self.known)
        return codes[remap]


@dataclass
class _Shared:
    """Dictionaries shared by every group, so codes mean the same everywhere."""

    classes: _Codes
    splits: _Codes
    sources: _Codes
    samples: _Samples


class _Attr:
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
        self.num_class = np.zeros((0, 4))  # per class: count, sum, min, max
        self.values = _Merger(["value"], ["n"])
        self.class_values = _Merger(["cls", "value"], ["n"])
        self.high_cardinality = False
        self.missing_class = np.zeros(0, np.int64)


class _Accumulator:
    """Everything one (sub)document needs, updated batch by batch."""

    def __init__(self, shared: _Shared) -> None:
        import numpy as np

        self.shared = shared
        self.rows = 0
        self.labels = 0
        self.label_counts = np.zeros(0, np.int64)
        self.split_labels = np.zeros(0, np.int64)
        self.source_labels = np.zeros(0, np.int64)
        # per sample (global sample codes): rows and label rows, overall / per source / per split
        self.sample_rows = np.zeros(0, np.int64)
        self.sample_labels = np.zeros(0, np.int64)
        self.by_source: dict[int, list] = {}
        self.by_split: dict[int, list] = {}
        self.pairs: list[np.ndarray] = []  # sorted unique sample << 20 | class
        self.pair_count = 0
        # boxes
        self.boxes = 0
        self.no_box = 0
        self.size_buckets = np.zeros(3, np.int64)
        self.class_buckets = np.zeros((0, 3), np.int64)
        self.class_boxes = np.zeros(0, np.int64)
        self.rel_hist = np.zeros(len(RELATIVE_SIZE_EDGES) - 1, np.int64)
        self.aspect_hist = np.zeros(len(ASPECT_EDGES) - 1, np.int64)
        self.rel_quant = Quantiles()
        self.area = Quantiles()
        self.width = Quantiles()
        self.height = Quantiles()
        self.aspect = Quantiles()
        self.grid = np.zeros((GRID, GRID), np.int64)
        self.no_image_size = 0
        self.touching = 0
        self.outside = 0
        self.degenerate = 0
        self.area_from_column = 0
        # eval / hard
        self.has_eval = False
        self.eval_class = np.zeros((0, 4), np.int64)  # tp (pred side), fp, fn, tp (gt side)
        self.eval_size = np.zeros((3, 4), np.int64)
        self.eval_unbucketed = np.zeros(4, np.int64)
        self.eval_ignored = 0
        self.has_hard = False
        self.hard_rows = 0
        self.hard_score = Quantiles()
        self.hard_reasons = _Merger(["reason"], ["n"])
        self.hard_class = _Merger(["cls", "reason"], ["n"])
        self.attrs: dict[str, _Attr] = {}

    # ------------------------------------------------------------------ update
    def update(self, batch: "pa.Table", cls: "np.ndarray", is_label: "np.ndarray",
               src: "np.ndarray", split: "np.ndarray", sid: "np.ndarray") -> None:
        import numpy as np

        n = batch.num_rows
        if not n:
            return
        sh = self.shared
        self.rows += n
        nlab = int(is_label.sum())
        self.labels += nlab
        ncls = len(sh.classes)
        lab_cls = cls[is_label]
        self.label_counts = _add_counts(self.label_counts, lab_cls, ncls)
        self.split_labels = _add_counts(self.split_labels, split[is_label], len(sh.splits))
        self.source_labels = _add_counts(self.source_labels, src[is_label], len(sh.sources))

        # per sample: bincount over global sample codes (memory: samples, not rows)
        nsamples = sh.samples.count
        lab_sid = sid[is_label]
        self.sample_rows = _add_counts(self.sample_rows, sid, nsamples)
        self.sample_labels = _add_counts(self.sample_labels, lab_sid, nsamples)
        for codes, table in ((src, self.by_source), (split, self.by_split)):
            values = np.flatnonzero(np.bincount(codes))
            for v in values:
                acc = table.setdefault(int(v), [np.zeros(0, np.int64), np.zeros(0, np.int64)])
                if len(values) > 1:
                    acc[0] = _add_counts(acc[0], sid[codes == v], nsamples)
                    acc[1] = _add_counts(acc[1], lab_sid[codes[is_label] == v], nsamples)
                else:
                    acc[0] = _add_counts(acc[0], sid, nsamples)
                    acc[1] = _add_counts(acc[1], lab_sid, nsamples)
        if nlab:
            lab_idx = np.flatnonzero(is_label)
            keys = _unique((sid[lab_idx] << _CLS_BITS) | lab_cls)
            self.pairs.append(keys)
            self.pair_count += len(keys)
            if self.pair_count > 2 * EXACT_QUANTILE_LIMIT and len(self.pairs) > 1 and self.pair_count > 4 * len(self.pairs[0]):
                self.pairs = [_unique(np.concatenate(self.pairs))]
                self.pair_count = len(self.pairs[0])
            self._update_boxes(batch, lab_idx, lab_cls, ncls)
        if T.EVAL in batch.column_names:
            self._update_eval(batch, cls, src, ncls)
        if T.HARD_SCORE in batch.column_names or T.HARD_REASON in batch.column_names:
            self._update_hard(batch, cls)
        self._update_attributes(batch, is_label, lab_cls, ncls)

    def _areas(self, batch: "pa.Table", idx: "np.ndarray", w: "np.ndarray", h: "np.ndarray") -> "np.ndarray":
        import numpy as np

        area = w * h
        if T.AREA in batch.column_names:
            stated = _float_column(batch, T.AREA)[idx]
            have = np.isfinite(stated)
            self.area_from_column += int(have.sum())
            area = np.where(have, stated, area)
        return area

    def _update_boxes(self, batch, lab_idx, lab_cls, ncls) -> None:
        import numpy as np

        boxes = T.bboxes(batch)
        boxes = boxes[lab_idx] if len(lab_idx) < len(boxes) else boxes
        has = np.all(np.isfinite(boxes), axis=1)
        self.no_box += int((~has).sum())
        boxes = boxes[has]
        bcls = lab_cls[has]
        idx = lab_idx[has]
        nb = len(boxes)
        if not nb:
            return
        self.boxes += nb
        x, y, w, h = boxes.T
        self.degenerate += int(((w <= 0) | (h <= 0)).sum())
        area = self._areas(batch, idx, w, h)
        bucket = _bucket(area)
        self.size_buckets += np.bincount(bucket[bucket >= 0], minlength=3)[:3]
        self.class_buckets = _grow(self.class_buckets, ncls)
        ok = bucket >= 0
        self.class_buckets += np.bincount(bcls[ok] * 3 + bucket[ok], minlength=ncls * 3)[: ncls * 3].reshape(ncls, 3)
        self.class_boxes = _add_counts(self.class_boxes, bcls, ncls)
        self.area.add(area)
        self.width.add(w)
        self.height.add(h)
        with np.errstate(divide="ignore", invalid="ignore"):
            aspect = np.where(h > 0, w / np.where(h > 0, h, 1.0), np.nan)
        self.aspect.add(aspect)
        fin = np.isfinite(aspect)
        self.aspect_hist += _histogram(aspect[fin], ASPECT_EDGES)
        W = _float_column(batch, T.WIDTH)[idx]
        H = _float_column(batch, T.HEIGHT)[idx]
        sized = np.isfinite(W) & np.isfinite(H) & (W > 0) & (H > 0)
        self.no_image_size += int((~sized).sum())
        if sized.any():
            x, y, w, h, W, H = x[sized], y[sized], w[sized], h[sized], W[sized], H[sized]
            rel = np.sqrt(np.clip(w * h, 0, None) / (W * H))
            self.rel_quant.add(rel)
            self.rel_hist += _histogram(rel, RELATIVE_SIZE_EDGES)
            cx = (x + w / 2) / W
            cy = (y + h / 2) / H
            gx = np.clip(np.floor(cx * GRID), 0, GRID - 1).astype(np.int64)
            gy = np.clip(np.floor(cy * GRID), 0, GRID - 1).astype(np.int64)
            fin = np.isfinite(cx) & np.isfinite(cy)
            self.grid += np.bincount(gy[fin] * GRID + gx[fin], minlength=GRID * GRID).reshape(GRID, GRID)
            tol = BORDER_TOLERANCE
            self.touching += int(((x <= tol) | (y <= tol) | (x + w >= W - tol) | (y + h >= H - tol)).sum())
            self.outside += int(((x < 0) | (y < 0) | (x + w > W) | (y + h > H)).sum())

    def _update_eval(self, batch, cls, src, ncls) -> None:
        import numpy as np

        self.has_eval = True
        kinds = _Codes()
        for k in _EVAL_KINDS:
            kinds.code(k)
        codes = kinds.encode(batch.column(T.EVAL))
        is_gt = src == self.shared.sources.code(T.GT_SOURCE)
        # column: 0 tp on predictions, 1 fp, 2 fn, 3 tp on ground truth (matched objects)
        col = np.full(len(codes), -1, np.int64)
        col[(codes == 0) & ~is_gt] = 0
        col[codes == 1] = 1
        col[codes == 2] = 2
        col[(codes == 0) & is_gt] = 3
        self.eval_ignored += int(((col < 0) & _label_mask(batch)).sum())
        ok = col >= 0
        self.eval_class = _grow(self.eval_class, ncls)
        self.eval_class += np.bincount(cls[ok] * 4 + col[ok], minlength=ncls * 4)[: ncls * 4].reshape(ncls, 4)
        boxes = T.bboxes(batch)
        area = self._eval_areas(batch, boxes)
        bucket = _bucket(area)
        b_ok = ok & (bucket >= 0)
        self.eval_size += np.bincount(bucket[b_ok] * 4 + col[b_ok], minlength=12)[:12].reshape(3, 4)
        nb = ok & (bucket < 0)
        self.eval_unbucketed += np.bincount(col[nb], minlength=4)[:4]

    def _eval_areas(self, batch, boxes):
        import numpy as np

        area = boxes[:, 2] * boxes[:, 3]
        if T.AREA in batch.column_names:
            stated = _float_column(batch, T.AREA)
            area = np.where(np.isfinite(stated), stated, area)
        return area

    def _update_hard(self, batch, cls) -> None:
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        self.has_hard = True
        flagged = np.zeros(batch.num_rows, bool)
        if T.HARD_SCORE in batch.column_names:
            score = _float_column(batch, T.HARD_SCORE)
            flagged |= np.isfinite(score)
            self.hard_score.add(score)
        if T.HARD_REASON in batch.column_names:
            reason = batch.column(T.HARD_REASON).combine_chunks()
            if _attr_kind(reason.type) == "list_categorical":
                lengths = pc.fill_null(pc.list_value_length(reason), 0).to_numpy(zero_copy_only=False)
                flat = pc.list_flatten(reason)
                rcls = np.repeat(cls, lengths)
                flagged |= lengths > 0
            else:
                flat = reason.cast(pa.string()) if not pa.types.is_string(reason.type) else reason
                rcls = cls
                valid = flat.is_valid().to_numpy(zero_copy_only=False)
                flagged |= valid
                keep = pa.array(valid)
                flat = flat.filter(keep)
                rcls = rcls[valid]
            if len(flat):
                flat = flat.cast(pa.string())
                ones = pa.array(np.ones(len(flat), np.int64))
                self.hard_reasons.add(_group_sum(pa.table({"reason": flat, "n": ones}), ["reason"], ["n"]))
                self.hard_class.add(_group_sum(pa.table({"cls": pa.array(rcls.astype(np.int32)), "reason": flat, "n": ones}),
                                               ["cls", "reason"], ["n"]))
        self.hard_rows += int(flagged.sum())

    def _update_attributes(self, batch, is_label, lab_cls, ncls) -> None:
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        names = [c for c in T.attribute_columns(batch) if c not in _SPECIAL]
        for name in set(self.attrs) - set(names):  # absent in this batch: all missing
            a = self.attrs[name]
            nl = int(is_label.sum())
            a.rows += nl
            a.missing += nl
            a.missing_class = _add_counts(a.missing_class, lab_cls, ncls)
        if not is_label.any():
            for name in names:
                if name not in self.attrs:
                    col = batch.column(name)
                    self.attrs[name] = _Attr(name, _attr_kind(col.type), _type_name(col.type))
            return
        take_all = bool(is_label.all())
        take = None if take_all else pa.array(np.flatnonzero(is_label))
        for name in names:
            col = batch.column(name).combine_chunks()
            a = self.attrs.get(name)
            if a is None:
                a = self.attrs[name] = _Attr(name, _attr_kind(col.type), _type_name(col.type))
            if not take_all:
                col = col.take(take)
            valid = _np(col.is_valid())
            a.rows += len(col)
            a.missing += int((~valid).sum())
            a.missing_class = _add_counts(a.missing_class, lab_cls[~valid], ncls)
            kind = _attr_kind(col.type)
            if a.arrow_type == "null" and not pa.types.is_null(col.type):  # all null so far
                a.kind, a.arrow_type = kind, _type_name(col.type)
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
                state = np.where(valid, _np(col.fill_null(False)).astype(np.int64), 2)
                a.bool_counts = _grow(a.bool_counts, ncls)
                a.bool_counts += np.bincount(lab_cls * 3 + state, minlength=ncls * 3)[: ncls * 3].reshape(ncls, 3)
            elif kind == "number":
                vals = _np(col.cast(pa.float64()).fill_null(float("nan")))
                a.quant.add(vals)
                fin = np.isfinite(vals)
                if fin.any():
                    t = pa.table({"cls": pa.array(lab_cls[fin]), "v": pa.array(vals[fin])})
                    g = t.group_by("cls").aggregate([("v", "count"), ("v", "sum"), ("v", "min"), ("v", "max")])
                    c = g.column("cls").to_numpy()
                    a.num_class = _grow_stats(a.num_class, ncls)
                    a.num_class[c, 0] += g.column("v_count").to_numpy()
                    a.num_class[c, 1] += g.column("v_sum").to_numpy()
                    a.num_class[c, 2] = np.minimum(a.num_class[c, 2], g.column("v_min").to_numpy())
                    a.num_class[c, 3] = np.maximum(a.num_class[c, 3], g.column("v_max").to_numpy())
            elif kind in ("categorical", "list_categorical"):
                if a.high_cardinality:
                    continue
                if kind == "list_categorical":
                    lengths = pc.fill_null(pc.list_value_length(col), 0).to_numpy(zero_copy_only=False)
                    a.length.add(np.where(valid, lengths, np.nan))
                    values = pc.list_flatten(col).cast(pa.string())
                    vcls = np.repeat(lab_cls, lengths)
                else:
                    values = col
                    vcls = lab_cls
                if not len(values):
                    continue
                vt, ct = _value_partials(values, vcls)
                a.values.add(vt)
                a.class_values.add(ct)
                if sum(p.num_rows for p in a.values.parts) > MAX_DISTINCT:
                    a.values._compact()
                    if a.values.parts[0].num_rows > MAX_DISTINCT:
                        a.high_cardinality = True
                        a.values = _Merger(["value"], ["n"])
                        a.class_values = _Merger(["cls", "value"], ["n"])
            elif kind == "list":
                lengths = pc.fill_null(pc.list_value_length(col), 0).to_numpy(zero_copy_only=False)
                a.length.add(np.where(valid, lengths, np.nan).astype(np.float64))

    # ------------------------------------------------------------------ document
    def document(self) -> dict[str, Any]:
        import numpy as np

        sh = self.shared
        ncls = len(sh.classes)
        label_counts = _grow(self.label_counts, ncls)
        nsamples = sh.samples.count
        rows = _grow(self.sample_rows, nsamples)[:nsamples]
        present = rows > 0
        sample_count = int(present.sum())
        per_sample_labels = _grow(self.sample_labels, nsamples)[:nsamples][present]
        no_label_samples = int((per_sample_labels == 0).sum())

        def parts(table: dict) -> dict[int, tuple[int, int]]:
            out = {}
            for code, (r, lab) in table.items():
                seen = _grow(r, nsamples)[:nsamples] > 0
                if seen.any():
                    out[code] = (int(seen.sum()), int((seen & (_grow(lab, nsamples)[:nsamples] == 0)).sum()))
            return out

        src_rows, split_rows = parts(self.by_source), parts(self.by_split)

        class_samples = np.zeros(ncls, np.int64)
        cps = np.zeros(sample_count, np.int64)
        cooc: list[dict] = []
        if self.pairs:
            keys = self.pairs[0] if len(self.pairs) == 1 else _unique(np.concatenate(self.pairs))
            self.pairs = [keys]
            p_sid = keys >> _CLS_BITS
            p_cls = keys & ((1 << _CLS_BITS) - 1)
            class_samples = _add_counts(class_samples, p_cls, ncls)
            cps = np.bincount(p_sid, minlength=nsamples)[present]
            cooc = _cooccurrence(p_sid, p_cls, ncls, sh.classes.values)
        cps_hist = np.bincount(cps, minlength=1) if len(cps) else np.zeros(1, np.int64)

        present = np.flatnonzero(label_counts > 0)
        order = sorted(present, key=lambda c: (-label_counts[c], _sort_key(sh.classes.values[c])))
        total = max(self.labels, 1)
        per_class = [{
            "label": sh.classes.values[c],
            "labels": int(label_counts[c]),
            "samples": int(class_samples[c]),
            "share": label_counts[c] / total,
            "sample_share": class_samples[c] / sample_count if sample_count else None,
        } for c in order]

        split_labels = _grow(self.split_labels, len(sh.splits))
        source_labels = _grow(self.source_labels, len(sh.sources))
        per_split = [{"split": sh.splits.values[s], "samples": r[0], "labels": int(split_labels[s]),
                      "samples_without_labels": r[1]} for s, r in split_rows.items()]
        per_split.sort(key=lambda d: _sort_key(d["split"]))
        per_source = [{"source": sh.sources.values[s], "samples": r[0], "labels": int(source_labels[s]),
                       "samples_without_labels": r[1]} for s, r in src_rows.items()]
        per_source.sort(key=lambda d: (d["source"] != T.GT_SOURCE, _sort_key(d["source"])))

        counts = {
            "rows": self.rows,
            "samples": sample_count,
            "labels": self.labels,
            "samples_without_labels": no_label_samples,
            "classes": len(present),
            "per_class": per_class,
            "per_split": per_split,
            "per_source": per_source,
        }
        return {
            "counts": counts,
            "boxes": self._boxes_doc(order, label_counts),
            "per_sample": {
                "labels": _distribution(per_sample_labels),
                "classes": _distribution_from_hist(cps_hist),
                "cooccurrence": cooc,
            },
            "attributes": [self._attr_doc(a, order) for a in self.attrs.values()],
            "balance": _balance(per_class),
            "eval": self._eval_doc(order) if self.has_eval else None,
            "hard": self._hard_doc() if self.has_hard else None,
        }

    def _boxes_doc(self, order, label_counts) -> dict[str, Any]:
        nb = max(self.boxes, 1)
        ncls = len(self.shared.classes)
        cb = _grow(self.class_buckets, ncls)
        cbox = _grow(self.class_boxes, ncls)
        edges = [0.0, SMALL_AREA, LARGE_AREA, None]
        sized = int(self.rel_hist.sum())
        return {
            "count": self.boxes,
            "labels_without_box": self.no_box,
            "area_from_column": self.area_from_column,
            "area": self.area.summary(),
            "size_buckets": [
                {"bucket": b, "min_area": edges[i], "max_area": edges[i + 1],
                 "boxes": int(self.size_buckets[i]), "share": self.size_buckets[i] / nb if self.boxes else None}
                for i, b in enumerate(SIZE_BUCKETS)
            ],
            "per_class": [
                {"label": self.shared.classes.values[c], "boxes": int(cbox[c]),
                 "small": int(cb[c, 0]), "medium": int(cb[c, 1]), "large": int(cb[c, 2])}
                for c in order
            ],
            "width": self.width.summary(),
            "height": self.height.summary(),
            "aspect_ratio": self.aspect.summary(),
            "aspect_ratio_histogram": _hist_doc(ASPECT_EDGES, self.aspect_hist),
            "relative_size": self.rel_quant.summary(),
            "relative_size_histogram": _hist_doc(RELATIVE_SIZE_EDGES, self.rel_hist),
            "without_image_size": self.no_image_size,
            "centre_grid": {"size": GRID, "counts": self.grid.tolist()},
            "touching_border": self.touching,
            "touching_border_share": self.touching / sized if sized else None,
            "border_tolerance": BORDER_TOLERANCE,
            "outside_image": self.outside,
            "degenerate": self.degenerate,
        }

    def _attr_doc(self, a: _Attr, order) -> dict[str, Any]:
        classes = self.shared.classes.values
        ncls = len(classes)
        kind = "categorical" if a.kind == "list_categorical" else a.kind
        doc: dict[str, Any] = {
            "name": a.name, "type": kind, "arrow_type": a.arrow_type, "list": a.kind in ("list", "list_categorical"),
            "rows": a.rows, "missing": a.missing, "missing_share": a.missing / a.rows if a.rows else None,
        }
        miss = _grow(a.missing_class, ncls)
        if a.kind == "bool":
            bc = _grow(a.bool_counts, ncls)
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
            nc = _grow_stats(a.num_class, ncls)
            rows = []
            for c in order:
                cnt = int(nc[c, 0])
                rows.append({"label": classes[c], "count": cnt, "missing": int(miss[c]),
                             "mean": _num(nc[c, 1] / cnt) if cnt else None,
                             "min": _num(nc[c, 2]) if cnt else None, "max": _num(nc[c, 3]) if cnt else None})
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
                idx = sorted(range(len(vals)), key=lambda i: (-ns[i], _sort_key(vals[i])))
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

    def _eval_doc(self, order) -> dict[str, Any]:
        classes = self.shared.classes.values
        ec = _grow(self.eval_class, len(classes))

        def rec(row) -> dict[str, Any]:
            tp, fp, fn, matched = (int(v) for v in row)
            return {"tp": tp, "fp": fp, "fn": fn, "matched_gt": matched,
                    "precision": tp / (tp + fp) if tp + fp else None,
                    "recall": matched / (matched + fn) if matched + fn else None}

        per_class_codes = [c for c in order] + [c for c in range(len(classes)) if ec[c].any() and c not in set(order)]
        return {
            "total": rec(ec.sum(axis=0)),
            "per_class": [dict(label=classes[c], **rec(ec[c])) for c in per_class_codes if ec[c].any()],
            "per_size": [dict(bucket=b, **rec(self.eval_size[i])) for i, b in enumerate(SIZE_BUCKETS)]
                        + ([dict(bucket=None, **rec(self.eval_unbucketed))] if self.eval_unbucketed.any() else []),
            "ignored": self.eval_ignored,
        }

    def _hard_doc(self) -> dict[str, Any]:
        classes = self.shared.classes.values
        rt = self.hard_reasons.result()
        reasons = []
        if rt is not None:
            tot = sum(rt.column("n").to_pylist())
            reasons = [{"reason": r, "count": n, "share": n / tot}
                       for r, n in zip(rt.column("reason").to_pylist(), rt.column("n").to_pylist())]
            reasons.sort(key=lambda d: (-d["count"], _sort_key(d["reason"])))
        ct = self.hard_class.result()
        per_class: dict[int, dict] = {}
        if ct is not None:
            for c, r, n in zip(ct.column("cls").to_pylist(), ct.column("reason").to_pylist(), ct.column("n").to_pylist()):
                per_class.setdefault(c, {})[r] = n
        rows = [{"label": classes[c], "count": sum(v.values()),
                 "reasons": [{"reason": r, "count": n} for r, n in sorted(v.items(), key=lambda kv: (-kv[1], _sort_key(kv[0])))]}
                for c, v in per_class.items()]
        rows.sort(key=lambda d: (-d["count"], _sort_key(d["label"])))
        return {"rows": self.hard_rows, "score": self.hard_score.summary(), "reasons": reasons, "per_class": rows}


# =========================================================================== pieces

def _sort_key(value: Any) -> tuple:
    return (value is None, str(value) if value is not None else "")


def _bucket(area: "np.ndarray") -> "np.ndarray":
    import numpy as np

    out = np.full(len(area), -1, np.int64)
    fin = np.isfinite(area)
    out[fin] = np.where(area[fin] < SMALL_AREA, 0, np.where(area[fin] < LARGE_AREA, 1, 2))
    return out


def _histogram(values: "np.ndarray", edges: Sequence[float]) -> "np.ndarray":
    """Counts per [edge_i, edge_i+1); values above the last edge go into the last bin."""
    import numpy as np

    inner = np.asarray(edges[1:-1], dtype=np.float64)
    idx = np.searchsorted(inner, values, side="right")
    return np.bincount(idx, minlength=len(edges) - 1)[: len(edges) - 1]


def _hist_doc(edges, counts) -> list[dict[str, Any]]:
    """Bins [min, max); the last bin is open-ended (max null)."""
    total = int(counts.sum())
    last = len(counts) - 1
    return [{"min": float(edges[i]), "max": None if i == last else float(edges[i + 1]),
             "boxes": int(counts[i]), "share": counts[i] / total if total else None}
            for i in range(len(counts))]


def _cooccurrence(sid: "np.ndarray", cls: "np.ndarray", ncls: int, names: list) -> list[dict[str, Any]]:
    """Top class pairs by the number of samples holding both, from unique (sample, class)
    pairs sorted by sample: element i pairs with element i+d while the sample is the same."""
    import numpy as np

    if not len(sid):
        return []
    dense = ncls * ncls <= 1 << 24
    counts = np.zeros(ncls * ncls if dense else 0, np.int64)
    sparse: list[np.ndarray] = []
    n = len(sid)
    # sid is sorted: the classes of a sample are a run; rem[i] = elements left in i's run
    starts = np.flatnonzero(np.concatenate(([True], sid[1:] != sid[:-1])))
    ends = np.append(starts[1:], n)
    rem = (np.repeat(ends, np.diff(np.append(starts, n))) - np.arange(n)).astype(np.int32)
    index_type = np.int32 if n < 2 ** 31 and ncls * ncls < 2 ** 31 else np.int64
    cls = cls.astype(index_type)
    row = cls * ncls  # first class of a pair, scaled
    alive = np.flatnonzero(rem > 1).astype(index_type)  # i whose sample continues at i + d
    rem_alive = rem[alive]
    d = 1
    while len(alive):
        codes = row[alive] + cls[alive + d]
        if dense:
            counts += np.bincount(codes, minlength=ncls * ncls)
        else:
            sparse.append(codes)
        d += 1
        keep = rem_alive > d
        alive, rem_alive = alive[keep], rem_alive[keep]
    if dense:
        uniq = np.flatnonzero(counts)
        n = counts[uniq]
    else:
        if not sparse:
            return []
        uniq, inv = _unique(np.concatenate(sparse), inverse=True)
        n = np.bincount(inv)
    top = np.lexsort((uniq, -n))[:TOP_PAIRS * 2]
    out = []
    for i in top:
        a, b = sorted((names[int(uniq[i]) // ncls], names[int(uniq[i]) % ncls]), key=_sort_key)
        out.append({"a": a, "b": b, "samples": int(n[i])})
    out.sort(key=lambda r: (-r["samples"], _sort_key(r["a"]), _sort_key(r["b"])))
    return out[:TOP_PAIRS]


def _distribution(values: "np.ndarray") -> dict[str, Any]:
    import numpy as np

    if not len(values):
        return _distribution_from_hist(np.zeros(1, np.int64))
    return _distribution_from_hist(np.bincount(values.astype(np.int64)))


def _distribution_from_hist(hist: "np.ndarray") -> dict[str, Any]:
    import numpy as np

    n = int(hist.sum())
    if not n:
        return {"samples": 0, "mean": None, "p50": None, "p95": None, "max": None, "histogram": []}
    vals = np.arange(len(hist))
    cum = np.cumsum(hist)

    def q(p: float) -> int:
        return int(np.searchsorted(cum, p * n, side="left")) if p > 0 else int(vals[hist > 0][0])

    nz = np.flatnonzero(hist)
    return {
        "samples": n,
        "mean": float((vals * hist).sum() / n),
        "p50": q(0.5),
        "p95": q(0.95),
        "max": int(nz[-1]),
        "histogram": [{"value": int(v), "samples": int(hist[v])} for v in nz],
    }


def _balance(per_class: list[dict]) -> dict[str, Any]:
    if not per_class:
        return {"classes": 0, "largest": None, "smallest": None, "imbalance_ratio": None,
                "entropy": None, "effective_classes": None, "normalized_entropy": None}
    counts = [d["labels"] for d in per_class]
    total = sum(counts)
    entropy = -sum((c / total) * math.log(c / total) for c in counts if c)
    big, small = per_class[0], per_class[-1]
    k = len(per_class)
    return {
        "classes": k,
        "largest": {"label": big["label"], "labels": big["labels"]},
        "smallest": {"label": small["label"], "labels": small["labels"]},
        "imbalance_ratio": big["labels"] / small["labels"],
        "entropy": entropy,
        "effective_classes": math.exp(entropy),
        "normalized_entropy": entropy / math.log(k) if k > 1 else None,
    }


# =========================================================================== comparison

def js_distance(p: Sequence[float], q: Sequence[float]) -> float | None:
    """Jensen–Shannon distance (square root of the divergence, base 2): 0 same, 1 disjoint."""
    sp, sq = sum(p), sum(q)
    if sp <= 0 or sq <= 0:
        return None
    div = 0.0
    for a, b in zip(p, q):
        a, b = a / sp, b / sq
        m = (a + b) / 2
        if a > 0:
            div += 0.5 * a * math.log2(a / m)
        if b > 0:
            div += 0.5 * b * math.log2(b / m)
    return math.sqrt(max(div, 0.0))


def _distributions(doc: dict) -> dict[str, dict[Any, float]]:
    """Named distributions of a (sub)document, as {key: count}."""
    out = {
        "class_shares": {d["label"]: d["labels"] for d in doc["counts"]["per_class"]},
        "size_buckets": {d["bucket"]: d["boxes"] for d in doc["boxes"]["size_buckets"]},
        "relative_size": {(d["min"], d["max"]): d["boxes"] for d in doc["boxes"]["relative_size_histogram"]},
        "aspect_ratio": {(d["min"], d["max"]): d["boxes"] for d in doc["boxes"]["aspect_ratio_histogram"]},
        "labels_per_sample": {d["value"]: d["samples"] for d in doc["per_sample"]["labels"]["histogram"]},
    }
    for a in doc["attributes"]:
        if a["type"] == "bool":
            out[f"attribute:{a['name']}"] = {True: a["true"], False: a["false"], None: a["missing"]}
        elif a["type"] == "categorical" and a.get("values"):
            d = {v["value"]: v["count"] for v in a["values"]}
            d["(other)"] = a.get("other_values", 0)
            out[f"attribute:{a['name']}"] = d
    return out


_DISTRIBUTIONS = ("class_shares", "size_buckets", "relative_size", "aspect_ratio", "labels_per_sample")


def _compare_doc(column: str, values: list, docs: list[dict]) -> dict[str, Any]:
    dists = [_distributions(d) for d in docs]
    attr_names = list(dict.fromkeys(n[len("attribute:"):] for d in dists for n in d if n.startswith("attribute:")))

    def distance(i: int, j: int, name: str) -> float | None:
        p, q = dists[i].get(name, {}), dists[j].get(name, {})
        keys = list(dict.fromkeys(list(p) + list(q)))
        return js_distance([p.get(k, 0) for k in keys], [q.get(k, 0) for k in keys])

    distances = []
    for i in range(len(values)):
        for j in range(i + 1, len(values)):
            row: dict[str, Any] = {"a": values[i], "b": values[j]}
            for name in _DISTRIBUTIONS:
                row[name] = distance(i, j, name)
            row["attributes"] = {n: distance(i, j, "attribute:" + n) for n in attr_names}
            distances.append(row)
    # the largest differences in shares across values: classes, size buckets, attribute values
    diffs = []
    for name in ("class_shares", "size_buckets") + tuple("attribute:" + n for n in attr_names):
        per = []
        for d in dists:
            counts = d.get(name, {})
            tot = sum(counts.values())
            per.append({k: (c / tot if tot else 0.0) for k, c in counts.items()})
        keys = list(dict.fromkeys(k for p in per for k in p))
        for k in keys:
            shares = [p.get(k, 0.0) for p in per]
            diffs.append({
                "statistic": {"class_shares": "class_share", "size_buckets": "size_bucket"}.get(name, "attribute"),
                "attribute": name[len("attribute:"):] if name.startswith("attribute:") else None,
                "name": k,
                "shares": [{"value": v, "share": s} for v, s in zip(values, shares)],
                "difference": max(shares) - min(shares),
            })
    diffs.sort(key=lambda d: -d["difference"])
    return {
        "column": column,
        "values": values,
        "per_value": [dict(value=v, **d) for v, d in zip(values, docs)],
        "distances": distances,
        "largest_differences": [d for d in diffs[:10] if d["difference"] > 0],
    }


# =========================================================================== entry point

def compute(batches: Iterable["pa.Table"], by: Sequence[str] = (), compare: str | None = None,
            sources: Sequence[str] = ()) -> dict[str, Any]:
    """The stats document of a label table given as batches (``iter_batches``).

    ``by``: columns whose value combinations each get a full sub-document (``groups``).
    ``compare``: a column whose values are compared side by side with distances.
    ``sources``: keep only rows of these sources.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    shared = _Shared(_Codes(), _Codes(), _Codes(), _Samples())
    main = _Accumulator(shared)
    groups: dict[tuple, _Accumulator] = {}
    compares: dict[Any, _Accumulator] = {}
    group_codes = [_Codes() for _ in by]
    compare_codes = _Codes()
    seen_sources: list[str] = []
    metadata: dict | None = None
    rows_in = 0
    for batch in batches:
        if metadata is None:
            metadata = T.get_metadata(batch)
        rows_in += batch.num_rows
        for name in list(by) + ([compare] if compare else []):
            if name not in batch.column_names:
                raise OptionError(None, f"no column '{name}' to group by",
                                 hint="columns: " + ", ".join(batch.column_names))
            typ = batch.column(name).type
            if pa.types.is_nested(typ) and not pa.types.is_dictionary(typ):
                raise OptionError(None, f"cannot group by column '{name}': it holds {typ}, not single values")
        if sources:
            batch = batch.filter(pc.is_in(batch.column(T.SOURCE), value_set=pa.array(list(sources), pa.string())))
        if not batch.num_rows:
            continue
        batch = batch.combine_chunks()
        if T.LABEL not in batch.column_names:
            batch = batch.append_column(T.LABEL, T.column_or_null(batch, T.LABEL))
        is_label = _label_mask(batch)
        sid_local, sids = _dictionary(batch.column(T.SAMPLE_ID))
        sid = shared.samples.codes(sids)[sid_local]
        cls = shared.classes.encode(batch.column(T.LABEL))
        src = shared.sources.encode(batch.column(T.SOURCE))
        split = shared.splits.encode(T.column_or_null(batch, T.SPLIT))
        for s in pc.unique(batch.column(T.SOURCE)).to_pylist():
            if s not in seen_sources:
                seen_sources.append(s)
        main.update(batch, cls, is_label, src, split, sid)
        if by:
            keys = np.zeros(batch.num_rows, np.int64)
            for codes, name in zip(group_codes, by):
                c = codes.encode(batch.column(name))
                if len(codes) > MAX_GROUPS:
                    raise OptionError(None, f"--by {name}: more than {MAX_GROUPS} distinct values",
                                     hint="group by a column with few values, such as split or source")
                keys = keys * (MAX_GROUPS + 1) + c
            _feed(groups, keys, batch, (cls, is_label, src, split, sid), shared,
                  lambda k: tuple(codes.values[(k // (MAX_GROUPS + 1) ** (len(by) - 1 - i)) % (MAX_GROUPS + 1)]
                                  for i, codes in enumerate(group_codes)))
        if compare:
            c = compare_codes.encode(batch.column(compare))
            if len(compare_codes) > MAX_GROUPS:
                raise OptionError(None, f"--compare {compare}: more than {MAX_GROUPS} distinct values",
                                 hint="compare by a column with few values, such as split, source or annotator")
            _feed(compares, c, batch, (cls, is_label, src, split, sid), shared, lambda k: compare_codes.values[k])

    doc: dict[str, Any] = {
        "stats_version": STATS_VERSION,
        "input": {"rows": rows_in, "rows_used": main.rows, "sources": seen_sources,
                  "source_filter": list(sources) or None},
    }
    doc.update(main.document())
    doc["groups"] = [
        dict(by=dict(zip(by, key)), **groups[key].document())
        for key in sorted(groups, key=lambda k: tuple(_sort_key(v) for v in k))
    ]
    if compare:
        values = sorted(compares, key=_sort_key)
        doc["compare"] = _compare_doc(compare, values, [compares[v].document() for v in values])
    else:
        doc["compare"] = None
    return _clean(doc)


def _clean(value: Any) -> Any:
    """Plain JSON types: numpy scalars -> Python, NaN/inf -> None."""
    import numpy as np

    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return _num(float(value))
    return value


def _feed(accs: dict, keys, batch, codes, shared, decode) -> None:
    import numpy as np
    import pyarrow as pa

    uniq = _unique(keys)
    for k in uniq:
        value = decode(int(k))
        acc = accs.get(value)
        if acc is None:
            acc = accs[value] = _Accumulator(shared)
        if len(uniq) == 1:
            acc.update(batch, *codes)
            continue
        sel = np.flatnonzero(keys == k)
        acc.update(batch.take(pa.array(sel)), *(c[sel] for c in codes))


def stats(paths: Sequence[str | os.PathLike | None] | None, by: Sequence[str] = (), compare: str | None = None,
          sources: Sequence[str] = ()) -> dict[str, Any]:
    """Read label tables (files or standard input) and return their stats document."""
    return compute(iter_batches(paths), by=by, compare=compare, sources=sources)
