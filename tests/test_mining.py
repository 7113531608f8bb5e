"""mine-hard's library: each reason's rule and score, ranking, aggregation, ObjectLab, pool search."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlcycle import mining
from mlcycle import table as T
from mlcycle.errors import MlcycleError, OptionError
from mlcycle.geometry import iou_xywh
from mlcycle.mining import MineOptions
from mlcycle.mining.frame import Frame, same_sample_pairs
from mlcycle.results import Result

COLS = ["sample_id", "source", "label_id", "label", "bbox", "score", "eval", "eval_id", "eval_iou"]


def evaluated(rows, extra=None):
    """An evaluated label table from (sample, source, id, label, bbox, score, eval, eval_id, eval_iou)."""
    cols = {c: [r[i] for r in rows] for i, c in enumerate(COLS)}
    cols.update(extra or {})
    return T.from_columns(cols)


def gt(sample, lid, label, box, ev, eid=None, iou=None):
    return (sample, "gt", lid, label, box, None, ev, eid, iou)


def pred(sample, lid, label, box, score, ev, eid=None, iou=None):
    return (sample, "pred", lid, label, box, score, ev, eid, iou)


def flagged(result):
    """{(source, label_id): (reason, score)} of the output rows that carry a reason."""
    out = {}
    for r in result.table.to_pylist():
        if r[T.HARD_REASON] is not None:
            out[(r["source"], r["label_id"])] = (r[T.HARD_REASON], r[T.HARD_SCORE])
    return out


BOX = [0.0, 0.0, 10.0, 10.0]


# --------------------------------------------------------------------------- each reason

def test_possible_missing_is_a_confident_prediction_on_no_ground_truth():
    t = evaluated([gt("a", 1, "cat", BOX, "tp", 1, 1.0), pred("a", 1, "cat", BOX, 0.9, "tp", 1, 1.0),
                   pred("a", 2, "dog", [50, 50, 10, 10], 0.85, "fp")])
    assert flagged(mining.mine(t)) == {("pred", 2): ("possible_missing", 0.85)}


def test_background_is_a_less_confident_prediction_on_nothing_scored_with_model_weight():
    t = evaluated([gt("a", 1, "cat", BOX, "fn"), pred("a", 2, "dog", [50, 50, 10, 10], 0.6, "fp")])
    res = mining.mine(t, model_weight=0.5, conf_spurious=0.95)
    assert flagged(res)[("pred", 2)] == ("background", pytest.approx(0.3))
    # the thresholds are options: lowering --conf-missing makes the same row possible_missing
    res = mining.mine(t, conf_missing=0.5)
    assert flagged(res)[("pred", 2)] == ("possible_missing", 0.6)


def test_possible_wrong_label_on_both_rows_of_a_confident_other_class_prediction():
    t = evaluated([gt("a", 1, "cat", BOX, "fn"), pred("a", 7, "dog", [0, 0, 10, 9], 0.9, "fp")])
    got = flagged(mining.mine(t))
    assert got == {("gt", 1): ("possible_wrong_label", 0.9), ("pred", 7): ("possible_wrong_label", 0.9)}


def test_class_confusion_below_conf_wrong_is_weighted():
    t = evaluated([gt("a", 1, "cat", BOX, "fn"), pred("a", 7, "dog", BOX, 0.6, "fp")])
    got = flagged(mining.mine(t, conf_wrong=0.8, model_weight=0.5))
    assert got == {("gt", 1): ("class_confusion", pytest.approx(0.3)), ("pred", 7): ("class_confusion", pytest.approx(0.3))}


def test_localization_between_low_iou_and_iou_on_an_unmatched_object():
    # IoU of [0,0,10,10] and [6,0,10,10] = 40/160 = 0.25
    t = evaluated([gt("a", 1, "cat", BOX, "fn"), pred("a", 3, "cat", [6, 0, 10, 10], 0.7, "fp")])
    got = flagged(mining.mine(t))
    assert got == {("gt", 1): ("localization", 0.7), ("pred", 3): ("localization", 0.7)}
    # raising the low bound above the overlap makes it background / possible_spurious
    got = flagged(mining.mine(t, low_iou=0.3))
    assert got[("pred", 3)][0] == "background"
    assert got[("gt", 1)] == ("possible_spurious", 0.25)             # miss_weight * (1 - 0)


def test_duplicate_is_a_prediction_on_an_already_matched_object():
    t = evaluated([gt("a", 1, "cat", BOX, "tp", 1, 1.0), pred("a", 1, "cat", BOX, 0.9, "tp", 1, 1.0),
                   pred("a", 2, "cat", [1, 0, 10, 10], 0.8, "fp"),     # IoU 0.82 with a matched GT
                   pred("a", 3, "cat", [6, 0, 10, 10], 0.4, "fp")])    # IoU 0.25, object already matched
    got = flagged(mining.mine(t))
    assert got == {("pred", 2): ("duplicate", pytest.approx(0.4)), ("pred", 3): ("duplicate", pytest.approx(0.2))}


def test_missed_and_possible_spurious_score_how_confidently_nothing_was_predicted():
    t = evaluated([
        gt("a", 1, "cat", BOX, "fn"), pred("a", 1, "cat", [0, 0, 10, 3], 0.4, "fp"),  # IoU 0.3: localization
        gt("b", 2, "cat", BOX, "fn"), pred("b", 2, "dog", [0, 0, 10, 3], 0.2, "fp"),  # weak other-class overlap
        gt("c", 3, "cat", BOX, "fn"),                                                 # nothing near at all
    ])
    got = flagged(mining.mine(t, model_weight=1.0, miss_weight=0.5))
    assert got[("gt", 1)] == ("localization", 0.4)
    assert got[("gt", 2)] == ("missed", pytest.approx(0.4))           # 0.5 * (1 - 0.2)
    assert got[("gt", 3)] == ("possible_spurious", 0.5)
    assert got[("pred", 2)] == ("class_confusion", pytest.approx(0.2))  # TIDE "both"


def test_low_confidence_true_positive():
    t = evaluated([gt("a", 1, "cat", BOX, "tp", 1, 1.0), pred("a", 1, "cat", BOX, 0.15, "tp", 1, 1.0)])
    got = flagged(mining.mine(t, conf_low=0.3, model_weight=0.5))
    assert got == {("pred", 1): ("low_confidence", pytest.approx(0.25))}   # 0.5 * (1 - 0.15/0.3)
    assert flagged(mining.mine(t, conf_low=0.0)) == {}


def test_ignored_rows_are_never_flagged():
    # a crowd region and the prediction it absorbed: evaluate ignores both (eval null)
    t = evaluated([gt("a", 1, "cat", BOX, None), pred("a", 1, "cat", [1, 1, 5, 5], 0.99, None)])
    assert flagged(mining.mine(t)) == {}


def test_predictions_of_a_class_the_ground_truth_never_uses_count_as_unmatched():
    # COCO (and so evaluate) ignores them; for mining they are possible missing labels
    t = evaluated([gt("a", 1, "cat", BOX, "tp", 1, 1.0), pred("a", 1, "cat", BOX, 0.9, "tp", 1, 1.0),
                   pred("a", 2, "zebra", [50, 50, 5, 5], 0.99, None)])
    assert flagged(mining.mine(t)) == {("pred", 2): ("possible_missing", 0.99)}


# --------------------------------------------------------------------------- ranking and output

def _mixed():
    return evaluated([
        gt("a", 1, "cat", BOX, "tp", 1, 1.0), pred("a", 1, "cat", BOX, 0.9, "tp", 1, 1.0),
        pred("a", 2, "dog", [50, 50, 10, 10], 0.95, "fp"),                  # possible_missing 0.95
        gt("b", 2, "cat", BOX, "fn"), pred("b", 4, "dog", BOX, 0.9, "fp"),  # wrong label 0.9 (x2)
        gt("c", 3, "cat", BOX, "fn"), pred("c", 5, "cat", [6, 0, 10, 10], 0.7, "fp"),  # localization 0.7 (x2)
        pred("c", 6, "dog", [80, 80, 5, 5], 0.85, "fp"),                    # possible_missing 0.85
        ("d", "gt", None, None, None, None, None, None, None),              # a sample row
    ])


def test_output_is_ranked_by_score_with_the_context_of_each_sample():
    res = mining.mine(_mixed())
    rows = res.table.to_pylist()
    assert [r["sample_id"] for r in rows] == ["a", "a", "a", "b", "b", "c", "c", "c"]
    assert rows[0][T.HARD_REASON] == "possible_missing" and rows[0][T.HARD_SCORE] == 0.95
    # context rows (the matched pair of sample a) follow the flagged row, unscored
    assert [r[T.HARD_SCORE] for r in rows[1:3]] == [None, None]
    # within a sample: by score, ties in input order
    assert [(r["source"], r["label_id"], r[T.HARD_SCORE]) for r in rows[5:]] == [
        ("pred", 6, 0.85), ("gt", 3, 0.7), ("pred", 5, 0.7)]
    assert all(r[T.HARD_SAMPLE_SCORE] == {"a": 0.95, "b": 0.9, "c": 0.85}[r["sample_id"]] for r in rows)
    assert "d" not in {r["sample_id"] for r in rows}
    # input columns are carried through unchanged
    assert res.table.column_names[: len(COLS)] == COLS
    assert res.summary["by_reason"] == {"possible_missing": 2, "possible_wrong_label": 2, "localization": 2}
    assert res.summary["by_reason_and_class"]["possible_wrong_label"] == {"cat": 1, "dog": 1}


def test_top_min_score_reasons_and_no_context():
    t = _mixed()
    res = mining.rank(t, MineOptions(top=2))
    assert res.summary["selected_labels"] == 2
    assert res.selected_samples == ["a", "b"]
    res = mining.rank(t, MineOptions(min_score=0.86, context=False))
    assert [(r["sample_id"], r[T.HARD_SCORE]) for r in res.table.to_pylist()] == [("a", 0.95), ("b", 0.9), ("b", 0.9)]
    res = mining.rank(t, MineOptions(reasons=["localization"], context=False))
    assert {r[T.HARD_REASON] for r in res.table.to_pylist()} == {"localization"}
    assert res.selected_samples == ["c"]
    with pytest.raises(OptionError, match="unknown reason"):
        mining.mine(t, reasons=["nope"])


def test_per_sample_ranks_samples_by_their_aggregate():
    t = evaluated([
        pred("a", 1, "dog", [50, 50, 10, 10], 0.9, "fp"), gt("a", 9, "cat", BOX, "tp", 9, 1.0),
        pred("b", 2, "dog", [50, 50, 10, 10], 0.85, "fp"), pred("b", 3, "dog", [70, 70, 10, 10], 0.85, "fp"),
        gt("b", 8, "cat", BOX, "tp", 8, 1.0),
    ])
    by_max = mining.rank(t, MineOptions(per="sample", aggregate="max"))
    assert by_max.selected_samples == ["a", "b"]
    assert by_max.sample_scores == {"a": 0.9, "b": 0.85}
    noisy = mining.rank(t, MineOptions(per="sample", aggregate="noisy-or", top=1))
    assert noisy.sample_scores["b"] == pytest.approx(1 - 0.15 * 0.15)
    assert noisy.selected_samples == ["b"]
    assert {r["sample_id"] for r in noisy.table.to_pylist()} == {"b"}


def test_without_eval_columns_the_error_names_the_evaluate_command():
    t = T.from_columns({"sample_id": ["a"], "source": ["gt"], "label": ["cat"], "bbox": [BOX]})
    with pytest.raises(MlcycleError) as exc:
        mining.mine(t, origin="labels.parquet")
    assert "mlcycle evaluate" in exc.value.message or "evaluate" in exc.value.message
    assert exc.value.hint == "run evaluate first: mlcycle evaluate labels.parquet | mlcycle mine-hard"


def test_several_prediction_sources_need_source():
    rows = [gt("a", 1, "cat", BOX, "fn"), pred("a", 2, "cat", BOX, 0.9, "fp"),
            ("a", "other", 3, "cat", BOX, 0.9, None, None, None)]
    t = evaluated(rows)
    with pytest.raises(OptionError, match="several prediction sources"):
        mining.mine(t)
    res = mining.mine(t, source="pred")
    assert res.summary["parameters"]["source"] == "pred"


def test_pairs_and_iou_match_a_brute_force_loop():
    rng = np.random.default_rng(0)
    n = 200
    sample = rng.integers(0, 15, n)
    a = np.flatnonzero(rng.random(n) < 0.5)
    b = np.setdiff1d(np.arange(n), a)
    chunks = list(same_sample_pairs(sample, a, b, chunk=97))   # small chunks: several of them
    assert len(chunks) > 1
    pa_ = np.concatenate([c[0] for c in chunks])
    pb_ = np.concatenate([c[1] for c in chunks])
    want = {(i, j) for i in a for j in b if sample[i] == sample[j]}
    assert set(zip(pa_.tolist(), pb_.tolist())) == want and len(pa_) == len(want)
    boxes = np.c_[rng.random((n, 2)) * 50, rng.random((n, 2)) * 30 + 1]
    iou = iou_xywh(boxes[pa_], boxes[pb_])
    from pycocotools import mask as cmask

    for k in range(0, len(pa_), 37):
        ref = cmask.iou([boxes[pa_[k]].tolist()], [boxes[pb_[k]].tolist()], [0])[0][0]
        assert iou[k] == pytest.approx(ref, abs=1e-12)


def test_mining_many_samples_scales_without_per_label_loops():
    rng = np.random.default_rng(1)
    n_img, per = 2000, 12
    sample = np.repeat([f"img{i}" for i in range(n_img)], per)
    src = np.tile(["gt"] * 4 + ["pred"] * 8, n_img)
    boxes = np.c_[rng.random((len(sample), 2)) * 100, rng.random((len(sample), 2)) * 40 + 5]
    ev = rng.choice(["tp", "fp", "fn"], len(sample))
    ev = np.where(src == "gt", np.where(ev == "fp", "fn", ev), np.where(ev == "fn", "fp", ev))
    t = T.from_columns({
        "sample_id": sample.tolist(), "source": src.tolist(), "label_id": list(range(len(sample))),
        "label": rng.choice(["a", "b", "c"], len(sample)).tolist(), "bbox": boxes,
        "score": np.where(src == "pred", rng.random(len(sample)), np.nan).tolist(), "eval": ev.tolist(),
    })
    res = mining.rank(t, MineOptions(per="sample", top=10))
    assert len(res.selected_samples) == 10
    scores = [res.sample_scores[s] for s in res.selected_samples]
    assert scores == sorted(scores, reverse=True)


# --------------------------------------------------------------------------- ObjectLab vs cleanlab

def _random_detection_set(seed, n_img=25, classes=("a", "b", "c")):
    """Generated labels and predictions (with planted swaps, shifts, misses), as a table and
    in cleanlab's input format."""
    rng = np.random.default_rng(seed)
    rows = []
    cl_labels, cl_preds = [], []
    gid = pid = 0
    for i in range(n_img):
        s = f"img{i:03d}.jpg"
        n_obj = int(rng.integers(0, 5))
        lab_boxes, lab_cls = [], []
        pred_by_class = [[] for _ in classes]
        for _ in range(n_obj):
            x, y = rng.random(2) * 200
            w, h = rng.random(2) * 60 + 8
            c = int(rng.integers(len(classes)))
            kind = rng.random()
            lab_c = c if kind > 0.15 else (c + 1) % len(classes)      # swapped label
            lx, ly = (x + w * 0.6, y) if 0.15 < kind < 0.3 else (x, y)  # shifted label
            if kind < 0.9 or n_obj == 1:                               # some labels deleted
                gid += 1
                rows.append((s, "gt", gid, classes[lab_c], [lx, ly, w, h], None))
                lab_boxes.append([lx, ly, lx + w, ly + h])
                lab_cls.append(lab_c)
            jit = rng.normal(0, 2, 4)
            px, py, pw, ph = x + jit[0], y + jit[1], max(2.0, w + jit[2]), max(2.0, h + jit[3])
            p = float(np.clip(rng.beta(5, 1.2), 0, 1))
            pid += 1
            rows.append((s, "pred", pid, classes[c], [px, py, pw, ph], p))
            pred_by_class[c].append([px, py, px + pw, py + ph, p])
        for _ in range(int(rng.integers(0, 3))):  # background predictions
            x, y = rng.random(2) * 250
            c = int(rng.integers(len(classes)))
            p = float(rng.random())
            pid += 1
            rows.append((s, "pred", pid, classes[c], [x, y, 20.0, 15.0], p))
            pred_by_class[c].append([x, y, x + 20.0, y + 15.0, p])
        if not any(r[0] == s for r in rows):
            rows.append((s, "gt", None, None, None, None))
        cl_labels.append({"bboxes": np.array(lab_boxes, dtype=float).reshape(-1, 4), "labels": np.array(lab_cls, dtype=int)})
        cl_preds.append([np.array(pc, dtype=float).reshape(-1, 5) for pc in pred_by_class])
    cols = {c: [r[i] for r in rows] for i, c in enumerate(["sample_id", "source", "label_id", "label", "bbox", "score"])}
    cols["eval"] = [None] * len(rows)
    return T.from_columns(cols), cl_labels, cl_preds


