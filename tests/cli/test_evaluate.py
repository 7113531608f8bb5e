"""mlcycle evaluate: outputs, options, the CI gate and bad input (stdout/stderr/exit apart)."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest

from mlcycle import io
from mlcycle import table as T


def _tables(tmp_path, preds=None, gt=None, extra_gt=None, name="x"):
    """A two-image ground truth and predictions; returns (gt path, pred path)."""
    if gt is None:
        gt = {
            T.SAMPLE_ID: ["a.jpg", "a.jpg", "b.jpg", "c.jpg"],
            T.SOURCE: ["gt"] * 4,
            T.LABEL_ID: [0, 1, 2, None],
            T.LABEL: ["cat", "dog", "cat", None],
            T.BBOX: np.array([[0, 0, 10, 10], [20, 20, 40, 40], [0, 0, 50, 50], [np.nan] * 4], float),
            T.IMAGE_ID: [1, 1, 2, 3],
            T.WIDTH: [100, 100, 100, 100],
            T.HEIGHT: [100, 100, 100, 100],
            "split": ["val", "val", "test", "test"],
            "occluded": [True, False, False, None],
        }
        if extra_gt:
            gt.update(extra_gt)
    if preds is None:
        preds = {
            T.SAMPLE_ID: ["a.jpg", "a.jpg", "b.jpg", "c.jpg"],
            T.SOURCE: ["pred"] * 4,
            T.LABEL_ID: [1, 2, 3, 4],
            T.LABEL: ["cat", "cat", "cat", "dog"],
            T.BBOX: np.array([[0, 0, 10, 10], [20, 20, 40, 40], [0, 0, 50, 30], [5, 5, 5, 5]], float),
            T.SCORE: [0.9, 0.8, 0.7, 0.6],
        }
    gp, pp = tmp_path / f"{name}_gt.parquet", tmp_path / f"{name}_pred.parquet"
    io.write_table(T.from_columns(gt), gp)
    if preds is not False:
        io.write_table(T.from_columns(preds), pp)
    return gp, pp


def _rows(stdout: str) -> list[dict]:
    return [r for r in (json.loads(line) for line in stdout.splitlines() if line.strip()) if "__mlcycle__" not in r]


def test_per_label_output_on_stdout(runner, tmp_path):
    gp, pp = _tables(tmp_path)
    r = runner(["evaluate", gp, pp])
    assert r.exit_code == 0, r.stderr
    rows = _rows(r.stdout)
    assert len(rows) == 8
    by = {(x["source"], x["label_id"]): x for x in rows}
    # ground truth with label_id 0 is matched (pycocotools would not count it)
    assert by[("gt", 0)]["eval"] == "tp" and by[("gt", 0)]["eval_id"] == 1 and by[("gt", 0)]["eval_iou"] == 1.0
    assert by[("pred", 1)]["eval"] == "tp" and by[("pred", 1)]["eval_id"] == 0
    assert by[("pred", 2)]["eval"] == "fp"          # right place, wrong class
    assert by[("gt", 1)]["eval"] == "fn"
    assert by[("pred", 3)]["eval"] == "tp" and by[("pred", 3)]["eval_iou"] == pytest.approx(0.6)
    assert by[("pred", 4)]["eval"] == "fp"
    assert by[("gt", None)]["eval"] is None         # the sample row
    assert "AP50" in r.stderr                       # the summary goes to stderr


def test_json_and_metrics_file(runner, tmp_path):
    gp, pp = _tables(tmp_path)
    mf = tmp_path / "m.json"
    out = tmp_path / "out.parquet"
    r = runner(["evaluate", gp, pp, "--json", "--metrics", mf, "-o", out, "-q"])
    assert r.exit_code == 0
    assert r.stderr == ""
    doc = json.loads(r.stdout)
    assert json.loads(mf.read_text()) == doc
    assert list(doc["metrics"])[:12] == ["AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large",
                                         "AR_1", "AR_10", "AR_100", "AR_small", "AR_medium", "AR_large"]
    for key in ("per_class", "pr_curves", "confusion_matrix", "slices", "params", "inputs", "mlcycle_version"):
        assert key in doc
    cm = doc["confusion_matrix"]
    assert cm["labels"] == ["cat", "dog", "(none)"]
    # rows gt, cols pred: cat->cat 2, dog missed but the cat box sits on it, one dog FP
    assert cm["matrix"] == [[2, 0, 0], [1, 0, 0], [0, 1, 0]]
    assert len(doc["pr_curves"]["recall"]) == 101
    table = io.read_table(out)
    assert T.EVAL in table.column_names and table.num_rows == 8


def test_terminal_without_output_prints_metrics_not_table(runner, tmp_path, monkeypatch):
    import mlcycle.cli.evaluate as cli

    monkeypatch.setattr(cli, "stdout_is_terminal", lambda: True)
    gp, pp = _tables(tmp_path)
    r = runner(["evaluate", gp, pp])
    assert r.exit_code == 0
    assert r.stdout == ""
    assert "AP50" in r.stderr and "per class" in r.stderr


def test_fail_under_exits_3_after_writing(runner, tmp_path):
    gp, pp = _tables(tmp_path)
    mf, out = tmp_path / "m.json", tmp_path / "o.jsonl"
    r = runner(["evaluate", gp, pp, "--metrics", mf, "-o", out, "--fail-under", "AP50=0.99", "--fail-under", "AR_100=0.01"])
    assert r.exit_code == 3
    assert "AP50" in r.stderr and "below 0.99" in r.stderr and "AR_100 =" not in r.stderr
    assert mf.exists() and out.exists()
    ok = runner(["evaluate", gp, pp, "-o", out, "--fail-under", "AP50=0.1"])
    assert ok.exit_code == 0


def test_fail_under_unknown_metric_is_usage_error(runner, tmp_path):
    gp, pp = _tables(tmp_path)
    r = runner(["evaluate", gp, pp, "--fail-under", "APX=0.5", "-o", tmp_path / "o.jsonl"])
    assert r.exit_code == 2
    assert "unknown metric 'APX'" in r.stderr


def test_fail_under_above_one_is_usage_error_before_output(runner, tmp_path):
    gp, pp = _tables(tmp_path)
    out = tmp_path / "o.jsonl"
    r = runner(["evaluate", gp, pp, "--fail-under", "AP=1.5", "-o", out])
    assert r.exit_code == 2
    assert "--fail-under: AP=1.5 can never be met" in r.stderr
    assert not out.exists() and r.stdout == ""


def test_gate_outcome_is_not_in_the_metrics_json(runner, tmp_path):
    gp, pp = _tables(tmp_path)
    r = runner(["evaluate", gp, pp, "--json", "--fail-under", "AP50=0.99"])
    assert r.exit_code == 3
    assert "fail_under" not in json.loads(r.stdout)


def test_option_errors_name_the_flag(runner, tmp_path):
    gp, pp = _tables(tmp_path)
    for args, text in ((["--pred-source", "gt"], "error: --pred-source: 'gt' is the ground truth source"),
                       (["--area-range", "small=0:5"], "error: --area-range: range name 'small' is taken"),
                       (["--rel-area-range", "all=0:1"], "error: --rel-area-range: range name 'all' is taken"),
                       (["--iou", "1.5"], "error: --iou: expected a number in (0, 1]")):
        r = runner(["evaluate", gp, pp, "--json", *args])
        assert r.exit_code == 2, args
        assert text in r.stderr, r.stderr


def test_stdin_jsonl(runner, tmp_path):
    gp, pp = _tables(tmp_path)
    data = io.encode(io.read_table(gp), "jsonl") + io.encode(io.read_table(pp), "jsonl")
    r = runner(["evaluate", "--json"], input=data)
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["inputs"]["rows"] == 8


def test_predictions_without_scores(runner, tmp_path):
    preds = {T.SAMPLE_ID: ["a.jpg"], T.SOURCE: ["pred"], T.LABEL_ID: [1], T.LABEL: ["cat"],
             T.BBOX: np.array([[0, 0, 10, 10]], float), T.SCORE: [None]}
    gp, pp = _tables(tmp_path, preds=preds)
    r = runner(["evaluate", gp, pp, "-o", tmp_path / "o.jsonl"])
    assert r.exit_code == 1
    assert "have no score" in r.stderr and r.stdout == ""


def test_nan_box(runner, tmp_path):
    preds = {T.SAMPLE_ID: ["a.jpg"], T.SOURCE: ["pred"], T.LABEL_ID: [1], T.LABEL: ["cat"],
             T.BBOX: np.array([[0, np.nan, 10, 10]], float), T.SCORE: [0.5]}
    gp, pp = _tables(tmp_path, preds=preds)
    r = runner(["evaluate", gp, pp, "-o", tmp_path / "o.jsonl"])
    assert r.exit_code == 1
    assert "NaN" in r.stderr and "a.jpg" in r.stderr


def test_unknown_classes_warned_and_counted(runner, tmp_path):
    preds = {T.SAMPLE_ID: ["a.jpg", "a.jpg"], T.SOURCE: ["pred"] * 2, T.LABEL_ID: [1, 2], T.LABEL: ["cat", "zebra"],
             T.BBOX: np.array([[0, 0, 10, 10], [0, 0, 10, 10]], float), T.SCORE: [0.5, 0.9]}
    gp, pp = _tables(tmp_path, preds=preds)
    r = runner(["evaluate", gp, pp, "--json"])
    assert r.exit_code == 0
    doc = json.loads(r.stdout)
    assert doc["inputs"]["unknown_classes"] == {"zebra": 1}
    assert "zebra" in r.stderr and "ignored" in r.stderr


def test_empty_predictions_give_zeros(runner, tmp_path):
    gp, _ = _tables(tmp_path, preds=False)
    r = runner(["evaluate", gp, "--json"])
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["metrics"]["AP"] == 0.0 and doc["metrics"]["AR_100"] == 0.0
    assert "no predictions" in r.stderr


def test_no_ground_truth(runner, tmp_path):
    _, pp = _tables(tmp_path)
    r = runner(["evaluate", pp, "-o", tmp_path / "o.jsonl"])
    assert r.exit_code == 1
    assert "no ground truth" in r.stderr


def test_two_prediction_sources_are_compared_or_one_is_picked(runner, tmp_path):
    gp, pp = _tables(tmp_path)
    other = io.read_table(pp)
    other = other.set_column(other.column_names.index(T.SOURCE), T.SOURCE, pa.array(["yolo"] * other.num_rows))
    op = tmp_path / "other.parquet"
    io.write_table(other, op)
    r = runner(["evaluate", gp, pp, op, "--json"])
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert set(doc["sources"]) == {"yolo", "pred"} and "comparison" in doc
    r = runner(["evaluate", gp, pp, op, "--pred-source", "yolo", "--json"])
    assert r.exit_code == 0
    assert json.loads(r.stdout)["params"]["pred_source"] == "yolo"


def test_slices_sample_and_label_level(runner, tmp_path):
    gp, pp = _tables(tmp_path)
    r = runner(["evaluate", gp, pp, "--json", "--by", "split", "--by", "occluded"])
    assert r.exit_code == 0, r.stderr
    slices = json.loads(r.stdout)["slices"]
    kinds = {(s["column"], str(s["value"])): s for s in slices}
    assert kinds[("split", "val")]["kind"] == "sample" and kinds[("split", "val")]["images"] == 1
    assert kinds[("occluded", "True")]["kind"] == "label" and kinds[("occluded", "True")]["num_gt"] == 1
    # the only occluded ground truth (a cat) is found first: AP50 1.0 despite the other errors
    assert kinds[("occluded", "True")]["metrics"]["AP50"] == pytest.approx(1.0, abs=1e-9)


def test_area_ranges_and_max_dets(runner, tmp_path):
    gp, pp = _tables(tmp_path)
    r = runner(["evaluate", gp, pp, "--json", "--area-range", "tiny=0:16**2", "--rel-area-range", "big=0.2:1",
                "--max-dets", "1,5"])
    assert r.exit_code == 0, r.stderr
    m = json.loads(r.stdout)["metrics"]
    assert "AP_tiny" in m and "AR_big" in m and "AR_5" in m and "AR_100" not in m


def test_bad_options(runner, tmp_path):
    gp, pp = _tables(tmp_path)
    for args, text in ((["--iou-type", "kp"], "--iou-type"), (["--method", "x"], "--method"),
                       (["--area-range", "tiny"], "NAME=LO:HI"), (["--max-dets", "a"], "--max-dets"),
                       (["--by", "nope"], "no column 'nope'")):
        r = runner(["evaluate", gp, pp, "-o", tmp_path / "o.jsonl", *args])
        assert r.exit_code == 2, args
        assert text in r.stderr


def test_segm_from_polygons(runner, tmp_path):
    gt = {
        T.SAMPLE_ID: ["a.jpg"], T.SOURCE: ["gt"], T.LABEL_ID: [1], T.LABEL: ["cat"],
        T.BBOX: np.array([[0, 0, 10, 10]], float),
        T.SEGMENTATION: ["[[0,0,10,0,10,10,0,10]]"], T.WIDTH: [20], T.HEIGHT: [20],
    }
    preds = {T.SAMPLE_ID: ["a.jpg"], T.SOURCE: ["pred"], T.LABEL_ID: [1], T.LABEL: ["cat"],
             T.SEGMENTATION: ["[[0,0,10,0,10,10,0,10]]"], T.SCORE: [0.5], T.WIDTH: [20], T.HEIGHT: [20]}
    gp, pp = _tables(tmp_path, preds=preds, gt=gt)
    r = runner(["evaluate", gp, pp, "--iou-type", "segm", "--json"])
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["metrics"]["AP"] == pytest.approx(1.0)


def test_voc_method(runner, tmp_path):
    gp, pp = _tables(tmp_path)
    r = runner(["evaluate", gp, pp, "--method", "voc", "--json"])
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["method"] == "voc" and "mAP" in doc["metrics"]


def test_classification_when_labels_have_no_box(runner, tmp_path):
    gt = {T.SAMPLE_ID: ["a", "b", "c"], T.SOURCE: ["gt"] * 3, T.LABEL_ID: [1, 2, 3], T.LABEL: ["cat", "dog", "cat"]}
    preds = {T.SAMPLE_ID: ["a", "b", "c"], T.SOURCE: ["pred"] * 3, T.LABEL_ID: [1, 2, 3],
             T.LABEL: ["cat", "cat", "cat"], T.SCORE: [0.9, 0.8, 0.7]}
    gp, pp = _tables(tmp_path, preds=preds, gt=gt)
    r = runner(["evaluate", gp, pp, "--json"])
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["method"] == "classification"
    assert doc["accuracy"] == pytest.approx(2 / 3)


def test_help_has_examples(runner):
    r = runner(["evaluate", "--help"])
    assert r.exit_code == 0
    assert "Examples:" in r.stdout and "--fail-under" in r.stdout


# --------------------------------------------------------------------------- issue #13

def test_fail_under_a_percentage_for_a_fraction_is_usage_error(runner, tmp_path):
    """AP50=60 (meant as 60%) can never be met: exit 2 before any work or output."""
    gp, pp = _tables(tmp_path)
    out, mf = tmp_path / "o.jsonl", tmp_path / "m.json"
    r = runner(["evaluate", gp, pp, "--fail-under", "AP50=60", "--metrics", mf, "-o", out])
    assert r.exit_code == 2
    assert "--fail-under" in r.stderr and "AP50=60" in r.stderr
    assert not out.exists() and not mf.exists() and r.stdout == ""


@pytest.mark.parametrize("bad", ["missing/x.jsonl", "folder/"])
def test_bad_output_leaves_no_metrics_file(runner, tmp_path, bad):
    """`--metrics m.json -o bad/x`: the output is checked before the work, and the two are
    written all or none."""
    gp, pp = _tables(tmp_path)
    (tmp_path / "folder").mkdir()
    mf = tmp_path / "m.json"
    r = runner(["evaluate", gp, pp, "--metrics", mf, "-o", str(tmp_path / bad)])
    assert r.exit_code in (1, 2) and r.stderr.startswith("error: ")
    assert not mf.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder", "x_gt.parquet", "x_pred.parquet"]


def test_metrics_and_table_written_together(runner, tmp_path):
    gp, pp = _tables(tmp_path)
    mf, out = tmp_path / "m.json", tmp_path / "o.parquet"
    r = runner(["evaluate", gp, pp, "--metrics", mf, "-o", out])
    assert r.exit_code == 0, r.stderr
    assert json.loads(mf.read_text())["metrics"]["AP50"] > 0
    t = io.read_table(out)
    assert T.EVAL in t.column_names and "history" in T.get_metadata(t)
