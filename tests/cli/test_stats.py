"""mlcycle stats through the CLI: JSON on a pipe, rich report on a terminal (the view), plots, errors."""

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


@pytest.fixture
def gt(tmp_path) -> Path:
    t = T.from_columns({
        T.SAMPLE_ID: ["a", "a", "a", "b", "c"],
        T.SOURCE: ["gt"] * 5,
        T.LABEL: ["cat", "dog", "cat", "cat", None],
        T.BBOX: np.array([[0, 0, 10, 10], [10, 10, 50, 50], [90, 90, 10, 10], [20, 20, 100, 100], [np.nan] * 4]),
        T.WIDTH: [100, 100, 100, 200, 100],
        T.HEIGHT: [100, 100, 100, 200, 100],
        T.SPLIT: ["train", "train", "train", "val", "val"],
        "occluded": [True, False, None, True, None],
    })
    path = tmp_path / "gt.parquet"
    io.write_table(t, path)
    return path


def test_piped_output_is_one_json_document(runner, gt):
    r = runner(["stats", gt])
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["stats_version"] == 1
    assert (doc["counts"]["samples"], doc["counts"]["labels"], doc["counts"]["samples_without_labels"]) == (3, 4, 1)
    assert r.stderr == ""


def test_json_flag_and_stdin(runner, gt):
    data = io.encode(io.read_table(gt), "jsonl").decode()
    r = runner(["stats", "--json", "-"], input=data)
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["counts"]["labels"] == 4


def test_terminal_gets_the_rich_report_on_stdout(runner, gt, monkeypatch):
    import mlcycle.cli.stats as cli_stats

    monkeypatch.setattr(cli_stats, "stdout_is_terminal", lambda: True)
    r = runner(["stats", gt, "--top", "1"])
    assert r.exit_code == 0, r.stderr
    assert "Overview" in r.stdout and "Classes (2)" in r.stdout and "… 1 more" in r.stdout
    assert not r.stdout.lstrip().startswith("{")
    assert r.stderr == ""
    r = runner(["stats", gt, "--json"])  # --json wins on a terminal too
    assert json.loads(r.stdout)["counts"]["classes"] == 2


def test_by_and_compare(runner, gt):
    r = runner(["stats", gt, "--by", "split", "--compare", "split"])
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert [g["by"] for g in doc["groups"]] == [{"split": "train"}, {"split": "val"}]
    assert doc["compare"]["values"] == ["train", "val"]
    assert doc["compare"]["distances"][0]["class_shares"] is not None


def test_unknown_group_column_is_a_usage_error(runner, gt):
    r = runner(["stats", gt, "--compare", "annotator"])
    assert r.exit_code == 2
    assert r.stdout == ""
    assert "--compare: no column 'annotator'" in r.stderr and "hint:" in r.stderr