@pytest.mark.parametrize("seed", [3, 11])
def test_objectlab_matches_cleanlab_on_generated_data(seed):
    from cleanlab.object_detection import rank  # test-only dependency (pyproject [test])

    t, labels, preds = _random_detection_set(seed)
    ref = rank.get_label_quality_scores(labels, preds, verbose=False)
    aux = rank._get_valid_inputs_for_compute_scores(0.9, labels, preds)
    ref_over = rank.compute_overlooked_box_scores(auxiliary_inputs=aux)
    ref_badloc = rank.compute_badloc_box_scores(auxiliary_inputs=aux)
    ref_swap = rank.compute_swap_box_scores(auxiliary_inputs=aux)

    f = Frame(t, MineOptions(method="objectlab"), need_eval=False)
    ol = mining.score_objectlab(f)
    order = [f.sample_names.index(f"img{i:03d}.jpg") for i in range(len(labels))]
    np.testing.assert_allclose(ol.image_quality[order], ref, rtol=1e-9, atol=1e-12)
    for i in range(len(labels)):
        code = order[i]
        g = f.gt_rows[f.sample[f.gt_rows] == code]
        p = f.pred_rows[f.sample[f.pred_rows] == code]
        # cleanlab orders predictions by class, then input order
        p = p[np.argsort([("a", "b", "c").index(f.label_names[f.label[r]]) for r in p], kind="stable")]
        np.testing.assert_allclose(ol.badloc[g], ref_badloc[i], rtol=1e-9)
        np.testing.assert_allclose(ol.swap[g], ref_swap[i], rtol=1e-9)
        np.testing.assert_allclose(ol.overlooked[p], ref_over[i], rtol=1e-9)


