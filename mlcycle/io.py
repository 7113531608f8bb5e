"""Reading and writing label tables: Parquet, JSON Lines, Arrow IPC stream, CSV.

- Input encoding is sniffed from content (``PAR1``, the Arrow stream/file marker, ``{``
  for JSON Lines, anything else is CSV); ``-`` or ``None`` is standard input, which is
  buffered in memory (Parquet keeps its footer at the end, so it cannot stream).
- Several inputs are concatenated with their schemas unified.
- Output encoding: the ``-o`` file ending, else ``--format``, else ``MLCYCLE_FORMAT``,
  else JSON Lines. Binary output to a terminal is refused. Files are written to a
  temporary name in the same folder and renamed (``atomic_output``); special files
  such as ``/dev/null`` or a FIFO are written directly.
- Table metadata travels in the Parquet/Arrow schema metadata, and in JSON Lines as a
  first line ``{"__mlcycle__": {...}}`` (only when there is more than the version).
"""

from __future__ import annotations

import os
import stat
import sys
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Sequence

from mlcycle import table as T
from mlcycle.errors import MlcycleError, OptionError, mention, printable
from mlcycle.jsonl import JSONL_META_KEY, check_json_depth, encode_jsonl
from mlcycle.outputs import atomic_folder, atomic_output, check_output, is_stdout, write_outputs

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa

__all__ = [
    # reading
    "read_table", "read_tables", "scan", "TableScan", "concat", "decode", "sniff", "read_bytes",
    "dataset_files", "with_partitions",
    "empty_inputs_allowed", "check_json_depth", "check_text", "display_name",
    # writing (atomic files and folders: mlcycle/outputs.py)
    "write_table", "encode", "encode_jsonl", "output_encoding", "check_binary_to_terminal",
    "atomic_output", "atomic_folder", "write_outputs", "check_output", "is_stdout",
    "ENCODINGS", "BINARY_ENCODINGS", "JSONL_META_KEY",
]

ENCODINGS = ("jsonl", "parquet", "arrow", "csv")
BINARY_ENCODINGS = ("parquet", "arrow")
_ENDINGS = {
    ".parquet": "parquet", ".pq": "parquet",
    ".jsonl": "jsonl", ".ndjson": "jsonl",
    ".arrow": "arrow", ".arrows": "arrow", ".ipc": "arrow",
    ".csv": "csv",
}
_ARROW_STREAM_MARKER = b"\xff\xff\xff\xff"
_ARROW_FILE_MAGIC = b"ARROW1"


def display_name(path: str | os.PathLike | None) -> str:
    return "<stdin>" if path is None or str(path) == "-" else str(path)


# --------------------------------------------------------------------------- input

_EMPTY_ALLOWED: "ContextVar[bool]" = ContextVar("mlcycle_empty_inputs_allowed", default=False)


@contextmanager
def empty_inputs_allowed(allowed: bool = True) -> Iterator[None]:
    """Inside the block, every read treats an empty input as an empty table (what the
    CLI's --allow-empty does for all the inputs of a command)."""
    token = _EMPTY_ALLOWED.set(allowed)
    try:
        yield
    finally:
        _EMPTY_ALLOWED.reset(token)


