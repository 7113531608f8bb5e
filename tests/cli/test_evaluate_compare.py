"""mlcycle evaluate with several prediction sources, the bootstrap, operating points,
TIDE and the regression gate (stdout, stderr and exit code apart)."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from mlcycle import io
from mlcycle import table as T
from tests.evaluation._pyco import write_coco
from tests.evaluation.test_bootstrap import random_coco


def _files(tmp_path, seed=0):
    gt, dets = random_coco(seed, n_img=20, models=("a", "b"))
    ta = write_coco(tmp_path, gt, dets["a"], name="a")
    tb = write_coco(tmp_path, gt, dets["b"], name="b")
    paths = {}
    for name, t, src in (("gt", T.filter_source(ta, "gt"), None), ("old", T.filter_source(ta, "pred"), "old"),
                         ("new", T.filter_source(tb, "pred"), "new")):
        if src:
            t = t.set_column(t.column_names.index(T.SOURCE), T.SOURCE, pa.array([src] * t.num_rows))
        paths[name] = tmp_path / f"{name}.parquet"
        io.write_table(t, paths[name])
    return paths


def test_two_sources_json_and_terminal(runner, tmp_path):
    p = _files(tmp_path)
    r = runner(["evaluate", p["gt"], p["old"], p["new"], "--json", "--bootstrap", "50", "--seed", "7"])
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert list(doc["sources"]) == ["old", "new"] and doc["comparison"]["baseline"] == "old"
    bs = doc["comparison"]["bootstrap"]
    assert bs["resamples"] == 50 and bs["seed"] == 7
    assert set(bs["intervals"]) == {"old", "new"} and "AP" in bs["deltas"]["new"]
    assert "prediction sources" in r.stderr and "delta" in r.stderr and "bootstrap" in r.stderr
    again = runner(["evaluate", p["gt"], p["old"], p["new"], "--json", "--bootstrap", "50", "--seed", "7"])
    assert json.loads(again.stdout)["comparison"] == doc["comparison"]


def test_baseline_flag_and_bad_baseline(runner, tmp_path):
    p = _files(tmp_path)
    r = runner(["evaluate", p["gt"], p["old"], p["new"], "--json", "--baseline", "new"])
    assert r.exit_code == 0 and json.loads(r.stdout)["comparison"]["baseline"] == "new"
    r = runner(["evaluate", p["gt"], p["old"], p["new"], "--json", "--baseline", "zzz"])
    assert r.exit_code == 2 and "--baseline" in r.stderr and r.stdout == ""


def test_output_table_written_for_several_sources(runner, tmp_path):
    p = _files(tmp_path)
    out = tmp_path / "o.parquet"
    r = runner(["evaluate", p["gt"], p["old"], p["new"], "-o", out])
    assert r.exit_code == 0, r.stderr
    t = io.read_table(out)
    assert set(T.sources(t)) == {"gt", "old", "new"} and T.EVAL in t.column_names


def test_fail_if_worse_than(runner, tmp_path):
    p = _files(tmp_path)
    ref, out, mf = tmp_path / "ref.json", tmp_path / "o.parquet", tmp_path / "m.json"
    r = runner(["evaluate", p["gt"], p["old"], "--metrics", ref, "-o", out])
    assert r.exit_code == 0
    ok = runner(["evaluate", p["gt"], p["old"], "--fail-if-worse-than", ref, "-o", out])
    assert ok.exit_code == 0 and "WORSE" not in ok.stderr
    doc = json.loads(ref.read_text())
    doc["metrics"]["AP50"] = min(1.0, doc["metrics"]["AP50"] + 0.2)
    ref.write_text(json.dumps(doc))
    out.unlink()
    bad = runner(["evaluate", p["gt"], p["old"], "--fail-if-worse-than", f"{ref}:0.01", "--metrics", mf, "-o", out])
    assert bad.exit_code == 3
    assert "AP50" in bad.stderr and "WORSE" in bad.stderr and "worse than the reference" in bad.stderr
    assert out.exists() and mf.exists()                         # outputs written first
    assert "fail_if_worse_than" not in json.loads(mf.read_text())
    loose = runner(["evaluate", p["gt"], p["old"], "--fail-if-worse-than", f"{ref}:0.5", "-o", out])
    assert loose.exit_code == 0
    missing = runner(["evaluate", p["gt"], p["old"], "--fail-if-worse-than", tmp_path / "nope.json", "-o", out])
    assert missing.exit_code == 1 and "nope.json" in missing.stderr


def test_operating_points_conf_best_f1_and_tide(runner, tmp_path):
    p = _files(tmp_path)
    r = runner(["evaluate", p["gt"], p["old"], "--json", "--conf", "best-f1", "--at-recall", "0.5",
                "--at-precision", "0.5", "--beta", "2", "--tide"])
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    ops = doc["operating_points"]["overall"]
    assert doc["at_iou"]["conf"] == ops["best_f1"]["threshold"] and doc["at_iou"]["conf_from"] == "best-f1"
    assert ops["best_fbeta"]["beta"] == 2.0 and ops["at_recall"][0]["target"] == 0.5
    assert doc["calibration"]["bins"] and 0 <= doc["calibration"]["ece"] <= 1
    assert set(doc["tide"]["main"]) == {"cls", "loc", "both", "dupe", "bkg", "miss"}
    assert "best F1" in r.stderr and "TIDE" in r.stderr
    bad = runner(["evaluate", p["gt"], p["old"], "--json", "--conf", "best"])
    assert bad.exit_code == 2 and "--conf" in bad.stderr
    bad = runner(["evaluate", p["gt"], p["old"], "--json", "--at-recall", "1.5"])
    assert bad.exit_code == 2 and "--at-recall" in bad.stderr


def test_single_source_bootstrap_intervals(runner, tmp_path):
    p = _files(tmp_path)
    r = runner(["evaluate", p["gt"], p["old"], "--json", "--bootstrap", "30"])
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    lo, hi = doc["bootstrap"]["intervals"]["AP"]
    assert lo <= hi and "sources" not in doc


def test_bootstrap_and_tide_need_the_coco_method(runner, tmp_path):
    p = _files(tmp_path)
    for flag in (["--bootstrap", "10"], ["--tide"]):
        r = runner(["evaluate", p["gt"], p["old"], "--method", "voc", "--json", *flag])
        assert r.exit_code == 2 and flag[0] in r.stderr and r.stdout == ""


def test_remap_renames_prediction_classes_before_matching(runner, tmp_path):
    """evaluate --remap: a model whose classes are named differently from the ground
    truth's is evaluated after renaming (the same mapping as mlcycle remap); the ground
    truth is untouched."""
    import json

    from mlcycle import io
    from mlcycle import table as T

    gt = T.from_columns({T.SAMPLE_ID: ["a.png", "a.png"], T.SOURCE: ["gt", "gt"], T.LABEL_ID: [1, 2],
                         T.LABEL: ["car", "person"], T.BBOX: [[0, 0, 10, 10], [20, 20, 10, 10]]})
    pr = T.from_columns({T.SAMPLE_ID: ["a.png", "a.png"], T.SOURCE: ["m", "m"], T.LABEL_ID: [1, 2],
                         T.LABEL: ["vehicle", "pedestrian"], T.BBOX: [[0, 0, 10, 10], [20, 20, 10, 10]],
                         T.SCORE: [0.9, 0.8]})
    g, p = tmp_path / "gt.parquet", tmp_path / "p.parquet"
    io.write_table(gt, g)
    io.write_table(pr, p)
    r = runner(["evaluate", g, p, "--json"])
    assert json.loads(r.stdout)["metrics"]["AP50"] == 0.0
    r = runner(["evaluate", g, p, "--remap", "vehicle=car", "--remap", "pedestrian=person", "--json"])
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["metrics"]["AP50"] == pytest.approx(1.0)
    mapping = tmp_path / "m.yaml"
    mapping.write_text("vehicle: car\npedestrian: person\n")
    r = runner(["evaluate", g, p, "--remap", mapping, "--json"])
    assert json.loads(r.stdout)["metrics"]["AP50"] == pytest.approx(1.0)
    r = runner(["evaluate", g, p, "--remap", "vehicle", "--json"])
    assert r.exit_code == 2 and "--remap: 'vehicle' is neither OLD=NEW pairs nor a mapping file" in r.stderr
