"""Sample ids hashed into buckets: the one way every sharded path splits a label table.

A sample's rows must stay together (evaluation matches per image and class, and a
partial result must hold whole samples), so tables are split by sample id, never by row.
``bucket_of`` hashes each id's UTF-8 bytes with a fixed polynomial hash finished by the
splitmix64 mixer, all in numpy: the same buckets in every process, Python run and
machine (Python's ``hash()`` is salted per process and cannot be used), and no Python
loop per row. ``split_by_bucket`` keeps each bucket's rows in their input order.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import pyarrow as pa

__all__ = ["bucket_of", "split_by_bucket", "hash_strings"]

_P = 0x100000001B3          # the FNV-1 64-bit prime, as the polynomial's base
_SEED = 0x9E3779B97F4A7C15  # keeps the empty string away from 0
_BYTES_PER_PASS = 1 << 22   # bytes hashed at once (bounds the temporary uint64 arrays)


def _mix(h: "np.ndarray") -> "np.ndarray":
    """splitmix64's finaliser (wrapping uint64 arithmetic)."""
    import numpy as np

    h = h ^ (h >> np.uint64(30))
    h = h * np.uint64(0xBF58476D1CE4E5B9)
    h = h ^ (h >> np.uint64(27))
    h = h * np.uint64(0x94D049BB133111EB)
    return h ^ (h >> np.uint64(31))


def _hash_plain(arr: "pa.Array") -> "np.ndarray":
    """uint64 hashes of a (large_)string/binary array without nulls handling."""
    import numpy as np
    import pyarrow as pa

    n = len(arr)
    out = np.zeros(n, np.uint64)
    if n == 0:
        return out
    if pa.types.is_large_string(arr.type) or pa.types.is_large_binary(arr.type):
        off_type = np.int64
    else:
        off_type = np.int32
    offsets = np.frombuffer(arr.buffers()[1], dtype=off_type)[arr.offset:arr.offset + n + 1].astype(np.int64)
    data_buf = arr.buffers()[2]
    data = np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else np.zeros(0, np.uint8)
    lengths = np.diff(offsets)
    max_len = int(lengths.max()) if n else 0
    powers = np.ones(max(max_len, 1), np.uint64)
    if max_len > 1:
        with np.errstate(over="ignore"):
            powers[1:] = _P
            powers = np.cumprod(powers, dtype=np.uint64)
    # strings in passes of about _BYTES_PER_PASS bytes
    start = 0
    cum = offsets - offsets[0]
    with np.errstate(over="ignore"):
        while start < n:
            stop = int(np.searchsorted(cum, cum[start] + _BYTES_PER_PASS, side="right")) - 1
            stop = min(max(stop, start + 1), n)
            lo, hi = int(offsets[start]), int(offsets[stop])
            lens = lengths[start:stop]
            if hi > lo:
                b = data[lo:hi].astype(np.uint64) + np.uint64(1)   # +1: zero bytes count too
                pos = np.arange(hi - lo, dtype=np.int64) - np.repeat(offsets[start:stop] - lo, lens)
                contrib = b * powers[pos]
                nz = lens > 0
                seg = (offsets[start:stop] - lo)[nz]
                sums = np.add.reduceat(contrib, seg) if len(seg) else np.zeros(0, np.uint64)
                h = np.zeros(stop - start, np.uint64)
                h[nz] = sums
            else:
                h = np.zeros(stop - start, np.uint64)
            out[start:stop] = _mix(h + lens.astype(np.uint64) + np.uint64(_SEED))
            start = stop
    return out


def hash_strings(values: "pa.Array | pa.ChunkedArray") -> "np.ndarray":
    """A stable uint64 hash per value of a string column (nulls hash as the empty string)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    chunks = values.chunks if isinstance(values, pa.ChunkedArray) else [values]
    parts = []
    for chunk in chunks:
        if pa.types.is_dictionary(chunk.type):
            codes = pc.fill_null(chunk.indices, 0).to_numpy(zero_copy_only=False)
            dict_h = hash_strings(chunk.dictionary)
            h = dict_h[codes] if len(dict_h) else np.zeros(len(chunk), np.uint64)
            if chunk.null_count:
                h = np.where(chunk.is_valid().to_numpy(zero_copy_only=False), h, _hash_plain(pa.array([""]))[0])
            parts.append(h)
            continue
        if not (pa.types.is_string(chunk.type) or pa.types.is_large_string(chunk.type)
                or pa.types.is_binary(chunk.type) or pa.types.is_large_binary(chunk.type)):
            chunk = pc.cast(chunk, pa.string())
        if chunk.null_count:
            chunk = pc.fill_null(chunk, "")
        if len(chunk) > 4096:
            # hash each distinct id once (a sample has several rows)
            enc = pc.dictionary_encode(chunk)
            parts.append(_hash_plain(enc.dictionary)[enc.indices.to_numpy(zero_copy_only=False)])
        else:
            parts.append(_hash_plain(chunk))
    return np.concatenate(parts) if parts else np.zeros(0, np.uint64)


def bucket_of(sample_ids: "pa.Array | pa.ChunkedArray", n: int) -> "np.ndarray":
    """The bucket (0 .. n-1, int64) of each sample id: deterministic everywhere."""
    import numpy as np

    if int(n) < 1:
        raise ValueError(f"the number of buckets must be at least 1, got {n}")
    h = hash_strings(sample_ids)
    return (h % np.uint64(int(n))).astype(np.int64)


def split_by_bucket(table: "pa.Table", n: int) -> "list[pa.Table]":
    """``table`` split into ``n`` tables by ``bucket_of(sample_id)``; every sample's rows
    in one of them, in their input order (empty tables for empty buckets)."""
    import numpy as np

    from mlcycle import table as T

    b = bucket_of(table.column(T.SAMPLE_ID), n)
    order = np.argsort(b, kind="stable")
    counts = np.bincount(b, minlength=n)
    taken = table.take(order)
    out, start = [], 0
    for c in counts.tolist():
        out.append(taken.slice(start, c))
        start += c
    return out
