"""CVAT for images 1.1 XML: stated fixture values, cross-format agreement, round trips,
unsafe XML and bad input."""

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
from mlcycle.formats import ReadOptions, WriteOptions, coco, cvat

GTS = "rafaelpadilla__review_object_detection_metrics/data/database/gts"
DATUMARO = "openvinotoolkit__datumaro/tests/assets/cvat_dataset"


def box_list(table: pa.Table) -> list[tuple]:
    """(sample_id, label, x, y, w, h) of every box, sorted."""
    b = T.bboxes(table)
    s = table.column(T.SAMPLE_ID).to_pylist()
    lab = table.column(T.LABEL).to_pylist()
    return sorted((s[i], lab[i], *b[i].tolist()) for i in range(table.num_rows) if not np.isnan(b[i]).all())


def rows_of(table: pa.Table, sample: str) -> list[dict]:
    return [r for r in table.to_pylist() if r[T.SAMPLE_ID] == sample]


# --------------------------------------------------------------------------- fixtures

def test_voc100_cvat_gives_the_same_boxes_as_coco(external):
    c = coco.read(external / GTS / "coco_format_v1/instances_default.json")
    for path in (external / GTS / "cvat_format/annotations.xml", external / GTS / "cvat_format"):
        t = cvat.read(path)
        assert box_list(t) == box_list(c)
        assert t.num_rows == 273
        sizes = {r[T.SAMPLE_ID]: (r[T.WIDTH], r[T.HEIGHT]) for r in t.select([T.SAMPLE_ID, T.WIDTH, T.HEIGHT]).to_pylist()}
        csizes = {r[T.SAMPLE_ID]: (r[T.WIDTH], r[T.HEIGHT]) for r in c.select([T.SAMPLE_ID, T.WIDTH, T.HEIGHT]).to_pylist()}
        assert sizes == csizes
        # CVAT's occluded agrees with the COCO file's attributes.occluded
        assert sorted(zip(t.column(T.LABEL).to_pylist(), t.column(T.OCCLUDED).to_pylist())) == \
            sorted(zip(c.column(T.LABEL).to_pylist(), c.column("occluded").to_pylist()))


def test_datumaro_export_task_stated_values(external, expected):
    stated = expected["parse"]["datumaro_cvat_export_task"]
    t = cvat.read(external / stated["files"])
    by_id = {it["id"]: it for it in stated["items"]}
    img0 = rows_of(t, "img0.jpg")
    img1 = rows_of(t, "img1.jpg")
    for rows, item in ((img0, by_id["img0"]), (img1, by_id["img1"])):
        w, h = (int(v) for v in item["size"].split("x"))
        assert all((r[T.WIDTH], r[T.HEIGHT]) == (w, h) for r in rows)
        assert all(r[T.IMAGE_ID] == item["frame"] for r in rows)
        assert len(rows) == len(item["anns"])
    box, line = img0
    ann = by_id["img0"]["anns"][0]
    assert box[T.SHAPE] == "box" and box[T.LABEL] == ann["label"]
    assert box[T.BBOX] == [float(v) for v in ann["bbox"]]
    assert box[T.OCCLUDED] is True and box[T.Z_ORDER] == ann["z_order"]
    assert {k: box[k] for k in ann["attributes"]} == ann["attributes"]
    assert type(box["a1"]) is bool and box["a3"] == "0003" and box["a4"] == 2.4
    assert line[T.SHAPE] == "polyline" and line[T.LABEL] is None and line[T.BBOX] is None
    assert line[T.POINTS] == [float(v) for v in by_id["img0"]["anns"][1]["points"]]
    poly, pts = img1
    assert poly[T.SHAPE] == "polygon" and poly[T.LABEL] is None and poly[T.Z_ORDER] == 1
    assert json.loads(poly[T.SEGMENTATION]) == [by_id["img1"]["anns"][0]["points"]]
    assert poly[T.BBOX] == [1.0, 2.0, 5.0, 3.0]  # the polygon's bounds
    assert pts[T.SHAPE] == "points" and pts[T.LABEL] == "label2" and pts[T.Z_ORDER] == 2
    assert pts[T.POINTS] == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]


