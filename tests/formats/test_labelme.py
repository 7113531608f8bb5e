"""LabelMe JSON (wkentaro format): the VOC100 fixture against COCO, shapes, round trips,
path traversal and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlcycle import formats, io
from mlcycle import table as T
from mlcycle.errors import MlcycleError
from mlcycle.formats import ReadOptions, coco, labelme

GTS = "rafaelpadilla__review_object_detection_metrics/data/database/gts"


def box_list(table: pa.Table) -> list[tuple]:
    b = T.bboxes(table)
    s = table.column(T.SAMPLE_ID).to_pylist()
    lab = table.column(T.LABEL).to_pylist()
    return sorted((s[i], lab[i], *b[i].tolist()) for i in range(table.num_rows) if not np.isnan(b[i]).all())


def sizes(table: pa.Table) -> dict:
    return {r[T.SAMPLE_ID]: (r[T.WIDTH], r[T.HEIGHT]) for r in table.select([T.SAMPLE_ID, T.WIDTH, T.HEIGHT]).to_pylist()}


def test_voc100_labelme_gives_the_same_boxes_and_sizes_as_coco(external):
    c = coco.read(external / GTS / "coco_format_v1/instances_default.json")
    t = labelme.read(external / GTS / "labelme_format_imagedata_null")
    assert box_list(t) == box_list(c)
    assert sizes(t) == sizes(c)
    assert set(t.column(T.SHAPE).to_pylist()) == {"box"}


def test_the_two_verbatim_files_with_image_data(external):
    c = coco.read(external / GTS / "coco_format_v1/instances_default.json")
    t = labelme.read(external / GTS / "labelme_format")
    want = [b for b in box_list(c) if b[0] in ("2007_000027.jpg", "2007_001585.jpg")]
    assert box_list(t) == want
    # imageData is not stored anywhere in the table
    assert all("imageData" not in c and "/9j/" not in str(v) for c in t.column_names for v in t.column(c).to_pylist()[:3])
    one = labelme.read(external / GTS / "labelme_format/2007_000027.json")
    assert box_list(one) == [b for b in want if b[0] == "2007_000027.jpg"]


@pytest.mark.parametrize("rel", ["labelme_format", "labelme_format_imagedata_null", "labelme_format/2007_001585.json"])
def test_auto_detection_picks_labelme(external, rel):
    assert formats.detect(external / GTS / rel) == "labelme"


def test_fixture_ingest_export_ingest_loses_nothing(external, tmp_path):
    first = labelme.read(external / GTS / "labelme_format_imagedata_null")
    labelme.write(first, tmp_path / "out")
    files = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert len(files) == 100 and files[0] == "2007_000027.json"
    doc = json.loads((tmp_path / "out/2007_000027.json").read_text())
    assert doc["imagePath"] == "2007_000027.jpg" and doc["imageData"] is None
    assert (doc["imageWidth"], doc["imageHeight"]) == (486, 500)
    again = labelme.read(tmp_path / "out")
    assert again.to_pylist() == first.to_pylist()


def _write(folder: Path, name: str, doc: dict) -> Path:
    p = folder / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(doc))
    return p


def _doc(shapes: list, image: str = "a.jpg", w: int = 100, h: int = 80) -> dict:
    return {"version": "5.2.1", "flags": {}, "shapes": shapes, "imagePath": image, "imageData": None,
            "imageHeight": h, "imageWidth": w}


def test_shapes_polygons_circles_lines_and_image_paths(tmp_path):
    shapes = [
        {"label": "car", "points": [[30, 40], [10, 20]], "shape_type": "rectangle", "group_id": 3, "flags": {"ok": True}},
        {"label": "road", "points": [[0, 0], [10, 0], [10, 5]], "shape_type": "polygon", "description": "wet"},
        {"label": "wheel", "points": [[50, 50], [53, 54]], "shape_type": "circle"},
        {"label": "lane", "points": [[1, 2], [3, 4], [5, 6]], "shape_type": "linestrip"},
        {"label": "eye", "points": [[7, 8]], "shape_type": "point"},
        {"label": "legacy", "points": [[0, 0], [4, 0], [4, 4]]},  # no shape_type: a polygon
    ]
    _write(tmp_path / "ds" / "annotations", "a.json", {**_doc(shapes, "../images/a.jpg"), "flags": {"night": True}})
    _write(tmp_path / "ds" / "sub", "b.json", _doc([], "../../elsewhere/b.jpg", 20, 10))
    t = labelme.read(tmp_path / "ds")
    rows = t.to_pylist()
    # imagePath is relative to the JSON file; one pointing outside the folder read keeps
    # the JSON's folder and the image's file name
    assert [r[T.SAMPLE_ID] for r in rows] == ["images/a.jpg"] * 6 + ["sub/b.jpg"]
    car, road, wheel, lane, eye, legacy, empty = rows
    assert car[T.BBOX] == [10.0, 20.0, 20.0, 20.0] and car[T.SHAPE] == "box"
    assert car[T.GROUP_ID] == 3 and json.loads(car["flags"]) == {"ok": True}
    assert json.loads(car["image_flags"]) == {"night": True}
    assert json.loads(road[T.SEGMENTATION]) == [[0, 0, 10, 0, 10, 5]] and road[T.BBOX] == [0.0, 0.0, 10.0, 5.0]
    assert road["description"] == "wet"
    assert wheel[T.BBOX] == [45.0, 45.0, 10.0, 10.0] and wheel[T.SHAPE] == "circle"
    assert lane[T.SHAPE] == "polyline" and lane[T.BBOX] is None and lane[T.POINTS] == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    assert eye[T.SHAPE] == "point" and eye[T.POINTS] == [7.0, 8.0]
    assert legacy[T.SHAPE] == "polygon"
    assert empty[T.LABEL] is None and empty[T.LABEL_ID] is None and (empty[T.WIDTH], empty[T.HEIGHT]) == (20, 10)
    # and back: every shape keeps its kind and points
    labelme.write(t, tmp_path / "out")
    back = labelme.read(tmp_path / "out")
    assert back.to_pylist() == rows
    written = json.loads((tmp_path / "out/images/a.json").read_text())
    assert [s["shape_type"] for s in written["shapes"]] == ["rectangle", "polygon", "circle", "linestrip", "point", "polygon"]
    assert written["flags"] == {"night": True}


_coord = st.floats(min_value=0, max_value=4000, allow_nan=False, allow_infinity=False)


@st.composite
def labelme_tables(draw):
    rows = []
    for k in range(draw(st.integers(1, 4))):
        s = draw(st.sampled_from([f"img{k}.jpg", f"sub/img{k}.png", f"a b/{k}.jpeg"]))
        n = draw(st.integers(0, 3))
        for _ in range(n):
            rows.append((s, draw(st.text(min_size=1, max_size=6)), [draw(_coord) for _ in range(4)],
                         draw(st.one_of(st.none(), st.integers(0, 9)))))
        if n == 0:
            rows.append((s, None, None, None))
    uniq = rows  # sample ids are distinct by construction (k is in each name)
    samples = [r[0] for r in uniq]
    return T.from_columns({
        T.SAMPLE_ID: samples, T.SOURCE: ["gt"] * len(uniq), T.LABEL: [r[1] for r in uniq],
        T.BBOX: pa.array([r[2] for r in uniq], type=pa.list_(pa.float64(), 4)),
        T.WIDTH: [500] * len(uniq), T.HEIGHT: [400] * len(uniq),
        T.GROUP_ID: pa.array([r[3] for r in uniq], type=pa.int64()),
    })


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(labelme_tables())
def test_round_trip_property(tmp_path, table):
    import shutil

    out = tmp_path / "rt"
    shutil.rmtree(out, ignore_errors=True)
    labelme.write(table, out)
    back = labelme.read(out)
    key = lambda t: sorted(  # noqa: E731
        (r[T.SAMPLE_ID], r[T.LABEL] or "", r.get(T.GROUP_ID) or -1, r[T.WIDTH], r[T.HEIGHT],
         tuple(np.round(r[T.BBOX], 6)) if r[T.BBOX] else ()) for r in t.to_pylist())
    assert key(back) == key(table)
    def boxes(t):  # label rows, ordered by sample (files are read in path order), then row order
        s = np.array(t.column(T.SAMPLE_ID).to_pylist(), dtype=object)
        order = sorted(range(t.num_rows), key=lambda i: s[i])
        return T.bboxes(t)[[i for i in order if T.label_mask(t)[i]]]

    a, b = boxes(table), boxes(back)
    # rows keep their order within an image; x, y exact, w, h within one rounding of x + w
    np.testing.assert_array_equal(b[:, :2], a[:, :2])
    np.testing.assert_allclose(b[:, 2:], a[:, 2:], rtol=0, atol=1e-9)


@pytest.mark.parametrize("bad", ["../evil.jpg", "/tmp/abs.jpg", "a/../../evil.jpg"])
def test_export_refuses_sample_ids_escaping_the_folder(tmp_path, bad, runner):
    t = T.from_columns({T.SAMPLE_ID: ["ok.jpg", bad], T.SOURCE: ["gt", "gt"], T.LABEL: ["a", "b"],
                        T.BBOX: np.array([[1.0, 2, 3, 4], [1.0, 2, 3, 4]])})
    with pytest.raises(MlcycleError, match="outside the output folder"):
        labelme.write(t, tmp_path / "out")
    assert not (tmp_path / "out").exists() and not (tmp_path / "evil.json").exists()
    src = tmp_path / "t.parquet"
    io.write_table(t, src)
    res = runner(["export", "labelme", src, "-o", tmp_path / "out"])
    assert res.exit_code == 1 and "outside the output folder" in res.stderr and res.stdout == ""


def test_export_needs_an_output_folder(tmp_path, runner):
    src = tmp_path / "t.parquet"
    io.write_table(T.from_columns({T.SAMPLE_ID: ["a.jpg"], T.SOURCE: ["gt"]}), src)
    res = runner(["export", "labelme", src])
    assert res.exit_code == 2 and "--output: labelme writes a folder" in res.stderr


def test_bad_shape_names_file_and_shape_and_skip_invalid_counts(tmp_path, runner):
    p = _write(tmp_path, "a.json", _doc([
        {"label": "ok", "points": [[0, 0], [1, 1]], "shape_type": "rectangle"},
        {"label": "bad", "points": [[0, 0], [1, 1], [2, 2]], "shape_type": "rectangle"},
    ]))
    with pytest.raises(MlcycleError, match=r"a\.json: shapes\[1\]: a rectangle needs 2 points, got 3"):
        labelme.read(p)
    res = runner(["ingest", "labelme", p])
    assert res.exit_code == 1 and res.stdout == "" and "shapes[1]" in res.stderr
    res = runner(["ingest", "labelme", p, "--skip-invalid"])
    assert res.exit_code == 0 and "skipped 1 invalid shape" in res.stderr
    assert [r["label"] for r in io.decode(res.stdout.encode()).to_pylist()] == ["ok"]


def test_malformed_json_names_line(tmp_path):
    p = tmp_path / "a.json"
    p.write_text('{"shapes": [\n  {"label": "x",,}\n]}')
    with pytest.raises(MlcycleError, match=r"a\.json:2:\d+: malformed JSON"):
        labelme.read(p)


def test_two_files_for_one_image_is_an_error(tmp_path):
    _write(tmp_path, "a.json", _doc([], "x.jpg"))
    _write(tmp_path, "b.json", _doc([], "x.jpg"))
    with pytest.raises(MlcycleError, match="also annotated in"):
        labelme.read(tmp_path)


def test_split_option(external):
    t = labelme.read(external / GTS / "labelme_format", ReadOptions(split="train"))
    assert set(t.column(T.SPLIT).to_pylist()) == {"train"}


def test_attributes_of_other_formats_travel_as_extra_shape_keys(tmp_path):
    t = T.from_columns({T.SAMPLE_ID: ["a.jpg", "a.jpg"], T.SOURCE: ["gt", "gt"], T.LABEL: ["cat", "dog"],
                        T.BBOX: np.array([[1.0, 2, 3, 4], [5.0, 6, 7, 8]]), T.WIDTH: [10, 10], T.HEIGHT: [10, 10],
                        "difficult": [True, None], "pose": ["Left", "Right"], T.HARD_REASON: ["possible_missing", None]})
    labelme.write(t, tmp_path / "out")
    doc = json.loads((tmp_path / "out/a.json").read_text())
    assert doc["shapes"][0]["difficult"] is True and "difficult" not in doc["shapes"][1]
    assert doc["shapes"][0]["hard_reason"] == "possible_missing"
    back = labelme.read(tmp_path / "out").to_pylist()
    assert [(r["difficult"], r["pose"], r[T.HARD_REASON]) for r in back] == [
        (True, "Left", "possible_missing"), (None, "Right", None)]