def read_bytes(path: str | os.PathLike | None, allow_empty: bool = False) -> bytes:
    """All bytes of a file or of standard input (``-``/None).

    Zero bytes are an error unless ``allow_empty``: mlcycle never writes an empty table
    as zero bytes (JSON Lines gets its header line), so an empty input means the step
    before failed, and a pipeline must not go on as if the data had no labels.
    """
    if path is None or str(path) == "-":
        if sys.stdin is None or sys.stdin.isatty():
            raise OptionError(None, "no input: standard input is a terminal", hint="pass a PATH or pipe data")
        data = sys.stdin.buffer.read()
        if not data and not (allow_empty or _EMPTY_ALLOWED.get()):
            raise MlcycleError("<stdin>: no input: standard input is empty",
                               hint="the command before this one may have failed (set -o pipefail shows it); "
                                    f"pass {mention('allow_empty')} to read nothing as an empty table")
        return data
    p = Path(path)
    if not _is_readable_kind(p):
        raise MlcycleError(f"{p}: not a regular file (a FIFO, socket or device); expected a label table file")
    try:
        data = p.read_bytes()
        if not data and not (allow_empty or _EMPTY_ALLOWED.get()):
            raise MlcycleError(f"{p}: the file is empty (0 bytes)",
                               hint=f"the step that wrote it may have failed; pass {mention('allow_empty')} to read it as an empty table")
        return data
    except FileNotFoundError:
        raise MlcycleError(f"{p}: no such file") from None
    except IsADirectoryError:
        raise MlcycleError(f"{p}: is a folder, expected a label table file",
                           hint="a folder is read as a partitioned Parquet dataset by read_table and scan") from None
    except OSError as exc:
        raise MlcycleError(f"{p}: cannot read: {exc.strerror or exc}") from None


def _is_readable_kind(path: Path) -> bool:
    """Regular files, and named pipes/devices the user names on purpose (``<(...)``,
    /dev/stdin) — everything but sockets, which would block forever."""
    try:
        st = os.stat(path)
    except OSError:
        return True  # read_bytes says what is wrong
    return not stat.S_ISSOCK(st.st_mode)


def sniff(data: bytes) -> str:
    """The encoding of a label table from its first bytes."""
    head = data[:8]
    if head.startswith(b"PAR1"):
        return "parquet"
    if head.startswith(_ARROW_STREAM_MARKER) or head.startswith(_ARROW_FILE_MAGIC):
        return "arrow"
    stripped = data.lstrip(b" \t\r\n\xef\xbb\xbf")
    if stripped.startswith(b"{") or not stripped:
        return "jsonl"
    return "csv"


def dataset_files(folder: str | os.PathLike) -> list[tuple[Path, dict[str, str]]]:
    """The Parquet files of a dataset folder (as Spark, Ray, DuckDB or polars write them),
    in path order, each with the hive partition values of its folders
    (``split=val/part-0.parquet`` -> ``{"split": "val"}``). Hidden and ``_``-prefixed
    files (``_SUCCESS``, ``_common_metadata``) are skipped."""
    from urllib.parse import unquote

    root = Path(folder)
    out = []
    for file in sorted(root.rglob("*")):
        rel = file.relative_to(root).parts
        if any(part.startswith((".", "_")) for part in rel) or not file.is_file():
            continue
        if not _starts_with(file, b"PAR1"):
            continue
        parts = {}
        for seg in rel[:-1]:
            if "=" in seg:
                key, value = seg.split("=", 1)
                parts[unquote(key)] = unquote(value)
        out.append((file, parts))
    if not out:
        raise MlcycleError(f"{root}: a folder with no Parquet files",
                           hint="give a label table file, or a folder of Parquet files (a partitioned dataset)")
    return out


def with_partitions(table: "pa.Table", parts: dict[str, str]) -> "pa.Table":
    """Add hive partition values as string columns (a column the file has wins)."""
    import pyarrow as pa

    for key, value in parts.items():
        if key not in table.column_names:
            table = table.append_column(key, pa.array([value] * table.num_rows, type=pa.string()))
    return table


def read_table(path: str | os.PathLike | None = None, allow_empty: bool = False) -> "pa.Table":
    """Read one label table (any encoding) and check it against the contract.

    Several tables concatenated in one stream (``cat a.jsonl b.jsonl``, two Arrow
    streams) are read as one table; a folder is read as a partitioned Parquet dataset
    (``dataset_files``)."""
    if path is not None and str(path) != "-" and Path(path).is_dir():
        tables = []
        for file, parts in dataset_files(path):
            tables.append(with_partitions(read_table(file, allow_empty=allow_empty), parts))
        return concat(tables) if len(tables) > 1 else T.normalize(tables[0], origin=str(path))
    name = display_name(path)
    data = read_bytes(path, allow_empty=allow_empty)
    try:
        table = T.normalize(check_text(decode(data, name), name), origin=name)
    except UnicodeDecodeError as exc:  # e.g. a column name that is not UTF-8
        raise MlcycleError(f"{name}: text that is not valid UTF-8 ({exc.reason} at byte {exc.start})") from None
    _provenance_note(name, data=data, table=table)
    return table


