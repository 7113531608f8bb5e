"""COCO instances off the happy path (issue #13): encodings, absurd numbers, deep
nesting, null labels, bad geometry, skip_invalid, files of the wrong kind, and what
pycocotools accepts (integral floats)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mlcycle import table as T
from mlcycle.errors import MlcycleError
from mlcycle.formats import ReadOptions, coco

BASE = {"images": [{"id": 1, "file_name": "a.jpg", "width": 640, "height": 480},
                   {"id": 2, "file_name": "b.jpg", "width": 640, "height": 480}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 2, 3, 4], "area": 12, "iscrowd": 0},
                        {"id": 2, "image_id": 2, "category_id": 1, "bbox": [5, 6, 7, 8], "area": 56, "iscrowd": 0}],
        "categories": [{"id": 1, "name": "cat"}]}


def doc(**changes) -> dict:
    d = json.loads(json.dumps(BASE))
    for path, value in changes.items():
        kind, index, key = path.split("__")
        d[kind][int(index)][key] = value
    return d


def write(tmp_path: Path, content, name: str = "c.json") -> Path:
    p = tmp_path / name
    p.write_bytes(content if isinstance(content, bytes) else json.dumps(content).encode())
    return p


def one_line_error(runner, path: Path, *extra) -> str:
    res = runner(["ingest", "coco", path, *extra])
    assert res.exit_code == 1, res.stderr
    assert res.stdout == ""
    assert res.stderr.startswith("error: ") and "internal error" not in res.stderr
    return res.stderr


# --------------------------------------------------------------------------- encodings

def test_a_utf8_bom_is_accepted(tmp_path):
    t = coco.read(write(tmp_path, b"\xef\xbb\xbf" + json.dumps(BASE).encode()))
    assert t.column(T.LABEL).to_pylist() == ["cat", "cat"]


def test_utf16_is_one_clear_error(tmp_path, runner):
    err = one_line_error(runner, write(tmp_path, json.dumps(BASE).encode("utf-16")))
    assert "c.json: the file is UTF-16 or UTF-32 text" in err and "iconv" in err


def test_invalid_utf8_names_line_and_column(tmp_path, runner):
    text = json.dumps(BASE, indent=1).encode()
    at = text.index(b'"a.jpg"') + 2
    bad = text[:at] + b"\xff" + text[at:]
    err = one_line_error(runner, write(tmp_path, bad))
    line = bad[:at].count(b"\n") + 1
    assert f"c.json:{line}:" in err and "invalid UTF-8 (byte 0xff)" in err


@pytest.mark.parametrize("depth", [2000, 200_000])
def test_deep_nesting_is_refused_fast_with_the_line(tmp_path, runner, depth):
    nested = b"[" * depth + b"]" * depth
    data = json.dumps(BASE).encode()[:-1] + b',\n"info": ' + nested + b"}"
    err = one_line_error(runner, write(tmp_path, data))
    assert "c.json:2: JSON nested deeper than 1024 levels" in err


# --------------------------------------------------------------------------- numbers

def test_integral_floats_are_read_as_integers_as_pycocotools_does(tmp_path):
    d = doc(images__0__width=640.0, images__0__height=480.0, annotations__0__id=1.0,
            annotations__0__image_id=1.0, annotations__0__category_id=1.0)
    d["categories"][0]["id"] = 1.0
    rows = coco.read(write(tmp_path, d)).to_pylist()
    r = rows[0]
    assert (r[T.WIDTH], r[T.HEIGHT], r[T.LABEL_ID], r[T.IMAGE_ID], r[T.CATEGORY_ID], r[T.LABEL]) == (640, 480, 1, 1, 1, "cat")
    assert type(r[T.LABEL_ID]) is int


@pytest.mark.parametrize("change,message", [
    (dict(annotations__0__id=1.5), r"annotations\[0\]: id 1.5 is not an integer"),
    (dict(annotations__1__id=2**64), r"annotations\[1\]: id 18446744073709551616 is out of range"),
    (dict(annotations__0__id="7"), r"annotations\[0\]: id '7' is a string"),
    (dict(images__1__id=2**64), r"images\[1\]: id 18446744073709551616 is out of range"),
    (dict(images__0__width=3e9), r"images\[0\]: width 3000000000.0 is out of range"),
    (dict(images__0__height=-1), r"images\[0\]: height -1 is out of range"),
    (dict(images__0__width=640.5), r"images\[0\]: width 640.5 is not an integer"),
])
def test_absurd_ids_and_sizes_name_the_entry_and_key(tmp_path, change, message):
    with pytest.raises(MlcycleError, match=message):
        coco.read(write(tmp_path, doc(**change)))


@pytest.mark.parametrize("change,message", [
    (dict(annotations__1__image_id=1.5), r"annotations\[1\] \(id 2\): image_id 1.5 is not an integer"),
    (dict(annotations__1__category_id=2**64), r"annotations\[1\] \(id 2\): category_id 18446744073709551616 is out of range"),
    (dict(annotations__1__bbox=[0, 0, 1e400, 1]), None),  # Infinity is not JSON: a parse error
    (dict(annotations__1__bbox=[0, 0, 10**400, 1]), r"c.json:1:\d+: malformed JSON: number is infinity"),
    (dict(annotations__1__bbox=[0, 0, -3, 1]), r"annotations\[1\] \(id 2\): the box has a negative width or height"),
    (dict(annotations__1__area=-1), r"annotations\[1\] \(id 2\): area -1(\.0)? is not a finite non-negative number"),
    (dict(annotations__1__area=10**400), r"c.json:1:\d+: malformed JSON: number is infinity"),
    (dict(annotations__1__area="12"), r"annotations\[1\] \(id 2\): area '12' is not"),
    (dict(annotations__1__category_id=None), r"annotations\[1\] \(id 2\) has no category_id"),
    (dict(annotations__1__category_id=9), r"annotations\[1\] \(id 2\) refers to unknown category id 9"),
    (dict(annotations__1__image_id=9), r"annotations\[1\] \(id 2\) refers to unknown image id 9"),
])
def test_invalid_annotations_name_file_and_annotation_or_are_skipped(tmp_path, runner, change, message):
    d = doc(**change)
    if message is None:
        d = json.dumps(d).replace("Infinity", "1e999").encode()  # orjson: a number out of range
    p = write(tmp_path, d)
    with pytest.raises(MlcycleError) as info:
        coco.read(p)
    text = str(info.value)
    assert text.startswith(str(p)) or text.startswith(f"{p}:"), text
    if message is not None:
        import re

        assert re.search(message, text), text
        if "malformed" in message:
            return
        assert "skip" in info.value.hint
        # skip_invalid: the annotation is skipped with a counted warning, its image stays
        res = runner(["ingest", "coco", p, "--skip-invalid"])
        assert res.exit_code == 0, res.stderr
        assert "skipped 1 invalid COCO annotation: " in res.stderr and "annotations[1] (id 2)" in res.stderr
        from mlcycle import io

        rows = io.decode(res.stdout.encode()).to_pylist()
        assert [(r[T.SAMPLE_ID], r[T.LABEL_ID], r[T.LABEL]) for r in rows] == [("a.jpg", 1, "cat"), ("b.jpg", None, None)]


def test_skip_invalid_counts_many_and_shows_the_first_few(tmp_path):
    d = json.loads(json.dumps(BASE))
    d["annotations"] = [{"id": k, "image_id": 1, "category_id": 1, "bbox": [0, 0, -1 if k % 2 else 1, 1]}
                        for k in range(1, 101)]
    from mlcycle import reporting

    with reporting.collect() as seen:
        t = coco.read(write(tmp_path, d), ReadOptions(skip_invalid=True))
    assert t.column(T.LABEL_ID).to_pylist() == list(range(2, 101, 2)) + [None]  # b.jpg: a sample row
    assert len(seen.warnings) == 1 and "skipped 50 invalid COCO annotations" in seen.warnings[0]
    assert "(and 47 more)" in seen.warnings[0]


def test_a_null_label_is_never_read_as_a_label_row(tmp_path):
    d = doc()
    del d["annotations"][0]["category_id"]
    t = coco.read(write(tmp_path, d), ReadOptions(skip_invalid=True))
    lab = T.label_mask(t)
    assert not np.any(lab & ~t.column(T.LABEL).is_valid().to_numpy(zero_copy_only=False))


# --------------------------------------------------------------------------- wrong kind of file

def test_a_results_file_given_as_instances_says_what_it_is(tmp_path, runner):
    p = write(tmp_path, [{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 0.5}])
    err = one_line_error(runner, p)
    assert "this is a COCO results file (a JSON list of detections)" in err
    assert "coco-results" in err and "--images" in err  # the hint, with the CLI's flag


@pytest.mark.parametrize("content,kind", [
    (b'<?xml version="1.0"?>\n<annotations><image id="0" name="a.jpg"/></annotations>', "CVAT XML (read it as cvat)"),
    (b"<annotation><filename>a.jpg</filename></annotation>", "Pascal VOC XML (read it as voc)"),
    (b"image,label,xmin,ymin,xmax,ymax\na.jpg,cat,1,2,3,4\n", "CSV (read it as csv)"),
    (b"ImageID,Source,LabelName,Confidence,XMin\na,x,/m/0,1,0\n", "Open Images CSV (read it as openimages)"),
])
def test_xml_or_csv_given_to_coco_says_what_it_looks_like(tmp_path, runner, content, kind):
    err = one_line_error(runner, write(tmp_path, content))
    assert f"not JSON: this looks like {'an ' if 'Open' in kind else ''}{kind}" in err


# --------------------------------------------------------------------------- export

def test_export_names_the_row_of_bad_segmentation_text_and_null_labels(tmp_path):
    t = T.from_columns({T.SAMPLE_ID: ["a.jpg"], T.SOURCE: ["gt"], T.LABEL: ["cat"], T.BBOX: [[0.0, 0, 1, 1]],
                        T.SEGMENTATION: ["[[1,2"]})
    with pytest.raises(MlcycleError, match=r"sample 'a.jpg': column 'segmentation' is not valid JSON text"):
        coco.to_dict(t)
    t = T.from_columns({T.SAMPLE_ID: ["a.jpg"], T.SOURCE: ["gt"], T.LABEL: [None], T.BBOX: [[0.0, 0, 1, 1]]})
    with pytest.raises(MlcycleError, match=r"sample 'a.jpg': label 1 has a box but no class"):
        coco.to_dict(t)


def test_export_ignores_damaged_coco_metadata_with_a_warning(tmp_path):
    from mlcycle import reporting

    t = coco.read(write(tmp_path, BASE))
    meta = T.get_metadata(t)
    meta["coco"]["categories"] = [{"id": 1}]  # no name: a hand-edited or damaged table
    t = T.with_metadata(t, meta)
    with reporting.collect() as seen:
        d = coco.to_dict(t)
    assert d["categories"] == [{"id": 1, "name": "cat", "supercategory": ""}]
    assert any("COCO metadata (categories, keys) is malformed" in w for w in seen.warnings)
