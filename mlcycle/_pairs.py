"""Enumerating pairs in bounded chunks, shared by evaluate (detection x ground truth in
an image-class group) and schema-check (labels of one class in an image).

Row ``i`` has ``counts[i]`` partners; all pairs as flat arrays could be billions, so
they are produced a chunk of about ``chunk`` pairs at a time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterator

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np


def pair_chunks(counts: "np.ndarray", chunk: int) -> Iterator[tuple["np.ndarray", "np.ndarray"]]:
    """Yield ``(row, offset)`` arrays: for each pair of the chunk, its row and the
    partner's position ``0..counts[row]-1``. Rows are never split across chunks; a row
    with more than ``chunk`` partners is a chunk of its own."""
    import numpy as np

    counts = np.asarray(counts, dtype=np.int64)
    csum = np.cumsum(counts)
    start, n = 0, len(counts)
    while start < n:
        base = csum[start - 1] if start else 0
        stop = max(int(np.searchsorted(csum, base + chunk, side="right")), start + 1)
        cnt = counts[start:stop]
        total = int(cnt.sum())
        if total:
            row = np.repeat(np.arange(start, stop), cnt)
            offset = np.arange(total) - np.repeat(np.cumsum(cnt) - cnt, cnt)
            yield row, offset
        start = stop