def check_text(table: "pa.Table", name: str) -> "pa.Table":
    """Raise ``MlcycleError`` naming the column and row of text that is not valid UTF-8.

    The JSON Lines and Parquet readers pass string bytes through unchecked; the first
    command that looks at such a value would fail far from the cause. Arrow's full
    validation checks UTF-8 in C++, one pass over the string columns."""
    import re

    import pyarrow as pa

    for i, field in enumerate(table.schema):
        t = field.type
        dictionary = pa.types.is_dictionary(t)
        if dictionary:
            t = t.value_type
        if not (pa.types.is_string(t) or pa.types.is_large_string(t)):
            continue
        col = table.column(i)
        for chunk_start, chunk in _chunks(col):
            if dictionary:  # the values live in the dictionary; no row to name
                chunk_start, chunk = None, chunk.dictionary
            try:
                chunk.validate(full=True)
            except pa.ArrowInvalid as exc:
                m = re.search(r"index (\d+)", str(exc))
                row = f"row {chunk_start + int(m.group(1)) + 1}: " if m and chunk_start is not None else ""
                raise MlcycleError(f"{name}: {row}column '{printable(field.name)}' has text that is not valid UTF-8",
                                   hint="convert the file to UTF-8 (e.g. iconv -f latin1 -t utf-8)") from None
    return table


def _chunks(col: "pa.ChunkedArray"):
    start = 0
    for chunk in col.chunks:
        yield start, chunk
        start += len(chunk)


def read_tables(paths: Sequence[str | os.PathLike | None] | None, allow_empty: bool = False) -> "pa.Table":
    """Read and concatenate label tables; no paths means standard input."""
    if not paths:
        paths = [None]
    if sum(1 for p in paths if p is None or str(p) == "-") > 1:
        raise OptionError(None, "standard input ('-') given more than once")
    tables = [read_table(p, allow_empty=allow_empty) for p in paths]
    if len(tables) == 1:
        return tables[0]
    return concat(tables)


