"""Sharded runs on an engine: stats, schema-check and evaluate beyond one process.

The plan is map -> shuffle by sample -> reduce -> merge:

1. **Shards** are Parquet row-group ranges (files of a partitioned dataset folder, or a
   Parquet file), or slices of a table read in this process (JSON Lines, Arrow, CSV,
   standard input), each with its first row's index in the whole input.
2. **Map**: a worker reads its shard (only the columns the command needs) and splits it
   by ``mlcycle.shards.bucket_of(sample_id)`` into ``buckets`` pieces, so every row of a
   sample lands in the same bucket, wherever the input put it (ground truth and
   predictions may be in different files).
3. **Reduce**: a worker gathers one bucket's pieces (in shard order, so rows stay in
   input order) and computes the command's *partial*: ``stats.accumulate``,
   ``schema.checker.partial`` or ``evaluation.partial.compute``.
4. **Merge**: this process merges the partials with the command's ``merge`` and
   finishes the result — the same ``merge`` a one-process run calls on its one partial,
   so a sharded run gives the same document (to the last bit) as one run.

The engine is Dask distributed (docs/scale.md says why): ``engine="dask"`` starts a
local cluster with one worker process per core, ``"dask:N"`` with N workers, and
``"dask:ADDRESS"`` (``tcp://host:8786``) uses a running scheduler. A ``client`` (a
``distributed.Client``) may be passed instead, e.g. to reuse one cluster. Dask is an
optional extra (``mlcycle[dask]``), imported only here.
"""

from __future__ import annotations

import contextlib
import math
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

from mlcycle import reporting
from mlcycle import table as T
from mlcycle.errors import MlcycleError, OptionError, printable

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import pyarrow as pa

    from mlcycle.results import Result

__all__ = ["Engine", "parse_engine", "require", "connect", "plan", "describe", "find_violations", "evaluate",
           "DASK_HINT", "ROW_COLUMN"]

DASK_HINT = "pip install 'mlcycle[dask]'"
# the command line's --engine option (stats, schema-check), declared from this text
ENGINE_METAVAR = "dask[:N|:ADDRESS]"
ENGINE_HELP = ("Run sharded on an engine: 'dask' (a local cluster, one worker process per core), "
               "'dask:N' (N local workers) or 'dask:ADDRESS' (a running Dask scheduler). Same result as "
               "one process; needs mlcycle[dask] (see docs/scale.md).")
ROW_COLUMN = "__mlcycle_row"       # a row's index in the whole input (schema-check's rows)
SHARD_ROWS = 1 << 20               # rows per map task (row groups are never split)
BUCKET_ROWS = 2_000_000            # at most about this many rows per reduce task


@dataclass(frozen=True)
class Engine:
    """Where a sharded run runs: ``kind`` ("dask"), a scheduler ``address`` (None: a
    local cluster) and the local cluster's ``workers`` (None: one per core)."""

    kind: str = "dask"
    address: str | None = None
    workers: int | None = None


def parse_engine(spec: "str | Engine") -> Engine:
    """``dask``, ``dask:N`` (a local cluster of N workers) or ``dask:ADDRESS``."""
    if isinstance(spec, Engine):
        return spec
    text = str(spec).strip()
    kind, _, rest = text.partition(":")
    if kind != "dask":
        raise OptionError("engine", f"unknown engine {printable(text)!r}",
                          hint="dask (a local cluster), dask:N (N local workers) or dask:tcp://HOST:8786")
    if not rest:
        return Engine()
    if rest.isdigit():
        if int(rest) < 1:
            raise OptionError("engine", f"a local cluster needs at least 1 worker, got {rest}")
        return Engine(workers=int(rest))
    return Engine(address=rest)


def require(engine: "str | Engine") -> Engine:
    """The parsed engine, once its package is known to be installed (``OptionError``
    with the pip command otherwise)."""
    eng = parse_engine(engine)
    _import_distributed()
    return eng


def _import_distributed():
    try:
        import distributed
    except ImportError:
        raise OptionError("engine", "the dask engine needs dask.distributed, which is not installed",
                          hint=DASK_HINT) from None
    return distributed


