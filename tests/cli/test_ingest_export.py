"""ingest / export through the CLI: streams, exit statuses, outputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlcycle import io
from mlcycle import table as T

SAMPLE = Path(__file__).resolve().parents[2] / "mlcycle" / "data" / "sample"
GT_VAL = SAMPLE / "annotations" / "instances_val.json"
DETS_VAL = SAMPLE / "predictions" / "detections_val.json"


def test_version_and_help(runner):
    r = runner(["--version"])
    assert r.exit_code == 0 and r.stdout.startswith("mlcycle ")
    r = runner(["ingest", "--help"])
    assert r.exit_code == 0 and "Examples:" in r.stdout and "mlcycle ingest coco" in r.stdout


def test_ingest_coco_to_stdout_is_json_lines_only(runner):
    r = runner(["ingest", "coco", GT_VAL, "--split", "val"])
    assert r.exit_code == 0, r.stderr
    lines = r.stdout.splitlines()
    rows = [json.loads(line) for line in lines]
    assert "__mlcycle__" in rows[0]
    assert all(row["split"] == "val" for row in rows[1:])
    assert "ingested" in r.stderr and "ingested" not in r.stdout


def test_quiet_silences_messages(runner):
    r = runner(["ingest", "coco", GT_VAL, "-q"])
    assert r.exit_code == 0 and r.stderr == ""


def test_ingest_detects_the_format_and_says_so(runner, tmp_path):
    r = runner(["ingest", GT_VAL, "-o", tmp_path / "gt.parquet"])
    assert r.exit_code == 0, r.stderr
    assert "detected format: coco" in r.stderr
    assert r.stdout == ""
    assert io.read_table(tmp_path / "gt.parquet").num_rows > 0


def test_list_formats(runner):
    r = runner(["ingest", "--list-formats"])
    assert r.exit_code == 0
    assert any(line.startswith("coco ") for line in r.stdout.splitlines())


def test_coco_round_trip_through_the_cli(runner, tmp_path):
    r = runner(["ingest", "coco", GT_VAL, "-o", tmp_path / "gt.parquet"])
    assert r.exit_code == 0
    r = runner(["export", "coco", tmp_path / "gt.parquet", "-o", tmp_path / "back.json"])
    assert r.exit_code == 0, r.stderr
    assert json.loads((tmp_path / "back.json").read_text()) == json.loads(GT_VAL.read_text())


def test_results_round_trip_through_the_cli(runner, tmp_path):
    r = runner(["ingest", "coco-results", DETS_VAL, "--images", GT_VAL, "--source", "det", "-o", tmp_path / "p.arrow"])
    assert r.exit_code == 0, r.stderr
    r = runner(["export", "coco-results", tmp_path / "p.arrow"])
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout) == json.loads(DETS_VAL.read_text())


def test_stdin_is_read_when_no_path(runner, tmp_path):
    data = io.encode(T.normalize(io.read_table(_ingested(runner, tmp_path))), "parquet")
    r = runner(["export", "coco", "-"], input=data)
    assert r.exit_code == 0, r.stderr
    assert len(json.loads(r.stdout)["images"]) == 12


def _ingested(runner, tmp_path):
    out = tmp_path / "gt.jsonl"
    assert runner(["ingest", "coco", GT_VAL, "-o", out]).exit_code == 0
    return out


@pytest.mark.parametrize("args,code,message", [
    (["ingest", "coco", "/no/such/file.json"], 1, "error: /no/such/file.json: no such file"),
    (["ingest", "nosuchformat", "x.json"], 2, "unknown format 'nosuchformat'"),
    (["ingest"], 2, "missing PATH"),
    (["ingest", "coco-results", str(DETS_VAL)], 2, "needs the ground truth"),
    (["ingest", "coco", str(GT_VAL), "--format", "xml"], 2, "unknown table encoding 'xml'"),
    (["export", "coco", "/no/such/table.parquet"], 1, "no such file"),
    (["ingest", "coco", str(GT_VAL), "--bogus"], 2, "No such option"),
])
def test_errors_are_one_line_with_the_right_status(runner, args, code, message):
    r = runner(args)
    assert r.exit_code == code
    assert message in r.stderr
    assert "Traceback" not in r.stderr and r.stdout == ""


def test_failed_ingest_leaves_no_output_file(runner, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"images": [], "annotations": [{"id": 1, "image_id": 3, "category_id": 1}], "categories": []}')
    out = tmp_path / "out.parquet"
    r = runner(["ingest", "coco", bad, "-o", out])
    assert r.exit_code == 1 and "image id 3" in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.json"]


def test_verbose_shows_the_traceback(runner, tmp_path):
    r = runner(["ingest", "coco", "/no/such/file.json", "-v"])
    assert r.exit_code == 1 and "Traceback" in r.stderr and "error: " in r.stderr


def test_format_option_and_env(runner, tmp_path, monkeypatch):
    out = tmp_path / "table.bin"
    r = runner(["ingest", "coco", GT_VAL, "-o", out, "--format", "arrow"])
    assert r.exit_code == 0 and out.read_bytes()[:4] == b"\xff\xff\xff\xff"
    r = runner(["ingest", "coco", GT_VAL, "-o", out], env={"MLCYCLE_FORMAT": "parquet"})
    assert r.exit_code == 0 and out.read_bytes()[:4] == b"PAR1"
