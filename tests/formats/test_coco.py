"""COCO instances and results: exact round trips, fixtures, and precise errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlcycle import io
from mlcycle import table as T
from mlcycle.errors import MlcycleError, OptionError
from mlcycle.formats import ReadOptions, coco, coco_results

COCO_FIXTURES = [
    "MiXaiLL76__faster_coco_eval/tests/dataset/cocoapi/instances_val2014_100.json",
    "MiXaiLL76__faster_coco_eval/tests/dataset/gt_dataset.json",
    "MiXaiLL76__faster_coco_eval/tests/keypoints_dataset/gt_dataset.json",
    "rafaelpadilla__review_object_detection_metrics/tests/test_coco_eval/gts/sampled_gts_bbox_area.json",
    "rafaelpadilla__review_object_detection_metrics/data/database/gts/coco_format_v1/instances_default.json",
    "rafaelpadilla__review_object_detection_metrics/data/database/gts/coco_format_v2/instances_v2.json",
    "rafaelpadilla__review_object_detection_metrics/data/database/dets/coco_format/coco_dets.json",
    "rafaelpadilla__review_object_detection_metrics/toyexample/gts_coco_format/toy_example_coco.JSON",
    "openvinotoolkit__datumaro/tests/assets/coco_dataset/coco_instances/annotations/instances_train.json",
    "openvinotoolkit__datumaro/tests/assets/coco_dataset/coco_instances/annotations/instances_val.json",
    "openvinotoolkit__datumaro/tests/assets/coco_dataset/coco_person_keypoints/annotations/person_keypoints_val.json",
    "openvinotoolkit__datumaro/tests/assets/coco_dataset/coco_labels/annotations/labels_val.json",
    "openvinotoolkit__datumaro/tests/assets/coco_dataset/coco_stuff/annotations/stuff_val.json",
    "openvinotoolkit__datumaro/tests/assets/roboflow_dataset/coco/val/_annotations.coco.json",
]


def canonical(doc: dict) -> dict:
    """Images in id order (the order mlcycle writes them); everything else as is."""
    doc = dict(doc)
    doc["images"] = sorted(doc["images"], key=lambda im: im["id"])
    return doc


def round_trip(doc: dict, tmp_path: Path, encoding: str = "parquet") -> dict:
    src = tmp_path / "in.json"
    src.write_text(json.dumps(doc))
    table = coco.read(src)
    # through a file of the chosen encoding, as a pipeline would
    back = T.normalize(io.decode(io.encode(table, encoding)))
    return coco.to_dict(back)


@pytest.mark.parametrize("rel", COCO_FIXTURES)
@pytest.mark.parametrize("encoding", ["parquet", "jsonl", "arrow"])
def test_external_coco_files_round_trip_exactly(external, rel, encoding, tmp_path):
    original = json.loads((external / rel).read_text())
    assert round_trip(original, tmp_path, encoding) == canonical(original)


def test_string_image_id_is_refused_clearly(external):
    path = external / "MiXaiLL76__faster_coco_eval/tests/dataset/gt_ignore_test.json"
    with pytest.raises(MlcycleError, match=r"images\[0\]: id '2299' is a string") as info:
        coco.read(path)
    assert "renumber" in info.value.hint


def test_datumaro_stated_parse_values(external):
    """tests/unit/test_coco_format.py:161-220 in datumaro."""
    root = external / "openvinotoolkit__datumaro/tests/assets/coco_dataset/coco_instances/annotations"
    train = coco.read(root / "instances_train.json").to_pylist()
    assert [(r["sample_id"], r["image_id"], r["width"], r["height"], r["bbox"], r["label"]) for r in train] == [
        ("a.jpg", 5, 10, 5, [2.0, 2.0, 3.0, 1.0], "b")]
    val = coco.read(root / "instances_val.json")
    rows = val.to_pylist()
    assert [r["label"] for r in rows] == ["a", "b"]
    assert rows[0]["bbox"] == [0.0, 0.0, 1.0, 2.0] and json.loads(rows[0]["segmentation"]) == [[0, 0, 1, 0, 1, 2, 0, 2]]
    assert rows[0]["x"] == 1 and rows[0]["y"] == "hello"
    assert rows[1]["iscrowd"] is True and json.loads(rows[1]["segmentation"]) == {"counts": [0, 20, 30], "size": [10, 5]}
    assert [c["id"] for c in T.get_metadata(val)["coco"]["categories"]] == [1, 2, 4]


# --------------------------------------------------------------------------- generated

@st.composite
def coco_docs(draw):
    n_img = draw(st.integers(1, 6))
    img_ids = draw(st.lists(st.integers(0, 10**9), min_size=n_img, max_size=n_img, unique=True))
    images = [{"id": i, "file_name": f"dir/img_{i}.jpg", "width": draw(st.integers(1, 4000)),
               "height": draw(st.integers(1, 4000)), "license": draw(st.integers(0, 3))} for i in img_ids]
    cats = [{"id": c, "name": f"class{c}", "supercategory": draw(st.sampled_from(["animal", "vehicle", ""]))}
            for c in draw(st.lists(st.integers(1, 90), min_size=1, max_size=4, unique=True))]
    n_ann = draw(st.integers(0, 12))
    ann_ids = draw(st.lists(st.integers(0, 10**12), min_size=n_ann, max_size=n_ann, unique=True))
    coord = st.floats(0, 5000, allow_nan=False, allow_infinity=False)
    anns = []
    for aid in ann_ids:
        crowd = draw(st.booleans())
        if crowd:
            seg = draw(st.sampled_from([{"counts": [0, 5, 10, 2], "size": [4, 5]}, {"counts": "PPYo0", "size": [17, 11]}]))
        else:
            seg = [[draw(coord) for _ in range(draw(st.sampled_from([6, 8])))]]
        ann = {"id": aid, "image_id": draw(st.sampled_from(img_ids)), "category_id": draw(st.sampled_from(cats))["id"],
               "bbox": [draw(coord) for _ in range(4)], "area": draw(coord), "iscrowd": int(crowd), "segmentation": seg}
        if draw(st.booleans()):
            ann["ignore"] = draw(st.integers(0, 1))
        if draw(st.booleans()):
            ann["attributes"] = {"occluded": draw(st.booleans())}
        anns.append(ann)
    return {"info": {"year": 2026}, "licenses": [{"id": 1, "name": "x"}], "images": images,
            "annotations": anns, "categories": cats}


@settings(max_examples=60, deadline=None)
@given(doc=coco_docs(), encoding=st.sampled_from(["parquet", "jsonl", "arrow"]))
def test_generated_coco_round_trips(doc, encoding, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("rt")
    assert round_trip(doc, tmp, encoding) == canonical(doc)


def test_images_without_annotations_become_sample_rows(tmp_path):
    doc = {"images": [{"id": 1, "file_name": "a.jpg", "width": 4, "height": 3},
                      {"id": 2, "file_name": "b.jpg", "width": 4, "height": 3}],
           "annotations": [{"id": 7, "image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1], "area": 1, "iscrowd": 0}],
           "categories": [{"id": 1, "name": "cat"}]}
    p = tmp_path / "c.json"
    p.write_text(json.dumps(doc))
    t = coco.read(p, ReadOptions(split="val"))
    rows = t.to_pylist()
    assert [(r["sample_id"], r["label"], r["label_id"], r["split"]) for r in rows] == [
        ("a.jpg", "cat", 7, "val"), ("b.jpg", None, None, "val")]


# --------------------------------------------------------------------------- bad input

def write(tmp_path, doc, name="c.json"):
    p = tmp_path / name
    p.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return p


BASE = {"images": [{"id": 1, "file_name": "a.jpg", "width": 4, "height": 3}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1], "area": 1, "iscrowd": 0}],
        "categories": [{"id": 1, "name": "cat"}]}


def with_(**changes):
    doc = json.loads(json.dumps(BASE))
    doc.update(changes)
    return doc


@pytest.mark.parametrize("doc,message", [
    ('{"images": [\n  {"id": 1,, }\n]}', r"c.json:2:\d+: malformed JSON"),
    ({"annotations": [], "categories": []}, "'images' list is missing"),
    ({"images": [], "categories": []}, "'annotations' list is missing"),
    (with_(annotations=[{"id": 1, "image_id": 9, "category_id": 1, "bbox": [0, 0, 1, 1]}]), r"annotations\[0\] \(id 1\) refers to unknown image id 9"),
    (with_(annotations=[{"id": 1, "image_id": 1, "category_id": 5, "bbox": [0, 0, 1, 1]}]), r"annotations\[0\] \(id 1\) refers to unknown category id 5"),
    (with_(annotations=[{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, "x", 1, 1]}]), r"annotations\[0\] \(id 1\): bbox \[0, 'x', 1, 1\] is not four numbers"),
    (with_(annotations=[{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 1]}]), "is not four numbers"),
    (with_(annotations=[{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 1e400, 1]}]), r"c.json:1:\d+: malformed JSON"),  # Infinity/NaN are not JSON
    (with_(annotations=[{"id": 3, "image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1]}] * 2), "annotation id 3 appears 2 times"),
    (with_(images=[{"id": 1, "file_name": "a.jpg"}, {"id": 1, "file_name": "b.jpg"}]), "image id 1 appears 2 times"),
])
def test_bad_coco_files_get_one_precise_error(tmp_path, doc, message):
    with pytest.raises(MlcycleError, match=message):
        coco.read(write(tmp_path, doc))


def test_results_need_ground_truth_and_known_ids(tmp_path):
    gt = write(tmp_path, BASE, "gt.json")
    res = write(tmp_path, [{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 0.5}], "r.json")
    with pytest.raises(OptionError, match="needs the ground truth"):
        coco_results.read(res)
    t = coco_results.read(res, coco_results.ReadOptions(images=gt))
    assert t.to_pylist()[0]["sample_id"] == "a.jpg" and t.to_pylist()[0]["source"] == "pred"
    bad = write(tmp_path, [{"image_id": 4, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 0.5}], "bad.json")
    with pytest.raises(MlcycleError, match=r"\[0\] refers to unknown image id 4"):
        coco_results.read(bad, coco_results.ReadOptions(images=gt))
    badcat = write(tmp_path, [{"image_id": 1, "category_id": 2, "bbox": [0, 0, 1, 1], "score": 0.5}], "badcat.json")
    with pytest.raises(MlcycleError, match=r"\[0\] refers to unknown category id 2"):
        coco_results.read(badcat, coco_results.ReadOptions(images=gt))
    # an empty list is "the model found nothing": a valid input (pycocotools accepts it)
    empty = write(tmp_path, [], "empty.json")
    assert T.label_mask(coco_results.read(empty, coco_results.ReadOptions(images=gt))).sum() == 0


@pytest.mark.parametrize("kind", ["bbox", "segm"])
def test_external_results_round_trip(external, kind, tmp_path):
    gt = external / "MiXaiLL76__faster_coco_eval/tests/dataset/cocoapi/instances_val2014_100.json"
    res = external / f"cocodataset__cocoapi/results/instances_val2014_fake{kind}100_results.json"
    table = coco_results.read(res, coco_results.ReadOptions(images=gt, source="fake"))
    assert T.sources(table) == ["fake"]
    # the ground truth may also be given as a label table
    io.write_table(coco.read(gt), tmp_path / "gt.parquet")
    table2 = coco_results.read(res, coco_results.ReadOptions(images=tmp_path / "gt.parquet", source="fake"))
    assert table2.column(T.SAMPLE_ID).to_pylist() == table.column(T.SAMPLE_ID).to_pylist()
    assert coco_results.to_list(table) == json.loads(res.read_text())


def test_export_of_a_non_coco_table_numbers_categories_and_adds_area(tmp_path):
    t = T.from_columns({T.SAMPLE_ID: ["a.jpg", "b.jpg"], T.SOURCE: ["gt", "gt"], T.LABEL: ["dog", "cat"],
                        T.BBOX: np.array([[1, 2, 3, 4], [0, 0, 2, 2.0]]), T.WIDTH: [10, 10], T.HEIGHT: [10, 10],
                        "occluded": [True, False]})
    doc = coco.to_dict(t)
    assert doc["categories"] == [{"id": 1, "name": "cat", "supercategory": ""}, {"id": 2, "name": "dog", "supercategory": ""}]
    assert [(a["category_id"], a["area"], a["iscrowd"], a["attributes"]) for a in doc["annotations"]] == [
        (2, 12.0, 0, {"occluded": True}), (1, 4.0, 0, {"occluded": False})]
    assert [im["file_name"] for im in doc["images"]] == ["a.jpg", "b.jpg"]
