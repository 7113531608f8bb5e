"""The second planted-error benchmark (benchmarks/bench_mine_quality.py): its generator
plants what it says, and mine-hard finds the planted errors far better than chance."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

import mlcycle
from mlcycle import mining
from mlcycle import table as T

_PATH = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_mine_quality.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_mine_quality", _PATH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def small(bench):
    return bench.generate(400, seed=7, plant_rate=0.15)


def _iou(a, b):
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    return ix * iy / (a[2] * a[3] + b[2] * b[3] - ix * iy)


def test_generator_plants_one_error_of_each_kind_it_names(bench, small):
    table, planted, boxes = small
    assert set(planted.values()) == set(bench.ERROR_KINDS)          # every kind occurs
    assert 0.10 < len(planted) / 400 < 0.20                           # about the plant rate
    assert set(boxes) == set(planted)
    rows = table.to_pylist()
    gt = {}
    for r in rows:
        if r[T.SOURCE] == "gt" and r[T.BBOX] is not None:
            gt.setdefault(r[T.SAMPLE_ID], []).append((r[T.LABEL], r[T.BBOX]))
    assert {r[T.LABEL] for r in rows if r[T.LABEL]} <= set(bench.NAMES)
    assert len({r[T.LABEL] for r in rows if r[T.LABEL]}) == len(bench.NAMES)
    for s, kind in planted.items():
        box, real, annotated = boxes[s]
        labels = gt.get(s, [])
        here = [c for c, b in labels if np.allclose(b, box)]
        if kind == "missing":       # the object's box is absent from the annotation
            assert here == [] and annotated is None
        elif kind == "wrong":       # the object's box, annotated with another class
            assert here == [bench.NAMES[annotated]] and annotated != real
        elif kind == "sloppy":      # a box of the right class, off the object by design
            assert here == [bench.NAMES[real]]
        elif kind == "duplicate":   # a second same-class box on one object
            assert here == [bench.NAMES[real]]
            assert any(c == here[0] and 0.5 <= _iou(b, box) < 1.0 for c, b in labels if not np.allclose(b, box))
        else:                       # spurious: a box where there is no object
            assert here == [bench.NAMES[annotated]] and real is None
    # the detector never sees the annotation: no prediction on a spurious box beyond chance
    preds = [r for r in rows if r[T.SOURCE] == "pred"]
    assert all(0.05 <= r[T.SCORE] <= 1.0 for r in preds)


def test_mine_hard_precision_at_n_beats_random_by_a_wide_margin(bench, small):
    table, planted, _ = small
    n = len(planted)
    evaluated = mlcycle.evaluate(table).table
    ranked = mining.rank(evaluated, mining.MineOptions(per="sample")).selected_samples
    precision = sum(s in planted for s in ranked[:n]) / n
    base_rate = n / 400                     # a random ranking's expected precision
    assert precision > 2.5 * base_rate, (precision, base_rate)


def _table(rows):
    cols = ["sample_id", "source", "label_id", "label", "bbox", "score"]
    return T.from_columns({c: [r[i] for r in rows] for i, c in enumerate(cols)})


def _reasons(rows):
    res = mining.rank(mlcycle.evaluate(_table(rows)).table, mining.MineOptions(per="label"))
    return {(r["source"], r["label_id"]): (r[T.HARD_REASON], r[T.HARD_SCORE]) for r in res.table.to_pylist()}


def test_a_box_annotated_twice_is_a_duplicate_scored_by_the_twins_iou():
    got = _reasons([
        ("a.jpg", "gt", 1, "car", [0.0, 0.0, 100.0, 100.0], None),
        ("a.jpg", "gt", 2, "car", [5.0, 0.0, 100.0, 100.0], None),
        ("a.jpg", "pred", 3, "car", [0.0, 0.0, 100.0, 100.0], 0.9),
    ])
    reason, score = got[("gt", 2)]
    assert reason == "duplicate"
    assert score == pytest.approx(95 * 100 / (2 * 100 * 100 - 95 * 100))


def test_another_class_on_a_box_the_model_also_confirms_is_hesitation_not_a_wrong_label():
    alone = _reasons([
        ("a.jpg", "gt", 1, "car", [0.0, 0.0, 100.0, 100.0], None),
        ("a.jpg", "pred", 2, "truck", [0.0, 0.0, 100.0, 100.0], 0.95),
    ])
    assert alone[("pred", 2)] == ("possible_wrong_label", pytest.approx(0.95))
    both = _reasons([
        ("a.jpg", "gt", 1, "car", [0.0, 0.0, 100.0, 100.0], None),
        ("a.jpg", "pred", 2, "truck", [0.0, 0.0, 100.0, 100.0], 0.95),
        ("a.jpg", "pred", 3, "car", [1.0, 0.0, 100.0, 100.0], 0.9),
    ])
    assert both[("pred", 2)] == ("class_confusion", pytest.approx(0.5 * 0.95))
