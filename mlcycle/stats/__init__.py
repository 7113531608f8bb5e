"""Dataset statistics: one pass over a label table in record batches, vectorised.

``describe(data, by=..., compare=..., sources=...)`` returns a ``Result`` whose summary
is the *stats document* (plain JSON, documented key by key in docs/stats.md): counts,
boxes, per-sample numbers, attributes, balance, the ``eval``/``hard`` columns, groups
and a side-by-side comparison. The CLI prints it as JSON or renders it as rich tables
(``mlcycle.cli.views.stats``); ``plots.write`` draws it as PNG charts.

How it stays fast and small:

- Input is consumed batch by batch (``mlcycle.io.scan`` streams Parquet files row group
  by row group, keeping strings dictionary-encoded); nothing keeps per-row state.
- Per-class, per-split, per-source and per-bucket numbers are ``numpy.bincount`` over
  small integer codes (global code books of classes, splits, sources and samples).
- Per-sample numbers are bincounts over global sample codes; distinct attribute values
  and hard-example reasons are partial ``group_by`` tables merged as they grow. Memory
  is bounded by the number of groups (samples, classes, distinct values), not rows.
- Quantiles are exact up to ``sketches.EXACT_QUANTILE_LIMIT`` values per statistic;
  beyond that a logarithmic sketch keeps them within 0.5 % relative error (min, max,
  mean stay exact).

Modules: ``accumulate`` (the pass and the accumulators), ``counts``, ``boxes``,
``attributes``, ``outcomes`` (evaluate / mine-hard columns), ``codes`` (code books),
``sketches`` (quantiles, mergers), ``document`` (the document, comparison), ``plots``.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Iterator, Sequence, Union

from mlcycle import reporting
from mlcycle import table as T
from mlcycle.errors import OptionError, printable
from mlcycle.results import Result
from mlcycle.stats.accumulate import check_group_columns, compute
from mlcycle.stats.document import STATS_VERSION, js_distance
from mlcycle.stats.sketches import Quantiles

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa

    from mlcycle.io import TableScan

__all__ = ["describe", "compute", "js_distance", "Quantiles", "STATS_VERSION", "BATCH_ROWS"]

BATCH_ROWS = 1 << 19
# Columns no statistic reads: not even decoded when streaming Parquet.
UNUSED_COLUMNS = (T.SEGMENTATION, T.LABEL_ID, T.CATEGORY_ID, T.IMAGE_ID, T.SCORE, T.EVAL_ID, T.EVAL_IOU)

Data = Union["pa.Table", "TableScan", str, os.PathLike, Sequence[Union[str, os.PathLike, None]], None]


def describe(data: Data = None, *, by: Sequence[str] | str = (), compare: str | None = None,
             sources: Sequence[str] | str = ()) -> Result:
    """Describe a label table: counts, box sizes, labels per sample, attributes, balance.

    ``data``: a ``pyarrow.Table``, an ``mlcycle.io.TableScan``, or paths (one or many;
    ``None`` or ``"-"`` is standard input).
    ``by``: columns whose value combinations each get a full sub-document (``groups``).
    ``compare``: a column whose values are compared side by side, with Jensen–Shannon
    distances and the largest differences.
    ``sources``: keep only rows of these sources.

    Returns a ``Result`` with ``table=None``, the stats document as ``summary`` and the
    warnings raised (a source filter that matched nothing). Raises ``OptionError`` for
    an unknown or unsuitable ``by``/``compare`` column, ``MlcycleError`` for unreadable
    input.
    """
    by = (by,) if isinstance(by, str) else tuple(by)
    sources = (sources,) if isinstance(sources, str) else tuple(sources)
    with reporting.collect() as seen:
        doc = compute(_batches(data, by, compare), by=by, compare=compare, sources=sources)
        report_notes(doc, by, compare, sources)
    return Result(None, doc, tuple(seen.warnings))


def report_notes(doc: dict[str, Any], by: Sequence[str], compare: str | None, sources: Sequence[str]) -> None:
    """The warning or note a document calls for (no rows of the sources asked for; several
    sources counted together): ``describe``'s and a sharded run's (``mlcycle.scale``)."""
    present = ", ".join(printable(s) for s in doc["input"]["sources"])
    if doc["input"]["source_filter"] and not doc["input"]["rows_used"]:
        reporting.warn("no rows of source " + ", ".join(printable(s) for s in sources) + "; sources present: "
                       + present)
    elif len(doc["input"]["sources"]) > 1 and not sources and compare != T.SOURCE and T.SOURCE not in by:
        reporting.info(f"note: the table holds several sources ({present}); the totals count them together, "
                       "by_source and the charts count each apart. Keep one source, or compare by source.")


def _batches(data: Data, by: Sequence[str], compare: str | None) -> Iterator["pa.Table"]:
    """Checked label-table batches of ``data``, without the columns no statistic reads
    (the ``by``/``compare`` columns are read whatever they are). Each input's columns
    are checked against ``by``/``compare`` first, so the hint lists all of them."""
    import pyarrow as pa

    from mlcycle import io

    def used(names: Sequence[str]) -> list[str]:
        return [n for n in names if n not in UNUSED_COLUMNS or n in by or n == compare]

    if isinstance(data, pa.Table):
        table = T.normalize(data, origin="<table>", keep_dictionaries=True)
        check_group_columns(table.schema, by, compare)
        table = table.select(used(table.column_names))
        for start in range(0, max(table.num_rows, 1), BATCH_ROWS):
            yield table.slice(start, BATCH_ROWS)
        return
    if isinstance(data, io.TableScan):
        check_group_columns(data.schema, by, compare)
        yield from data.batches(columns=used(data.column_names))
        return
    paths = [data] if data is None or isinstance(data, (str, os.PathLike)) else list(data) or [None]
    if sum(1 for p in paths if p is None or str(p) == "-") > 1:
        raise OptionError(None, "standard input ('-') given more than once")
    # One scan per input rather than one over all: a single scan unifies the inputs'
    # schemas and refuses an attribute column whose type differs between inputs, which
    # stats summarises as text instead. Inputs are opened one after the other.
    for path in paths:
        scan = io.scan([path], batch_rows=BATCH_ROWS, keep_dictionaries=True)
        check_group_columns(scan.schema, by, compare)
        yield from scan.batches(columns=used(scan.column_names))