class TableScan:
    """Label tables read batch by batch: ``read_table``'s streaming sibling (as polars has
    ``read_parquet`` beside ``scan_parquet``).

    Parquet files are streamed row group by row group, so memory is bounded by the batch;
    other encodings and standard input are read whole once and then sliced. Every batch
    is a ``pyarrow.Table`` checked against the contract. A scan can be iterated several
    times (``batches()`` again), e.g. for a multi-pass algorithm.
    """

    def __init__(self, paths: Sequence[str | os.PathLike | None] | None = None, *,
                 batch_rows: int = 65536, keep_dictionaries: bool = False, allow_empty: bool = False) -> None:
        if not paths:
            paths = [None]
        if sum(1 for p in paths if p is None or str(p) == "-") > 1:
            raise OptionError(None, "standard input ('-') given more than once")
        self.batch_rows = max(1, int(batch_rows))
        self.keep_dictionaries = keep_dictionaries
        try:
            self._open(paths, allow_empty)
        except UnicodeDecodeError as exc:  # a Parquet column name that is not UTF-8
            where = display_name(paths[0]) if len(paths) == 1 else "<inputs>"
            raise MlcycleError(f"{where}: text that is not valid UTF-8 ({exc.reason} at byte {exc.start})") from None

    def _open(self, paths: Sequence[str | os.PathLike | None], allow_empty: bool) -> None:
        # per input: (display name, a parquet path or None, an in-memory table or None,
        # hive partition values of a file in a dataset folder)
        self._inputs: list[tuple[str, str | None, "pa.Table | None", dict[str, str]]] = []
        for path in paths:
            name = display_name(path)
            if path is not None and str(path) != "-" and Path(path).is_dir():
                for file, parts in dataset_files(path):
                    self._inputs.append((str(file), os.fspath(file), None, parts))
                    _provenance_note(str(file), path=file)
            elif path is not None and str(path) != "-" and _starts_with(path, b"PAR1"):
                self._inputs.append((name, os.fspath(path), None, {}))
                _provenance_note(name, path=path)
            else:
                self._inputs.append((name, None, read_table(path, allow_empty=allow_empty), {}))
        self.schema = self._schema()

    @property
    def column_names(self) -> list[str]:
        return list(self.schema.names)

    def _schema(self) -> "pa.Schema":
        import pyarrow as pa

        schemas = []
        for name, parquet, table, parts in self._inputs:
            if table is not None:
                schemas.append(table.schema)
            else:
                pf = _open_parquet(parquet, name)
                empty = with_partitions(pf.schema_arrow.empty_table(), parts)
                schemas.append(T.normalize(empty, origin=name).schema)
        try:
            return pa.unify_schemas(schemas, promote_options="permissive") if len(schemas) > 1 else schemas[0]
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise MlcycleError(f"cannot combine the inputs: {_first_line(exc)}",
                               hint="an attribute column has different types in different inputs") from None

    def empty(self) -> "pa.Table":
        return self.schema.empty_table()

    def __iter__(self) -> Iterator["pa.Table"]:
        return self.batches()

    def batches(self, columns: Sequence[str] | None = None) -> Iterator["pa.Table"]:
        """Batches of at most ``batch_rows`` rows; ``columns`` limits what is decoded
        (the required columns are always read)."""
        import pyarrow as pa

        for name, parquet, table, parts in self._inputs:
            if table is not None:
                t = table if columns is None else table.select(
                    [c for c in table.column_names if c in set(columns) | set(T.REQUIRED_COLUMNS)])
                for start in range(0, max(t.num_rows, 1), self.batch_rows):
                    yield t.slice(start, self.batch_rows)
                continue
            pf = _open_parquet(parquet, name, self.keep_dictionaries)
            meta = pf.schema_arrow.metadata
            names = pf.schema_arrow.names
            cols = None if columns is None else [c for c in names if c in set(columns) | set(T.REQUIRED_COLUMNS)]
            try:
                for batch in pf.iter_batches(batch_size=self.batch_rows, columns=cols):
                    t = check_text(with_partitions(pa.Table.from_batches([batch]), parts), name)
                    if meta:
                        t = t.replace_schema_metadata(meta)
                    yield T.normalize(t, origin=name, keep_dictionaries=self.keep_dictionaries)
                if pf.metadata.num_rows == 0:
                    empty = pf.schema_arrow.empty_table()
                    empty = with_partitions(empty if cols is None else empty.select(cols), parts)
                    yield T.normalize(empty, origin=name)
            except (pa.ArrowInvalid, OSError) as exc:
                raise MlcycleError(f"{name}: not a readable Parquet file ({_first_line(exc)})",
                                   hint="the file may be truncated or still being written") from None
            finally:
                pf.close()


