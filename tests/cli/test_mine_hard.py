"""mlcycle mine-hard on the command line: streams, exit statuses, options."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from mlcycle import io
from mlcycle import table as T

BOX = [0.0, 0.0, 10.0, 10.0]
COLS = ["sample_id", "source", "label_id", "label", "bbox", "score", "eval", "eval_id", "eval_iou"]
ROWS = [
    ("a.jpg", "gt", 1, "cat", BOX, None, "tp", 1, 1.0),
    ("a.jpg", "pred", 1, "cat", BOX, 0.9, "tp", 1, 1.0),
    ("a.jpg", "pred", 2, "dog", [50.0, 50.0, 10.0, 10.0], 0.95, "fp", None, None),  # possible_missing
    ("b.jpg", "gt", 2, "cat", BOX, None, "fn", None, None),
    ("b.jpg", "pred", 3, "dog", BOX, 0.9, "fp", None, None),                        # wrong label
    ("c.jpg", "gt", 3, "cat", BOX, None, "fn", None, None),
    ("c.jpg", "pred", 4, "cat", [6.0, 0.0, 10.0, 10.0], 0.7, "fp", None, None),     # localization
]


@pytest.fixture
def evaluated(tmp_path):
    cols = {c: [r[i] for r in ROWS] for i, c in enumerate(COLS)}
    cols["embedding"] = [[1.0, 0.0, 0.0]] * 3 + [[0.0, 1.0, 0.0]] * 2 + [[0.0, 0.0, 1.0]] * 2
    path = tmp_path / "evaluated.parquet"
    io.write_table(T.from_columns(cols), path)
    return path


def jsonl(text):
    """Rows of a JSON Lines table (without the metadata header line)."""
    rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    return [r for r in rows if "__mlcycle__" not in r]


def test_writes_a_ranked_label_table_on_stdout_and_a_summary_on_stderr(runner, evaluated):
    r = runner(["mine-hard", evaluated])
    assert r.exit_code == 0, r.stderr
    rows = jsonl(r.stdout)
    assert rows[0]["hard_reason"] == "possible_missing" and rows[0]["hard_score"] == 0.95
    assert [x["sample_id"] for x in rows] == ["a.jpg"] * 3 + ["b.jpg"] * 2 + ["c.jpg"] * 2
    assert {x["hard_reason"] for x in rows} == {"possible_missing", "possible_wrong_label", "localization", None}
    assert "mine-hard: 5 labels flagged in 3 of 3 samples" in r.stderr
    assert "possible_wrong_label" in r.stderr
    assert "{" not in r.stderr  # no data on stderr


def test_top_reasons_per_sample_and_quiet(runner, evaluated):
    r = runner(["mine-hard", evaluated, "--top", "1", "-q"])
    assert r.exit_code == 0 and r.stderr == ""
    assert {x["sample_id"] for x in jsonl(r.stdout)} == {"a.jpg"}
    r = runner(["mine-hard", evaluated, "--reasons", "localization", "--no-context", "-q"])
    assert [(x["source"], x["hard_reason"]) for x in jsonl(r.stdout)] == [("gt", "localization"), ("pred", "localization")]
    r = runner(["mine-hard", evaluated, "--per", "sample", "--min-score", "0.8", "-q"])
    assert {x["sample_id"] for x in jsonl(r.stdout)} == {"a.jpg", "b.jpg"}


def test_thresholds_are_flags(runner, evaluated):
    r = runner(["mine-hard", evaluated, "--conf-missing", "0.99", "--conf-wrong", "0.95", "--model-weight", "1", "-q"])
    got = {(x["source"], x["label_id"]): (x["hard_reason"], x["hard_score"]) for x in jsonl(r.stdout) if x["hard_reason"]}
    assert got[("pred", 2)] == ("background", 0.95)
    assert got[("pred", 3)] == ("class_confusion", 0.9)


def test_json_prints_the_summary_document(runner, evaluated):
    r = runner(["mine-hard", evaluated, "--json"])
    assert r.exit_code == 0
    doc = json.loads(r.stdout)
    assert doc["by_reason"] == {"possible_missing": 1, "possible_wrong_label": 2, "localization": 2}
    assert doc["parameters"]["iou"] == 0.5 and doc["parameters"]["conf_missing"] == 0.8
    assert doc["top_labels"][0]["hard_reason"] == "possible_missing"


def test_output_file_is_parquet_with_the_hard_columns(runner, evaluated, tmp_path):
    out = tmp_path / "hard.parquet"
    r = runner(["mine-hard", evaluated, "-o", out, "-q"])
    assert r.exit_code == 0 and r.stdout == ""
    t = pq.read_table(out)
    for c in (T.HARD_SCORE, T.HARD_REASON, T.HARD_SAMPLE_SCORE, "embedding", T.EVAL):
        assert c in t.column_names


def test_reads_standard_input(runner, evaluated):
    data = io.encode(io.read_table(evaluated), "jsonl")
    r = runner(["mine-hard", "--top", "1", "-q"], input=data)
    assert r.exit_code == 0
    assert jsonl(r.stdout)[0]["hard_reason"] == "possible_missing"


def test_without_eval_columns_the_hint_is_the_evaluate_command(runner, tmp_path):
    path = tmp_path / "labels.parquet"
    io.write_table(T.from_columns({"sample_id": ["a"], "source": ["gt"], "label": ["cat"], "bbox": [BOX]}), path)
    r = runner(["mine-hard", path])
    assert r.exit_code == 1
    assert r.stdout == ""
    assert f"error: {path}: no 'eval' column" in r.stderr
    assert f"hint: run evaluate first: mlcycle evaluate {path} | mlcycle mine-hard" in r.stderr


@pytest.mark.parametrize("args, message", [
    (["--per", "image"], "--per: expected label or sample"),
    (["--reasons", "possible_missing,nope"], "unknown reason(s) nope"),
    (["--iou", "2"], "--iou: must be between 0 and 1"),
    (["--pool", "x.parquet"], "--pool needs --embedding"),
    (["--top", "0"], "--top: must be at least 1"),
])
def test_usage_errors_exit_2(runner, evaluated, args, message):
    r = runner(["mine-hard", evaluated, *args])
    assert r.exit_code == 2
    assert message in r.stderr and r.stdout == ""


def test_pool_search_outputs_similar_unlabeled_samples(runner, evaluated, tmp_path):
    pool = tmp_path / "pool.parquet"
    # p0, p1 resemble failure a.jpg; p2, p3 repeat the labeled c.jpg, b.jpg; a.jpg itself is labeled
    emb = np.array([[1, 0.4, 0], [1, 0, 0.6], [0, 0, 1], [0, 1, 0], [1, 0, 0]], dtype=float)
    io.write_table(T.from_columns({
        "sample_id": ["p0.jpg", "p1.jpg", "p2.jpg", "p3.jpg", "a.jpg"], "source": ["gt"] * 5,
        "embedding": emb.tolist()}), pool)
    r = runner(["mine-hard", evaluated, "--top", "1", "--pool", pool, "--embedding", "embedding", "--k", "2"])
    assert r.exit_code == 0, r.stderr
    rows = jsonl(r.stdout)
    assert [x["sample_id"] for x in rows] == ["p0.jpg", "p1.jpg"]
    assert all(x["hard_reason"] == "similar_to_failure" and x["hard_match"] == "a.jpg" for x in rows)
    assert "pool: chose 2 samples of 4 unlabeled pool rows, similar to 1 failures (1 pool samples already labeled, skipped)" in r.stderr
    r = runner(["mine-hard", evaluated, "--top", "1", "--pool", pool, "--embedding", "embedding", "--k", "5", "-q"])
    assert [x["sample_id"] for x in jsonl(r.stdout)] == ["p0.jpg", "p1.jpg"]  # near-duplicates of labeled data dropped
    r = runner(["mine-hard", evaluated, "--top", "1", "--pool", pool, "--embedding", "embedding", "--k", "2", "--json"])
    doc = json.loads(r.stdout)
    assert doc["pool"]["chosen"] == 2 and doc["pool"]["top"][0]["sample_id"] == "p0.jpg"


def test_objectlab_method(runner, evaluated):
    r = runner(["mine-hard", evaluated, "--method", "objectlab", "--per", "sample", "-q"])
    assert r.exit_code == 0, r.stderr
    rows = jsonl(r.stdout)
    scores = [x["hard_sample_score"] for x in rows]
    assert scores == sorted(scores, reverse=True) and 0 <= min(scores) <= max(scores) <= 1
    assert rows[0]["sample_id"] == "a.jpg"  # the confident prediction on nothing: overlooked


def test_help_has_examples_and_imports_nothing_heavy():
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-X", "importtime", "-m", "mlcycle", "mine-hard", "--help"],
                       capture_output=True, text=True, check=True)
    assert "Examples:" in r.stdout and "mlcycle mine-hard" in r.stdout
    heavy = [line for line in r.stderr.splitlines() if any(f" {m}" in line.split("|")[-1] for m in ("numpy", "pyarrow"))]
    assert heavy == []


def test_sample_dataset_pipeline_puts_its_planted_mistakes_on_top(runner, tmp_path):
    """ingest -> evaluate -> mine-hard on the bundled sample: its MISTAKES.md (val part)."""
    from pathlib import Path

    sample = Path(__file__).resolve().parents[2] / "mlcycle" / "data" / "sample"
    gt, preds, ev = tmp_path / "gt.parquet", tmp_path / "preds.parquet", tmp_path / "evaluated.parquet"
    for args in (
        ["ingest", "coco", sample / "annotations" / "instances_val.json", "--split", "val", "--images-root", sample, "-o", gt, "-q"],
        ["ingest", "coco-results", sample / "predictions" / "detections_val.json", "--images", gt, "--source", "detector", "-o", preds, "-q"],
        ["evaluate", gt, preds, "-o", ev, "-q"],
    ):
        r = runner(args)
        assert r.exit_code == 0, r.stderr
    r = runner(["mine-hard", ev, "--per", "sample", "--top", "4", "--json"])
    assert r.exit_code == 0, r.stderr
    top = [s["sample_id"] for s in json.loads(r.stdout)["top_samples"]]
    assert {"images/val_020.png", "images/val_021.png", "images/val_022.png"} <= set(top)
    r = runner(["mine-hard", ev, "--per", "sample", "--top", "4", "--no-context", "-q"])
    reasons = {(x["sample_id"], x["label_id"]): x["hard_reason"] for x in jsonl(r.stdout) if x["source"] == "gt"}
    assert reasons[("images/val_021.png", 75)] == "possible_wrong_label"   # labelled circle, shows a triangle
    assert reasons[("images/val_022.png", 79)] == "localization"           # shifted box
    missing = [x for x in jsonl(r.stdout) if x["sample_id"] == "images/val_020.png"]
    assert [x["hard_reason"] for x in missing] == ["possible_missing"]      # the circle without annotation


def test_real_pipe_evaluate_into_mine_hard_into_head(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    sample = Path(__file__).resolve().parents[2] / "mlcycle" / "data" / "sample"
    ml = f"{sys.executable} -m mlcycle"
    script = (
        f"{ml} ingest coco {sample}/annotations/instances_val.json -q -o {tmp_path}/gt.parquet && "
        f"{ml} ingest coco-results {sample}/predictions/detections_val.json --images {tmp_path}/gt.parquet -q -o {tmp_path}/p.parquet && "
        f"{ml} evaluate {tmp_path}/gt.parquet {tmp_path}/p.parquet -q -o - --format jsonl | {ml} mine-hard --top 3 -q | head -c 20"
    )
    r = subprocess.run(["bash", "-o", "pipefail", "-c", script], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    assert r.stdout.startswith("{") and len(r.stdout) == 20


def test_output_exports_to_cvat_for_re_annotation(runner, evaluated, tmp_path):
    r = runner(["mine-hard", evaluated, "--reasons", "possible_wrong_label,localization", "-q"])
    assert r.exit_code == 0
    out = tmp_path / "recheck.xml"
    r = runner(["export", "cvat", "-", "-o", out, "-q"], input=r.stdout)
    assert r.exit_code == 0, r.stderr
    xml = out.read_text()
    assert '<attribute name="hard_reason">possible_wrong_label</attribute>' in xml
    assert '<attribute name="hard_reason">localization</attribute>' in xml


def test_default_cut_off_is_said_in_the_summary(runner, tmp_path):
    """No --top: the best 5% of the ground-truth labels, at least 10, and the summary says
    so; an explicit --top still works; --min-score 0 keeps every flagged label."""
    import numpy as np

    from mlcycle import io
    from mlcycle import table as T

    rows = {T.SAMPLE_ID: [], T.SOURCE: [], T.LABEL_ID: [], T.LABEL: [], T.BBOX: [], T.SCORE: [], T.EVAL: []}
    lid = 0
    for i in range(40):
        for j in range(10):  # low-score boxes on background: 400 flagged as background
            for k, v in zip(rows, (f"{i}.jpg", "pred", lid, "car", [10.0 * j, 0.0, 5.0, 5.0], 0.1 + 0.01 * j, "fp")):
                rows[k].append(v)
            lid += 1
        for k, v in zip(rows, (f"{i}.jpg", "gt", lid, "car", [500.0, 500.0, 50.0, 50.0], None, "fn")):
            rows[k].append(v)
        lid += 1
    path = tmp_path / "ev.parquet"
    io.write_table(T.from_columns(rows), path)
    r = runner(["mine-hard", path, "-o", tmp_path / "out.parquet"])
    assert r.exit_code == 0, r.stderr
    assert "cut-off: the default, the best 5% of the 40 ground-truth labels (at least 10): top 10 labels" in r.stderr
    assert "430 flagged labels below it not written" in r.stderr
    r = runner(["mine-hard", path, "--json"])
    doc = json.loads(r.stdout)
    assert doc["selected_labels"] == 10 and doc["cutoff"]["rule"] == "default" and doc["labels_scored"] == 440
    r = runner(["mine-hard", path, "--top", "25", "--json"])
    assert json.loads(r.stdout)["selected_labels"] == 25
    r = runner(["mine-hard", path, "--top", "25", "-o", tmp_path / "o2.parquet"])
    assert "cut-off: --top 25; 415 more flagged below it not written" in r.stderr
    r = runner(["mine-hard", path, "--min-score", "0", "--json"])
    assert json.loads(r.stdout)["selected_labels"] == 440
