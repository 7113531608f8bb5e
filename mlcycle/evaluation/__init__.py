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
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable, Mapping

from mlcycle.evaluation.gate import check_bounds, flat_metrics, metric_names
from mlcycle.evaluation.prepare import IOU_TYPES, METHODS, Options
from mlcycle.evaluation.report import to_json

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa

    from mlcycle.results import Result

__all__ = ["evaluate", "Options", "METHODS", "IOU_TYPES", "check_bounds", "flat_metrics", "metric_names",
           "to_json"]


def evaluate(
    table: "pa.Table",
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
    conf: float = 0.0,
    annotate: bool = True,
    fail_under: Mapping[str, float] | None = None,
    origin: str = "<input>",
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

    Raises ``OptionError`` (naming the parameter) for a bad option, ``MlcycleError``
    for a table that cannot be evaluated.
    """
    from mlcycle import reporting
    from mlcycle.evaluation.gate import check_bound_values
    from mlcycle.evaluation.run import run
    from mlcycle.results import Result

    opts = Options(
        gt_source=gt_source, pred_source=pred_source, iou_type=iou_type, method=method, iou=iou,
        max_dets=tuple(max_dets), area_ranges=dict(area_ranges or {}), rel_area_ranges=dict(rel_area_ranges or {}),
        by=(by,) if isinstance(by, str) else tuple(by), conf=conf, annotate=annotate, origin=origin,
    )
    bounds = check_bound_values(fail_under) if fail_under else None
    with reporting.collect() as seen:
        out, doc = run(table, opts)
        if bounds is not None:
            doc["fail_under"] = {"bounds": bounds, "failed": check_bounds(doc, bounds)}
        for message in doc.get("warnings", []):
            reporting.warn(message)
    return Result(out, doc, tuple(seen.warnings))
