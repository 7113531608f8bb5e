"""JSON Lines, the label table's text encoding: one JSON object per row, the table's
metadata on a first line ``{"__mlcycle__": {...}}``.

Reading guards nesting before pyarrow's reader sees the data (it overflows its stack on
rows nested thousands deep), reads tables concatenated in one stream (each with its own
header line), and falls back to a line-by-line reader that names the line and column of
a bad value. ``mlcycle.io`` dispatches here by the sniffed encoding.
"""

from __future__ import annotations

import io as _io
import re
from typing import TYPE_CHECKING

from mlcycle import table as T
from mlcycle.errors import MlcycleError

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa

JSONL_META_KEY = "__mlcycle__"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__



_JSON_CORE_PY = {
    T.SAMPLE_ID: (str,), T.SOURCE: (str,), T.LABEL: (str,), T.SPLIT: (str,),
    T.LABEL_ID: (int,), T.CATEGORY_ID: (int,), T.IMAGE_ID: (int,),
    T.WIDTH: (int,), T.HEIGHT: (int,), T.SCORE: (int, float), T.AREA: (int, float),
    T.ISCROWD: (bool, int), T.BBOX: (list,), T.SEGMENTATION: (str, list, dict),
}
_PY_TYPE_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "a boolean",
                  list: "a list", dict: "an object", type(None): "null"}


def _split_jsonl_header(data: bytes) -> tuple[dict | None, bytes, int]:
    """Split off the metadata line; returns (metadata, rest, lines skipped)."""
    import orjson

    start = data.lstrip(b" \t\r\n\xef\xbb\xbf")
    offset = len(data) - len(start)
    if not start.startswith(b'{"' + JSONL_META_KEY.encode()):
        return None, data, 0
    end = start.find(b"\n")
    line = start if end < 0 else start[:end]
    try:
        doc = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None, data, 0
    if not (isinstance(doc, dict) and len(doc) == 1 and isinstance(doc.get(JSONL_META_KEY), dict)):
        return None, data, 0
    skipped = data[: offset].count(b"\n") + 1
    rest = b"" if end < 0 else start[end + 1:]
    return doc[JSONL_META_KEY], rest, skipped


# Deeper nesting than this is refused before any JSON parser sees it: pyarrow's reader
# overflows its stack (a segfault) on rows nested ~10,000 deep. No label table needs
# more than a handful of levels (segmentation polygons are 3).
MAX_JSON_DEPTH = 64
_HEADER_LINE = re.compile(rb'(?m)^[ \t\r]*(?:\xef\xbb\xbf)?\{"' + JSONL_META_KEY.encode() + rb'"')


def check_json_depth(data: bytes, name: str, first_line: int = 1, limit: int = MAX_JSON_DEPTH) -> None:
    """Raise ``MlcycleError`` naming the line where JSON nests deeper than ``limit``.

    Counts brackets without parsing (brackets inside strings count too, which can only
    over-estimate), in blocks, with numpy: cheap next to parsing."""
    import numpy as np

    if data.count(b"[") + data.count(b"{") <= limit:
        return
    depth = 0
    block = 1 << 24
    for start in range(0, len(data), block):
        chunk = np.frombuffer(data, dtype=np.uint8, count=min(block, len(data) - start), offset=start)
        step = ((chunk == 0x5B) | (chunk == 0x7B)).astype(np.int32) - ((chunk == 0x5D) | (chunk == 0x7D))
        levels = np.cumsum(step, dtype=np.int64) + depth
        if levels.size and levels.max() > limit:
            at = start + int(np.argmax(levels > limit))
            line = first_line + data.count(b"\n", 0, at)
            raise MlcycleError(f"{name}:{line}: JSON nested deeper than {limit} levels",
                               hint="a label table row needs only a few levels; the file may be corrupt or hostile")
        depth = int(levels[-1]) if levels.size else depth
        depth = max(depth, 0)


def read_jsonl(data: bytes, name: str) -> "pa.Table":
    # `cat a.jsonl b.jsonl`: each table may start with its own header line
    heads = [m.start() for m in _HEADER_LINE.finditer(data)]
    if len(heads) > 1 or (heads and data[:heads[0]].strip(b" \t\r\n\xef\xbb\xbf")):
        bounds = ([0] if heads[0] and data[:heads[0]].strip() else []) + heads + [len(data)]
        parts = []
        for lo, hi in zip(bounds, bounds[1:]):
            if data[lo:hi].strip():
                table = _read_jsonl_one(data[lo:hi], name, data.count(b"\n", 0, lo))
                parts.append(T.normalize(table, origin=name))
        if len(parts) == 1:
            return parts[0]
        from mlcycle.io import concat

        return concat(parts)
    return _read_jsonl_one(data, name, 0)