@contextlib.contextmanager
def connect(engine: "str | Engine") -> Iterator[Any]:
    """A ``distributed.Client`` for the engine, closed (with its local cluster) on exit."""
    import logging

    eng = parse_engine(engine)
    distributed = _import_distributed()
    if eng.address is not None:
        try:
            client = distributed.Client(eng.address, timeout="10s")
        except (OSError, TimeoutError) as exc:
            raise MlcycleError(f"cannot reach the Dask scheduler at {printable(eng.address)}: "
                               f"{printable(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)}",
                               hint="start one with 'dask scheduler' and 'dask worker ADDRESS', "
                                    f"or give {_mention()} dask for a local cluster") from None
        with client:
            yield client
        return
    import warnings

    workers = eng.workers or max(1, os.cpu_count() or 1)
    import dask

    # no statistical profiler in the workers (a thread sampling every task's stack: CPU
    # spent for a dashboard nobody looks at); workers inherit this configuration
    with warnings.catch_warnings(), dask.config.set({"distributed.worker.profile.enabled": False}):
        warnings.simplefilter("ignore")  # "port 8787 in use" when another cluster runs: not the user's concern
        cluster = distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                           dashboard_address=None, silence_logs=logging.ERROR)
    with cluster, distributed.Client(cluster) as client:
        yield client


def _mention() -> str:
    from mlcycle.errors import mention

    return mention("engine")


# --------------------------------------------------------------------------- shards

@dataclass
class Shard:
    """Rows of the input one map task reads: a Parquet file's row groups, or a table."""

    name: str
    offset: int                         # index of its first row in the whole input
    rows: int
    path: str | None = None
    row_groups: tuple = ()
    parts: dict = field(default_factory=dict)   # hive partition values
    table: Any = None                   # an in-memory slice (non-Parquet inputs)


