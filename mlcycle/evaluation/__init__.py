"""Evaluation of predictions against ground truth in one label table.

The entry point is :func:`evaluate` (also ``mlcycle.evaluate``). It returns a
``mlcycle.results.Result``: the table with the per-label columns ``eval``/``eval_id``/
``eval_iou``, the metrics document (docs/evaluate.md) and the warnings.

The package, one concept per module:

- ``prepare``  the options, and a label table turned into the matcher's arrays
- ``masks``    segmentation (polygons, RLE) decoded into pycocotools RLEs
- ``match``    IoU and greedy matching for all image-class groups at once
- ``coco``     COCO parameters, accumulate, summarize (pycocotools-exact)
- ``slices``   size ranges and slices by a column
- ``report``   the metrics document (COCO; VOC and classification wrapped alike) and its JSON
- ``voc``, ``classification``  Pascal VOC AP; image-level classification metrics
- ``gate``     minimum values for metrics (``fail_under``)
- ``run``      which of these a table gets
- ``partial``  mergeable COCO partial results (compute per shard, merge, finish)
- ``stream``   COCO evaluation of files bucket by bucket (bounded memory)
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import TYPE_CHECKING, Iterable, Mapping, Sequence

from mlcycle.evaluation.gate import check_bounds, flat_metrics, metric_names
from mlcycle.evaluation.prepare import IOU_TYPES, METHODS, Options
from mlcycle.evaluation.report import to_json

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa

    from mlcycle.results import Result

__all__ = ["evaluate", "Options", "METHODS", "IOU_TYPES", "check_bounds", "flat_metrics", "metric_names",
           "to_json"]


def evaluate(
    table: "pa.Table | str | os.PathLike | Sequence[str | os.PathLike]",
    *,
    gt_source: str = "gt",
    pred_source: str | None = None,
    iou_type: str = "bbox",
    method: str = "coco",
    iou: float = 0.5,
    max_dets: Iterable[int] = (1, 10, 100),
    area_ranges: Mapping[str, tuple[float, float]] | None = None,
    rel_area_ranges: Mapping[str, tuple[float, float]] | None = None,
    by: Iterable[str] | str = (),
    conf: float | str = 0.0,
    annotate: bool = True,
    fail_under: Mapping[str, float] | None = None,
    origin: str = "<input>",
    baseline: str | None = None,
    bootstrap: int = 0,
    seed: int = 0,
    beta: float = 1.0,
    at_recall: Iterable[float] = (),
    at_precision: Iterable[float] = (),
    tide: bool = False,
    fail_if_worse_than: str | Mapping | None = None,
    tolerance: float = 0.0,
    remap: "Mapping[str, str | None] | str | Iterable[str] | None" = None,
    stream: bool = False,
    buckets: int | None = None,
    output: "str | os.PathLike | None" = None,
    encoding: str | None = None,
) -> "Result":
    """Evaluate the predictions in ``table`` against its ground truth.

    ``table`` holds both sides: rows of source ``gt_source`` are the ground truth, rows
    of ``pred_source`` (default: the one other source) the predictions. Detections
    (boxes, or masks with ``iou_type="segm"``) get COCO metrics equal to pycocotools'
    COCOeval, or Pascal VOC AP with ``method="voc"``/``"voc07"``; labels without boxes
    get classification metrics.

    - ``iou``, ``conf``: the IoU and score thresholds of the per-label columns,
      precision/recall/F1 and the confusion matrix (VOC: the IoU of the AP);
    - ``max_dets``: detections kept per image and class;
    - ``area_ranges`` / ``rel_area_ranges``: extra size ranges ``{name: (lo, hi)}`` in
      px² / as a fraction of the image area (adds ``AP_name``/``AR_name``);
    - ``by``: columns to report metrics per value of;
    - ``annotate``: False skips building the per-label table (``Result.table`` is None);
    - ``fail_under``: ``{metric: minimum}``; the outcome is in
      ``summary["fail_under"]`` (``{"bounds": ..., "failed": [messages]}``);
    - ``origin``: how error messages name the input (e.g. its file names).

    Several prediction sources (and no ``pred_source``): each is evaluated, the document
    holds ``sources: {name: document}`` and ``comparison`` (docs/evaluate-compare.md):
    deltas against ``baseline`` (default: the first source) and, with ``bootstrap`` > 0
    resamples (``seed``), paired bootstrap intervals over images.

    - ``conf="best-f1"`` (or ``"best-fbeta"``): the per-label columns and P/R/F1 use the
      score threshold that maximises F1 (F-beta, ``beta``) over all classes;
    - ``at_recall`` / ``at_precision``: targets for the operating points (the best
      precision at recall >= target, the best recall at precision >= target);
    - ``tide``: the TIDE error breakdown (``summary["tide"]``);
    - ``fail_if_worse_than``: a metrics document (or its path) this run must not be worse
      than by more than ``tolerance``; the outcome is in ``summary["fail_if_worse_than"]``.

    - ``remap``: a class mapping applied to the *predictions* before matching, for a
      model whose classes are named differently from the ground truth's (``{old: new}``,
      ``old: None`` drops; or a YAML file / ``"old=new"`` pairs: ``curate.remap.load_mapping``).

    - ``table`` may also be a path or a list of paths (read and concatenated). With
      ``stream=True`` they are evaluated bucket by bucket in bounded memory
      (``evaluation.stream``; ``buckets``: how many, default from the row count): COCO
      metrics only, the same document bit for bit, no per-label table (``Result.table``
      is None); ``by``, ``bootstrap``, ``baseline``, ``tide``, ``conf="best-f1"``,
      ``remap`` and VOC/classification are refused (docs/evaluate.md). ``output``
      (``"-"``: standard output; ``encoding`` as for ``write_table``) writes the per-label
      table bucket by bucket: the in-memory rows and values, grouped by bucket.

    Raises ``OptionError`` (naming the parameter) for a bad option, ``MlcycleError``
    for a table that cannot be evaluated.
    """
    from mlcycle import reporting
    from mlcycle.evaluation.gate import check_bound_values
    from mlcycle.evaluation.run import run
    from mlcycle.results import Result

    from mlcycle.evaluation import regression
    from mlcycle.evaluation.operating_points import conf_option

    conf_value, conf_auto = conf_option(conf)
    opts = Options(
        gt_source=gt_source, pred_source=pred_source, iou_type=iou_type, method=method, iou=iou,
        max_dets=tuple(max_dets), area_ranges=dict(area_ranges or {}), rel_area_ranges=dict(rel_area_ranges or {}),
        by=(by,) if isinstance(by, str) else tuple(by), conf=conf_value, annotate=annotate, origin=origin,
        baseline=baseline, bootstrap=int(bootstrap), seed=int(seed), beta=float(beta),
        at_recall=tuple(float(x) for x in at_recall), at_precision=tuple(float(x) for x in at_precision),
        conf_auto=conf_auto, tide=bool(tide),
    )
    bounds = check_bound_values(fail_under) if fail_under else None
    reference = None
    if fail_if_worse_than is not None:
        reference = (fail_if_worse_than if isinstance(fail_if_worse_than, Mapping)
                     else regression.load_reference(fail_if_worse_than))
    from mlcycle.errors import OptionError

    is_paths = isinstance(table, (str, os.PathLike)) or (
        isinstance(table, (list, tuple)) and all(isinstance(p, (str, os.PathLike)) for p in table))
    if stream and not is_paths:
        raise OptionError("stream", "streaming evaluates files: pass their paths instead of a table")
    if output is not None and not stream:
        raise OptionError("output", "is written by streaming evaluation only; write Result.table otherwise")
    if stream and remap is not None:
        raise OptionError("remap", "not supported by streaming evaluation",
                          hint="remap the predictions first (mlcycle remap), then evaluate them")
    with reporting.collect() as seen:
        if stream:
            from mlcycle.evaluation.stream import evaluate_files

            out, doc = None, evaluate_files(table, replace(opts, annotate=False), buckets=buckets, output=output,
                                            encoding=encoding)
        else:
            if is_paths:
                from mlcycle import io

                table = io.read_tables([table] if isinstance(table, (str, os.PathLike)) else list(table))
            if remap is not None:
                table = _remap_predictions(table, remap, gt_source)
            out, doc = run(table, opts)
        if bounds is not None:
            if isinstance(doc.get("sources"), dict):
                failed = [f"{s}: {m}" for s, d in doc["sources"].items() for m in check_bounds(d, bounds)]
            else:
                failed = check_bounds(doc, bounds)
            doc["fail_under"] = {"bounds": bounds, "failed": failed}
        if reference is not None:
            doc["fail_if_worse_than"] = regression.compare(doc, reference, tolerance)
        for message in doc.get("warnings", []):
            reporting.warn(message)
    return Result(out, doc, tuple(seen.warnings))


def _remap_predictions(table: "pa.Table", remap, gt_source: str) -> "pa.Table":
    """The prediction rows' classes renamed (or dropped) by the mapping; ground truth as is."""
    from mlcycle import table as T
    from mlcycle.curate.remap import load_mapping, remap_labels
    from mlcycle.errors import OptionError

    import os

    if isinstance(remap, (str, os.PathLike)) and "=" not in str(remap) and not os.path.isfile(remap):
        raise OptionError("remap", f"'{remap}' is neither OLD=NEW pairs nor a mapping file",
                          hint="e.g. car=vehicle,truck=vehicle, or a YAML file of old: new lines")
    try:
        mapping = remap if isinstance(remap, Mapping) else load_mapping(remap)
    except OptionError as exc:
        raise OptionError("remap", exc.raw_message, exc.raw_hint) from None
    preds = [s for s in T.sources(table) if s != gt_source]
    return remap_labels(table, mapping, sources=preds).table if preds else table