def test_objectlab_ranks_samples_by_one_minus_label_quality():
    t, labels, preds = _random_detection_set(5)
    res = mining.rank(t, MineOptions(method="objectlab", per="sample"))
    scores = [res.sample_scores[s] for s in res.selected_samples]
    assert scores == sorted(scores, reverse=True)
    assert all(0.0 <= s <= 1.0 for s in scores)
    reasons = {r[T.HARD_REASON] for r in res.table.to_pylist()} - {None}
    assert reasons <= {"possible_missing", "localization", "possible_wrong_label"}


# --------------------------------------------------------------------------- pool search

def test_knn_search_matches_brute_force_and_drops_near_duplicates():
    rng = np.random.default_rng(7)
    d = 16
    fail = mining.normalize_rows(rng.normal(size=(5, d)))
    pool = mining.normalize_rows(rng.normal(size=(3000, d)))
    idx, sim, fi = mining.knn_search(fail, (pool[i:i + 256] for i in range(0, len(pool), 256)), k=20, dup_threshold=0.999)
    full = pool @ fail.T
    best = full.max(axis=1)
    # random directions are never near-duplicates: the picks are exactly the top-20 by max cosine
    assert list(idx) == list(np.argsort(-best, kind="stable")[:20])
    np.testing.assert_allclose(sim, best[idx], rtol=1e-6)
    assert list(fi) == list(full[idx].argmax(axis=1))
    # near-duplicates of each other: only one of a cluster is chosen
    base = mining.normalize_rows(rng.normal(size=(1, d)))
    cluster = mining.normalize_rows(base + rng.normal(scale=0.01, size=(10, d)))
    others = mining.normalize_rows(rng.normal(size=(50, d)))
    idx, sim, _ = mining.knn_search(base, [np.r_[cluster, others]], k=3, dup_threshold=0.95)
    assert sum(i < 10 for i in idx) == 1 and len(idx) == 3
    # near-duplicates of labeled data are dropped
    idx, _, _ = mining.knn_search(base, [np.r_[cluster, others]], k=3, labeled=base, dup_threshold=0.95)
    assert all(i >= 10 for i in idx)


