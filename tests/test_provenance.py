"""Provenance: every table written by a command carries its history (mlcycle.provenance)."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from mlcycle import io, provenance
from mlcycle import table as T

GTS = "rafaelpadilla__review_object_detection_metrics/data/database/gts"


def _t(n=3):
    return T.from_columns({"sample_id": [f"s{k}" for k in range(n)], "source": ["gt"] * n,
                           "label_id": list(range(1, n + 1)), "label": ["cat"] * n,
                           "bbox": np.tile([0.0, 0.0, 10.0, 10.0], (n, 1))})


def test_record_appends_a_step_after_the_parents_histories():
    a = provenance.record(_t(), "mlcycle ingest a", [{"name": "a.json", "sha256": "1"}])
    b = provenance.record(_t(), "mlcycle ingest b", [{"name": "b.json", "sha256": "2"}])
    merged = provenance.record(_t(), "mlcycle diff a b", [{"name": "a"}, {"name": "b"}],
                               parents=[provenance.history(a), provenance.history(b), provenance.history(a)])
    steps = provenance.history(merged)
    assert [s["command"] for s in steps] == ["mlcycle ingest a", "mlcycle ingest b", "mlcycle diff a b"]
    assert steps[-1]["inputs"] == [{"name": "a"}, {"name": "b"}]
    assert {"tool", "version", "time"} <= set(steps[-1])
    assert provenance.history(_t()) == []


def test_source_date_epoch_fixes_the_time(monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "0")
    t = provenance.record(_t(), "x", [])
    assert provenance.history(t)[0]["time"] == "1970-01-01T00:00:00Z"


def test_digests_bytes_and_parquet_footer(tmp_path):
    p, j = tmp_path / "t.parquet", tmp_path / "t.jsonl"
    io.write_table(_t(), p)
    io.write_table(_t(), j)
    rec = provenance.digest_file(j)
    assert rec["digest_of"] == "bytes" and rec["sha256"] == hashlib.sha256(j.read_bytes()).hexdigest()
    rec = provenance.digest_file(p)
    assert rec["digest_of"] == "parquet-footer" and rec["size"] == p.stat().st_size
    data = p.read_bytes()
    n = int.from_bytes(data[-8:-4], "little")
    want = hashlib.sha256(len(data).to_bytes(8, "little") + data[-8 - n:]).hexdigest()
    assert rec["sha256"] == want
    assert provenance.digest_file(tmp_path)["kind"] == "folder"


def test_io_notes_reads_and_stamps_writes_only_inside_a_context(tmp_path):
    src = tmp_path / "in.parquet"
    io.write_table(provenance.record(_t(), "mlcycle ingest x", []), src)
    assert len(provenance.history(io.read_table(src))) == 1  # no context: nothing added
    with provenance.context("mlcycle test"):
        t = io.read_table(src)
        scan = io.scan([src])
        io.write_table(t, tmp_path / "out.arrow")
    steps = provenance.history(io.read_table(tmp_path / "out.arrow"))
    assert [s["command"] for s in steps] == ["mlcycle ingest x", "mlcycle test"]
    by = {i["digest_of"]: i for i in steps[-1]["inputs"]}
    assert by["bytes"]["sha256"] == hashlib.sha256(src.read_bytes()).hexdigest() and by["bytes"]["rows"] == 3
    assert by["parquet-footer"]["name"] == str(src)  # the streamed read
    assert scan.schema.names[:2] == ["sample_id", "source"]


def test_provenance_can_be_turned_off(tmp_path, monkeypatch):
    monkeypatch.setenv("MLCYCLE_PROVENANCE", "0")
    with provenance.context("mlcycle test"):
        io.write_table(_t(), tmp_path / "o.parquet")
    assert provenance.history(io.read_table(tmp_path / "o.parquet")) == []


@pytest.mark.parametrize("ending", ["parquet", "arrow", "jsonl"])
def test_a_pipeline_explains_itself_in_every_encoding(runner, external, tmp_path, ending):
    coco = external / GTS / "coco_format_v1/instances_default.json"
    gt = tmp_path / f"gt.{ending}"
    r = runner(["ingest", "coco", coco, "-o", gt])
    assert r.exit_code == 0, r.stderr
    edited = tmp_path / f"edited.{ending}"
    t = io.read_table(gt)
    io.write_table(t.slice(1), edited)  # outside any command: keeps gt's history, adds none
    changes = tmp_path / f"changes.{ending}"
    r = runner(["diff", gt, edited, "-o", changes])
    assert r.exit_code == 0, r.stderr
    steps = provenance.history(io.read_table(changes))
    assert [s["command"].split()[:2] for s in steps] == [["mlcycle", "ingest"], ["mlcycle", "diff"]]
    assert steps[0]["inputs"][0]["sha256"] == hashlib.sha256(coco.read_bytes()).hexdigest()
    assert steps[1]["command"] == f"mlcycle diff {gt} {edited} --output {changes}"
    assert [i["name"] for i in steps[1]["inputs"]] == [str(gt), str(edited)]
    # a streamed Parquet input is recorded by its footer (docs/curate-diff.md), the others by their bytes
    want = (provenance.digest_file(gt)["sha256"] if ending == "parquet"
            else hashlib.sha256(gt.read_bytes()).hexdigest())
    assert steps[1]["inputs"][0]["sha256"] == want
    info = runner(["info", changes, "--json"])
    assert info.exit_code == 0, info.stderr
    doc = json.loads(info.stdout)
    assert doc["rows"] == 1 and doc["history"] == steps and doc["schema_version"] == 1
    assert {"name": "change", "type": "string", "role": "command"} in doc["columns"]


def test_jsonl_on_stdout_starts_with_the_history(runner, tmp_path):
    src = tmp_path / "t.parquet"
    io.write_table(_t(), src)
    r = runner(["diff", src, src])
    first = json.loads(r.stdout.splitlines()[0])
    assert first[io.JSONL_META_KEY]["history"][-1]["command"] == f"mlcycle diff {src} {src}"


def test_info_of_a_table_without_history(runner, tmp_path):
    src = tmp_path / "t.jsonl"
    src.write_text('{"sample_id": "a", "source": "gt"}\n{"sample_id": "b", "source": "pred"}\n')
    r = runner(["info", src])
    doc = json.loads(r.stdout)
    assert doc["rows"] == 2 and doc["sources"] == {"gt": 1, "pred": 1} and doc["history"] == []
    bad = runner(["info", tmp_path / "missing.parquet"])
    assert bad.exit_code == 1 and bad.stderr.startswith("error: ") and "no such file" in bad.stderr
