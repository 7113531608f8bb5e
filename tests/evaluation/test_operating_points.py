"""Operating points, --conf best-f1 and calibration (operating_points.py, calibration.py)."""

from __future__ import annotations

import numpy as np
import pytest

import mlcycle
from mlcycle.errors import OptionError
from mlcycle.evaluation import calibration, operating_points as OP
from tests.evaluation._pyco import write_coco
from tests.evaluation.test_bootstrap import random_coco


def test_points_by_hand():
    # scores desc: tp, tp, fp, tp, fp, fp ; 4 ground truth
    s = np.array([.9, .8, .7, .6, .5, .4])
    tp = np.array([1, 1, 0, 1, 0, 0], bool)
    out = OP.points(s, tp, 4, beta=2.0, at_recall=[0.75, 1.0], at_precision=[1.0, 0.7])
    # thresholds: .9 P1 R.25 ; .8 P1 R.5 F1 .667 ; .7 P.667 R.5 ; .6 P.75 R.75 F1 .75 ; .5 P.6 ; .4 P.5
    assert out["best_f1"] == {"threshold": .6, "precision": .75, "recall": .75, "f1": pytest.approx(.75)}
    # F2 = 5PR/(4P+R): at .6 -> .75; at .8 -> 5*.5/(4+.5)=.556
    assert out["best_fbeta"]["threshold"] == .6 and out["best_fbeta"]["beta"] == 2.0
    assert out["at_recall"][0] == {"target": .75, "threshold": .6, "precision": .75, "recall": .75}
    assert out["at_recall"][1]["threshold"] is None            # recall 1 is out of reach
    assert out["at_precision"][0] == {"target": 1.0, "threshold": .8, "precision": 1.0, "recall": .5}
    assert out["at_precision"][1]["threshold"] == .6


def test_ties_pick_the_highest_threshold():
    s = np.array([.9, .8, .7])
    tp = np.array([1, 0, 1], bool)
    # .9: P1 R.5 F1 .667 ; .7: P .667 R1 F1 .8 -> .7 ; with 2 gt
    assert OP.points(s, tp, 2, 1.0, [], [])["best_f1"]["threshold"] == .7
    # equal F1 at two thresholds: the higher one
    s = np.array([.9, .8])
    tp = np.array([1, 0], bool)
    assert OP.points(s, tp, 1, 1.0, [], [])["best_f1"]["threshold"] == .9


def test_conf_best_f1_applies_the_threshold(tmp_path):
    gt, dets = random_coco(7, n_img=30)
    table = write_coco(tmp_path, gt, dets["a"])
    doc = mlcycle.evaluate(table, conf="best-f1", annotate=False).summary
    thr = doc["operating_points"]["overall"]["best_f1"]["threshold"]
    assert doc["at_iou"]["conf"] == thr and doc["at_iou"]["conf_from"] == "best-f1"
    fixed = mlcycle.evaluate(table, conf=thr, annotate=False).summary
    assert {k: doc["at_iou"][k] for k in ("tp", "fp", "fn", "precision", "recall", "f1")} == \
           {k: fixed["at_iou"][k] for k in ("tp", "fp", "fn", "precision", "recall", "f1")}
    assert doc["at_iou"]["f1"] == pytest.approx(doc["operating_points"]["overall"]["best_f1"]["f1"])
    # the F1 at the chosen threshold is the best over every score threshold
    for t in sorted({d["score"] for d in dets["a"]})[::7]:
        assert mlcycle.evaluate(table, conf=t, annotate=False).summary["at_iou"]["f1"] <= doc["at_iou"]["f1"] + 1e-12


def test_per_class_points_and_json_shape(tmp_path):
    gt, dets = random_coco(8, n_img=20)
    doc = mlcycle.evaluate(write_coco(tmp_path, gt, dets["a"]), at_recall=[0.5], at_precision=[0.5],
                           annotate=False).summary
    ops = doc["operating_points"]
    assert [r["label"] for r in ops["per_class"]] == [c["name"] for c in gt["categories"]]
    for r in ops["per_class"]:
        assert r["num_gt"] == sum(1 for a in gt["annotations"] if f"c{a['category_id']}" == r["label"] and not a["iscrowd"])
        assert len(r["at_recall"]) == 1 and len(r["at_precision"]) == 1


def test_bad_options():
    with pytest.raises(OptionError) as e:
        OP.conf_option("best")
    assert e.value.option == "conf"
    with pytest.raises(OptionError):
        OP.check(0.0, [], [])
    with pytest.raises(OptionError):
        OP.check(1.0, [1.5], [])
    assert OP.conf_option("0.25") == (0.25, None) and OP.conf_option("best-f1") == (0.0, "best-f1")


def test_reliability_by_hand():
    s = np.array([0.05, 0.15, 0.95, 0.92, 0.55, 1.0])
    tp = np.array([0, 0, 1, 0, 1, 1], bool)
    r = calibration.reliability(s, tp, 0.5)
    bins = {round(b["lo"], 1): b for b in r["bins"]}
    assert bins[0.9]["count"] == 3 and bins[0.9]["accuracy"] == pytest.approx(2 / 3)
    assert bins[0.9]["mean_score"] == pytest.approx((0.95 + 0.92 + 1.0) / 3)
    assert bins[0.2]["count"] == 0 and bins[0.2]["accuracy"] is None
    expected = (abs(0 - .05) + abs(0 - .15) + abs(1 - .55) + abs(2 - (0.95 + 0.92 + 1.0))) / 6
    assert r["ece"] == pytest.approx(expected) and r["count"] == 6
