"""merge: size conflicts, label id renumbering, class unification, COCO metadata, the
100 VOC images stored in several formats (external fixtures), CLI."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from mlcycle import formats, io
from mlcycle import table as T
from mlcycle.curate.merge import ORIGINAL_LABEL_ID, merge_files, merge_tables
from mlcycle.errors import MlcycleError, OptionError

GTS = "rafaelpadilla__review_object_detection_metrics/data/database/gts"


def _t(sids, labels, ids=None, w=100, h=50, cats=None, source="gt", meta=None, image_ids=None):
    cols = {T.SAMPLE_ID: sids, T.SOURCE: [source] * len(sids), T.LABEL: labels,
            T.LABEL_ID: ids if ids is not None else list(range(1, len(sids) + 1)),
            T.WIDTH: [w] * len(sids) if np.isscalar(w) else w, T.HEIGHT: [h] * len(sids)}
    if cats is not None:
        cols[T.CATEGORY_ID] = cats
    if image_ids is not None:
        cols[T.IMAGE_ID] = image_ids
    return T.from_columns(cols, metadata=meta)


def test_size_conflict_is_an_error_naming_both_inputs_and_the_sample():
    a, b = _t(["x", "y"], ["cat", "dog"]), _t(["y"], ["cat"], w=120)
    with pytest.raises(MlcycleError) as info:
        merge_tables([a, b], ["a.parquet", "b.parquet"])
    msg = info.value.message
    assert msg == "sample 'y' has width 100 in a.parquet but 120 in b.parquet"
    assert "on_conflict first" in info.value.hint  # the CLI shows --on-conflict


def test_size_conflict_first_keeps_the_first_size_on_every_row():
    a, b = _t(["x", "y"], ["cat", "dog"]), _t(["y", "z"], ["cat", "cat"], w=[120, 7])
    res = merge_tables([a, b], ["a", "b"], on_conflict="first")
    out = res.table
    ws = dict(zip(out.column(T.SAMPLE_ID).to_pylist(), out.column(T.WIDTH).to_pylist()))
    assert ws == {"x": 100, "y": 100, "z": 7}
    assert res.summary["size_conflicts"]["samples"] == 1
    assert any("different sizes" in w for w in res.warnings)


def test_missing_size_is_filled_from_another_input():
    a = _t(["x"], ["cat"])
    b = T.from_columns({T.SAMPLE_ID: ["x"], T.SOURCE: ["pred"], T.LABEL: ["cat"], T.LABEL_ID: [1], T.SCORE: [0.5]})
    out = merge_tables([a, b]).table
    assert out.column(T.WIDTH).to_pylist() == [100, 100]


def test_label_ids_renumbered_with_warning_and_original_kept():
    a, b = _t(["x", "y"], ["cat", "dog"], ids=[1, 2]), _t(["z", "z"], ["cat", "cat"], ids=[2, 3])
    c = _t(["x"], ["cat"], ids=[1], source="pred")  # another source: its ids are its own
    res = merge_tables([a, b, c], ["a", "b", "c"])
    out = res.table
    gt = out.filter(pc.equal(out.column(T.SOURCE), "gt"))
    assert gt.column(T.LABEL_ID).to_pylist() == [1, 2, 3, 4]
    assert gt.column(ORIGINAL_LABEL_ID).to_pylist() == [None, None, 2, 3]
    assert out.filter(pc.equal(out.column(T.SOURCE), "pred")).column(T.LABEL_ID).to_pylist() == [1]
    assert res.summary["label_ids_renumbered"] == [{"input": "b", "source": "gt", "labels": 2, "first_new_id": 3}]
    assert any("renumbered" in w for w in res.warnings)


def test_classes_unified_and_coco_categories_merged():
    meta_a = {"coco": {"categories": [{"id": 1, "name": "cat", "supercategory": ""}, {"id": 2, "name": "dog", "supercategory": ""}],
                       "info": {"description": "A"}}}
    meta_b = {"coco": {"categories": [{"id": 1, "name": "bird", "supercategory": "animal"},
                                      {"id": 2, "name": "cat", "supercategory": "animal"}], "info": {"description": "B"}}}
    a = _t(["x", "y"], ["cat", "dog"], cats=[1, 2], meta=meta_a)
    b = _t(["z", "z"], ["bird", "cat"], cats=[1, 2], meta=meta_b)
    out = merge_tables([a, b]).table
    ids = dict(zip(out.column(T.LABEL).to_pylist(), out.column(T.CATEGORY_ID).to_pylist()))
    assert ids == {"cat": 1, "dog": 2, "bird": 3}
    coco = T.get_metadata(out)["coco"]
    assert coco["categories"] == [{"id": 1, "name": "cat", "supercategory": "animal"},
                                  {"id": 2, "name": "dog", "supercategory": ""},
                                  {"id": 3, "name": "bird", "supercategory": "animal"}]
    assert coco["info"] == {"description": "A"}  # the first input wins


def test_image_ids_shared_by_two_samples_are_renumbered():
    a = _t(["x", "y"], ["cat", "dog"], image_ids=[1, 2])
    b = _t(["z", "x"], ["cat", "cat"], image_ids=[1, 9])
    res = merge_tables([a, b])
    got = dict(zip(res.table.column(T.SAMPLE_ID).to_pylist(), res.table.column(T.IMAGE_ID).to_pylist()))
    assert got == {"x": 1, "y": 2, "z": 3}
    assert res.summary["image_ids_renumbered"] == 1


def test_bad_option():
    with pytest.raises(OptionError) as info:
        merge_tables([_t(["x"], ["a"])], on_conflict="last")
    assert info.value.option == "on_conflict"


def test_streaming_equals_in_memory(tmp_path):
    a, b = _t(["x", "y", "y"], ["cat", "dog", "dog"], ids=[1, 2, 3]), _t(["y", "z"], ["cat", "cat"], ids=[1, 2], w=[120, 1])
    io.write_table(a, tmp_path / "a.parquet")
    io.write_table(b, tmp_path / "b.jsonl")
    mem = merge_tables([a, b], [str(tmp_path / "a.parquet"), str(tmp_path / "b.jsonl")], on_conflict="first")
    res = merge_files([tmp_path / "a.parquet", tmp_path / "b.jsonl"], tmp_path / "o.parquet", on_conflict="first", batch_rows=2)
    assert io.read_table(tmp_path / "o.parquet").to_pylist() == mem.table.to_pylist()
    assert res.summary == mem.summary


# --------------------------------------------------------------------------- external

def test_merge_the_100_voc_images_in_three_formats(external):
    gts = external / GTS
    voc = formats.read("voc", gts / "pascalvoc_format")
    coco1 = formats.read("coco", gts / "coco_format_v1" / "instances_default.json")
    coco2 = formats.read("coco", gts / "coco_format_v2" / "instances_v2.json")
    res = merge_tables([voc, coco1, coco2], ["voc", "coco_v1", "coco_v2"])
    out = res.table
    assert out.num_rows == voc.num_rows + coco1.num_rows + coco2.num_rows == 3 * 273
    assert res.summary["samples"] == 100
    assert res.summary["size_conflicts"]["samples"] == 0  # the three agree on every image size
    # label ids: the two COCO inputs reuse 1..273 within 'gt', so they are renumbered
    assert [r["input"] for r in res.summary["label_ids_renumbered"]] == ["coco_v1", "coco_v2"]
    assert len(set(out.column(T.LABEL_ID).to_pylist())) == out.num_rows
    # labels preserved: the same multiset of (sample, class, box) per input
    key = lambda t: sorted(zip(t.column(T.SAMPLE_ID).to_pylist(), t.column(T.LABEL).to_pylist(),  # noqa: E731
                               map(tuple, T.bboxes(t).tolist())))
    for i, src in enumerate((voc, coco1, coco2)):
        part = out.slice(i * 273, 273)
        assert key(part) == key(src)
    # one class list, one id per class (the first input with ids — COCO v1 — sets them)
    pairs = set(zip(out.column(T.LABEL).to_pylist(), out.column(T.CATEGORY_ID).to_pylist()))
    assert len(pairs) == 20 == len({p[1] for p in pairs})
    v1 = {c["name"]: c["id"] for c in T.get_metadata(coco1)["coco"]["categories"]}
    assert all(v1[name] == cid for name, cid in pairs)
    cats = T.get_metadata(out)["coco"]["categories"]
    assert [c["name"] for c in cats] == [c["name"] for c in T.get_metadata(coco1)["coco"]["categories"]]
    # coco v2 numbers its images differently (2018000000x): the first input's ids win, one per sample
    img = {}
    for sid, iid in zip(out.column(T.SAMPLE_ID).to_pylist(), out.column(T.IMAGE_ID).to_pylist()):
        img.setdefault(sid, set()).add(iid)
    assert all(len(v) == 1 for v in img.values()) and len({next(iter(v)) for v in img.values()}) == 100


def test_merge_detects_a_changed_image_size_in_a_real_dataset(external, tmp_path):
    gts = external / GTS
    voc = formats.read("voc", gts / "pascalvoc_format")
    coco = formats.read("coco", gts / "coco_format_v1" / "instances_default.json")
    sid = coco.column(T.SAMPLE_ID)[0].as_py()
    w = pc.if_else(pc.equal(coco.column(T.SAMPLE_ID), sid), pa.scalar(999, pa.int32()), coco.column(T.WIDTH))
    coco = coco.set_column(coco.column_names.index(T.WIDTH), T.WIDTH, w)
    io.write_table(voc, tmp_path / "voc.parquet")
    io.write_table(coco, tmp_path / "coco.parquet")
    with pytest.raises(MlcycleError) as info:
        merge_files([tmp_path / "voc.parquet", tmp_path / "coco.parquet"], tmp_path / "out.parquet")
    assert f"sample '{sid}' has width" in info.value.message and "but 999 in" in info.value.message
    assert "voc.parquet" in info.value.message and "coco.parquet" in info.value.message
    assert not (tmp_path / "out.parquet").exists()


# --------------------------------------------------------------------------- CLI

def test_cli_merge(runner, tmp_path):
    io.write_table(_t(["x", "y"], ["cat", "dog"]), tmp_path / "a.parquet")
    io.write_table(_t(["y"], ["cat"], w=120), tmp_path / "b.parquet")
    out = tmp_path / "o.parquet"
    r = runner(["merge", tmp_path / "a.parquet", tmp_path / "b.parquet", "-o", out])
    assert r.exit_code == 1
    assert r.stdout == ""
    assert "error: sample 'y' has width 100 in" in r.stderr and "hint:" in r.stderr
    assert not out.exists()
    r = runner(["merge", tmp_path / "a.parquet", tmp_path / "b.parquet", "--on-conflict", "first", "-o", out, "--json"])
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["rows_out"] == 3 and doc["size_conflicts"]["samples"] == 1
    assert "warning:" in r.stderr
    assert io.read_table(out).num_rows == 3
    r = runner(["merge", tmp_path / "a.parquet", "--on-conflict", "last"])
    assert r.exit_code == 2 and "error: --on-conflict: unknown rule 'last'" in r.stderr