def test_datumaro_export_project_keeps_subsets_apart(external):
    t = cvat.read(external / DATUMARO / "for_images/export_project")
    samples = sorted(set(t.column(T.SAMPLE_ID).to_pylist()))
    assert samples == [f"{s}/img{k}.jpg" for s in ("Test", "Train", "Validation") for k in (0, 1)]
    assert {r[T.SAMPLE_ID].split("/")[0] == r[T.SPLIT] for r in t.to_pylist()} == {True}
    assert t.num_rows == 12


def test_datumaro_video_tracks_become_frames(external):
    t = cvat.read(external / DATUMARO / "for_video/annotations.xml")
    rows = t.to_pylist()
    # outside="1" shapes are not labels; frames get 6-digit names and the task's size
    assert [(r[T.SAMPLE_ID], r[T.LABEL], r[T.SHAPE], r[T.TRACK_ID]) for r in rows] == [
        ("frame_000010", "II", "box", 0), ("frame_000010", "klhg", "points", 1), ("frame_000013", "II", "polyline", 2)]
    assert rows[0][T.BBOX] == [3.0, 4.0, 7.0, 1.0] and rows[0][T.OCCLUDED] is True
    assert {(r[T.WIDTH], r[T.HEIGHT]) for r in rows} == {(25, 20)}
    assert rows[1]["hgl"] == "hgkf"


@pytest.mark.parametrize("rel", [
    f"{GTS}/cvat_format", f"{GTS}/cvat_format/annotations.xml",
    f"{DATUMARO}/for_images/export_task", f"{DATUMARO}/for_images/export_task/train.xml",
    f"{DATUMARO}/for_images/export_project", f"{DATUMARO}/for_video/annotations.xml",
])
def test_auto_detection_picks_cvat(external, rel):
    assert formats.detect(external / rel) == "cvat"


@pytest.mark.parametrize("rel", [f"{GTS}/cvat_format/annotations.xml", f"{DATUMARO}/for_images/export_task/train.xml",
                                 f"{DATUMARO}/for_images/export_project/annotations.xml"])
def test_fixture_ingest_export_ingest_loses_nothing(external, rel, tmp_path):
    first = cvat.read(external / rel)
    cvat.write(first, tmp_path / "annotations.xml")
    again = cvat.read(tmp_path / "annotations.xml")
    assert again.to_pylist() == first.to_pylist()
    assert again.schema == first.schema


def test_cli_ingest_detects_and_export_writes_a_folder(runner, external, tmp_path):
    res = runner(["ingest", external / GTS / "cvat_format"])
    assert res.exit_code == 0
    assert "detected format: cvat" in res.stderr
    rows = io.decode(res.stdout.encode()).to_pylist()
    assert len(rows) == 273 and rows[0]["bbox"] == [58.0, 158.0, 14.0, 33.0]
    table = tmp_path / "t.parquet"
    assert runner(["ingest", "cvat", external / GTS / "cvat_format", "-o", table]).exit_code == 0
    out = tmp_path / "out"
    out.mkdir()
    res = runner(["export", "cvat", table, "-o", out])
    assert res.exit_code == 0, res.stderr
    assert res.stdout == ""
    assert box_list(cvat.read(out / "annotations.xml")) == box_list(io.read_table(table))


# --------------------------------------------------------------------------- other formats in