def scan(paths: Sequence[str | os.PathLike | None] | str | os.PathLike | None = None, *,
         batch_rows: int = 65536, keep_dictionaries: bool = False, allow_empty: bool = False) -> TableScan:
    """Stream label tables (see ``TableScan``); no paths means standard input."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    return TableScan(paths, batch_rows=batch_rows, keep_dictionaries=keep_dictionaries, allow_empty=allow_empty)


def _starts_with(path: str | os.PathLike, magic: bytes) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(len(magic)) == magic
    except OSError:
        return False  # read_table says what is wrong


def _open_parquet(path: str, name: str, keep_dictionaries: bool = False):
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        if not keep_dictionaries:
            return pq.ParquetFile(path, pre_buffer=False)
        schema = pq.ParquetFile(path).schema_arrow
        # strings come as dictionaries: Parquet stores them so, and codes are what is counted
        strings = [f.name for f in schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]
        # pre_buffer=False: reading column by column keeps less in memory and costs less CPU
        return pq.ParquetFile(path, read_dictionary=strings, pre_buffer=False)
    except (pa.ArrowInvalid, OSError) as exc:
        raise MlcycleError(f"{name}: not a readable Parquet file ({_first_line(exc)})",
                           hint="the file may be truncated or still being written") from None


def concat(tables: Sequence["pa.Table"]) -> "pa.Table":
    import pyarrow as pa

    meta = T.merge_metadata(*(T.get_metadata(t) for t in tables))
    stripped = [t.replace_schema_metadata(None) for t in tables]
    try:
        out = pa.concat_tables(stripped, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise MlcycleError(f"cannot combine the inputs: {str(exc).splitlines()[0]}",
                           hint="an attribute column has different types in different inputs") from None
    out = T.normalize(out, origin="<inputs>")
    return T.with_metadata(out, meta)


def decode(data: bytes, name: str = "<stdin>") -> "pa.Table":
    kind = sniff(data)
    if kind == "parquet":
        return _read_parquet(data, name)
    if kind == "arrow":
        return _read_arrow(data, name)
    if kind == "jsonl":
        from mlcycle.jsonl import read_jsonl

        return read_jsonl(data, name)
    return _read_csv(data, name)


def _read_parquet(data: bytes, name: str) -> "pa.Table":
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        # ParquetFile.read, not pq.read_table: the latter imports pyarrow.dataset and,
        # through it, pandas (~0.5 s of start-up on every command that reads Parquet)
        return pq.ParquetFile(pa.BufferReader(data)).read()
    except (pa.ArrowInvalid, OSError) as exc:
        raise MlcycleError(f"{name}: not a readable Parquet file ({_first_line(exc)})",
                           hint="the file may be truncated or still being written") from None


def _read_arrow(data: bytes, name: str) -> "pa.Table":
    import pyarrow as pa

    try:
        if data.startswith(_ARROW_FILE_MAGIC):
            return pa.ipc.open_file(pa.BufferReader(data)).read_all()
        source = pa.BufferReader(data)
        tables = [pa.ipc.open_stream(source).read_all()]
        # `cat a.arrow b.arrow`: another stream may follow the end-of-stream marker
        while source.tell() < len(data) and data[source.tell():].strip(b"\0"):
            tables.append(pa.ipc.open_stream(source).read_all())
        if len(tables) == 1:
            return tables[0]
        return concat([T.normalize(t, origin=name) for t in tables])
    except (pa.ArrowInvalid, OSError) as exc:
        raise MlcycleError(f"{name}: not a readable Arrow IPC stream ({_first_line(exc)})",
                           hint="the stream may be truncated") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


# CSV ------------------------------------------------------------------------------

_CSV_BBOX = ("bbox_x", "bbox_y", "bbox_w", "bbox_h")


def _read_csv(data: bytes, name: str) -> "pa.Table":
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pcsv

    types = {n: t for n, t in T.core_types().items() if n not in (T.BBOX,)}
    types.update({c: pa.float64() for c in _CSV_BBOX})
    try:
        table = pcsv.read_csv(pa.BufferReader(data), convert_options=pcsv.ConvertOptions(
            column_types={k: v for k, v in types.items()}, strings_can_be_null=True,
            null_values=[""], quoted_strings_can_be_null=False))
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise MlcycleError(f"{name}: not a readable label table CSV ({_first_line(exc)})") from None
    from mlcycle.csvsafe import restore_table

    table = restore_table(table)  # cells mlcycle guarded against formula injection
    if all(c in table.column_names for c in _CSV_BBOX):
        boxes = np.stack([table.column(c).to_numpy(zero_copy_only=False).astype(float) for c in _CSV_BBOX], axis=1)
        idx = table.column_names.index("bbox_x")
        table = table.drop_columns(list(_CSV_BBOX)).add_column(idx, T.BBOX, T.bbox_array(boxes))
    return table


# --------------------------------------------------------------------------- output


def output_encoding(output: str | os.PathLike | None, encoding: str | None = None) -> str:
    """The output's ending, else ``encoding``, else MLCYCLE_FORMAT, else jsonl."""
    if output is not None and str(output) != "-":
        ending = Path(str(output)).suffix.lower()
        if ending in _ENDINGS:
            return _ENDINGS[ending]
    for candidate, option in ((encoding, "encoding"), (os.environ.get("MLCYCLE_FORMAT"), None)):
        if candidate:
            c = candidate.lower()
            if c not in ENCODINGS:
                where = "" if option else "MLCYCLE_FORMAT: "
                raise OptionError(option, f"{where}unknown table encoding '{candidate}'",
                                  hint="choose one of " + ", ".join(ENCODINGS))
            return c
    return "jsonl"


