"""mlcycle.evaluation.evaluate, the library entry point: the Result, options and the gate."""

from __future__ import annotations

import dataclasses

import numpy as np
import pyarrow as pa
import pytest

from mlcycle import table as T
from mlcycle.errors import MlcycleError, OptionError
from mlcycle.evaluation import Options, evaluate
from mlcycle.results import Result


def _table():
    return T.from_columns({
        T.SAMPLE_ID: ["a", "a", "b", "a", "b", "b"],
        T.SOURCE: ["gt", "gt", "gt", "pred", "pred", "pred"],
        T.LABEL_ID: [1, 2, 3, 1, 2, 3],
        T.LABEL: ["cat", "dog", "cat", "cat", "cat", "zebra"],
        T.BBOX: np.array([[0, 0, 10, 10], [20, 20, 10, 10], [0, 0, 50, 50],
                          [0, 0, 10, 10], [0, 0, 50, 30], [5, 5, 5, 5]], float),
        T.SCORE: [None, None, None, 0.9, 0.7, 0.5],
    })


def test_returns_a_result_with_table_summary_and_warnings():
    run = evaluate(_table())
    assert isinstance(run, Result)
    assert run.summary["method"] == "coco" and "AP" in run.summary["metrics"]
    assert {T.EVAL, T.EVAL_ID, T.EVAL_IOU} <= set(run.table.column_names)
    assert set(run.table.column(T.EVAL).to_pylist()) <= {T.TP, T.FP, T.FN, None}
    # the unknown class is warned about, both in the document and on the result
    assert any("zebra" in w for w in run.warnings)
    assert list(run.warnings) == run.summary["warnings"]


def test_annotate_false_gives_no_table_and_the_same_metrics():
    assert evaluate(_table(), annotate=False).table is None
    assert evaluate(_table(), annotate=False).summary["metrics"] == evaluate(_table()).summary["metrics"]


def test_voc_and_classification_return_results_too():
    assert evaluate(_table(), method="voc").summary["method"] == "voc"
    assert evaluate(_table(), method="voc", annotate=False).table is None
    cls = T.from_columns({T.SAMPLE_ID: ["a", "b", "a", "b"], T.SOURCE: ["gt", "gt", "pred", "pred"],
                          T.LABEL_ID: [1, 2, 3, 4], T.LABEL: ["cat", "dog", "cat", "cat"],
                          T.SCORE: [None, None, 0.9, 0.8]})
    run = evaluate(cls)
    assert run.summary["method"] == "classification" and T.EVAL in run.table.column_names


def test_by_accepts_one_column_name():
    t = _table().append_column("split", pa.array(["val"] * 6))
    assert evaluate(t, by="split").summary["params"]["by"] == ["split"]


def test_options_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        Options().annotate = False  # type: ignore[misc]


@pytest.mark.parametrize("kwargs, option", [
    ({"method": "x"}, "method"), ({"iou_type": "kp"}, "iou_type"), ({"iou": 1.5}, "iou"),
    ({"max_dets": (0,)}, "max_dets"), ({"area_ranges": {"small": (0, 1)}}, "area_ranges"),
    ({"rel_area_ranges": {"all": (0, 1)}}, "rel_area_ranges"), ({"by": ("nope",)}, "by"),
    ({"pred_source": "gt"}, "pred_source"), ({"fail_under": {"AP": 1.5}}, "fail_under"),
    ({"fail_under": {"APX": 0.5}}, "fail_under"),
])
def test_option_errors_name_the_parameter_not_a_flag(kwargs, option):
    with pytest.raises(OptionError) as exc:
        evaluate(_table(), **kwargs)
    assert exc.value.option == option
    assert "--" not in exc.value.message and "--" not in (exc.value.hint or "")


def test_fail_under_outcome_is_in_the_summary():
    run = evaluate(_table(), fail_under={"AP50": 0.99, "AR_100": 0.0})
    gate = run.summary["fail_under"]
    assert gate["bounds"] == {"AP50": 0.99, "AR_100": 0.0}
    assert len(gate["failed"]) == 1 and gate["failed"][0].startswith("AP50 = ")
    assert "fail_under" not in evaluate(_table()).summary


def test_errors_speak_of_no_flags():
    only_preds = _table().filter(pa.array([False] * 3 + [True] * 3))
    with pytest.raises(MlcycleError) as exc:
        evaluate(only_preds)
    assert "no ground truth" in exc.value.message and "--" not in (exc.value.hint or "")