def plan(paths: "Sequence[str | os.PathLike | None] | str | os.PathLike | None",
         shard_rows: int = SHARD_ROWS) -> list[Shard]:
    """The shards of the inputs, in input order (row-group ranges of about
    ``shard_rows`` rows; Parquet metadata only, nothing else is read)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mlcycle import io, provenance

    if paths is None or isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    paths = list(paths) or [None]
    if sum(1 for p in paths if p is None or str(p) == "-") > 1:
        raise OptionError(None, "standard input ('-') given more than once")
    files: list[tuple[str, str | None, dict]] = []
    for path in paths:
        if path is not None and str(path) != "-" and os.path.isdir(path):
            files += [(str(f), os.fspath(f), parts) for f, parts in io.dataset_files(path)]
        elif path is not None and str(path) != "-" and _is_parquet(path):
            files.append((io.display_name(path), os.fspath(path), {}))
        else:
            files.append((io.display_name(path), None, {"__read__": path}))
    shards: list[Shard] = []
    offset = 0
    for name, parquet, parts in files:
        if parquet is not None and provenance.active():  # the history records what one run records
            provenance.note_input(name, path=parquet)
        if parquet is None:
            table = io.read_table(parts["__read__"])
            for start in range(0, max(table.num_rows, 1), shard_rows):
                piece = table.slice(start, shard_rows)
                shards.append(Shard(name, offset, piece.num_rows, table=piece))
                offset += piece.num_rows
            continue
        try:
            meta = pq.ParquetFile(parquet).metadata
        except (pa.ArrowInvalid, OSError) as exc:
            raise MlcycleError(f"{name}: not a readable Parquet file ({str(exc).splitlines()[0]})",
                               hint="the file may be truncated or still being written") from None
        group: list[int] = []
        rows = 0
        for rg in range(meta.num_row_groups):
            group.append(rg)
            rows += meta.row_group(rg).num_rows
            if rows >= shard_rows:
                shards.append(Shard(name, offset, rows, path=parquet, row_groups=tuple(group), parts=parts))
                offset += rows
                group, rows = [], 0
        if group or meta.num_row_groups == 0:
            shards.append(Shard(name, offset, rows, path=parquet, row_groups=tuple(group), parts=parts))
            offset += rows
    return shards


def _is_parquet(path) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(4) == b"PAR1"
    except OSError:
        return False


def read_shard(shard: Shard, columns: Sequence[str] | None = None, keep_dictionaries: bool = False,
               with_rows: bool = False) -> "pa.Table":
    """A shard as a checked label table (``columns``: only these, besides the required
    ones; ``with_rows``: plus ``ROW_COLUMN``, each row's index in the whole input)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mlcycle import io

    if shard.table is not None:
        t = shard.table
        if columns is not None:
            keep = set(columns) | set(T.REQUIRED_COLUMNS)
            t = t.select([c for c in t.column_names if c in keep])
    else:
        try:
            pf = pq.ParquetFile(shard.path)
            names = pf.schema_arrow.names
            strings = [f.name for f in pf.schema_arrow if keep_dictionaries
                       and (pa.types.is_string(f.type) or pa.types.is_large_string(f.type))]
            if strings:
                pf = pq.ParquetFile(shard.path, read_dictionary=strings)
            cols = None if columns is None else [c for c in names if c in set(columns) | set(T.REQUIRED_COLUMNS)]
            t = pf.read_row_groups(list(shard.row_groups), columns=cols) if shard.row_groups else \
                pf.schema_arrow.empty_table().select(cols if cols is not None else names)
            meta = pf.schema_arrow.metadata
        except (pa.ArrowInvalid, OSError) as exc:
            raise MlcycleError(f"{shard.name}: not a readable Parquet file (row groups "
                               f"{_ranges(shard.row_groups)}: {str(exc).splitlines()[0]})",
                               hint="the file may be truncated or still being written") from None
        except MemoryError:
            raise MlcycleError(f"{shard.name}: out of memory reading row groups {_ranges(shard.row_groups)}",
                               hint="write the table with smaller row groups") from None
        t = io.check_text(io.with_partitions(t, shard.parts), shard.name)
        if meta:
            t = t.replace_schema_metadata(meta)
        t = T.normalize(t, origin=shard.name, keep_dictionaries=keep_dictionaries)
    if with_rows:
        t = t.append_column(ROW_COLUMN, pa.array(np.arange(shard.offset, shard.offset + t.num_rows, dtype=np.int64)))
    return t


def _ranges(groups: Sequence[int]) -> str:
    return f"{groups[0]}-{groups[-1]}" if groups else "(none)"


def bucket_count(shards: Sequence[Shard], workers: int) -> int:
    """Reduce tasks: at least two per worker, at most about ``BUCKET_ROWS`` rows each."""
    rows = sum(s.rows for s in shards)
    return max(2 * max(workers, 1), math.ceil(rows / BUCKET_ROWS))


def _split(table: "pa.Table", buckets: int, key: str = "sample_id") -> "list[pa.Table]":
    from mlcycle.shards import bucket_of, split_by_bucket

    if key == "sample_id":
        return split_by_bucket(table, buckets)
    import numpy as np
    import pyarrow.compute as pc

    # every sample sharing a basename in one bucket (schema-check's split_overlap: basename)
    base = pc.replace_substring_regex(table.column(T.SAMPLE_ID), r"^.*/", "")
    b = bucket_of(base, buckets)
    order = np.argsort(b, kind="stable")
    counts = np.bincount(b, minlength=buckets)
    taken = table.take(order)
    out, start = [], 0
    for c in counts.tolist():
        out.append(taken.slice(start, c))
        start += c
    return out


def _compact(piece: "pa.Table", limit: int = 1024) -> "pa.Table":
    """A piece's large dictionaries (sample ids) cut down to the values it uses: a piece
    taken from a shard shares the shard's whole dictionary, which would be sent (and
    probed by stats) once per bucket."""
    import numpy as np
    import pyarrow as pa

    for i, field in enumerate(piece.schema):
        if not pa.types.is_dictionary(field.type):
            continue
        col = piece.column(i)
        col = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
        if len(col.dictionary) <= limit:
            continue
        idx = col.indices.to_numpy(zero_copy_only=False) if not col.indices.null_count else None
        if idx is None:
            continue
        used, local = np.unique(idx, return_inverse=True)
        new = pa.DictionaryArray.from_arrays(pa.array(local.astype(np.int32)), col.dictionary.take(pa.array(used)))
        piece = piece.set_column(i, field.name, new)
    return piece


class _Raised:
    """An expected error raised on a worker, carried back as data: ``OptionError`` does
    not survive pickling (its first argument is the parameter), so it is rebuilt here."""

    def __init__(self, exc: MlcycleError) -> None:
        self.cls = type(exc)
        self.option = getattr(exc, "option", None)
        self.message, self.hint, self.exit_code = exc.raw_message, exc.raw_hint, exc.exit_code

    def error(self) -> MlcycleError:
        if issubclass(self.cls, OptionError):
            return self.cls(self.option, self.message, self.hint)
        exc = self.cls(self.message, self.hint)
        exc.exit_code = self.exit_code
        return exc


def _guarded(fn: Callable, *args):
    try:
        return fn(*args)
    except MlcycleError as exc:
        return _Raised(exc)
    except MemoryError:
        return _Raised(MlcycleError("out of memory on a worker",
                                    hint=f"use more workers, or workers with more memory ({_mention()})"))


def _map_task(shard: Shard, columns, keep_dictionaries: bool, with_rows: bool, buckets: int, key: str,
              extra: Callable | None):
    def work():
        with reporting.collect() as seen:
            table = read_shard(shard, columns, keep_dictionaries, with_rows)
            pieces = _split(table, buckets, key)
            if keep_dictionaries:
                pieces = [_compact(p) for p in pieces]
            facts = extra(table) if extra is not None else None
        return pieces, list(seen.warnings), facts

    return _guarded(work)


def _piece(mapped, b: int):
    return mapped if isinstance(mapped, _Raised) else mapped[0][b]


def _facts(mapped):
    return mapped if isinstance(mapped, _Raised) else mapped[2]


def _reduce_task(fn: Callable, pieces: list, facts: list | None, *args):
    for got in [*pieces, *(facts or [])]:
        if isinstance(got, _Raised):  # a map task failed: its error, as it was
            return got

    def work():
        with reporting.collect() as seen:
            ps = [p for p in pieces if p.num_rows] or pieces[:1]
            out = fn(ps, *args) if facts is None else fn(ps, facts, *args)
        return out, list(seen.warnings)

    return _guarded(work)


def run(client, shards: Sequence[Shard], reduce_fn: Callable, *args, columns=None, keep_dictionaries: bool = False,
        with_rows: bool = False, key: str = "sample_id", buckets: int | None = None,
        map_facts: Callable | None = None) -> list:
    """Map every shard, shuffle by sample, reduce each bucket with ``reduce_fn(pieces,
    *args)`` (with ``map_facts``: ``reduce_fn(pieces, facts, *args)``, ``facts`` being
    ``map_facts(shard_table)`` of every shard): the partials, in bucket order. Warnings
    raised on the workers are reported here once each; an error on a worker is raised
    here as it was."""
    workers = len(client.scheduler_info().get("workers", {})) or 1
    nb = buckets or bucket_count(shards, workers)
    mapped = [client.submit(_map_task, s, columns, keep_dictionaries, with_rows, nb, key, map_facts, pure=False)
              for s in shards]
    facts = [client.submit(_facts, m, pure=False) for m in mapped] if map_facts is not None else None
    reduced = [client.submit(_reduce_task, reduce_fn,
                             [client.submit(_piece, m, b, pure=False) for m in mapped], facts, *args, pure=False)
               for b in range(nb)]
    del mapped  # pieces are freed as soon as their bucket is reduced
    results = client.gather(reduced)
    failed = [r for r in results if isinstance(r, _Raised)]
    if failed:  # a map error: the first shard's (every bucket sees the shards in order)
        raise failed[0].error()
    seen: set[str] = set()
    for _, warns in results:
        for w in warns:
            if w not in seen:
                seen.add(w)
                reporting.warn(w)
    return [r for r, _ in results]


# --------------------------------------------------------------------------- commands

def _stats_reduce(pieces: list, by, compare, sources):
    from mlcycle.stats.accumulate import accumulate

    return accumulate(pieces, by=by, compare=compare, sources=sources)


def describe(data=None, *, engine: "str | Engine" = "dask", client=None, by: Sequence[str] | str = (),
             compare: str | None = None, sources: Sequence[str] | str = (), buckets: int | None = None) -> "Result":
    """``mlcycle.stats.describe`` sharded on an engine: the same document."""
    from mlcycle import stats
    from mlcycle.results import Result
    from mlcycle.stats.accumulate import check_group_columns, finish, merge

    by = (by,) if isinstance(by, str) else tuple(by)
    sources = (sources,) if isinstance(sources, str) else tuple(sources)
    with reporting.collect() as seen:
        parse_engine(engine) if client is None else None
        shards = plan(data)
        schema = _schema_of(shards)
        check_group_columns(schema, by, compare)
        columns = [n for n in schema.names if n not in stats.UNUSED_COLUMNS or n in by or n == compare]
        with _client(engine, client) as c:
            parts = run(c, shards, _stats_reduce, by, compare, sources, columns=columns, keep_dictionaries=True,
                        buckets=buckets)
        doc = finish(merge(parts))
        stats.report_notes(doc, by, compare, sources)
    return Result(None, doc, tuple(seen.warnings))


def _schema_reduce(pieces: list, spec):
    from mlcycle import io
    from mlcycle.schema import checker

    table = pieces[0] if len(pieces) == 1 else io.concat(pieces)
    rows = table.column(ROW_COLUMN).to_numpy()
    return checker.partial(table.drop_columns([ROW_COLUMN]), spec, rows)


def find_violations(data, spec, *, engine: "str | Engine" = "dask", client=None, buckets: int | None = None):
    """``mlcycle.schema.find_violations`` sharded on an engine: the same violations, in
    the same order, with rows numbered in the whole input (a ``CheckResult``)."""
    from mlcycle.schema import checker

    parse_engine(engine) if client is None else None
    shards = plan(data)
    key = "basename" if spec.split_overlap and spec.split_overlap_key == "basename" else "sample_id"
    with _client(engine, client) as c:
        parts = run(c, shards, _schema_reduce, spec, with_rows=True, key=key, buckets=buckets)
    return checker.merge(parts, spec)


def _gt_classes(table: "pa.Table", gt_source: str) -> list:
    """The classes of a shard's ground truth (every reduce task needs all of them)."""
    import pyarrow.compute as pc

    if T.LABEL not in table.column_names:
        return []
    gt = pc.equal(table.column(T.SOURCE), gt_source)
    return [v for v in pc.unique(pc.filter(table.column(T.LABEL), gt)).to_pylist() if v is not None]


def _evaluate_reduce(pieces: list, facts: list, opts):
    from mlcycle import io
    from mlcycle.evaluation import partial

    table = pieces[0] if len(pieces) == 1 else io.concat(pieces)
    rows = table.column(ROW_COLUMN).to_numpy()
    classes = sorted({c for shard in facts for c in shard})
    return partial.compute(table.drop_columns([ROW_COLUMN]), opts, row_numbers=rows, classes=classes)


def evaluate(data, opts=None, *, engine: "str | Engine" = "dask", client=None, buckets: int | None = None,
             **options) -> "Result":
    """Evaluate sharded on an engine: ``evaluation.partial.compute`` per bucket of
    samples, ``merge`` and ``finish`` here — the summary of one run (``mlcycle.evaluate(
    table, annotate=False)``), bit for bit. ``opts``: an ``evaluation.prepare.Options``,
    else built from ``options`` (``iou``, ``max_dets``, ``area_ranges``, ...).
    ``evaluation.partial`` says which options a sharded evaluation takes."""
    import functools

    from mlcycle.evaluation import partial
    from mlcycle.evaluation.prepare import Options
    from mlcycle.results import Result

    if opts is None:
        options.setdefault("annotate", False)
        options.setdefault("origin", io_name(data))
        opts = Options(**options)
    with reporting.collect() as seen:
        parse_engine(engine) if client is None else None
        shards = plan(data)
        with _client(engine, client) as c:
            parts = run(c, shards, _evaluate_reduce, opts, with_rows=True, buckets=buckets,
                        map_facts=functools.partial(_gt_classes, gt_source=opts.gt_source))
        doc = partial.finish(partial.merge(parts), opts)
        for message in doc.get("warnings", []):
            reporting.warn(message)
    return Result(None, doc, tuple(seen.warnings))


def io_name(data) -> str:
    """How messages name the inputs."""
    from mlcycle import io

    if data is None or isinstance(data, (str, os.PathLike)):
        return io.display_name(data)
    return ", ".join(io.display_name(p) for p in data) or io.display_name(None)


def _schema_of(shards: Sequence[Shard]) -> "pa.Schema":
    """The inputs' unified schema (Parquet footers; in-memory slices as they are)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mlcycle import io

    schemas, seen = [], set()
    for s in shards:
        if s.table is not None:
            schemas.append(s.table.schema)
        elif s.path not in seen:
            seen.add(s.path)
            empty = io.with_partitions(pq.ParquetFile(s.path).schema_arrow.empty_table(), s.parts)
            schemas.append(T.normalize(empty, origin=s.name).schema)
    try:
        return pa.unify_schemas(schemas, promote_options="permissive") if len(schemas) > 1 else schemas[0]
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise MlcycleError(f"cannot combine the inputs: {str(exc).splitlines()[0]}",
                           hint="an attribute column has different types in different inputs") from None


@contextlib.contextmanager
def _client(engine, client) -> Iterator[Any]:
    if client is not None:
        yield client
        return
    with connect(engine) as c:
        yield c
