"""Streaming COCO evaluation on one machine: memory bounded by a bucket, not the dataset.

``evaluate_files(paths, opts)`` makes three passes:

1. a scan of the ``sample_id``/``source``/``label`` columns counts the rows (which sets
   the number of buckets: about ``rows_per_bucket`` rows each) and collects the ground
   truth's classes;
2. a scan of every column writes each batch's rows into bucket files (Arrow IPC, in a
   temporary folder) by ``mlcycle.shards.bucket_of(sample_id)``, with each row's number
   in the whole input — a sample's rows all land in one bucket, in input order;
3. per bucket: read it, ``partial.compute`` (prepare + match, keeping only what
   accumulation needs), delete it; then ``partial.merge`` and ``partial.finish``.

The metrics document is the one ``evaluate`` gives for the whole table in memory, bit
for bit (same keys, same values, same warnings). Peak memory is one bucket's evaluation
plus the kept detections' compact arrays (about 40 bytes each) and the per-sample keys;
the temporary folder holds a copy of the input (uncompressed Arrow) until each bucket is
evaluated. Options partial.py cannot merge (``by``, ``bootstrap``, ``baseline``, ``tide``,
``conf="best-f1"``, VOC, classification) are refused. With ``output``, the per-label
table is written bucket by bucket (``partial.compute_annotated``): the whole run's rows
and values, grouped by bucket.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Sequence

from mlcycle import table as T
from mlcycle.errors import MlcycleError, OptionError, printable
from mlcycle.evaluation.prepare import Options

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa

ROWS_PER_BUCKET = 2_000_000
BATCH_ROWS = 262_144
MAX_BUCKETS = 4096
ROW = "__mlcycle_row"


def bucket_count(total_rows: int, rows_per_bucket: int = ROWS_PER_BUCKET) -> int:
    """The number of buckets for ``total_rows`` rows (at least 1, at most MAX_BUCKETS)."""
    per = max(1, int(rows_per_bucket))
    return max(1, min(MAX_BUCKETS, -(-int(total_rows) // per)))


def evaluate_files(paths: "Sequence[str | os.PathLike | None] | str | os.PathLike | None", opts: Options, *,
                   buckets: int | None = None, rows_per_bucket: int = ROWS_PER_BUCKET,
                   batch_rows: int = BATCH_ROWS, tmp_dir: str | os.PathLike | None = None,
                   allow_empty: bool = False, output: str | os.PathLike | None = None,
                   encoding: str | None = None) -> dict:
    """The metrics document of the label tables at ``paths`` (concatenated, as
    ``io.read_tables`` would), evaluated bucket by bucket (see the module docstring).

    ``buckets``: how many (default: from the row count, ``rows_per_bucket`` each);
    ``tmp_dir``: where the bucket files go (default: the system's temporary folder);
    ``output`` (``"-"``: standard output): write the per-label table there, bucket by
    bucket (``encoding`` as for ``io.write_table``). Its rows are the input's with
    ``eval``/``eval_id``/``eval_iou`` exactly as in memory, grouped by bucket (all of
    a sample's rows are in one bucket), in input order within a bucket. The table
    is complete (and renamed into place) only after the metrics are computed."""
    import tempfile

    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    from mlcycle import io
    from mlcycle.evaluation import partial as P
    from mlcycle.shards import bucket_of

    P._check(opts)
    if buckets is not None and int(buckets) < 1:
        raise OptionError("buckets", f"expected a positive number of buckets, got {buckets}")
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    scan = io.scan(paths, batch_rows=batch_rows, allow_empty=allow_empty)

    # ---- pass 1: rows, classes, metadata
    total = 0
    gt_classes: set[str] = set()
    for batch in scan.batches(columns=[T.LABEL]):
        total += batch.num_rows
        if T.LABEL in batch.column_names and batch.num_rows:
            gt = pc.equal(batch.column(T.SOURCE), opts.gt_source)
            labels = pc.unique(pc.filter(batch.column(T.LABEL), gt)).drop_null()
            gt_classes.update(labels.to_pylist())
    n = int(buckets) if buckets is not None else bucket_count(total, rows_per_bucket)
    schema = pa.schema([f for f in scan.schema]).append(pa.field(ROW, pa.int64()))

    try:
        tmp = tempfile.TemporaryDirectory(prefix="mlcycle-stream-", dir=tmp_dir)
    except OSError as exc:
        raise MlcycleError(f"cannot make a temporary folder for the buckets in "
                           f"{printable(str(tmp_dir or tempfile.gettempdir()))}: {exc.strerror or exc}",
                           hint="free some space, or set TMPDIR to another folder") from None
    with tmp as folder:
        # ---- pass 2: bucket files
        metas: list[dict] = []
        writers: dict[int, "pa.ipc.RecordBatchFileWriter"] = {}
        sinks = {}
        row = 0
        try:
            for batch in scan.batches():
                meta = T.get_metadata(batch)
                if not metas or metas[-1] != meta:
                    metas.append(meta)
                k = batch.num_rows
                if not k:
                    continue
                batch = _conform(batch, scan.schema).append_column(ROW, pa.array(np.arange(row, row + k)))
                row += k
                b = bucket_of(batch.column(T.SAMPLE_ID), n)
                order = np.argsort(b, kind="stable")
                counts = np.bincount(b, minlength=n)
                taken = batch.take(order) if n > 1 else batch
                start = 0
                for i in np.flatnonzero(counts).tolist():
                    c = int(counts[i])
                    if i not in writers:
                        sinks[i] = pa.OSFile(os.path.join(folder, f"bucket-{i:05d}.arrow"), "wb")
                        writers[i] = pa.ipc.new_file(sinks[i], schema)
                    writers[i].write_table(taken.slice(start, c))
                    start += c
        except OSError as exc:
            raise MlcycleError(f"cannot write the temporary bucket files in {printable(folder)}: "
                               f"{exc.strerror or exc}",
                               hint="free some space, or set TMPDIR to another folder") from None
        finally:
            for i in list(writers):
                try:
                    writers[i].close()
                    sinks[i].close()
                except (OSError, pa.ArrowException):
                    pass
        metadata = T.merge_metadata(*metas) if metas else {}

        # ---- pass 3: a partial per bucket
        classes = set(gt_classes)
        for c in (metadata.get("coco", {}) or {}).get("categories", []) or []:
            if isinstance(c, dict) and isinstance(c.get("name"), str):
                classes.add(c["name"])
        done: dict = {}

        def evaluated():
            """Per bucket: a partial (and, when writing, its annotated rows); then the merge."""
            parts = []
            for i in sorted(writers):
                path = os.path.join(folder, f"bucket-{i:05d}.arrow")
                try:
                    with pa.memory_map(path) as source:
                        table = pa.ipc.open_file(source).read_all()
                except (OSError, pa.ArrowException) as exc:
                    raise MlcycleError(f"cannot read back the temporary bucket file {printable(path)}: {exc}") \
                        from None
                rows = table.column(ROW).to_numpy()
                table = T.with_metadata(table.drop_columns([ROW]), metadata)
                if output is not None:
                    part, out = P.compute_annotated(table, opts, classes, row_numbers=rows)
                    yield out.replace_schema_metadata(None)
                else:
                    part = P.compute(table, opts, row_numbers=rows, classes=classes)
                parts.append(part)
                del table, rows
                try:
                    os.unlink(path)
                except OSError:
                    pass
            if not parts:   # no rows at all
                parts.append(P.compute(T.with_metadata(scan.empty(), metadata), opts))
            # still inside the table writer: a failure here leaves no table behind
            done["doc"] = P.finish(P.merge(parts), opts)

        if output is None:
            for _ in evaluated():
                pass
        else:
            from mlcycle.curate._stream import write_batches

            fields = [f for f in scan.schema if f.name not in (T.EVAL, T.EVAL_ID, T.EVAL_IOU)]
            out_schema = pa.schema(fields + [pa.field(T.EVAL, pa.string()), pa.field(T.EVAL_ID, pa.int64()),
                                             pa.field(T.EVAL_IOU, pa.float64())])
            write_batches(evaluated(), out_schema, output, encoding, metadata)
    return done["doc"]


def _conform(batch: "pa.Table", schema: "pa.Schema") -> "pa.Table":
    """``batch`` with the unified schema's columns in its order (missing ones null),
    as concatenating the inputs gives them; no metadata."""
    import pyarrow as pa

    cols = []
    for f in schema:
        if f.name in batch.column_names:
            c = batch.column(f.name)
            if c.type != f.type:
                try:
                    c = c.cast(f.type)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
                    raise MlcycleError(f"cannot combine the inputs: column {f.name!r}: {str(exc).splitlines()[0]}",
                                       hint="an attribute column has different types in different inputs") from None
            cols.append(c)
        else:
            cols.append(pa.nulls(batch.num_rows, f.type))
    return pa.Table.from_arrays(cols, schema=pa.schema(list(schema)))
