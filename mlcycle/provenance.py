"""Provenance: every table says which commands made it, from which inputs.

A table's history is a list of *steps* under the key ``history`` of its ``mlcycle``
metadata (docs/curate-diff.md, "Provenance")::

    {"command": "mlcycle diff old.parquet new.parquet --iou 0.6",
     "tool": "mlcycle", "version": "0.1.0", "time": "2025-01-31T12:00:00Z",
     "inputs": [{"name": "old.parquet", "sha256": "…", "digest_of": "bytes", "size": 1234, "rows": 99}, …]}

The history of an output is the histories of its inputs (in input order, each step
once) followed by the step that made it, so it travels through every encoding that
keeps metadata (Parquet, Arrow, and JSON Lines' first line; CSV keeps none).

**Digests.** An input read whole (JSON Lines, Arrow, CSV, Parquet through
``io.read_table``, standard input) is hashed as the bytes that were read: sha256, no
extra I/O. A Parquet file *streamed* by ``io.scan`` is not read whole, so hashing every
byte would cost a second pass over a file that may be larger than memory; its digest is
the sha256 of its size (8 bytes, little-endian) followed by its footer (the Thrift file
metadata and the trailing 8 bytes). The footer holds the schema, every row group's and
column chunk's offsets, sizes, row counts and min/max statistics, so any rewrite that
changes data or layout changes it; ``digest_of`` says which of the two a digest is
(``bytes`` or ``parquet-footer``). Other files given as positional arguments (the
annotation file of ``ingest``) are hashed in 1 MiB chunks; folders are named only.

The library API is ``record(table, command, inputs)`` and ``history(table)``. The
command line turns automatic stamping on with ``context(...)``: inside it, ``io``
reports each table it reads (``note_input``) and ``io.write_table`` stamps the table it
writes (``stamp``). ``MLCYCLE_PROVENANCE=0`` turns stamping off; ``SOURCE_DATE_EPOCH``
fixes the time (reproducible builds).
"""

from __future__ import annotations

import hashlib
import os
import stat
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterator, Sequence

from mlcycle import table as T

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa

HISTORY_KEY = "history"
DIGEST_BYTES = "bytes"
DIGEST_PARQUET_FOOTER = "parquet-footer"
_CHUNK = 1 << 20


@dataclass
class _Context:
    command: str
    files: list[str] = field(default_factory=list)
    inputs: list[dict[str, Any]] = field(default_factory=list)
    histories: list[list[dict[str, Any]]] = field(default_factory=list)


_current: ContextVar[_Context | None] = ContextVar("mlcycle_provenance", default=None)


def enabled() -> bool:
    return os.environ.get("MLCYCLE_PROVENANCE", "1").strip().lower() not in ("0", "false", "no", "off")


# --------------------------------------------------------------------------- library API

def history(table: "pa.Table") -> list[dict[str, Any]]:
    """The steps that made ``table``, oldest first (empty when it carries none)."""
    steps = T.get_metadata(table).get(HISTORY_KEY)
    return [s for s in steps if isinstance(s, dict)] if isinstance(steps, list) else []


def record(table: "pa.Table", command: str, inputs: Sequence[dict[str, Any]],
           parents: Sequence[Sequence[dict[str, Any]]] = ()) -> "pa.Table":
    """``table`` with one more step in its history: ``command`` run on ``inputs``
    (dicts such as ``digest_bytes`` returns). ``parents`` are the histories of the
    inputs; they come before the new step, each step once, in order."""
    from mlcycle import __version__

    merged: list[dict[str, Any]] = []
    seen: set[str] = set()
    for steps in (*parents, history(table)):
        for step in steps:
            key = _key(step)
            if key not in seen:
                seen.add(key)
                merged.append(step)
    merged.append({"command": command, "tool": "mlcycle", "version": __version__, "time": _now(),
                   "inputs": [dict(i) for i in inputs]})
    meta = dict(T.get_metadata(table))
    meta[HISTORY_KEY] = merged
    return T.with_metadata(table, meta)


def digest_bytes(name: str, data: bytes, rows: int | None = None) -> dict[str, Any]:
    """The input record of bytes read whole."""
    out: dict[str, Any] = {"name": name, "sha256": hashlib.sha256(data).hexdigest(),
                           "digest_of": DIGEST_BYTES, "size": len(data)}
    if rows is not None:
        out["rows"] = rows
    return out


def digest_file(path: str | os.PathLike, name: str | None = None) -> dict[str, Any]:
    """The input record of a file on disk: Parquet by its footer, anything else by its
    bytes (read in chunks); a folder or special file by its name only."""
    name = name if name is not None else os.fspath(path)
    try:
        st = os.stat(path)
    except OSError:
        return {"name": name, "sha256": None, "digest_of": None}
    if stat.S_ISDIR(st.st_mode):
        return {"name": name, "sha256": None, "digest_of": None, "kind": "folder"}
    if not stat.S_ISREG(st.st_mode):
        return {"name": name, "sha256": None, "digest_of": None, "kind": "special"}
    with open(path, "rb") as fh:
        if fh.read(4) == b"PAR1" and st.st_size >= 12:
            fh.seek(st.st_size - 8)
            tail = fh.read(8)
            if tail[4:] == b"PAR1":
                footer_len = int.from_bytes(tail[:4], "little")
                fh.seek(max(0, st.st_size - 8 - footer_len))
                h = hashlib.sha256(st.st_size.to_bytes(8, "little"))
                h.update(fh.read(footer_len))
                h.update(tail)
                return {"name": name, "sha256": h.hexdigest(), "digest_of": DIGEST_PARQUET_FOOTER, "size": st.st_size}
        fh.seek(0)
        h = hashlib.sha256()
        for block in iter(lambda: fh.read(_CHUNK), b""):
            h.update(block)
    return {"name": name, "sha256": h.hexdigest(), "digest_of": DIGEST_BYTES, "size": st.st_size}


