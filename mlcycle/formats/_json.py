"""JSON annotation files: parsed fast, malformed JSON reported as ``file:line:column``.

What a JSON reader must not trip over, handled here once for every JSON format:

- a UTF-8 byte order mark is accepted (and skipped);
- UTF-16/UTF-32 text is refused with a hint to convert it (JSON files are UTF-8);
- invalid UTF-8 is reported at its real line and column (orjson says "column 1");
- nesting deeper than ``MAX_DEPTH`` levels is refused (orjson stops at 1024; the line
  is found with ``jsonl.check_json_depth``, the guard JSON Lines uses);
- a file that is not JSON at all says what it looks like (XML, CSV) and which format
  reads it (``looks_like``).
"""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

from mlcycle.errors import MlcycleError

BOM = b"\xef\xbb\xbf"
MAX_DEPTH = 1024  # orjson's own limit: deeper documents are refused before they cost anything
_UTF16_32 = (b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff", b"\xff\xfe", b"\xfe\xff")


def strip_bom(data: bytes) -> bytes:
    return data[3:] if data.startswith(BOM) else data


def check_text_encoding(data: bytes, name: str) -> None:
    """Refuse UTF-16/UTF-32 text (with or without a byte order mark) with one clear line."""
    head = data[:4]
    no_bom = len(head) == 4 and ((head[1] == 0 and head[3] == 0) or (head[0] == 0 and head[2] == 0))
    if head.startswith(_UTF16_32) or no_bom:
        raise MlcycleError(f"{name}: the file is UTF-16 or UTF-32 text; mlcycle reads UTF-8 (with or without a BOM)",
                           hint="convert it, e.g. iconv -f UTF-16 -t UTF-8 FILE > FILE.utf8")


def utf8_error(data: bytes, name: str) -> MlcycleError | None:
    """An error naming line and column of the first invalid UTF-8 byte, None when the
    data is valid UTF-8."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        col = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        return MlcycleError(f"{name}:{line}:{col}: invalid UTF-8 (byte 0x{data[exc.start]:02x})",
                            hint="the file must be UTF-8 text; it may be in another encoding or corrupt")
    return None


def looks_like(data: bytes) -> str | None:
    """What a file that is not the JSON expected looks like, with the format that reads
    it (for hints), or None."""
    head = strip_bom(data[:4096]).lstrip()
    if head.startswith(b"<"):
        low = head.lower()
        if b"<annotations" in low:
            return "CVAT XML (read it as cvat)"
        if b"<annotation" in low:
            return "Pascal VOC XML (read it as voc)"
        return "XML"
    if head.startswith(b"{") or head.startswith(b"["):
        return None
    first = head.split(b"\n", 1)[0].decode("utf-8", "replace")
    if "," in first:
        if "ImageID" in first and "LabelName" in first:
            return "an Open Images CSV (read it as openimages)"
        return "CSV (read it as csv)"
    return None


def load_json(path: Path | str | None, data: bytes | None = None) -> Any:
    """Parse a JSON file fast (orjson, cyclic GC paused while millions of small objects
    are built) and report malformed JSON as ``file:line:column``."""
    import orjson

    from mlcycle import io

    name = io.display_name(path)
    if data is None:
        data = io.read_bytes(path)
    data = strip_bom(data)
    enabled = gc.isenabled()
    gc.disable()
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise parse_error(data, name, exc) from None
    finally:
        if enabled:
            gc.enable()


def parse_error(data: bytes, name: str, exc: Exception | None = None) -> MlcycleError:
    """The one-line error for JSON that did not parse: encoding, nesting, what the file
    looks like, else the parser's message at ``file:line:column``."""
    from mlcycle.jsonl import check_json_depth

    if not data.strip():
        return MlcycleError(f"{name}: the file is empty; expected JSON")
    check_text_encoding(data, name)
    bad = utf8_error(data, name)
    if bad is not None:
        return bad
    msg = getattr(exc, "msg", None) or (str(exc) if exc is not None else "not valid JSON")
    if "depth" in msg or "recursion" in msg or isinstance(exc, RecursionError):
        try:
            check_json_depth(data, name, limit=MAX_DEPTH)
        except MlcycleError as deep:
            deep.hint = "annotation files need only a few levels; the file may be corrupt or hostile"
            return deep
    kind = looks_like(data)
    if kind is not None:
        return MlcycleError(f"{name}: not JSON: this looks like {kind}")
    line = getattr(exc, "lineno", None)
    col = getattr(exc, "colno", None)
    where = f"{name}:{line}:{col}" if line else name
    return MlcycleError(f"{where}: malformed JSON: {msg}")