def check_binary_to_terminal(output, encoding: str) -> None:
    if is_stdout(output) and encoding in BINARY_ENCODINGS and sys.stdout.isatty():
        raise OptionError(None, f"refusing to write binary {encoding} to a terminal",
                          hint="use -o FILE.parquet, or pipe the output into another command")


def write_table(table: "pa.Table", output: str | os.PathLike | None = None, encoding: str | None = None) -> None:
    """Write a label table to ``output`` (stdout for ``-``/None) in the chosen encoding."""
    encoding = output_encoding(output, encoding)
    check_binary_to_terminal(output, encoding)
    table = _provenance_stamp(table)
    data = encode(table, encoding)
    with atomic_output(output, "wb") as fh:
        fh.write(data)


def encode(table: "pa.Table", encoding: str) -> bytes:
    if encoding == "parquet":
        return _encode_parquet(table)
    if encoding == "arrow":
        return _encode_arrow(table)
    if encoding == "csv":
        return _encode_csv(table)
    return encode_jsonl(table)


def _encode_parquet(table: "pa.Table") -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd", use_dictionary=True)
    return sink.getvalue().to_pybytes()


def _encode_arrow(table: "pa.Table") -> bytes:
    import pyarrow as pa

    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def _encode_csv(table: "pa.Table") -> bytes:
    """Lossy convenience: bbox becomes bbox_x/y/w/h, nested columns become JSON text;
    text cells a spreadsheet would run as formulas are guarded (mlcycle.csvsafe)."""
    import numpy as np
    import orjson
    import pyarrow as pa
    import pyarrow.csv as pcsv

    cols = {}
    for name in table.column_names:
        col = table.column(name)
        if name == T.BBOX:
            boxes = T.bboxes(table)
            for i, c in enumerate(_CSV_BBOX):
                cols[c] = pa.array(boxes[:, i], mask=np.isnan(boxes[:, i]))
        elif pa.types.is_nested(col.type):
            cols[name] = pa.array([None if v is None else orjson.dumps(v).decode() for v in col.to_pylist()], type=pa.string())
        else:
            cols[name] = col
    from mlcycle.csvsafe import neutralize_table

    sink = pa.BufferOutputStream()
    pcsv.write_csv(neutralize_table(pa.table(cols)), sink)  # no formulas for spreadsheets
    return sink.getvalue().to_pybytes()


# --------------------------------------------------------------------------- provenance
# mlcycle.provenance owns the history format; io only reports what it reads and stamps
# what write_table writes. Both are no-ops unless a command opened provenance.context.

def _provenance_note(name: str, **what) -> None:
    from mlcycle import provenance

    if provenance.active():
        provenance.note_input(name, **what)


def _provenance_stamp(table: "pa.Table") -> "pa.Table":
    from mlcycle import provenance

    return provenance.stamp(table) if provenance.active() else table