def test_search_pool_returns_pool_samples_like_the_failures():
    rng = np.random.default_rng(2)
    d = 8
    dirs = mining.normalize_rows(rng.normal(size=(3, d)))
    t = evaluated([
        gt("a", 1, "cat", BOX, "fn"), pred("a", 2, "dog", [50, 50, 10, 10], 0.95, "fp"),
        gt("b", 3, "cat", BOX, "tp", 4, 1.0), pred("b", 4, "cat", BOX, 0.95, "tp", 3, 1.0),
    ], extra={"embedding": [dirs[0].tolist(), dirs[0].tolist(), dirs[1].tolist(), dirs[1].tolist()]})
    assert mining.rank(t, MineOptions()).selected_samples == ["a"]
    near_a = mining.normalize_rows(dirs[0] + rng.normal(scale=0.2, size=(4, d)))
    pool_emb = [near_a[0], near_a[1], dirs[2], dirs[1] + 1e-4, dirs[0] * 1.0, near_a[2]]
    pool = T.from_columns({
        "sample_id": ["p0.jpg", "p1.jpg", "p2.jpg", "p3.jpg", "a", "p5.jpg"],
        "source": ["gt"] * 6,
        "embedding": [list(map(float, e)) for e in pool_emb],
    })
    res = mining.mine(t, pool=pool, embedding="embedding", k=2, dup_threshold=0.999)
    summary = res.summary["pool"]
    rows = res.table.to_pylist()
    sims = (mining.normalize_rows(np.array(pool_emb)) @ dirs[0].astype(np.float32))
    want = sorted([0, 1, 5], key=lambda i: -sims[i])[:2]
    assert [r["sample_id"] for r in rows] == [f"p{i}.jpg" for i in want]
    assert all(r[T.HARD_REASON] == "similar_to_failure" and r[T.HARD_MATCH] == "a" for r in rows)
    assert rows[0][T.HARD_SCORE] == pytest.approx(float(sims[want[0]]), rel=1e-5)
    assert summary["pool_samples_already_labeled"] == 1 and summary["chosen"] == 2