def test_unreadable_input_exits_1(runner, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"sample_id": "a", "source": "gt"}\n{"sample_id": \n')
    r = runner(["stats", bad])
    assert r.exit_code == 1 and r.stdout == "" and "error:" in r.stderr
    r = runner(["stats", tmp_path / "missing.parquet"])
    assert r.exit_code == 1 and "no such file" in r.stderr


def test_several_sources_are_noted_on_stderr(runner, tmp_path):
    t = T.from_columns({T.SAMPLE_ID: ["a", "a"], T.SOURCE: ["gt", "pred"], T.LABEL: ["cat", "cat"]})
    path = tmp_path / "both.jsonl"
    io.write_table(t, path)
    r = runner(["stats", path])
    assert r.exit_code == 0 and "several sources" in r.stderr
    assert json.loads(r.stdout)["counts"]["labels"] == 2
    r = runner(["stats", path, "--source", "pred"])
    assert json.loads(r.stdout)["counts"]["labels"] == 1 and r.stderr == ""
    r = runner(["stats", path, "--source", "nope"])
    assert r.exit_code == 0 and "no rows of source nope" in r.stderr


def test_plot_writes_pngs_and_says_where(runner, gt, tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "charts"
    r = runner(["stats", gt, "--plot", out, "--compare", "split"])
    assert r.exit_code == 0, r.stderr
    json.loads(r.stdout)  # the report still goes to stdout
    assert "wrote 6 charts" in r.stderr
    assert sorted(p.name for p in out.iterdir()) == ["aspect_ratio.png", "centres.png", "classes.png",
                                                      "compare.png", "labels_per_sample.png", "sizes.png"]


def test_plot_without_matplotlib_fails_early_with_a_hint(runner, gt, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    r = runner(["stats", gt, "--plot", tmp_path / "charts"])
    assert r.exit_code == 1
    assert r.stdout == ""
    assert "--plot needs matplotlib" in r.stderr and "mlcycle[plot]" in r.stderr
    assert not (tmp_path / "charts").exists()


def test_evaluate_output_adds_tp_fp_fn(runner, tmp_path):
    t = T.from_columns({
        T.SAMPLE_ID: ["a", "a", "a"], T.SOURCE: ["gt", "pred", "pred"], T.LABEL: ["cat", "cat", "cat"],
        T.BBOX: np.array([[0, 0, 40, 40], [0, 0, 40, 40], [50, 50, 5, 5]]),
        T.SCORE: [None, 0.9, 0.3], T.EVAL: ["tp", "tp", "fp"],
    })
    path = tmp_path / "ev.parquet"
    io.write_table(t, path)
    r = runner(["stats", path, "--json"])
    ev = json.loads(r.stdout)["eval"]
    assert ev["per_class"][0] == {"label": "cat", "tp": 1, "fp": 1, "fn": 0, "matched_gt": 1,
                                  "precision": 0.5, "recall": 1.0}


def test_help_has_examples(runner):
    r = runner(["stats", "--help"])
    assert r.exit_code == 0 and "Examples:" in r.stdout and "mlcycle stats" in r.stdout
    assert "--compare" in r.stdout and "--plot" in r.stdout


def test_real_pipe_from_ingest(tmp_path):
    sample = REPO / "mlcycle" / "data" / "sample" / "annotations" / "instances_val.json"
    exe = [sys.executable, "-m", "mlcycle"]
    ingest = subprocess.Popen(exe + ["ingest", "coco", str(sample)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    out = subprocess.run(exe + ["stats", "-"], stdin=ingest.stdout, capture_output=True, cwd=REPO, timeout=120)
    ingest.stdout.close()
    ingest.wait()
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    raw = json.loads(sample.read_text())
    assert doc["counts"]["labels"] == len(raw["annotations"])
    assert doc["counts"]["samples"] == len(raw["images"])


# --------------------------------------------------------------------------- the terminal view

def test_render_escapes_text_from_data():
    from rich.console import Console

    from mlcycle import stats
    from mlcycle.cli.views import stats as view

    t = T.from_columns({T.SAMPLE_ID: ["a", "b"], T.SOURCE: ["gt", "gt"], T.LABEL: ["[bold]evil[/bold]", "cat"],
                        T.SPLIT: ["train", "val"], "note": ["[red]x", "y"]})
    d = stats.describe(t, compare="split").summary
    con = Console(record=True, width=160, color_system=None)
    view.render(d, con)
    text = con.export_text()
    assert "[bold]evil[/bold]" in text and "[red]x" in text
    assert "Classes" in text and "Jensen" in text
    con = Console(record=True, width=160, color_system=None)
    view.render(stats.describe(t, by=["split"]).summary, con)
    text = con.export_text()
    assert "Labels per class and group" in text and "[bold]evil[/bold]" in text


def test_bar():
    from mlcycle.cli.views import stats as view

    assert view.bar(1.0, 4) == "████"
    assert view.bar(0.0, 4) == "    "
    assert view.bar(0.5, 4) == "██  "
    assert view.bar(None) == ""
