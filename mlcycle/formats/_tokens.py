"""Whitespace-separated text labels (YOLO, KITTI) read as tokens, many files at once;
their text checked first (UTF-8, a BOM accepted, UTF-16 and binary refused)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np


_BOM = b"\xef\xbb\xbf"


def text_files(contents: list[bytes], names: list[str]) -> list[bytes]:
    """``contents`` checked as UTF-8 text, all files at once: a UTF-8 BOM is dropped; a
    UTF-16 file, a NUL byte or invalid UTF-8 is an ``MlcycleError`` naming the file and
    line."""
    from mlcycle.errors import MlcycleError, printable

    contents = [c[3:] if c[:3] == _BOM else c for c in contents]
    data = b"\n".join(contents)

    def place(pos: int) -> tuple[str, int]:
        start = 0
        for name, c in zip(names, contents):
            if pos <= start + len(c):
                return printable(name), data.count(b"\n", start, pos) + 1
            start += len(c) + 1
        return printable(names[-1]), 1  # pragma: no cover

    nul = data.find(b"\x00")
    if nul >= 0:
        name, line = place(nul)
        utf16 = any(c[:2] in (b"\xff\xfe", b"\xfe\xff") for c in contents)
        raise MlcycleError(f"{name}:{line}: a NUL byte: the file is " + ("UTF-16" if utf16 else "binary or UTF-16")
                           + ", not UTF-8 text", hint="save the labels as UTF-8 text")
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        name, line = place(exc.start)
        raise MlcycleError(f"{name}:{line}: invalid UTF-8 (byte 0x{data[exc.start]:02x})",
                           hint="save the labels as UTF-8 text") from None
    return contents


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