def test_search_pool_errors_are_readable():
    t = evaluated([gt("a", 1, "cat", BOX, "fn"), pred("a", 2, "dog", [50, 50, 10, 10], 0.95, "fp")])
    pool = T.from_columns({"sample_id": ["p"], "source": ["gt"]})
    with pytest.raises(MlcycleError, match="no embedding column 'emb'"):
        mining.mine(t, pool=pool, embedding="emb")
    pool = T.from_columns({"sample_id": ["a", "p", "q"], "source": ["gt"] * 3, "emb": [[1.0, 0.0], [1.0, 0.0], [1.0, 0.0, 0.0]]})
    with pytest.raises(MlcycleError, match="row 3: embedding has 3 values, the first has 2"):
        mining.mine(t, pool=pool, embedding="emb")
    pool = T.from_columns({"sample_id": ["p"], "source": ["gt"], "emb": [[1.0, 0.0]]})
    with pytest.raises(MlcycleError, match="no embedding for any failure"):
        mining.mine(t, pool=pool, embedding="emb")
    with pytest.raises(MlcycleError, match="no failures to search the pool for"):
        mining.mine(t, reasons=["duplicate"], pool=pool, embedding="emb")
    with pytest.raises(OptionError) as exc:
        mining.mine(t, pool=pool)
    assert exc.value.option == "embedding"


