"""Several prediction sources: per-source documents, deltas, output table, regression gate."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest

import mlcycle
from mlcycle import table as T
from mlcycle.errors import MlcycleError, OptionError
from mlcycle.evaluation import regression
from tests.evaluation._pyco import write_coco
from tests.evaluation.test_bootstrap import random_coco


def _two(tmp_path, seed=0, **kw):
    gt, dets = random_coco(seed, models=("a", "b"), **kw)
    ta = write_coco(tmp_path, gt, dets["a"], name="a")
    tb = write_coco(tmp_path, gt, dets["b"], name="b")
    pa_ = T.filter_source(ta, "pred")
    pb = T.filter_source(tb, "pred")
    pa_ = pa_.set_column(pa_.column_names.index(T.SOURCE), T.SOURCE, pa.array(["yolo"] * pa_.num_rows))
    pb = pb.set_column(pb.column_names.index(T.SOURCE), T.SOURCE, pa.array(["detr"] * pb.num_rows))
    return pa.concat_tables([T.filter_source(ta, "gt"), pa_, pb], promote_options="permissive")


@pytest.mark.parametrize("bootstrap", [0, 30])
def test_each_source_document_is_the_single_source_one(tmp_path, bootstrap):
    t = _two(tmp_path)
    doc = mlcycle.evaluate(t, annotate=False, bootstrap=bootstrap, tide=bool(bootstrap), by="label").summary
    assert list(doc["sources"]) == ["yolo", "detr"] and doc["comparison"]["baseline"] == "yolo"
    for s in ("yolo", "detr"):
        single = mlcycle.evaluate(t, pred_source=s, annotate=False, tide=bool(bootstrap), by="label").summary
        assert json.dumps(doc["sources"][s], sort_keys=True) == json.dumps(single, sort_keys=True)
    if bootstrap:
        return
    d = doc["comparison"]["deltas"]["detr"]
    assert d["AP"] == doc["sources"]["detr"]["metrics"]["AP"] - doc["sources"]["yolo"]["metrics"]["AP"]
    assert doc["comparison"]["bootstrap"] is None and doc["comparison"]["significant"] == []


def test_baseline_and_per_class_deltas(tmp_path):
    t = _two(tmp_path, seed=1)
    doc = mlcycle.evaluate(t, baseline="detr", annotate=False).summary
    comp = doc["comparison"]
    assert comp["baseline"] == "detr" and list(comp["deltas"]) == ["yolo"]
    rows = {r["label"]: r for r in comp["per_class"]["yolo"]}
    for r in doc["sources"]["yolo"]["per_class"]:
        b = next(x for x in doc["sources"]["detr"]["per_class"] if x["label"] == r["label"])
        if r["AP"] > -1 and b["AP"] > -1:
            assert rows[r["label"]]["delta_AP"] == r["AP"] - b["AP"]
    with pytest.raises(OptionError) as e:
        mlcycle.evaluate(t, baseline="nope", annotate=False)
    assert e.value.option == "baseline" and "yolo" in e.value.hint


def test_slice_deltas(tmp_path):
    t = _two(tmp_path, seed=2)
    split = np.where(np.array([int(s[2:].split(".")[0]) % 2 for s in t.column(T.SAMPLE_ID).to_pylist()]) == 0,
                     "even", "odd")
    t = t.append_column("split", pa.array(split.tolist()))
    doc = mlcycle.evaluate(t, by="split", annotate=False).summary
    rows = {r["value"]: r for r in doc["comparison"]["slices"]["detr"]}
    assert set(rows) == {"even", "odd"}
    y = {s["value"]: s for s in doc["sources"]["yolo"]["slices"]}
    for v, r in rows.items():
        assert r["deltas"]["AP"] == r["metrics"]["AP"] - y[v]["metrics"]["AP"]


@pytest.mark.parametrize("bootstrap", [0, 20])
def test_output_table_has_each_source_own_columns(tmp_path, bootstrap):
    t = _two(tmp_path, seed=3)
    out = mlcycle.evaluate(t, bootstrap=bootstrap).table
    assert out.num_rows == t.num_rows
    for s in ("yolo", "detr"):
        single = mlcycle.evaluate(t, pred_source=s).table
        mask = np.array(out.column(T.SOURCE).to_pylist()) == s
        for col in (T.EVAL, T.EVAL_ID, T.EVAL_IOU):
            a = np.array(out.column(col).to_pylist(), dtype=object)[mask]
            b = np.array(single.column(col).to_pylist(), dtype=object)[mask]
            assert list(a) == list(b)
    # ground truth rows: the baseline's view
    base = mlcycle.evaluate(t, pred_source="yolo").table
    gmask = np.array(out.column(T.SOURCE).to_pylist()) == "gt"
    assert list(np.array(out.column(T.EVAL).to_pylist(), dtype=object)[gmask]) == \
        list(np.array(base.column(T.EVAL).to_pylist(), dtype=object)[gmask])


def test_fail_under_checks_every_source(tmp_path):
    t = _two(tmp_path, seed=4)
    doc = mlcycle.evaluate(t, fail_under={"AP50": 0.99}, annotate=False).summary
    failed = doc["fail_under"]["failed"]
    assert any(f.startswith("yolo: AP50") for f in failed) and any(f.startswith("detr: AP50") for f in failed)


def test_regression_gate(tmp_path):
    t = _two(tmp_path, seed=5)
    ref = mlcycle.evaluate(t, pred_source="yolo", annotate=False).summary
    same = mlcycle.evaluate(t, pred_source="yolo", fail_if_worse_than=ref, annotate=False).summary
    assert same["fail_if_worse_than"]["failed"] == []
    worse_ref = json.loads(json.dumps(ref))
    worse_ref["metrics"]["AP"] = ref["metrics"]["AP"] + 0.05
    r = regression.compare(mlcycle.evaluate(t, pred_source="yolo", annotate=False).summary, worse_ref, 0.01)
    assert [x["metric"] for x in r["rows"] if x["worse"]] == ["AP"]
    assert r["failed"][0].startswith("AP ") and "-0.0500" in r["failed"][0]
    assert regression.compare(mlcycle.evaluate(t, pred_source="yolo", annotate=False).summary,
                              worse_ref, 0.06)["failed"] == []
    # several sources against a one-source reference: each source checked
    multi = mlcycle.evaluate(t, fail_if_worse_than=ref, annotate=False).summary["fail_if_worse_than"]
    assert {x["source"] for x in multi["rows"]} == {"yolo", "detr"}


def test_regression_reference_errors(tmp_path):
    with pytest.raises(MlcycleError, match="no such reference"):
        regression.load_reference(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(MlcycleError, match="not a JSON"):
        regression.load_reference(bad)
    bad.write_text('{"x": 1}')
    with pytest.raises(MlcycleError, match="no 'metrics'"):
        regression.load_reference(bad)
    assert regression.parse("m.json:0.01") == ("m.json", 0.01)
    assert regression.parse("C:/x/m.json") == ("C:/x/m.json", 0.0)
    with pytest.raises(OptionError):
        regression.parse("m.json:2")


def _bootstrapped(tmp_path):
    t = _two(tmp_path, seed=6)
    return t, mlcycle.evaluate(t, bootstrap=40, seed=1)


def test_bootstrap_in_one_process_equals_the_forked_one(tmp_path, monkeypatch):
    """The later sources run in a forked process; a child that fails (or no fork) leaves
    the work to this process: the same document and output table either way."""
    from mlcycle.evaluation import compare

    t, forked = _bootstrapped(tmp_path)
    monkeypatch.setattr(compare._Child, "result", lambda self: None)   # the child failed
    again = mlcycle.evaluate(t, bootstrap=40, seed=1)
    assert json.dumps(again.summary, sort_keys=True) == json.dumps(forked.summary, sort_keys=True)
    assert again.table.equals(forked.table)
    assert forked.summary["comparison"]["bootstrap"]["deltas"]["detr"]["AP"]["ci"] is not None


def test_child_warnings_reach_the_caller_and_a_failing_parent_ends_the_child(monkeypatch):
    import os

    from mlcycle import reporting
    from mlcycle.evaluation import compare

    parent = os.getpid()

    def work(x):
        if os.getpid() != parent:
            reporting.warn(f"from the child: {x}")
        return x * 2

    with reporting.collect() as seen:
        assert compare._in_processes(work, [1, 2, 3, 4]) == [2, 4, 6, 8]
    if compare._can_fork_here():
        assert seen.warnings == ["from the child: 3", "from the child: 4"]
    ended = []
    real_end = compare._Child.end
    monkeypatch.setattr(compare._Child, "end", lambda self: (ended.append(self.pid), real_end(self)))

    def fails_here(x):
        if os.getpid() == parent:
            raise MlcycleError("parent side failed")
        return x

    with pytest.raises(MlcycleError, match="parent side failed"):
        compare._in_processes(fails_here, [1, 2])
    if compare._can_fork_here():
        assert ended and ended[0] is not None   # the running child was stopped and reaped
