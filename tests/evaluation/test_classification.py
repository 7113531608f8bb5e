"""Classification metrics (mlcycle.evaluation.classification): hand-computed cases and a
plain-Python reference of the scikit-learn definitions on generated data."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlcycle import table as T
from mlcycle.errors import MlcycleError
from mlcycle.evaluation import classification as C


def make(gt: dict, pred: list) -> pa.Table:
    """gt: {sample: label}; pred: [(sample, label, score)]."""
    sid = list(gt) + [p[0] for p in pred]
    return T.from_columns({
        T.SAMPLE_ID: sid,
        T.SOURCE: ["gt"] * len(gt) + ["pred"] * len(pred),
        T.LABEL: list(gt.values()) + [p[1] for p in pred],
        T.SCORE: [None] * len(gt) + [p[2] for p in pred],
    })


def test_hand_computed():
    gt = {"a": "cat", "b": "dog", "c": "cat", "d": "dog", "f": "bird"}
    pred = [("a", "cat", 0.9), ("a", "dog", 0.1), ("b", "cat", 0.8), ("c", "cat", 0.3),
            ("e", "dog", 0.5), ("f", "cat", 0.4), ("f", "bird", 0.35)]
    r = C.evaluate(make(gt, pred))
    # a cat->cat, b dog->cat, c cat->cat, d dog->(none), f bird->cat; e has no ground truth
    assert r["accuracy"] == pytest.approx(2 / 5)
    assert r["labels"] == ["bird", "cat", "dog"]
    cat = r["per_class"]["cat"]
    assert (cat["tp"], cat["fp"], cat["fn"], cat["support"]) == (2, 2, 0, 2)
    assert cat["precision"] == 0.5 and cat["recall"] == 1.0 and cat["f1"] == pytest.approx(2 / 3)
    dog = r["per_class"]["dog"]
    assert (dog["precision"], dog["recall"], dog["f1"], dog["support"]) == (0.0, 0.0, 0.0, 2)
    bird = r["per_class"]["bird"]
    assert (bird["tp"], bird["fn"], bird["num_pred"], bird["f1"]) == (0, 1, 0, 0.0)
    assert r["macro"]["precision"] == pytest.approx(0.5 / 3)
    assert r["macro"]["recall"] == pytest.approx(1 / 3)
    assert r["macro"]["f1"] == pytest.approx((2 / 3) / 3)
    assert r["weighted"]["precision"] == pytest.approx(0.5 * 2 / 5)
    assert r["weighted"]["recall"] == pytest.approx(2 / 5)
    # micro: 2 TP, 4 predictions (the sample without prediction is no FP), 5 true
    assert r["micro"]["precision"] == pytest.approx(2 / 4)
    assert r["micro"]["recall"] == pytest.approx(2 / 5)
    assert r["micro"]["f1"] == pytest.approx(2 * 2 / (4 + 5))
    assert r["confusion_matrix"]["rows"] == ["bird", "cat", "dog"]
    assert r["confusion_matrix"]["columns"] == ["bird", "cat", "dog", "(none)"]
    assert r["confusion_matrix"]["matrix"] == [[0, 1, 0, 0], [0, 2, 0, 0], [0, 1, 0, 1]]
    # top-k: a (rank 1), f bird at rank 2, c rank 1; b, d miss
    assert r["top_k_accuracy"] == {"1": pytest.approx(2 / 5), "5": pytest.approx(3 / 5)}
    assert r["counts"] == {
        "samples": 5, "correct": 2, "without_prediction": 1, "with_several_predictions": 2,
        "pred_samples_without_gt": 1, "gt_rows": 5, "pred_rows": 7,
    }


def test_unscored_single_predictions_and_no_top_k():
    r = C.evaluate(make({"a": "x", "b": "y"}, [("a", "x", None), ("b", "x", None)]))
    assert r["accuracy"] == 0.5
    assert r["top_k_accuracy"] is None  # one prediction per sample: top-k says nothing more
    assert r["micro"]["precision"] == r["micro"]["recall"] == r["micro"]["f1"] == 0.5


def test_ties_keep_table_order_and_duplicate_classes_count_once():
    r = C.evaluate(make({"a": "x"}, [("a", "y", 0.5), ("a", "y", 0.4), ("a", "x", 0.5)]), top_k=(1, 2))
    assert r["accuracy"] == 0.0  # y listed first at the tied top score
    assert r["top_k_accuracy"] == {"1": 0.0, "2": 1.0}  # the second y is not a second class


def test_box_rows_and_sample_rows_are_ignored():
    t = make({"a": "x"}, [("a", "x", 0.9)])
    boxes = T.from_columns({T.SAMPLE_ID: ["a", "a", "z"], T.SOURCE: ["gt", "pred", "gt"],
                            T.LABEL: ["y", "y", None], T.SCORE: [None, 0.99, None],
                            T.BBOX: np.array([[0, 0, 1, 1], [0, 0, 1, 1], [np.nan] * 4])})
    r = C.evaluate(pa.concat_tables([t, boxes], promote_options="default"))
    assert r["accuracy"] == 1.0 and r["labels"] == ["x"] and r["counts"]["samples"] == 1


def test_errors():
    with pytest.raises(MlcycleError, match="no image-level ground-truth labels"):
        C.evaluate(make({}, [("a", "x", 0.5)]))
    with pytest.raises(MlcycleError, match="2 different ground-truth labels"):
        C.evaluate(T.from_columns({T.SAMPLE_ID: ["a", "a"], T.SOURCE: ["gt", "gt"], T.LABEL: ["x", "y"]}))
    with pytest.raises(MlcycleError, match="no score"):
        C.evaluate(make({"a": "x"}, [("a", "x", None), ("a", "y", 0.3)]))
    with pytest.raises(MlcycleError, match="at least 1"):
        C.evaluate(make({"a": "x"}, []), top_k=(0,))


def test_empty_predictions():
    r = C.evaluate(make({"a": "x", "b": "y"}, []))
    assert r["accuracy"] == 0.0 and r["counts"]["without_prediction"] == 2
    assert r["confusion_matrix"]["matrix"] == [[0, 0, 1], [0, 0, 1]]
    assert r["micro"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 2}


def test_repeated_identical_ground_truth_is_one_label():
    t = T.from_columns({T.SAMPLE_ID: ["a", "a", "a"], T.SOURCE: ["gt", "gt", "pred"],
                        T.LABEL: ["x", "x", "x"], T.SCORE: [None, None, 0.5]})
    assert C.evaluate(t)["counts"]["samples"] == 1


# --------------------------------------------------------------------------- reference

def reference(gt: dict, pred: list, top_k):
    """Plain per-sample Python with the sklearn definitions (zero_division=0)."""
    ranked = {}
    for i, (s, lab, sc) in enumerate(pred):
        ranked.setdefault(s, []).append((-(sc if sc is not None else 0.0), i, lab))
    y_true, y_pred, topk_hits = [], [], {k: 0 for k in top_k}
    for s, t in gt.items():
        order = []
        for _, _, lab in sorted(ranked.get(s, [])):
            if lab not in order:
                order.append(lab)
        y_true.append(t)
        y_pred.append(order[0] if order else None)
        for k in top_k:
            topk_hits[k] += t in order[:k]
    labels = sorted(set(y_true) | {p for p in y_pred if p is not None})
    per = {}
    for c in labels:
        tp = sum(1 for a, b in zip(y_true, y_pred) if a == c and b == c)
        fp = sum(1 for a, b in zip(y_true, y_pred) if a != c and b == c)
        fn = sum(1 for a, b in zip(y_true, y_pred) if a == c and b != c)
        p = tp / (tp + fp) if tp + fp else 0.0
        r = tp / (tp + fn) if tp + fn else 0.0
        f = 2 * p * r / (p + r) if p + r else 0.0
        per[c] = (p, r, f, tp + fn, tp, fp, fn)
    n = len(y_true)
    sup = sum(v[3] for v in per.values())
    TP = sum(v[4] for v in per.values())
    FP = sum(v[5] for v in per.values())
    FN = sum(v[6] for v in per.values())
    mp = TP / (TP + FP) if TP + FP else 0.0
    mr = TP / (TP + FN) if TP + FN else 0.0
    return {
        "accuracy": sum(a == b for a, b in zip(y_true, y_pred)) / n,
        "labels": labels,
        "per": per,
        "macro": [sum(v[i] for v in per.values()) / len(per) for i in range(3)],
        "weighted": [sum(v[i] * v[3] for v in per.values()) / sup for i in range(3)],
        "micro": [mp, mr, 2 * mp * mr / (mp + mr) if mp + mr else 0.0],
        "cm": [[sum(1 for a, b in zip(y_true, y_pred) if a == r and b == c) for c in labels + [None]] for r in labels],
        "topk": {str(k): v / n for k, v in topk_hits.items()},
        "several": any(len({lab for _, _, lab in v}) > 1 for v in ranked.values()),
    }


classes = st.sampled_from(["a", "b", "c", "d"])
samples = st.sampled_from([f"s{i}" for i in range(12)])


@settings(max_examples=80, deadline=None)
@given(
    gt=st.dictionaries(samples, classes, min_size=1),
    pred=st.lists(st.tuples(samples, classes, st.sampled_from([0.1, 0.2, 0.5, 0.5, 0.9])), max_size=30),
    top_k=st.sampled_from([(1, 5), (1, 2), (3,)]),
)
def test_matches_reference(gt, pred, top_k):
    res = C.evaluate(make(gt, pred), top_k=top_k)
    ref = reference(gt, pred, top_k)
    assert res["accuracy"] == pytest.approx(ref["accuracy"])
    assert res["labels"] == ref["labels"]
    for c, (p, r, f, sup, tp, fp, fn) in ref["per"].items():
        got = res["per_class"][c]
        assert (got["support"], got["tp"], got["fp"], got["fn"]) == (sup, tp, fp, fn)
        assert got["precision"] == pytest.approx(p) and got["recall"] == pytest.approx(r)
        assert got["f1"] == pytest.approx(f)
    for avg in ("macro", "weighted", "micro"):
        got = res[avg]
        assert [got["precision"], got["recall"], got["f1"]] == pytest.approx(ref[avg])
    assert res["confusion_matrix"]["matrix"] == ref["cm"]
    assert sum(map(sum, res["confusion_matrix"]["matrix"])) == len(gt)
    if ref["several"]:
        assert res["top_k_accuracy"] == pytest.approx(ref["topk"])
    else:
        assert res["top_k_accuracy"] is None
    if res["counts"]["without_prediction"] == 0:
        # single-label with a prediction for every sample: micro P = R = F1 = accuracy
        assert res["micro"]["precision"] == pytest.approx(res["accuracy"])
        assert res["micro"]["f1"] == pytest.approx(res["accuracy"])


# --------------------------------------------------------------------------- annotate

def test_annotate_marks_deciding_rows():
    t = make({"a": "cat", "b": "dog", "d": "dog"},
             [("a", "dog", 0.1), ("a", "cat", 0.9), ("b", "cat", 0.8), ("e", "dog", 0.5)])
    t = t.append_column(T.LABEL_ID, pa.array([1, 2, 3, 10, 11, 12, 13], type=pa.int64()))
    out = C.annotate(t)
    assert out.column_names[: t.num_columns] == t.column_names
    # gt a: right (pred 11), gt b: wrong (pred 12), gt d: no prediction;
    # pred 10 is not the deciding prediction, pred 13 has no ground truth
    assert out.column(T.EVAL).to_pylist() == ["tp", "fn", "fn", None, "tp", "fp", None]
    assert out.column(T.EVAL_ID).to_pylist() == [11, 12, None, None, 1, 2, None]
    assert out.column(T.EVAL_IOU).null_count == t.num_rows
    assert C.annotate(out).column_names == out.column_names


@settings(max_examples=30, deadline=None)
@given(
    gt=st.dictionaries(samples, classes, min_size=1),
    pred=st.lists(st.tuples(samples, classes, st.sampled_from([0.1, 0.5, 0.9])), max_size=20),
)
def test_annotate_agrees_with_evaluate(gt, pred):
    t = make(gt, pred)
    res = C.evaluate(t)
    ev = C.annotate(t).column(T.EVAL).to_pylist()
    src = t.column(T.SOURCE).to_pylist()
    assert sum(e == "tp" and s == "gt" for e, s in zip(ev, src)) == res["counts"]["correct"]
    assert sum(e == "tp" and s == "pred" for e, s in zip(ev, src)) == res["counts"]["correct"]
    assert sum(e == "fn" for e in ev) == res["counts"]["samples"] - res["counts"]["correct"]
    assert sum(e == "fp" for e in ev) == res["micro"]["support"] - res["counts"]["correct"] - res["counts"]["without_prediction"]
