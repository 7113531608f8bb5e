"""Writing a label table batch by batch (the streaming side of ``mlcycle.io``).

``write_batches`` writes an iterator of tables to ``-o``/stdout in the chosen encoding
without holding the whole table: Parquet through one ``ParquetWriter`` (one row group
per batch), Arrow IPC as a stream, JSON Lines line by line. CSV has one header, so it is
collected first (it is a lossy convenience anyway). The file is atomic as with
``io.write_table``: a failure half-way leaves no output file.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Mapping

from mlcycle import io
from mlcycle import table as T

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa


def conform(batch: "pa.Table", schema: "pa.Schema") -> "pa.Table":
    """``batch`` with the columns of ``schema`` in its order and types (missing -> null)."""
    import pyarrow as pa

    if batch.schema.remove_metadata().equals(schema.remove_metadata()):
        return batch.replace_schema_metadata(schema.metadata)
    cols = []
    for field in schema:
        if field.name in batch.column_names:
            col = batch.column(field.name)
            if col.type != field.type:
                col = col.cast(field.type)
            cols.append(col)
        else:
            cols.append(pa.nulls(batch.num_rows, type=field.type))
    return pa.Table.from_arrays(cols, schema=schema)


def _prefetched(batches: Iterable["pa.Table"], depth: int = 2) -> Iterator["pa.Table"]:
    """``batches`` produced in a background thread, up to ``depth`` ahead: Arrow releases
    the GIL while it reads, computes and writes, so on two cores the next batch is read
    and transformed while this one is encoded. Errors of the producer are raised here,
    in order; leaving early (an error while writing) stops the producer."""
    import contextvars
    import queue
    import threading

    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for b in batches:
                if not put((None, b)):
                    return
            put((None, done))
        except BaseException as exc:  # raised again in the consumer
            put((exc, None))

    # the same context: warnings reach the caller's reporter, provenance stays active
    thread = threading.Thread(target=contextvars.copy_context().run, args=(produce,), daemon=True,
                              name="mlcycle-batches")
    thread.start()
    try:
        while True:
            exc, item = q.get()
            if exc is not None:
                raise exc
            if item is done:
                return
            yield item
    finally:
        stop.set()
        thread.join()


def write_batches(batches: Iterable["pa.Table"], schema: "pa.Schema", output: str | os.PathLike | None = None,
                  encoding: str | None = None, metadata: Mapping[str, Any] | None = None,
                  prefetch: bool = False) -> int:
    """Write ``batches`` (conformed to ``schema``) and return the number of rows written.
    With ``prefetch`` the batches are produced in a background thread (see
    ``_prefetched``; up to two more batches in memory)."""
    import pyarrow as pa

    enc = io.output_encoding(output, encoding)
    io.check_binary_to_terminal(output, enc)
    if metadata is not None:
        schema = T.with_metadata(schema.empty_table(), metadata).schema
    from mlcycle import provenance

    if provenance.active():  # the history io.write_table would add
        schema = provenance.stamp(schema.empty_table()).schema
    rows = 0
    if enc == "csv":
        tables = [conform(b, schema) for b in batches]
        table = pa.concat_tables(tables) if tables else schema.empty_table()
        io.write_table(table, output, enc)
        return table.num_rows
    if prefetch:  # reading and computing overlap with encoding and writing
        batches = _prefetched(batches)
    with io.atomic_output(output, "wb") as fh:
        if enc == "parquet":
            import pyarrow.parquet as pq

            with pq.ParquetWriter(fh, schema, compression="zstd", use_dictionary=True) as writer:
                for b in batches:
                    if b.num_rows:
                        writer.write_table(conform(b, schema))
                        rows += b.num_rows
        elif enc == "arrow":
            with pa.ipc.new_stream(fh, schema) as writer:
                for b in batches:
                    if b.num_rows:
                        writer.write_table(conform(b, schema))
                        rows += b.num_rows
        else:
            import orjson

            # the header line always: an empty table must not be zero bytes (see io.read_bytes)
            meta = T.get_metadata(schema.empty_table())
            fh.write(orjson.dumps({io.JSONL_META_KEY: meta}, option=orjson.OPT_APPEND_NEWLINE))
            for b in batches:
                if b.num_rows:
                    fh.write(io.encode_jsonl(b.replace_schema_metadata(None)))
                    rows += b.num_rows
    return rows
