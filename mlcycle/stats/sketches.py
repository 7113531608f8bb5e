"""Summaries that stay small however many values stream through them.

``Quantiles``: count, mean, min, max and quantiles of a stream of numbers (exact up to
``EXACT_QUANTILE_LIMIT`` values, then a logarithmic sketch). ``Merger``: sums per key
across batches, merged with pyarrow's ``group_by`` whenever the partial tables grow.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import pyarrow as pa

EXACT_QUANTILE_LIMIT = 200_000
QUANTILES = (("min", 0.0), ("p01", 0.01), ("p05", 0.05), ("p25", 0.25), ("p50", 0.5),
             ("p75", 0.75), ("p95", 0.95), ("p99", 0.99), ("max", 1.0))


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
        self.total = 0  # exact sum of the values (``exact_sum``): the same whatever the batching
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
        self.total += exact_sum(values)
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

    def merge(self, other: "Quantiles") -> None:
        """Add another stream's summary: the result is the summary of both streams, the
        same (to the last bit) as one stream through ``add`` in any order. Exact values
        are kept while both together stay within ``EXACT_QUANTILE_LIMIT``, else all are
        sketched (the sketch's bins are counts, so they add up)."""
        import numpy as np

        if not other.n:
            return
        self.n += other.n
        self.total += other.total
        self.lo = min(self.lo, other.lo)
        self.hi = max(self.hi, other.hi)
        if self._pos is None and other._pos is None and self._buffered + other._buffered <= EXACT_QUANTILE_LIMIT:
            self._parts.extend(other._parts)
            self._buffered += other._buffered
            return
        nbins = int((self._MAX_EXP - self._MIN_EXP) / self._gamma_log) + 2
        if self._pos is None:
            self._pos, self._neg = np.zeros(nbins, np.int64), np.zeros(nbins, np.int64)
            if self._parts:
                self._sketch(np.concatenate(self._parts))
            self._parts = []
        if other._pos is None:
            if other._parts:
                self._sketch(np.concatenate(other._parts))
        else:
            self._pos += other._pos
            self._neg += other._neg
            self._zero += other._zero

    def summary(self) -> dict[str, Any]:
        import numpy as np

        out: dict[str, Any] = {"count": self.n, "mean": json_number(exact_mean(self.total, self.n)) if self.n else None}
        if not self.n:
            out.update({k: None for k, _ in QUANTILES})
            return out
        if self._pos is None:
            values = np.concatenate(self._parts) if len(self._parts) != 1 else self._parts[0]
            qs = np.quantile(values, [p for _, p in QUANTILES])
            out.update({k: json_number(float(q)) for (k, _), q in zip(QUANTILES, qs)})
        else:
            for k, p in QUANTILES:
                v = self.lo if p == 0 else self.hi if p == 1 else self._sketch_quantile(p)
                out[k] = json_number(min(max(v, self.lo), self.hi))
        return out


# exact_sum: a finite float64 is M * 2**(E - 1075) with the integer mantissa M < 2**53
# and E = max(biased exponent, 1), read from its bits; the sum is kept as a Python
# integer in units of 2**-EXACT_SHIFT (the smallest subnormal).
EXACT_SHIFT = 1074
_CHUNK = 1 << 25    # values per bincount: the float64 sums of 26-bit halves stay exact integers


def _split_bits(values: "np.ndarray"):
    """(exponent bin per value, signed high and low 26-bit halves of its mantissa)."""
    import numpy as np

    bits = np.ascontiguousarray(values, dtype=np.float64).view(np.uint64)
    e = (bits >> np.uint64(52)).astype(np.int64) & 0x7FF
    m = (bits & np.uint64((1 << 52) - 1)).astype(np.int64)
    m |= (e > 0).astype(np.int64) << 52            # the implicit leading 1 of normal numbers
    np.maximum(e, 1, out=e)                          # subnormals share the smallest exponent
    sign = 1.0 - 2.0 * (bits >> np.uint64(63)).astype(np.float64)
    return e, (m >> 26) * sign, (m & ((1 << 26) - 1)) * sign


def exact_sum(values: "np.ndarray") -> int:
    """The exact sum of finite float64 values, as an integer in units of 2**-EXACT_SHIFT.

    Float sums depend on the order of addition; this does not, so a statistic summed
    over shards (or batches of any size) and merged is the same to the last bit as one
    pass. Vectorised: each value's integer mantissa is split into two 26-bit halves,
    which are summed per binary exponent with ``bincount`` (exact: every partial sum is an
    integer below 2**53); only the few distinct exponents are combined in Python."""
    import numpy as np

    values = np.asarray(values, dtype=np.float64)
    total = 0
    for start in range(0, len(values), _CHUNK):
        e, hi, lo = _split_bits(values[start:start + _CHUNK])
        hs = np.bincount(e, weights=hi, minlength=2048)
        ls = np.bincount(e, weights=lo, minlength=2048)
        for k in np.flatnonzero((hs != 0) | (ls != 0)).tolist():
            # value = M * 2**(E - 1075) = M << (E - 1) units of 2**-1074
            total += ((int(hs[k]) << 26) + int(ls[k])) << (k - 1)
    return total


def exact_sums_by(codes: "np.ndarray", values: "np.ndarray", ncodes: int) -> dict[int, int]:
    """``exact_sum`` of the values of each code (codes < ncodes) that has values."""
    import numpy as np

    out: dict[int, int] = {}
    codes = np.asarray(codes, dtype=np.int64)
    values = np.asarray(values, dtype=np.float64)
    for start in range(0, len(values), _CHUNK):
        e, hi, lo = _split_bits(values[start:start + _CHUNK])
        uniq, inv = np.unique(codes[start:start + _CHUNK] * 2048 + e, return_inverse=True)
        hs = np.bincount(inv, weights=hi)
        ls = np.bincount(inv, weights=lo)
        for key, h, low in zip(uniq.tolist(), hs.tolist(), ls.tolist()):
            c, k = divmod(key, 2048)
            out[c] = out.get(c, 0) + (((int(h) << 26) + int(low)) << (k - 1))
    return out


def exact_mean(total: int, n: int) -> float:
    """An ``exact_sum`` divided by a count, correctly rounded to a float."""
    try:
        return total / (n << EXACT_SHIFT)  # Python's int / int is correctly rounded
    except OverflowError:
        return math.inf if total > 0 else -math.inf


def exact_float(total: int) -> float:
    """An ``exact_sum`` as the nearest float."""
    return exact_mean(total, 1)


def json_number(x: float | None) -> float | None:
    """JSON-safe float (NaN/inf -> None), integral floats kept as floats."""
    if x is None or not math.isfinite(x):
        return None
    return float(x)


class Merger:
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
        self.parts = [group_sum(table, self.keys, self.values)]
        self.rows = self.parts[0].num_rows

    def merge(self, other: "Merger", remap: "dict[str, np.ndarray] | None" = None) -> None:
        """Add another merger's partial tables (their integer code columns mapped through
        ``remap``: column -> new code per old code)."""
        import pyarrow as pa

        for part in other.parts:
            for name, mapping in (remap or {}).items():
                if name in part.column_names and part.num_rows:
                    col = part.column(name).to_numpy()
                    part = part.set_column(part.column_names.index(name), name,
                                           pa.array(mapping[col].astype(col.dtype)))
            self.add(part)

    def result(self) -> "pa.Table":
        import pyarrow as pa

        if not self.parts:
            return None
        if not self.merged:
            # partials may repeat a key (dictionaries that repeat a value): group once more
            table = pa.concat_tables(self.parts, promote_options="permissive")
            self.parts = [group_sum(table, self.keys, self.values)]
            self.merged = True
        return self.parts[0]


def group_sum(table: "pa.Table", keys: Sequence[str], values: Sequence[str]) -> "pa.Table":
    out = table.group_by(list(keys), use_threads=True).aggregate([(v, "sum") for v in values])
    return out.rename_columns([f"{c[:-4]}" if c.endswith("_sum") and c[:-4] in values else c for c in out.column_names])
