"""The fast COCO reader (formats._coco_fast) gives exactly the table of the general
orjson path, keeps segmentations as the source's text, and takes files with keypoints
or other extra keys too; what it cannot take falls back with the general path's error."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest

from mlcycle import table as T
from mlcycle.errors import MlcycleError
from mlcycle.formats import ReadOptions, _coco_fast, coco
from mlcycle.formats._json import load_json


def make_doc(n_images: int = 6, n_anns: int = 40, extra: dict | None = None, late_key_at: int | None = None) -> dict:
    images = [{"id": i, "file_name": f"img/{i:03d}.jpg", "width": 64, "height": 48, "license": i % 3,
               "date_captured": "2013-11-14"} for i in range(1, n_images + 1)]
    anns = []
    for k in range(n_anns):
        ann: dict = {"segmentation": [[1.5, 2.0, 10.25, 2.0, 10.25, 8.0]], "area": 40.5 + k, "iscrowd": 0,
                     "image_id": 1 + k % max(n_images - 2, 1), "bbox": [1.5, 2.0, 8.75, 6.0 + k % 3],
                     "category_id": 1 + k % 2, "id": 100 + k}
        if k % 7 == 3:  # crowd regions: RLE with integer and string counts
            ann["iscrowd"] = 1
            ann["segmentation"] = {"counts": [0, 5, 10, 2], "size": [48, 64]} if k % 2 else {"counts": "PPYo0", "size": [48, 64]}
        if k % 11 == 5:
            del ann["segmentation"]
        if k % 13 == 6:
            del ann["bbox"]
        if k % 17 == 2:
            ann["attributes"] = {"occluded": bool(k % 2), "note": "a"}
        for key, value in (extra or {}).items():
            if late_key_at is None or k >= late_key_at:
                ann[key] = value(k) if callable(value) else value
        anns.append(ann)
    return {"info": {"year": 2026}, "licenses": [{"id": 1, "name": "x"}], "images": images, "annotations": anns,
            "categories": [{"id": 1, "name": "cat", "supercategory": "animal"}, {"id": 2, "name": "dog", "supercategory": "animal"}]}


def both_paths(doc: dict, tmp_path: Path, dumps=orjson.dumps):
    """(table of coco.read, table of the general path on the same file)."""
    path = tmp_path / "in.json"
    path.write_bytes(dumps(doc))
    fast = coco.read(path)
    general = coco.from_dict(load_json(path), str(path), ReadOptions())
    return fast, general, path


def assert_same(fast, general) -> None:
    assert fast.schema.remove_metadata() == general.schema.remove_metadata()
    for name in fast.column_names:
        assert fast.column(name).to_pylist() == general.column(name).to_pylist(), name
    meta_f, meta_g = T.get_metadata(fast)["coco"], T.get_metadata(general)["coco"]
    # the order of the annotation keys is the reader's; which keys is the file's
    assert sorted(meta_f.pop("annotation_keys")) == sorted(meta_g.pop("annotation_keys"))
    assert meta_f == meta_g


@pytest.mark.parametrize("extra", [
    None,
    {"keypoints": lambda k: [10, 12, 2, 0, 0, 0, 30.5, 31, 1], "num_keypoints": lambda k: 2},
    {"ignore": lambda k: k % 2, "tags": lambda k: ["a", "b"][: k % 3], "my-key`odd": "x"},
    {"score": lambda k: [0.25, 1, None][k % 3], "attributes": lambda k: None if k % 5 else {"occluded": True}},
])
def test_fast_path_reads_what_the_general_path_reads(extra, tmp_path):
    doc = make_doc(extra=extra)
    assert _coco_fast.decode(orjson.dumps(doc)) is not None  # keypoints and odd keys stay on the fast path
    fast, general, _ = both_paths(doc, tmp_path)
    assert fast.num_rows == 40 + 2  # two images without annotations: sample rows
    assert_same(fast, general)


def test_keys_first_met_late_and_top_level_keys_after_the_annotations(tmp_path):
    doc = make_doc(n_anns=1500, extra={"keypoints": lambda k: [1, 2, 2], "score_note": "late"}, late_key_at=1200)
    doc["type"] = "instances"  # after the annotations in the file
    data = orjson.dumps(doc)
    decoded = _coco_fast.decode(data)
    assert decoded is not None and list(decoded)[:3] == ["info", "licenses", "type"]
    fast, general, _ = both_paths(doc, tmp_path)
    assert_same(fast, general)
    assert T.get_metadata(fast)["coco"]["top"]["type"] == "instances"
    assert fast.column("keypoints").to_pylist()[1199:1201] == [None, [1, 2, 2]]


def test_many_keys_first_met_late_fall_back_to_the_general_path(tmp_path):
    doc = make_doc(n_anns=1300)
    for i in range(8):  # each key first appears deep in the file: the general path reads it
        doc["annotations"][1001 + i][f"k{i}"] = i
    assert _coco_fast.decode(orjson.dumps(doc)) is None
    fast, general, _ = both_paths(doc, tmp_path)
    assert_same(fast, general)
    assert fast.column("k3").to_pylist()[1004] == 3


def test_segmentation_is_the_source_text_exactly(tmp_path):
    doc = make_doc()
    doc["annotations"][0]["segmentation"] = {"counts": "a\\\\b\\u00e9c\u00e9", "size": [48, 64]}
    doc["annotations"][1]["segmentation"] = None  # null: no segmentation
    text = json.dumps(doc, indent=1, ensure_ascii=False)  # UTF-8 text, escapes kept as written
    path = tmp_path / "in.json"
    path.write_text(text, encoding="utf-8")
    table = coco.read(path)
    segs = table.column(T.SEGMENTATION).to_pylist()
    assert segs[0].startswith("{\n") and segs[0] in text  # the source's own text, layout and escapes
    assert json.loads(segs[0]) == doc["annotations"][0]["segmentation"]
    assert segs[1] is None
    assert json.loads(segs[2]) == doc["annotations"][2]["segmentation"]
    # and it writes back as the same value
    assert coco.to_dict(table)["annotations"][0]["segmentation"] == doc["annotations"][0]["segmentation"]


def test_invalid_utf8_in_a_raw_value_is_reported_at_its_place(tmp_path):
    doc = make_doc()
    doc["annotations"][0]["segmentation"] = {"counts": "PLACEHOLDER", "size": [48, 64]}
    data = orjson.dumps(doc).replace(b"PLACEHOLDER", b"P\xffP")
    path = tmp_path / "in.json"
    path.write_bytes(data)
    with pytest.raises(MlcycleError, match=r"in\.json:1:\d+: invalid UTF-8 \(byte 0xff\)"):
        coco.read(path)


def test_values_of_another_type_still_get_the_precise_error(tmp_path):
    doc = make_doc()
    doc["annotations"][3]["category_id"] = "dog"
    path = tmp_path / "in.json"
    path.write_bytes(orjson.dumps(doc))
    with pytest.raises(MlcycleError, match=r"annotations\[3\] \(id 103\): category_id 'dog' is a string"):
        coco.read(path)


def test_the_fast_path_builds_no_arrays_that_import_pyarrow_compute(tmp_path):
    """pa.array(ndarray) imports numpy.ma and masks import pyarrow.compute (~50 ms of a
    small ingest): the reader builds its arrays from buffers and lists instead."""
    import subprocess
    import sys

    path = tmp_path / "in.json"
    path.write_bytes(orjson.dumps(make_doc(extra={"num_keypoints": 1})))
    out = tmp_path / "out.parquet"
    code = ("import sys, mlcycle.cli as c; sys.meta_path.insert(0, c._NoPandas()); "
            "from mlcycle import io; from mlcycle.formats import coco; "
            f"io.write_table(coco.read(__import__('pathlib').Path({str(path)!r})), {str(out)!r}); "
            "print(sorted(m for m in ('pyarrow.compute', 'numpy.ma', 'pandas') if m in sys.modules))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert res.stdout.strip() == "[]"
    assert out.stat().st_size > 0


@pytest.mark.parametrize("raws", [
    [b"[1,2,3]", b"", b"null", b"[]", b"[ 4 ,\n -5 ]", b"[7]", b"[ ]"],  # keypoints-like lists, nulls, empty lists
    [b"1", b"", b"-7", b"0"],  # integers (num_keypoints, ignore)
])
def test_integer_keys_parsed_in_bulk_are_what_parsing_gives(raws):
    import pyarrow as pa

    arr = _coco_fast.int_column(raws)
    assert arr is not None
    parsed = [None if not r else json.loads(r) for r in raws]
    assert arr.type == pa.array(parsed).type
    assert arr.to_pylist() == parsed


@pytest.mark.parametrize("raws", [
    [b"[1.5, 2]"], [b"[[1, 2]]"], [b"[1]", b"2"], [b"[1, null]"], [b"true"], [b'"7"'], [b"[]", b""], [b"", b"null"],
    [b"99999999999999999999"], [b"1e3"],
])
def test_other_values_are_left_to_the_parsed_path(raws):
    assert _coco_fast.int_column(raws) is None