def describe(table: "pa.Table", name: str = "<stdin>", rows: int | None = None) -> dict[str, Any]:
    """What ``mlcycle info`` prints: size, columns, sources, schema version, metadata
    keys and the history. ``table`` may be an empty table with the schema when ``rows``
    is given (a streamed Parquet file)."""
    import pyarrow.compute as pc

    meta = T.get_metadata(table)
    other = {k: _size_note(v) for k, v in meta.items() if k not in ("schema_version", HISTORY_KEY)}
    srcs: dict[str, int] = {}
    if table.num_rows:
        counts = pc.value_counts(table.column(T.SOURCE).combine_chunks())
        srcs = {str(v["values"]): int(v["counts"]) for v in counts.to_pylist()}
    return {
        "name": name,
        "rows": table.num_rows if rows is None else rows,
        "columns": [{"name": f.name, "type": str(f.type),
                     "role": "core" if f.name in T.CORE_COLUMNS else
                     ("command" if f.name in T.COMMAND_COLUMNS else "attribute")} for f in table.schema],
        "sources": srcs,
        "schema_version": meta.get("schema_version", T.SCHEMA_VERSION),
        "metadata": other,
        "history": history(table),
    }


def describe_scan(scan, name: str) -> dict[str, Any]:
    """``describe`` for an ``io.scan``: reads only the source column, batch by batch."""
    import pyarrow.compute as pc

    rows, sources = 0, {}
    for batch in scan.batches(columns=[]):
        rows += batch.num_rows
        if batch.num_rows:
            for v in pc.value_counts(batch.column(T.SOURCE).combine_chunks()).to_pylist():
                sources[str(v["values"])] = sources.get(str(v["values"]), 0) + int(v["counts"])
    doc = describe(scan.empty(), name, rows=rows)
    doc["sources"] = sources
    return doc


def _size_note(value: Any) -> str:
    if isinstance(value, dict):
        return f"object with {len(value)} keys"
    if isinstance(value, list):
        return f"list of {len(value)}"
    text = str(value)
    return text if len(text) <= 60 else text[:59] + "…"


# --------------------------------------------------------------------------- automatic stamping

@contextmanager
def context(command: str, files: Sequence[str] = ()) -> Iterator[None]:
    """Inside the block, tables read through ``mlcycle.io`` are noted and tables written
    through ``io.write_table`` are stamped with ``command`` and those inputs. ``files``
    (the positional arguments) that ``io`` did not read are hashed when a table is
    written (the annotation file of ``ingest``)."""
    if not enabled():
        yield
        return
    token = _current.set(_Context(command, list(files)))
    try:
        yield
    finally:
        _current.reset(token)


def active() -> bool:
    return _current.get() is not None


def note_input(name: str, *, data: bytes | None = None, path: str | os.PathLike | None = None,
               table: "pa.Table | None" = None, rows: int | None = None) -> None:
    """Called by ``io`` for each table it reads (a no-op outside a ``context``)."""
    ctx = _current.get()
    if ctx is None:
        return
    if data is not None:
        rec = digest_bytes(name, data, rows if rows is not None else (table.num_rows if table is not None else None))
    elif path is not None:
        rec = digest_file(path, name)
        if rows is not None:
            rec["rows"] = rows
    else:
        rec = {"name": name, "sha256": None, "digest_of": None}
    if any(i == rec for i in ctx.inputs):
        return
    ctx.inputs.append(rec)
    if table is not None:
        ctx.histories.append(history(table))
    elif path is not None:
        ctx.histories.append(_parquet_history(path))


def stamp(table: "pa.Table") -> "pa.Table":
    """The table with this command's step appended (unchanged outside a ``context``)."""
    ctx = _current.get()
    if ctx is None:
        return table
    known = {i["name"] for i in ctx.inputs}
    extra = [digest_file(p, p) for p in ctx.files
             if p not in known and p != "-" and os.path.exists(p)]
    return record(table, ctx.command, [*ctx.inputs, *extra], ctx.histories)


def _parquet_history(path: str | os.PathLike) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(path)
    except Exception:  # the reader reports an unreadable file itself
        return []
    return history(schema.empty_table())


def _key(step: dict[str, Any]) -> str:
    import json

    return json.dumps(step, sort_keys=True, separators=(",", ":"), default=str)


def _now() -> str:
    import datetime as dt

    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    when = dt.datetime.fromtimestamp(int(epoch), dt.timezone.utc) if epoch and epoch.isdigit() \
        else dt.datetime.now(dt.timezone.utc)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")