@pytest.mark.parametrize("bad, option", [
    ({"iou": 1.5}, "iou"), ({"low_iou": 0.6, "iou": 0.5}, "low_iou"), ({"per": "image"}, "per"),
    ({"top": 0}, "top"), ({"method": "x"}, "method"), ({"aggregate": "sum"}, "aggregate"),
    ({"reasons": ["nope"]}, "reasons"), ({"min_score": 2.0}, "min_score"),
])
def test_options_are_validated_and_name_the_parameter_not_a_flag(bad, option):
    with pytest.raises(OptionError) as exc:
        MineOptions(**bad)
    assert exc.value.option == option and "--" not in exc.value.message
    with pytest.raises(OptionError):
        mining.mine(_mixed(), **bad)
    assert math.isclose(MineOptions().iou, 0.5)


@pytest.mark.parametrize("bad, option", [({"k": 0}, "k"), ({"failures": 0}, "failures"), ({"dup_threshold": 2.0}, "dup_threshold")])
def test_pool_options_are_validated(bad, option):
    with pytest.raises(OptionError) as exc:
        mining.PoolOptions(embedding="emb", **bad)
    assert exc.value.option == option and "--" not in exc.value.message


def test_mine_returns_a_result_and_options_stay_unchanged():
    t = _mixed()
    opts = MineOptions(reasons=["localization"], context=False, top="auto")  # mine()'s default
    ranking = mining.rank(t, opts)
    assert opts == MineOptions(reasons=["localization"], context=False, top="auto")
    with pytest.raises(Exception):
        opts.top = 3  # frozen
    res = mining.mine(t, reasons=["localization"], context=False)
    assert isinstance(res, Result) and res.warnings == ()
    assert res.table.equals(ranking.table) and res.summary == ranking.summary
    assert json.loads(res.to_json())["by_reason"] == {"localization": 2}


# --------------------------------------------------------------------------- the default cut-off

def _many_background(n_img=60, gt_per_img=5, bg_per_img=20, seed=3):
    """An evaluated table like a detector run at a low confidence threshold: every ground
    truth found, plus many low-score boxes on background; one confident box on no ground
    truth per 10 images (a likely missing annotation)."""
    rng = np.random.default_rng(seed)
    rows = {T.SAMPLE_ID: [], T.SOURCE: [], T.LABEL_ID: [], T.LABEL: [], T.BBOX: [], T.SCORE: [],
            T.EVAL: [], T.EVAL_ID: [], T.EVAL_IOU: []}

    def add(*v):
        for k, x in zip(rows, v):
            rows[k].append(x)

    lid = 0
    for i in range(n_img):
        s = f"img{i:03d}.jpg"
        for j in range(gt_per_img):
            box = [100.0 * j, 0.0, 50.0, 50.0]
            add(s, "gt", lid, "car", box, None, "tp", lid + 1, 1.0)
            add(s, "pred", lid + 1, "car", box, 0.9, "tp", lid, 1.0)
            lid += 2
        for j in range(bg_per_img):
            add(s, "pred", lid, "car", [10.0 * j, 300.0, 8.0, 8.0], float(rng.uniform(0.01, 0.3)), "fp", None, None)
            lid += 1
        if i % 10 == 0:
            add(s, "pred", lid, "car", [0.0, 600.0, 60.0, 60.0], 0.95, "fp", None, None)
            lid += 1
    return T.from_columns(rows)


