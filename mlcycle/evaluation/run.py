"""Which evaluation a table gets: COCO, Pascal VOC or classification.

``run(table, opts)`` checks the options, picks the prediction source, and sends the
table to the engine that fits it: labels without boxes or masks are image-level classes
(``classification``); ``method`` voc/voc07 is Pascal VOC AP (``voc``); everything else is
COCO (``prepare`` + ``coco`` through ``report.coco``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlcycle import table as T
from mlcycle.errors import MlcycleError
from mlcycle.evaluation import report
from mlcycle.evaluation.prepare import Options, check_options, choose_pred_source, has_boxes, prepare

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa


def run(table: "pa.Table", opts: Options) -> tuple["pa.Table | None", dict]:
    """Evaluate the predictions in ``table`` against its ground truth.

    Returns (the table with eval/eval_id/eval_iou, or None without ``opts.annotate``;
    the metrics document). The document's ``warnings`` hold what went wrong on the way.
    """
    check_options(opts)
    from mlcycle.evaluation import compare, operating_points

    operating_points.check(opts.beta, opts.at_recall, opts.at_precision)
    for name in ("bootstrap", "tide"):
        if getattr(opts, name) and opts.method != "coco":
            from mlcycle.errors import OptionError

            raise OptionError(name, f"works with the COCO method only, not {opts.method!r}")
    if opts.bootstrap or opts.baseline is not None:
        compare.check_options(opts, compare.prediction_sources(table, opts.gt_source) or ["(none)"])
    if opts.pred_source is None:
        several = compare.prediction_sources(table, opts.gt_source)
        if len(several) > 1:
            return compare.run_many(table, opts, several)
    pred_source = choose_pred_source(table, opts.gt_source, opts.pred_source, opts.origin)
    empty = pred_source not in T.sources(table)
    if empty and not has_boxes(table, opts.gt_source, opts.gt_source):
        raise MlcycleError(f"{opts.origin}: no predictions: every row has source '{opts.gt_source}'",
                           hint="pass the predictions too: rows of another source, such as 'pred'")
    if not has_boxes(table, opts.gt_source, pred_source):
        return report.classification(table, opts, pred_source)
    if opts.method in ("voc", "voc07"):
        return report.voc(table, opts, pred_source)
    prep = prepare(table, opts, pred_source)
    if empty:
        prep.warnings.insert(0, f"no predictions (no rows of a source other than '{opts.gt_source}'): "
                                "every AP and AR is 0")
    if len(prep.gt) == 0 and not prep.counts.get("gt_crowd"):
        prep.warnings.append("the ground truth has no labels: every metric is -1 (undefined)")
    out, doc = report.coco(table, prep, opts)
    if opts.tide:
        from mlcycle.evaluation import tide

        doc["tide"] = tide.compute(prep, opts)
    if opts.bootstrap:
        from mlcycle.evaluation import compare

        doc["bootstrap"] = compare.single_bootstrap(prep, opts, doc)
    return out, doc