def test_table_from_another_format_writes_boxes_tags_and_attributes(tmp_path):
    t = T.from_columns({
        T.SAMPLE_ID: ["a.jpg", "a.jpg", "b.jpg", "c.jpg"],
        T.SOURCE: ["gt"] * 4,
        T.LABEL: ["cat", "dog", "sky", None],
        T.BBOX: np.array([[1, 2, 3, 4], [0.5, 0.25, 10, 20], [np.nan] * 4, [np.nan] * 4]),
        T.WIDTH: [100, 100, 50, 60], T.HEIGHT: [80, 80, 40, 30],
        "difficult": [True, False, None, None],
        "pose": ["Left", "Frontal", None, None],
    })
    cvat.write(t, tmp_path / "a.xml")
    back = cvat.read(tmp_path / "a.xml")
    rows = back.to_pylist()
    assert [(r[T.SAMPLE_ID], r[T.LABEL], r[T.SHAPE], r[T.BBOX]) for r in rows] == [
        ("a.jpg", "cat", "box", [1.0, 2.0, 3.0, 4.0]), ("a.jpg", "dog", "box", [0.5, 0.25, 10.0, 20.0]),
        ("b.jpg", "sky", "tag", None), ("c.jpg", None, None, None)]
    assert [r["difficult"] for r in rows] == [True, False, None, None]  # typed through the label spec
    assert [r["pose"] for r in rows] == ["Left", "Frontal", None, None]
    assert [(r[T.WIDTH], r[T.HEIGHT]) for r in rows] == [(100, 80), (100, 80), (50, 40), (60, 30)]


_name = st.text(alphabet="abcxyz_-.0123456789 &<>\"'", min_size=1, max_size=8).filter(lambda s: s.strip() == s)
_coord = st.floats(min_value=0, max_value=5000, allow_nan=False, allow_infinity=False)


@st.composite
def cvat_tables(draw):
    n_img = draw(st.integers(1, 5))
    samples = [f"img{k}.jpg" for k in range(n_img)]
    rows = []
    for s in samples:
        for _ in range(draw(st.integers(0, 3))):
            x, y = draw(_coord), draw(_coord)
            w, h = draw(_coord), draw(_coord)
            rows.append((s, draw(_name), [x, y, w, h], draw(st.booleans()), draw(st.integers(-3, 3)),
                         draw(st.one_of(st.none(), _name))))
    labelled = {r[0] for r in rows}
    rows += [(s, None, None, None, None, None) for s in samples if s not in labelled]
    return T.from_columns({
        T.SAMPLE_ID: [r[0] for r in rows], T.SOURCE: ["gt"] * len(rows),
        T.LABEL: [r[1] for r in rows],
        T.BBOX: pa.array([r[2] for r in rows], type=pa.list_(pa.float64(), 4)),
        T.WIDTH: [640] * len(rows), T.HEIGHT: [480] * len(rows),
        T.OCCLUDED: pa.array([r[3] for r in rows], type=pa.bool_()),
        T.Z_ORDER: pa.array([r[4] for r in rows], type=pa.int64()),
        "note": pa.array([r[5] for r in rows], type=pa.string()),
    })


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cvat_tables())
def test_round_trip_property(tmp_path, table):
    cvat.write(table, tmp_path / "rt.xml")
    back = cvat.read(tmp_path / "rt.xml")
    assert back.column(T.SAMPLE_ID).to_pylist() == table.column(T.SAMPLE_ID).to_pylist()
    assert back.column(T.LABEL).to_pylist() == table.column(T.LABEL).to_pylist()
    a, b = T.bboxes(table), T.bboxes(back)
    assert np.array_equal(np.isnan(a), np.isnan(b))
    # x, y exact; w, h = (x + w) - x: within one rounding of the corner
    np.testing.assert_array_equal(a[:, :2], b[:, :2])
    np.testing.assert_allclose(b[:, 2:], a[:, 2:], rtol=0, atol=1e-9)
    is_label = T.label_mask(table)
    for c in (T.OCCLUDED, T.Z_ORDER, "note", T.WIDTH, T.HEIGHT):
        want = table.column(c).to_pylist()
        got = back.column(c).to_pylist() if c in back.column_names else [None] * back.num_rows
        assert [g for g, lab in zip(got, is_label) if lab] == [v for v, lab in zip(want, is_label) if lab], c


# --------------------------------------------------------------------------- unsafe and bad input