def test_default_cut_off_keeps_the_best_five_percent_of_the_ground_truth_labels():
    t = _many_background()
    everything = mining.mine(t, top=None)
    assert everything.summary["labels_scored"] == 60 * 20 + 6  # background flags nearly every prediction
    assert everything.summary["cutoff"] == {"rule": "none", "top": None, "min_score": None, "left_out": 0}
    res = mining.mine(t)  # the default: 5% of 300 ground-truth labels = 15
    assert res.summary["selected_labels"] == 15
    assert res.summary["cutoff"] == {"rule": "default", "top": 15, "min_score": None, "fraction": 0.05, "minimum": 10,
                                     "of": "ground-truth labels", "base": 300, "left_out": 1206 - 15}
    assert res.summary["parameters"]["top"] == "auto"
    # ranked: the six confident boxes on no ground truth come first
    assert [r[T.HARD_REASON] for r in res.summary["top_labels"][:6]] == ["possible_missing"] * 6
    # per sample: 5% of the samples, at least 10
    res = mining.mine(t, per="sample")
    assert res.summary["selected_samples"] == 10 and res.summary["cutoff"]["of"] == "samples"
    # an explicit count, or a score, replaces the default
    assert mining.mine(t, top=40).summary["selected_labels"] == 40
    assert mining.mine(t, top=40).summary["cutoff"] == {"rule": "top", "top": 40, "min_score": None, "left_out": 1166}
    res = mining.mine(t, min_score=0.5)
    assert res.summary["selected_labels"] == 6 and res.summary["cutoff"]["rule"] == "min_score"
    assert mining.mine(t, min_score=0.0).summary["selected_labels"] == 1206
    # small tables: at least 10 labels
    assert options_default_top(3) == 10 and options_default_top(1000) == 50


def options_default_top(n):
    from mlcycle.mining.options import default_top

    return default_top(n)


def test_top_must_be_a_count_or_auto():
    for bad in (0, -1, "all", 2.5):
        with pytest.raises(OptionError):
            MineOptions(top=bad)
    assert MineOptions(top="auto").top == "auto"


# --------------------------------------------------------------------------- evaluate -> mine-hard

def _planted(seed=0, n_img=30):
    """Clean labels with good predictions, plus three planted annotation errors."""
    rng = np.random.default_rng(seed)
    rows = []
    gid = pid = 0
    for i in range(n_img):
        s = f"img{i:02d}.jpg"
        for j in range(3):
            x, y = 120.0 * j + rng.random() * 10, rng.random() * 100
            w, h = 60 + rng.random() * 20, 50 + rng.random() * 20
            c = ("cat", "dog", "car")[(i + j) % 3]
            gid += 1
            pid += 1
            box = [x, y, w, h]
            if i == 3 and j == 0:
                pass                                                    # planted: deleted box
            elif i == 7 and j == 1:
                rows.append((s, "gt", gid, "car" if c != "car" else "cat", box, None))  # planted: swapped class
            elif i == 11 and j == 2:
                rows.append((s, "gt", gid, c, [x + 0.6 * w, y, w, h], None))  # planted: shifted box
            else:
                rows.append((s, "gt", gid, c, box, None))
            jit = rng.normal(0, 1.0, 4)
            rows.append((s, "pred", pid, c, [x + jit[0], y + jit[1], w + jit[2], h + jit[3]], float(0.85 + 0.14 * rng.random())))
        pid += 1  # a weak background detection per image
        rows.append((s, "pred", pid, "cat", [400.0, 300.0, 20.0, 20.0], float(0.05 + 0.2 * rng.random())))
    cols = {c: [r[i] for r in rows] for i, c in enumerate(["sample_id", "source", "label_id", "label", "bbox", "score"])}
    return T.from_columns(cols)


def test_evaluate_then_mine_hard_puts_the_planted_errors_on_top():
    import mlcycle

    table = mlcycle.evaluate(_planted()).table
    assert T.EVAL in table.column_names
    res = mining.rank(table, MineOptions(per="sample", top=3))
    assert set(res.selected_samples) == {"img03.jpg", "img07.jpg", "img11.jpg"}
    by_sample = {}
    for r in res.table.to_pylist():
        if r[T.HARD_REASON]:
            by_sample.setdefault(r["sample_id"], set()).add(r[T.HARD_REASON])
    assert "possible_missing" in by_sample["img03.jpg"]
    assert "possible_wrong_label" in by_sample["img07.jpg"]
    assert "localization" in by_sample["img11.jpg"]