def _read_jsonl_one(data: bytes, name: str, lines_before: int) -> "pa.Table":
    import pyarrow as pa

    meta, body, skipped = _split_jsonl_header(data)
    skipped += lines_before
    check_json_depth(body, name, first_line=1 + skipped)
    if not body.strip():
        table = T.empty_table()
    else:
        try:
            # types are inferred over one large block; `table.normalize` then casts the
            # core columns to the contract's types and names any column that cannot be
            table = _pyarrow_jsonl(body)
            # pyarrow turns date-like strings into timestamps; strings must stay strings
            stamps = [f.name for f in table.schema if pa.types.is_timestamp(f.type)]
            if stamps:
                table = _pyarrow_jsonl(body, pa.schema([(n, pa.string()) for n in stamps]))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            table = _read_jsonl_slow(body, name, skipped)
    if meta is not None:
        table = T.with_metadata(table, meta)
    return table


def _pyarrow_jsonl(body: bytes, schema=None) -> "pa.Table":
    import pyarrow as pa
    import pyarrow.json as pj

    return pj.read_json(
        pa.BufferReader(body),
        read_options=pj.ReadOptions(block_size=1 << 26),
        parse_options=pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="infer",
                                      newlines_in_values=False),
    )


def _read_jsonl_slow(body: bytes, name: str, skipped: int) -> "pa.Table":
    """Line by line, to say exactly which line and column is wrong."""
    import orjson
    import pyarrow as pa

    rows = []
    first_type: dict[str, tuple[type, int]] = {}
    for i, line in enumerate(body.split(b"\n"), start=1 + skipped):
        if not line.strip():
            continue
        try:
            row = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            col = getattr(exc, "colno", None)
            raise MlcycleError(f"{name}:{i}:{col}: malformed JSON: {exc.msg}" if col else f"{name}:{i}: malformed JSON: {exc}") from None
        if not isinstance(row, dict):
            raise MlcycleError(f"{name}:{i}: expected a JSON object per line, got {_PY_TYPE_NAMES.get(type(row), type(row).__name__)}")
        for key, value in row.items():
            if value is None:
                continue
            want = _JSON_CORE_PY.get(key)
            if want is not None:
                ok = isinstance(value, want) and not (bool not in want and isinstance(value, bool))
                if not ok:
                    raise MlcycleError(
                        f"{name}:{i}: column '{key}' is {_PY_TYPE_NAMES.get(type(value), type(value).__name__)}, "
                        f"expected {T.CORE_TYPE_NAMES[key]}")
                continue
            t = float if type(value) is int else type(value)
            prev = first_type.get(key)
            if prev is None:
                first_type[key] = (t, i)
            elif prev[0] is not t:
                raise MlcycleError(
                    f"{name}:{i}: column '{key}' is {_PY_TYPE_NAMES.get(type(value), 'a value')}, "
                    f"but line {prev[1]} has {_PY_TYPE_NAMES.get(prev[0], 'another type')}",
                    hint="an attribute column must have one type in every row")
        rows.append(row)
    try:
        return pa.Table.from_pylist(rows)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise MlcycleError(f"{name}: inconsistent values: {_first_line(exc)}") from None


def encode_jsonl(table: "pa.Table") -> bytes:
    import orjson

    out = _io.BytesIO()
    meta = T.get_metadata(table)
    # an empty table still gets its header line: zero bytes means "nothing was written"
    if set(meta) - {"schema_version"} or table.num_rows == 0:
        out.write(orjson.dumps({JSONL_META_KEY: meta}, option=orjson.OPT_APPEND_NEWLINE))
    opt = orjson.OPT_APPEND_NEWLINE | orjson.OPT_SERIALIZE_NUMPY
    dumps = orjson.dumps
    for batch in table.to_batches(max_chunksize=65536):
        out.write(b"".join([dumps(row, option=opt) for row in batch.to_pylist()]))
    return out.getvalue()