BOMB = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<annotations><version>1.1</version><image id="0" name="&lol3;" width="1" height="1"/></annotations>"""

EXTERNAL = b"""<?xml version="1.0"?>
<!DOCTYPE annotations [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<annotations><version>1.1</version><image id="0" name="&xxe;" width="1" height="1"/></annotations>"""


@pytest.mark.parametrize("data", [BOMB, EXTERNAL], ids=["entity-bomb", "external-entity"])
def test_unsafe_xml_is_refused(tmp_path, data, runner):
    p = tmp_path / "annotations.xml"
    p.write_bytes(data)
    with pytest.raises(MlcycleError, match="refused unsafe XML"):
        cvat.read(p)
    res = runner(["ingest", "cvat", p])
    assert res.exit_code == 1 and res.stdout == ""
    assert "refused unsafe XML" in res.stderr and "root:" not in res.stderr


def _doc(shapes: str) -> bytes:
    return (b'<annotations><version>1.1</version><image id="0" name="a.jpg" width="10" height="10">'
            + shapes.encode() + b"</image></annotations>")


def test_bad_box_is_a_one_line_error_naming_file_and_element(tmp_path, runner):
    p = tmp_path / "annotations.xml"
    p.write_bytes(_doc('<box label="a" xtl="1" ytl="1" xbr="5" ybr="5"/><box label="a" xtl="x" ytl="1" xbr="2" ybr="2"/>'))
    res = runner(["ingest", "cvat", p])
    assert res.exit_code == 1 and res.stdout == ""
    assert f"{p}: image 'a.jpg', <box> #2: xtl='x' is not a number" in res.stderr
    assert "Traceback" not in res.stderr


def test_reversed_corners_error_and_skip_invalid_counts(tmp_path, runner):
    p = tmp_path / "annotations.xml"
    p.write_bytes(_doc('<box label="a" xtl="5" ytl="1" xbr="2" ybr="5"/><box label="b" xtl="1" ytl="1" xbr="2" ybr="2"/>'))
    with pytest.raises(MlcycleError, match=r"<box> #1: box corners are reversed"):
        cvat.read(p)
    res = runner(["ingest", "cvat", p, "--skip-invalid"])
    assert res.exit_code == 0
    assert "skipped 1 invalid shape" in res.stderr
    rows = io.decode(res.stdout.encode()).to_pylist()
    assert [r["label"] for r in rows] == ["b"]


def test_not_cvat_xml_is_refused(tmp_path):
    p = tmp_path / "x.xml"
    p.write_bytes(b"<annotation><filename>a.jpg</filename></annotation>")
    assert not cvat.detect(p)
    with pytest.raises(MlcycleError, match="not a CVAT XML file"):
        cvat.read(p)


def test_export_refuses_image_names_that_escape_the_images_folder(tmp_path):
    for bad in ("../evil.jpg", "/etc/x.jpg"):
        t = T.from_columns({T.SAMPLE_ID: [bad], T.SOURCE: ["gt"], T.LABEL: ["a"], T.BBOX: np.array([[1.0, 2, 3, 4]])})
        with pytest.raises(MlcycleError, match="outside"):
            cvat.write(t, tmp_path / "a.xml", WriteOptions())
        assert not (tmp_path / "a.xml").exists()


def test_read_options_split_and_source(external):
    t = cvat.read(external / GTS / "cvat_format", ReadOptions(split="val", source="manual"))
    assert set(t.column(T.SPLIT).to_pylist()) == {"val"}
    assert set(t.column(T.SOURCE).to_pylist()) == {"manual"}


def test_mine_hard_columns_become_attributes_with_specs(tmp_path, external):
    t = cvat.read(external / DATUMARO / "for_images/export_task/train.xml")
    reasons = ["localization"] + [None] * (t.num_rows - 1)
    t = t.append_column(T.HARD_REASON, pa.array(reasons, type=pa.string()))
    text = cvat.to_xml(t)
    assert '<attribute name="hard_reason">localization</attribute>' in text
    assert "<name>hard_reason</name>" in text  # declared in label1's spec
    p = tmp_path / "a.xml"
    p.write_text(text)
    assert cvat.read(p).column(T.HARD_REASON).to_pylist() == reasons
