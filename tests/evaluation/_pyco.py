"""Helpers shared by the evaluate tests: COCO dicts -> label tables, pycocotools runs."""

from __future__ import annotations

import contextlib
import io as _io
import json
from pathlib import Path

import numpy as np


def write_coco(tmp: Path, gt: dict, dets: list, name: str = "x"):
    """Write COCO files and read them as one label table (gt + pred)."""
    from mlcycle import io
    from mlcycle.formats import ReadOptions, coco, coco_results

    gp = tmp / f"{name}_gt.json"
    dp = tmp / f"{name}_dt.json"
    gp.write_text(json.dumps(gt))
    tables = [coco.read(gp, ReadOptions())]
    if dets:
        dp.write_text(json.dumps(dets))
        tables.append(coco_results.read(dp, coco_results.ReadOptions(images=gp)))
    return io.concat(tables) if len(tables) > 1 else tables[0]


def pycoco(gt: dict, dets: list, iou_type: str = "bbox", max_dets=None, area_rng=None, area_lbl=None):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(_io.StringIO()):
        cg = COCO()
        cg.dataset = json.loads(json.dumps(gt))
        cg.createIndex()
        cd = cg.loadRes(json.loads(json.dumps(dets)))
        E = COCOeval(cg, cd, iou_type)
        if max_dets is not None:
            E.params.maxDets = list(max_dets)
        if area_rng is not None:
            E.params.areaRng = area_rng
            E.params.areaRngLbl = area_lbl
        E.evaluate()
        E.accumulate()
        if max_dets is None or len(max_dets) >= 3:
            E.summarize()
    return E


def engine(table, iou_type="bbox", max_dets=(1, 10, 100), area_ranges=None):
    """Run the engine directly, returning (Result, summary dict)."""
    from mlcycle.evaluation import coco as C
    from mlcycle.evaluation.prepare import Options, choose_pred_source, prepare
    from mlcycle.evaluation.slices import size_ranges

    opts = Options(iou_type=iou_type, max_dets=tuple(max_dets), area_ranges=area_ranges or {})
    prep = prepare(table, opts, choose_pred_source(table, "gt", None))
    ranges = size_ranges(prep, opts)
    params = C.Params(max_dets=list(max_dets), iou_type=iou_type)
    res = C.evaluate(prep.gt, prep.dt, len(prep.samples), len(prep.classes), params, ranges)
    return res, C.summarize(res, list(opts.area_ranges))


def assert_same(E, res, summary=None):
    assert np.array_equal(E.eval["precision"], res.precision)
    assert np.array_equal(E.eval["recall"], res.recall)
    assert np.array_equal(E.eval["scores"], res.scores)
    if summary is not None and hasattr(E, "stats") and len(E.stats):
        assert list(summary.values())[:12] == [float(s) for s in E.stats]
