"""LabelMe off the happy path (issue #13): encodings, nesting, absurd numbers, shapes
without a label, split and crowd kept, and an export that is all or nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlcycle import reporting
from mlcycle import table as T
from mlcycle.errors import MlcycleError
from mlcycle.formats import ReadOptions, labelme


def doc(shapes=None, **top):
    d = {"version": "5.0.1", "flags": {}, "shapes": shapes if shapes is not None else [
        {"label": "cat", "points": [[1, 2], [4, 6]], "group_id": None, "shape_type": "rectangle", "flags": {}}],
        "imagePath": "a.jpg", "imageData": None, "imageHeight": 480, "imageWidth": 640}
    d.update(top)
    return d


def write(folder: Path, content, name: str = "a.json") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    p = folder / name
    p.write_bytes(content if isinstance(content, bytes) else json.dumps(content).encode())
    return p


def test_bom_accepted_utf16_bad_utf8_and_deep_nesting_refused(tmp_path):
    t = labelme.read(write(tmp_path, b"\xef\xbb\xbf" + json.dumps(doc()).encode()))
    assert t.column(T.LABEL).to_pylist() == ["cat"]
    with pytest.raises(MlcycleError, match=r"a\.json: the file is UTF-16 or UTF-32 text"):
        labelme.read(write(tmp_path, json.dumps(doc()).encode("utf-16")))
    with pytest.raises(MlcycleError, match=r"a\.json:1:\d+: invalid UTF-8"):
        labelme.read(write(tmp_path, json.dumps(doc()).replace("cat", "c\udcffat", 1).encode("utf-8", "surrogateescape")))
    deep = json.dumps(doc())[:-1].encode() + b', "x": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    with pytest.raises(MlcycleError, match=r"a\.json:1: JSON nested deeper than 1024 levels"):
        labelme.read(write(tmp_path, deep))


@pytest.mark.parametrize("top,message", [
    ({"imageWidth": 3e9}, r"imageWidth 3000000000(\.0)? is not an image size in pixels"),
    ({"imageHeight": -5}, r"imageHeight -5 is not an image size in pixels"),
    ({"imageWidth": 640.5}, r"imageWidth 640.5 is not an image size"),
])
def test_absurd_sizes_name_the_file_and_key(tmp_path, top, message):
    with pytest.raises(MlcycleError, match=message):
        labelme.read(write(tmp_path, doc(**top)))


def test_integral_float_sizes_are_pixels(tmp_path):
    t = labelme.read(write(tmp_path, doc(imageWidth=640.0, imageHeight=480.0)))
    assert t.column(T.WIDTH).to_pylist() == [640] and t.column(T.HEIGHT).to_pylist() == [480]


@pytest.mark.parametrize("shape,message", [
    ({"label": "", "points": [[1, 2], [4, 6]], "shape_type": "rectangle"}, r"shapes\[1\]: the shape has no label"),
    ({"points": [[1, 2], [4, 6]], "shape_type": "rectangle"}, r"shapes\[1\]: the shape has no label"),
    ({"label": "dog", "points": [[1, 2], [10**400, 6]], "shape_type": "rectangle"}, r"shapes\[1\]: a point has a non-finite value"),
    ({"label": "dog", "points": [[1, 2], [4, 6]], "shape_type": "rectangle", "group_id": 2**64},
     r"shapes\[1\]: group_id \S+ is not a 64-bit integer"),
    ({"label": "dog", "points": [[0, 0], [1.7e308, 1.7e308]], "shape_type": "circle"}, r"shapes\[1\]: the circle's radius is not finite"),
])
def test_invalid_shapes_name_file_and_shape_or_are_skipped(tmp_path, shape, message):
    good = {"label": "cat", "points": [[1, 2], [4, 6]], "shape_type": "rectangle"}
    # 10**400 is not a float orjson can read: write that one as Python's json does
    p = tmp_path / "a.json"
    p.write_text(json.dumps(doc([good, shape])))
    if "10**400" in message or "non-finite" in message:
        p.write_text(json.dumps(doc([good, shape])).replace(str(10**400), "1" + "0" * 400))
    try:
        labelme.read(p)
    except MlcycleError as exc:
        import re

        text = str(exc)
        if "malformed JSON" in text:  # orjson refuses a number out of double range: also one line
            assert text.startswith(f"{p}:")
            return
        assert re.search(message, text) and text.startswith(f"{p}: shapes[1]"), text
    else:
        pytest.fail("no error")
    with reporting.collect() as seen:
        t = labelme.read(p, ReadOptions(skip_invalid=True))
    assert t.column(T.LABEL).to_pylist() == ["cat"]
    assert len(seen.warnings) == 1 and "skipped 1 invalid shape" in seen.warnings[0]


def _table():
    return T.from_columns({
        T.SAMPLE_ID: ["a.jpg", "b.jpg", "c.jpg"], T.SOURCE: ["gt"] * 3, T.LABEL_ID: [1, 2, None],
        T.LABEL: ["cat", "person", None], T.BBOX: [[1.0, 2.0, 3.0, 4.0], [0.0, 0.0, 5.0, 5.0], None],
        T.ISCROWD: [False, True, False],
        T.SEGMENTATION: [None, json.dumps({"counts": [0, 5, 20], "size": [5, 5]}), None],
        T.WIDTH: [10, 10, 10], T.HEIGHT: [10, 10, 10], T.SPLIT: ["train", "val", "val"]})


def test_split_and_crowd_survive_a_round_trip(tmp_path):
    with reporting.collect() as seen:
        labelme.write(_table(), tmp_path / "lm")
    assert any("1 segmentation(s) written as their boxes: RLE masks (crowd regions)" in w for w in seen.warnings)
    b = json.loads((tmp_path / "lm" / "b.json").read_text())
    assert b["split"] == "val" and b["shapes"][0]["iscrowd"] is True
    back = labelme.read(tmp_path / "lm")
    rows = {r[T.SAMPLE_ID]: r for r in back.to_pylist()}
    assert {s: r[T.SPLIT] for s, r in rows.items()} == {"a.jpg": "train", "b.jpg": "val", "c.jpg": "val"}
    assert rows["b.jpg"][T.ISCROWD] is True and rows["a.jpg"][T.ISCROWD] is False
    assert rows["b.jpg"][T.BBOX] == [0.0, 0.0, 5.0, 5.0]
    # the split given at ingest wins over the files'
    assert set(labelme.read(tmp_path / "lm", ReadOptions(split="test")).column(T.SPLIT).to_pylist()) == {"test"}


def test_a_failing_export_leaves_no_folder(tmp_path, monkeypatch):
    out = tmp_path / "lm"
    real = labelme.to_documents

    def docs_then_fail(*args, **kwargs):
        docs = real(*args, **kwargs)
        docs["zz.jpg"] = {"not": {1, 2}}  # orjson cannot write a set: fails after other files
        return docs

    monkeypatch.setattr(labelme, "to_documents", docs_then_fail)
    with pytest.raises(TypeError):
        labelme.write(_table(), out)
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == []  # no temporary folder left either
