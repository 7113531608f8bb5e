"""schema-check through the CLI: a filter (table on stdout), summary on stderr, report
files, --json, exit statuses, precise schema errors, --infer."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mlcycle import io
from mlcycle import table as T

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "mlcycle" / "data" / "sample"
WIDE = {"COLUMNS": "250"}

SCHEMA = """\
version: 1
classes: [person, car]
attributes:
  occluded: {type: bool, required: true}
boxes:
  inside_image: true
  max_aspect_ratio: 5
"""


def table(bad: bool = False, warn: bool = False):
    n = 4
    boxes = np.array([[1, 1, 10, 10]] * n, dtype=float)
    labels = ["person", "car", "person", "car"]
    if bad:
        boxes[1] = [95, 0, 10, 10]          # box.outside-image
        labels[3] = "[bold]dog"              # class.unknown, with rich markup in the data
    if warn:
        boxes[2] = [0, 0, 60, 10]            # box.aspect-ratio (a warning)
    return T.from_columns({
        "sample_id": ["a.jpg", "a.jpg", "b.jpg", "c.jpg"], "source": ["gt"] * n, "label_id": [1, 2, 3, 4],
        "label": labels, "bbox": boxes, "width": [100] * n, "height": [100] * n, "occluded": [True, False, True, False],
    })


@pytest.fixture
def files(tmp_path):
    def make(bad=False, warn=False, schema=SCHEMA):
        s = tmp_path / "schema.yaml"
        s.write_text(schema)
        t = tmp_path / "labels.parquet"
        io.write_table(table(bad, warn), t)
        return s, t
    return make


def rows(stdout: str) -> list[dict]:
    return [r for r in (json.loads(line) for line in stdout.splitlines()) if "__mlcycle__" not in r]


def test_clean_table_passes_through_unchanged(runner, files):
    s, t = files()
    r = runner(["schema-check", "-s", s, t])
    assert r.exit_code == 0, r.stderr
    assert rows(r.stdout) == rows(io.encode_jsonl(table()).decode())
    assert "schema check passed" in r.stderr and "no violations" in r.stderr
    assert "schema check" not in r.stdout


def test_errors_exit_3_after_writing_the_table_and_summary(runner, files):
    s, t = files(bad=True)
    r = runner(["schema-check", "-s", s, t], env=WIDE)
    assert r.exit_code == 3
    assert len(rows(r.stdout)) == 4                       # the whole table was written first
    err = r.stderr
    assert "box.outside-image" in err and "class.unknown" in err
    assert "a.jpg #2" in err                              # first example: sample id and label id
    assert "[bold]dog" in err                             # data is escaped, not rendered as markup
    assert "error: schema check failed: 2 errors" in err
    assert "hint: --report FILE lists every violation" in err


def test_warnings_pass_unless_strict(runner, files):
    s, t = files(warn=True)
    r = runner(["schema-check", "-s", s, t])
    assert r.exit_code == 0, r.stderr
    assert "box.aspect-ratio" in r.stderr and "warning" in r.stderr
    r = runner(["schema-check", "-s", s, t, "--strict"])
    assert r.exit_code == 3
    assert "0 errors, 1 warning" in r.stderr
    assert len(rows(r.stdout)) == 4


def test_annotate_adds_violations_column(runner, files):
    s, t = files(bad=True, warn=True)
    r = runner(["schema-check", "-s", s, t, "--annotate"])
    assert r.exit_code == 3
    assert [row[T.VIOLATIONS] for row in rows(r.stdout)] == [
        [], ["box.outside-image"], ["box.aspect-ratio"], ["class.unknown"]]


@pytest.mark.parametrize("keep, strict, ids", [
    ("valid", False, [1, 3]), ("invalid", False, [2, 4]), ("valid", True, [1]), ("all", False, [1, 2, 3, 4])])
def test_keep_valid_or_invalid_rows(runner, files, keep, strict, ids):
    s, t = files(bad=True, warn=True)
    r = runner(["schema-check", "-s", s, t, "--keep", keep] + (["--strict"] if strict else []))
    assert r.exit_code == 3
    assert [row["label_id"] for row in rows(r.stdout)] == ids


def test_report_file_one_row_per_violation(runner, files, tmp_path):
    s, t = files(bad=True)
    for name in ("report.jsonl", "report.parquet", "report.json"):
        r = runner(["schema-check", "-s", s, t, "--report", tmp_path / name, "-o", tmp_path / "out.parquet"])
        assert r.exit_code == 3 and r.stdout == ""
        rep = io.read_bytes(tmp_path / name)
        assert io.sniff(rep) == ("parquet" if name.endswith(".parquet") else "jsonl")
        got = io.decode(rep, name).to_pylist()
        assert [(v["rule"], v["severity"], v["sample_id"], v["label_id"], v["column"]) for v in got] == [
            ("class.unknown", "error", "c.jpg", 4, "label"), ("box.outside-image", "error", "a.jpg", 2, "bbox")]
        assert got[0]["value"] == "[bold]dog" and got[0]["message"] == "class '[bold]dog' is not in the schema"
    assert io.read_table(tmp_path / "out.parquet").num_rows == 4


def test_json_puts_the_summary_on_stdout_instead_of_the_table(runner, files, tmp_path):
    s, t = files(bad=True)
    r = runner(["schema-check", "-s", s, t, "--json"])
    assert r.exit_code == 3
    doc = json.loads(r.stdout)
    assert doc["passed"] is False and doc["errors"] == 2 and doc["warnings"] == 0 and doc["rows"] == 4
    assert [(x["rule"], x["count"], x["severity"]) for x in doc["rules"]] == [
        ("class.unknown", 1, "error"), ("box.outside-image", 1, "error")]
    assert doc["rules"][0]["examples"][0] == {"sample_id": "c.jpg", "label_id": 4, "value": "[bold]dog",
                                              "message": "class '[bold]dog' is not in the schema"}
    assert "error: schema check failed" in r.stderr
    # with -o the table still goes to the file
    r = runner(["schema-check", "-s", s, t, "--json", "-o", tmp_path / "t.jsonl", "--annotate"])
    assert json.loads(r.stdout)["errors"] == 2
    assert len(io.read_table(tmp_path / "t.jsonl").column(T.VIOLATIONS)) == 4


def test_malformed_schema_exit_1_with_file_and_line_before_reading_data(runner, tmp_path):
    s = tmp_path / "schema.yaml"
    s.write_text("version: 1\nboxes:\n  inside_image: true\n  min_widht: 3\n")
    r = runner(["schema-check", "-s", s, tmp_path / "does-not-exist.parquet"])
    assert r.exit_code == 1
    assert r.stdout == ""
    assert f"error: {s}:4: boxes.min_widht: unknown key" in r.stderr
    assert "hint: did you mean 'min_width'?" in r.stderr
    s.write_text("attributes:\n  plate: {type: string, pattern: '(unclosed'}\n")
    r = runner(["schema-check", "-s", s, tmp_path / "does-not-exist.parquet"])
    assert r.exit_code == 1 and f"{s}:2: attributes.plate.pattern: bad regular expression" in r.stderr
    assert "Traceback" not in r.stderr


def test_usage_errors_exit_2(runner, files):
    s, t = files()
    r = runner(["schema-check", t])
    assert r.exit_code == 2 and "missing --schema" in r.stderr and r.stdout == ""
    r = runner(["schema-check", "-s", s, t, "--keep", "some"])
    assert r.exit_code == 2 and "--keep" in r.stderr
    r = runner(["schema-check", "-s", s, "--infer", t])
    assert r.exit_code == 2


def test_quiet_hides_the_summary_but_not_the_error(runner, files):
    s, t = files(bad=True)
    r = runner(["schema-check", "-s", s, t, "-q"])
    assert r.exit_code == 3
    assert "box.outside-image" not in r.stderr and "error: schema check failed" in r.stderr


def test_stdin_input(runner, files):
    s, t = files()
    r = runner(["schema-check", "-s", s], input=io.encode_jsonl(table()))
    assert r.exit_code == 0 and len(rows(r.stdout)) == 4


def test_infer_then_check_passes_and_catches_a_new_mistake(runner, files, tmp_path):
    _, t = files()
    r = runner(["schema-check", "--infer", t])
    assert r.exit_code == 0, r.stderr
    assert r.stdout.startswith("# Drafted by `mlcycle schema-check --infer`")
    (tmp_path / "drafted.yaml").write_text(r.stdout)
    r = runner(["schema-check", "-s", tmp_path / "drafted.yaml", t, "--strict"])
    assert r.exit_code == 0, r.stderr
    io.write_table(table(bad=True), tmp_path / "bad.parquet")
    r = runner(["schema-check", "-s", tmp_path / "drafted.yaml", tmp_path / "bad.parquet", "--json"])
    assert r.exit_code == 3
    assert {x["rule"] for x in json.loads(r.stdout)["rules"]} >= {"class.unknown", "box.outside-image"}
    r = runner(["schema-check", "--infer", t, "-o", tmp_path / "d2.yaml"])
    assert r.exit_code == 0 and r.stdout == "" and (tmp_path / "d2.yaml").read_text().startswith("# Drafted")


def test_help_has_examples(runner):
    r = runner(["schema-check", "--help"])
    assert r.exit_code == 0 and "Examples:" in r.stdout and "mlcycle schema-check -s schema.yaml" in r.stdout


def _mlcycle(*args: str) -> list[str]:
    return [sys.executable, "-m", "mlcycle", *args]


def test_real_pipe_ingest_schema_check_and_the_sample_schema(tmp_path):
    """ingest | schema-check --annotate | schema-check: the table flows through real pipes,
    and the sample dataset passes the schema shipped with it."""
    ingest = subprocess.Popen(_mlcycle("ingest", "coco", str(SAMPLE / "annotations" / "instances_val.json"),
                                       "--split", "val"), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    check = subprocess.Popen(_mlcycle("schema-check", "-s", str(SAMPLE / "schema.yaml"), "--annotate"),
                             stdin=ingest.stdout, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    ingest.stdout.close()
    again = subprocess.run(_mlcycle("schema-check", "-s", str(SAMPLE / "schema.yaml"), "--json"),
                           stdin=check.stdout, capture_output=True)
    check.stdout.close()
    check_err = check.stderr.read().decode()
    assert check.wait() == 0 and ingest.wait() == 0, check_err
    assert "schema check passed" in check_err
    assert again.returncode == 0, again.stderr.decode()
    doc = json.loads(again.stdout)
    assert doc["passed"] is True and doc["labels"] > 0 and doc["rules"] == []


def test_report_in_a_missing_folder_fails_before_any_output(runner, files, tmp_path):
    s, t = files(bad=True)
    r = runner(["schema-check", "-s", s, t, "--report", tmp_path / "nope" / "r.jsonl"])
    assert r.exit_code == 1 and r.stdout == ""
    assert "folder" in r.stderr and "does not exist" in r.stderr
    r = runner(["schema-check", "-s", s, t, "--report", tmp_path])
    assert r.exit_code == 2 and r.stdout == ""
