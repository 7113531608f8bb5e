"""Whitespace-separated text labels (YOLO, KITTI) read as tokens, many files at once."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np


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
