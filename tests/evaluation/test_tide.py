"""TIDE error breakdown (mlcycle/evaluation/tide.py) against the published tidecv.

tidecv (pip install tidecv, test extra) is run on the same generated boxes. The cases
keep to where both are defined the same way: no crowd regions (tidecv's ignore regions
differ from COCO's crowd), fewer than 100 detections per image (tidecv caps per image,
mlcycle per image and class) and distinct scores.
"""

from __future__ import annotations

import contextlib
import io as _io

import numpy as np
import pytest

import mlcycle
from mlcycle.evaluation import tide as TIDE
from tests.evaluation._pyco import write_coco
from tests.evaluation.test_bootstrap import random_coco

tidecv = pytest.importorskip("tidecv", reason="tidecv is in the test extra (pip install -e .[test])")


def _tidecv(gt: dict, dets: list):
    from tidecv import TIDE as Tide
    from tidecv import Data

    g, p = Data("gt"), Data("pred")
    for im in gt["images"]:
        g.add_image(im["id"], im["file_name"])
    for c in gt["categories"]:
        g.add_class(c["id"], c["name"])
    for a in gt["annotations"]:
        g.add_ground_truth(a["image_id"], a["category_id"], a["bbox"])
    for d in dets:
        p.add_detection(d["image_id"], d["category_id"], d["score"], d["bbox"])
    t = Tide()
    with contextlib.redirect_stdout(_io.StringIO()):
        run = t.evaluate(g, p, mode=Tide.BOX)
        main = {e.short_name: v for e, v in run.fix_main_errors().items()}
        special = {e.short_name: v for e, v in run.fix_special_errors().items()}
    return run.ap, main, special


NAMES = {"cls": "Cls", "loc": "Loc", "both": "Both", "dupe": "Dupe", "bkg": "Bkg", "miss": "Miss"}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_tidecv(tmp_path, seed):
    gt, dets = random_coco(seed, n_img=25, n_cat=4, crowd=0.0, per_img=12)
    table = write_coco(tmp_path, gt, dets["a"])
    doc = mlcycle.evaluate(table, tide=True, annotate=False).summary["tide"]
    ap, main, special = _tidecv(gt, dets["a"])
    assert doc["AP50"] * 100 == pytest.approx(ap, abs=1e-9)
    for ours, theirs in NAMES.items():
        assert doc["main"][ours] * 100 == pytest.approx(main[theirs], abs=1e-9), ours
    assert doc["special"]["false_pos"] * 100 == pytest.approx(special["FalsePos"], abs=1e-9)
    assert doc["special"]["false_neg"] * 100 == pytest.approx(special["FalseNeg"], abs=1e-9)


def test_hand_case_each_error_type(tmp_path):
    """One error of each kind on one class, checked by hand from the paper's definitions."""
    gt = {"images": [{"id": 1, "file_name": "a.jpg", "width": 200, "height": 200},
                     {"id": 2, "file_name": "b.jpg", "width": 200, "height": 200}],
          "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}],
          "annotations": [
              {"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 50, 50], "area": 2500, "iscrowd": 0},
              {"id": 2, "image_id": 1, "category_id": 1, "bbox": [100, 100, 50, 50], "area": 2500, "iscrowd": 0},
              {"id": 3, "image_id": 1, "category_id": 2, "bbox": [0, 100, 50, 50], "area": 2500, "iscrowd": 0},
              {"id": 4, "image_id": 1, "category_id": 1, "bbox": [150, 0, 40, 40], "area": 1600, "iscrowd": 0},
          ]}
    dets = [
        {"image_id": 1, "category_id": 1, "bbox": [0, 0, 50, 50], "score": 0.95},     # tp (gt 1)
        {"image_id": 1, "category_id": 1, "bbox": [1, 1, 50, 50], "score": 0.9},      # dupe of gt 1
        {"image_id": 1, "category_id": 1, "bbox": [100, 100, 25, 50], "score": 0.85}, # loc: IoU .5 ... 0.5 exactly
        {"image_id": 1, "category_id": 1, "bbox": [0, 100, 50, 50], "score": 0.8},    # cls: on the dog
        {"image_id": 1, "category_id": 1, "bbox": [60, 60, 10, 10], "score": 0.7},    # bkg: touches nothing
        {"image_id": 2, "category_id": 2, "bbox": [0, 0, 10, 10], "score": 0.6},      # bkg: image without gt
    ]
    doc = mlcycle.evaluate(write_coco(tmp_path, gt, dets), tide=True, annotate=False).summary["tide"]
    # IoU of [100,100,25,50] with [100,100,50,50] is exactly 0.5: a match at t_f=0.5
    # under COCO's >= rule, so that detection is a true positive, not a loc error
    assert doc["counts"] == {"cls": 1, "loc": 0, "both": 0, "dupe": 1, "bkg": 2, "miss": 1}
    # cat: gt 3 (ids 1, 2, 4); dets by score: tp, dupe, tp, cls, bkg -> P 1, .5, .667
    # dog: 1 gt, its only detection is the cls error's fix or the bkg on image 2
    assert doc["AP50"] == pytest.approx(TIDE.tide_ap(
        np.array([0, 0, 0, 0, 0, 1]), np.array([.95, .9, .85, .8, .7, .6]),
        np.array([1, 0, 1, 0, 0, 0], bool), np.array([3, 1]), np.array([True, True])))
    ap, main, special = _tidecv(gt, dets)
    assert doc["AP50"] * 100 == pytest.approx(ap)
    for ours, theirs in NAMES.items():
        assert doc["main"][ours] * 100 == pytest.approx(main[theirs]), ours