def test_parquet_pool_is_streamed_in_batches_with_the_same_result(tmp_path):
    from mlcycle import io

    rng = np.random.default_rng(4)
    d = 6
    fail_vec = mining.normalize_rows(rng.normal(size=(1, d)))[0]
    t = evaluated([gt("a", 1, "cat", BOX, "fn"), pred("a", 2, "dog", [50, 50, 10, 10], 0.95, "fp")],
                  extra={"emb": [fail_vec.tolist()] * 2})
    n = 40
    emb = mining.normalize_rows(fail_vec + rng.normal(scale=0.8, size=(n, d)))
    pool = T.from_columns({
        "sample_id": [f"p{i:02d}.jpg" for i in range(n)], "source": ["gt"] * n,
        "width": [640] * n, "height": [480] * n, "emb": emb.astype(float).tolist(),
    })
    path = tmp_path / "pool.parquet"
    io.write_table(pool, path)
    opts = dict(embedding="emb", k=5, dup_threshold=0.99)
    in_memory = mining.mine(t, pool=pool, **opts).table
    res = mining.mine(t, pool=io.scan(path, batch_rows=7), **opts)
    streamed, summary = res.table, res.summary["pool"]
    by_path = mining.mine(t, pool=str(path), **opts).table
    assert by_path.equals(streamed)
    assert streamed.column("sample_id").to_pylist() == in_memory.column("sample_id").to_pylist()
    assert streamed.column(T.HARD_SCORE).to_pylist() == in_memory.column(T.HARD_SCORE).to_pylist()
    want = np.argsort(-(emb @ fail_vec.astype(np.float32)), kind="stable")[:5]
    assert streamed.column("sample_id").to_pylist() == [f"p{i:02d}.jpg" for i in want]
    assert streamed.column("width").to_pylist() == [640] * 5
    assert summary["pool_rows"] == n and summary["pool_candidates"] == n


# --------------------------------------------------------------------------- properties

@st.composite
def _evaluated_tables(draw):
    n = draw(st.integers(1, 40))
    rows = []
    for i in range(n):
        s = f"s{draw(st.integers(0, 5))}"
        is_gt = draw(st.booleans())
        box = [draw(st.floats(0, 50)), draw(st.floats(0, 50)), draw(st.floats(1, 30)), draw(st.floats(1, 30))]
        lab = draw(st.sampled_from(["a", "b"]))
        if is_gt:
            rows.append(gt(s, i, lab, box, draw(st.sampled_from(["tp", "fn", None]))))
        else:
            rows.append(pred(s, i, lab, box, draw(st.floats(0, 1)), draw(st.sampled_from(["tp", "fp", None]))))
    rows.append(pred("s0", 999, "a", BOX, 0.5, "fp"))  # at least one prediction
    return evaluated(rows)


@settings(max_examples=40, deadline=None)
@given(t=_evaluated_tables(), per=st.sampled_from(["label", "sample"]), method=st.sampled_from(["rules", "objectlab"]),
       agg=st.sampled_from(["max", "noisy-or"]), top=st.one_of(st.none(), st.integers(1, 5)))
def test_scores_are_in_unit_interval_and_samples_come_whole(t, per, method, agg, top):
    res = mining.rank(t, MineOptions(per=per, method=method, aggregate=agg, top=top))
    out = res.table
    scores = [x for x in out.column(T.HARD_SCORE).to_pylist() if x is not None]
    assert all(0.0 <= x <= 1.0 for x in scores)
    assert all(0.0 <= x <= 1.0 for x in res.sample_scores.values())
    reasons = out.column(T.HARD_REASON).to_pylist()
    assert all((r is None) == (x is None) for r, x in zip(reasons, out.column(T.HARD_SCORE).to_pylist()))
    assert set(reasons) - {None} <= set(mining.REASONS)
    # every row of every chosen sample is there, once
    chosen = set(res.selected_samples)
    want = sum(1 for s in t.column("sample_id").to_pylist() if s in chosen)
    assert out.num_rows == want
    if top is not None and per == "sample":
        assert len(chosen) <= top
    # samples come in rank order, each as one block
    seq = out.column("sample_id").to_pylist()
    blocks = [s for i, s in enumerate(seq) if i == 0 or seq[i - 1] != s]
    assert blocks == res.selected_samples
