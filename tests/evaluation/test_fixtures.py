"""Stated and computed values of ../shared/external (EXPECTED.json), through mlcycle's readers."""

from __future__ import annotations

import pytest

from mlcycle import io
from mlcycle.evaluation import evaluate
from mlcycle.formats import ReadOptions, coco, coco_results

CASES = [
    "coco_val2014_100_bbox",
    "coco_val2014_100_segm",
    "coco_val2014_100_bbox_noCrowd_bboxArea",
    "faster_small_bbox",
    "faster_small_segm",
]


def _load(external, fx):
    gt = external / fx["gt"]
    dt = external / fx["dt"].split(" ")[0]
    return io.concat([coco.read(gt, ReadOptions()), coco_results.read(dt, coco_results.ReadOptions(images=gt))])


@pytest.mark.parametrize("key", CASES)
def test_equals_pycocotools_stats(external, expected, key):
    fx = expected["fixtures"][key]
    doc = evaluate(_load(external, fx), iou_type=fx["iouType"]).summary
    assert list(doc["metrics"].values()) == fx["computed_pycocotools"]


@pytest.mark.parametrize("key", ["coco_val2014_100_bbox", "coco_val2014_100_segm", "coco_val2014_100_bbox_noCrowd_bboxArea"])
def test_matches_stated_values(external, expected, key):
    fx = expected["fixtures"][key]
    doc = evaluate(_load(external, fx), iou_type=fx["iouType"]).summary
    got = list(doc["metrics"].values())
    for stated in fx["stated"]:
        places = 3 if "3 decimals" in stated["source"] or "type=" in stated["source"] else 6
        tol = 0.5 * 10 ** -places + 1e-12
        if "places=10" in stated["source"]:
            tol = 1e-10
        assert got == pytest.approx(stated["values"], abs=tol), stated["source"]


def test_toyexample_gt_id_zero_is_matched(external, expected):
    """toy_example_coco.JSON has an annotation with id 0: pycocotools never counts its
    match; mlcycle matches by row and gives the numbers pycocotools gives with ids +1."""
    fx = expected["fixtures"]["toyexample_cat_bbox"]
    doc = evaluate(_load(external, fx)).summary
    m = doc["metrics"]
    assert m["AP"] == 0.5979231494578029
    assert m["AP50"] == 0.8902640264026401
    assert m["AP75"] == 0.5092409240924093
    assert m["AR_100"] == 0.6583333333333334
    assert m["AP"] != fx["computed_pycocotools"][0]


def test_per_class_ap_equals_pycocotools(external, expected):
    import contextlib
    import io as _io

    import numpy as np
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    fx = expected["fixtures"]["coco_val2014_100_bbox"]
    doc = evaluate(_load(external, fx)).summary
    with contextlib.redirect_stdout(_io.StringIO()):
        cg = COCO(str(external / fx["gt"]))
        E = COCOeval(cg, cg.loadRes(str(external / fx["dt"])), "bbox")
        E.evaluate()
        E.accumulate()
    names = {c["id"]: c["name"] for c in cg.dataset["categories"]}
    ours = {row["label"]: row["AP"] for row in doc["per_class"]}
    for k, cid in enumerate(E.params.catIds):
        s = E.eval["precision"][:, :, k, 0, -1]
        want = float(np.mean(s[s > -1])) if (s > -1).any() else -1.0
        assert ours[names[cid]] == want
