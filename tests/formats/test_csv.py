"""Generic CSV (format ``csv``): column mappings, box formats, normalised boxes, VoTT's
stated values, round trips and bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlcycle import formats, io
from mlcycle import table as T
from mlcycle.errors import MlcycleError, OptionError
from mlcycle.formats import ReadOptions, csv_table

VOTT = "openvinotoolkit__datumaro/tests/assets/vott_csv_dataset/dataset"
VOTT_COLUMNS = "image=image,label=label,x1=xmin,y1=ymin,x2=xmax,y2=ymax"


def write(tmp_path: Path, text: str, name: str = "a.csv") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_vott_stated_values_with_columns(runner, external, expected):
    stated = expected["parse"]["datumaro_vott_csv"]
    res = runner(["ingest", "csv", external / VOTT, "--columns", VOTT_COLUMNS])
    assert res.exit_code == 0, res.stderr
    rows = io.decode(res.stdout.encode()).to_pylist()
    got = sorted((Path(r[T.SAMPLE_ID]).stem, r[T.SPLIT], r[T.LABEL], tuple(np.round(r[T.BBOX], 9))) for r in rows)
    want = sorted((it["id"], it["subset"], a["label"], tuple(float(v) for v in a["bbox"]))
                  for it in stated["items"] for a in it["anns"])
    assert got == want
    assert {r[T.SOURCE] for r in rows} == {"gt"}


def test_vott_header_is_recognised_without_columns(external):
    a = csv_table.read(external / VOTT)
    b = csv_table.read(external / VOTT, csv_table.ReadOptions(columns=dict(p.split("=") for p in VOTT_COLUMNS.split(","))))
    assert a.equals(b)
    assert formats.detect(external / VOTT) == "csv"
    assert formats.detect(external / VOTT / "train-export.csv") == "csv"


@pytest.mark.parametrize("box_format,header,row", [
    ("xyxy", "file,cls,a,b,c,d", "x.jpg,cat,10,20,40,60"),
    ("xywh", "file,cls,a,b,c,d", "x.jpg,cat,10,20,30,40"),
    ("cxcywh", "file,cls,a,b,c,d", "x.jpg,cat,25,40,30,40"),
])
def test_box_formats(tmp_path, box_format, header, row):
    fields = BOX = csv_table.BOX_FIELDS[box_format]
    mapping = {"image": "file", "label": "cls", **dict(zip(BOX, "abcd"))}
    t = csv_table.read(write(tmp_path, f"{header}\n{row}\n"), csv_table.ReadOptions(columns=mapping, box_format=box_format))
    assert t.to_pylist()[0][T.BBOX] == [10.0, 20.0, 30.0, 40.0], fields


def test_normalized_boxes_with_size_columns_image_size_or_images(tmp_path):
    from PIL import Image

    p = write(tmp_path, "image,label,cx,cy,w,h,width,height\nimg.png,cat,0.5,0.5,0.5,0.25,200,100\n")
    t = csv_table.read(p, csv_table.ReadOptions(box_format="cxcywh", normalized=True))
    assert t.to_pylist()[0][T.BBOX] == [50.0, 37.5, 100.0, 25.0]
    q = write(tmp_path, "image,label,cx,cy,w,h\nimg.png,cat,0.5,0.5,0.5,0.25\n", "b.csv")
    t = csv_table.read(q, csv_table.ReadOptions(box_format="cxcywh", normalized=True, image_size=(200, 100)))
    assert t.to_pylist()[0][T.BBOX] == [50.0, 37.5, 100.0, 25.0]
    Image.new("RGB", (200, 100)).save(tmp_path / "img.png")
    t = csv_table.read(q, csv_table.ReadOptions(box_format="cxcywh", normalized=True))
    assert t.to_pylist()[0][T.BBOX] == [50.0, 37.5, 100.0, 25.0]
    (tmp_path / "img.png").unlink()
    with pytest.raises(MlcycleError, match="img.png: image not found"):
        csv_table.read(q, csv_table.ReadOptions(box_format="cxcywh", normalized=True))


def test_classification_csv_image_level_labels_and_sample_rows(tmp_path):
    p = write(tmp_path, "filename,class,xmin,ymin,xmax,ymax\na.jpg,cat,,,,\nb.jpg,,,,,\nc.jpg,dog,1,2,3,4\n")
    rows = csv_table.read(p).to_pylist()
    assert [(r[T.SAMPLE_ID], r[T.LABEL], r[T.BBOX], r[T.LABEL_ID]) for r in rows] == [
        ("a.jpg", "cat", None, 1), ("b.jpg", None, None, None), ("c.jpg", "dog", [1.0, 2.0, 2.0, 2.0], 2)]
    q = write(tmp_path, "image,label\na.jpg,cat\nb.jpg,dog\n", "cls.csv")
    t = csv_table.read(q)
    assert t.column(T.LABEL).to_pylist() == ["cat", "dog"] and t.column(T.BBOX).null_count == 2


def test_scores_make_a_prediction_source_and_attributes_are_typed(tmp_path):
    p = write(tmp_path, "image,label,xmin,ymin,xmax,ymax,score,occluded,track,note\n"
                        "a.jpg,cat,0,0,1,1,0.9,true,3,hi\na.jpg,dog,0,0,2,2,0.5,false,4,\n")
    t = csv_table.read(p)
    rows = t.to_pylist()
    assert [r[T.SOURCE] for r in rows] == ["pred", "pred"] and [r[T.SCORE] for r in rows] == [0.9, 0.5]
    assert [r["occluded"] for r in rows] == [True, False]
    assert t.schema.field("track").type == pa.int64() and [r["note"] for r in rows] == ["hi", None]
    assert csv_table.read(p, ReadOptions(source="yolo")).column(T.SOURCE).to_pylist() == ["yolo", "yolo"]


def test_decimal_commas_are_recognised(tmp_path, runner):
    p = write(tmp_path, 'image,label,xmin,ymin,xmax,ymax\na.jpg,cat,"1,5","2,25","3,5","4"\n')
    res = runner(["ingest", "csv", p])
    assert res.exit_code == 0
    assert "decimal commas" in res.stderr
    assert io.decode(res.stdout.encode()).to_pylist()[0][T.BBOX] == [1.5, 2.25, 2.0, 1.75]


def test_export_layout_and_ingest_back(tmp_path, runner):
    t = T.from_columns({
        T.SAMPLE_ID: ["a.jpg", "a.jpg", "b.jpg"], T.SOURCE: ["gt"] * 3, T.LABEL: ["cat", "dog", None],
        T.BBOX: pa.array([[1.5, 2, 3, 4], [0, 0, 10, 10], None], type=pa.list_(pa.float64(), 4)),
        T.WIDTH: [64, 64, 32], T.HEIGHT: [48, 48, 24], T.SPLIT: ["val"] * 3,
        "difficult": [True, False, None], T.POINTS: pa.array([[1.0, 2.0], None, None], type=pa.list_(pa.float64())),
    })
    src = tmp_path / "t.parquet"
    io.write_table(t, src)
    res = runner(["export", "csv", src])
    assert res.exit_code == 0
    lines = res.stdout.replace('"', "").splitlines()
    assert lines[0] == "image,label,xmin,ymin,xmax,ymax,width,height,split,difficult,points"
    assert lines[1] == "a.jpg,cat,1.5,2,4.5,6,64,48,val,true,[1.0,2.0]"
    out = tmp_path / "o.csv"
    out.write_text(res.stdout)
    back = csv_table.read(out)
    assert back.column(T.BBOX).to_pylist() == t.column(T.BBOX).to_pylist()
    assert back.column(T.LABEL_ID).to_pylist() == [1, 2, None]
    for c in (T.SAMPLE_ID, T.LABEL, T.WIDTH, T.HEIGHT, T.SPLIT, "difficult"):
        assert back.column(c).to_pylist() == T.column_or_null(t, c).to_pylist(), c


_name = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=8).filter(
    lambda s: s.strip() == s and s.lower() not in ("true", "false", "null", "nan", "n/a", "na", "") and not _numeric(s))


def _numeric(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


_coord = st.floats(min_value=-100, max_value=1e5, allow_nan=False, allow_infinity=False)


@st.composite
def csv_tables(draw):
    n = draw(st.integers(1, 8))
    rows = []
    for i in range(n):
        box = draw(st.one_of(st.none(), st.tuples(_coord, _coord, st.floats(0, 1e4), st.floats(0, 1e4))))
        # a box always has a label (a box without one is invalid input, see test_robust_csv)
        label = draw(_name) if box else draw(st.one_of(st.none(), _name))
        rows.append((f"s{draw(st.integers(0, 3))}/{draw(_name)}", label, box,
                     draw(st.one_of(st.none(), st.booleans())), draw(st.one_of(st.none(), _name))))
    return T.from_columns({
        T.SAMPLE_ID: [r[0] for r in rows], T.SOURCE: ["gt"] * n, T.LABEL: [r[1] for r in rows],
        T.BBOX: pa.array([list(r[2]) if r[2] else None for r in rows], type=pa.list_(pa.float64(), 4)),
        T.WIDTH: [640] * n, T.HEIGHT: [480] * n,
        "truncated": pa.array([r[3] for r in rows], type=pa.bool_()),
        "note": pa.array([r[4] for r in rows], type=pa.string()),
    })


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(csv_tables())
def test_round_trip_property(tmp_path, table):
    out = tmp_path / "rt.csv"
    csv_table.write(table, out)
    back = csv_table.read(out)
    assert back.num_rows == table.num_rows
    for c in (T.SAMPLE_ID, T.LABEL, T.WIDTH, T.HEIGHT):
        assert back.column(c).to_pylist() == table.column(c).to_pylist(), c
    for c in ("truncated", "note"):
        want = table.column(c).to_pylist()
        got = back.column(c).to_pylist() if c in back.column_names else [None] * back.num_rows
        assert got == want, c
    a, b = T.bboxes(table), T.bboxes(back)
    assert np.array_equal(np.isnan(a), np.isnan(b))
    np.testing.assert_array_equal(b[:, :2], a[:, :2])
    ok = ~np.isnan(a[:, 0])
    np.testing.assert_allclose(b[ok, 2:], a[ok, 2:], rtol=0, atol=1e-9 * max(1.0, float(np.abs(a[ok]).max(initial=1))))


def test_unknown_field_is_a_usage_error(tmp_path, runner):
    p = write(tmp_path, "image,label\na.jpg,cat\n")
    with pytest.raises(OptionError, match="unknown field 'colour'"):
        csv_table.read(p, csv_table.ReadOptions(columns={"colour": "label"}))
    res = runner(["ingest", "csv", p, "--columns", "colour=label"])
    assert res.exit_code == 2 and res.stdout == "" and "unknown field" in res.stderr


def test_mapping_to_a_missing_column_names_the_header(tmp_path):
    p = write(tmp_path, "image,label\na.jpg,cat\n")
    with pytest.raises(MlcycleError, match=r"a\.csv:1: column mapping x1=left: the header has no column 'left'"):
        csv_table.read(p, csv_table.ReadOptions(columns={"x1": "left"}))


def test_no_image_column_is_a_clear_error(tmp_path, runner):
    p = write(tmp_path, "who,what\na.jpg,cat\n")
    res = runner(["ingest", "csv", p])
    assert res.exit_code == 1 and "which column names the image" in res.stderr and "columns option: image=" in res.stderr


def test_incomplete_box_columns(tmp_path):
    p = write(tmp_path, "image,label,xmin,ymin,xmax\na.jpg,cat,1,2,3\n")
    with pytest.raises(MlcycleError, match="incomplete: no column for y2"):
        csv_table.read(p)


def test_bad_number_and_reversed_box_name_the_line(tmp_path, runner):
    p = write(tmp_path, "image,label,xmin,ymin,xmax,ymax\na.jpg,cat,1,2,3,4\nb.jpg,cat,1,x,3,4\n")
    with pytest.raises(MlcycleError, match=r"a\.csv:3: column 'ymin' value 'x' is not a number"):
        csv_table.read(p)
    q = write(tmp_path, "image,label,xmin,ymin,xmax,ymax\na.jpg,cat,1,2,3,4\nb.jpg,cat,5,2,3,4\n", "b.csv")
    with pytest.raises(MlcycleError, match=r"b\.csv:3: the box has a negative width or height"):
        csv_table.read(q)
    res = runner(["ingest", "csv", q, "--skip-invalid"])
    assert res.exit_code == 0 and "skipped 1 invalid row" in res.stderr
    rows = io.decode(res.stdout.encode()).to_pylist()
    # b.jpg's only box was skipped: the image stays, as a sample row
    assert [(r[T.SAMPLE_ID], r[T.LABEL], r[T.BBOX]) for r in rows] == [("a.jpg", "cat", [1.0, 2.0, 2.0, 2.0]), ("b.jpg", None, None)]


def test_bad_box_format_is_a_usage_error(tmp_path):
    p = write(tmp_path, "image,label\na.jpg,cat\n")
    with pytest.raises(OptionError, match="'xyz': expected one of xyxy"):
        csv_table.read(p, csv_table.ReadOptions(box_format="xyz"))


def test_export_writes_one_source_and_says_which_others_it_left(tmp_path, runner):
    t = T.from_columns({T.SAMPLE_ID: ["a.jpg", "a.jpg"], T.SOURCE: ["gt", "yolo"], T.LABEL: ["cat", "cat"],
                        T.BBOX: np.array([[1.0, 2, 3, 4], [1.0, 2, 3, 5]]), T.SCORE: [None, 0.5]})
    src = tmp_path / "t.parquet"
    io.write_table(t, src)
    res = runner(["export", "csv", src])
    assert res.exit_code == 0
    assert "not written: yolo" in res.stderr
    assert len(res.stdout.splitlines()) == 2
    res = runner(["export", "csv", src, "--source", "yolo"])
    assert res.exit_code == 0 and "not written: gt" in res.stderr
    back = csv_table.read(write(tmp_path, res.stdout, "p.csv"), ReadOptions(source="yolo"))
    assert back.column(T.SCORE).to_pylist() == [0.5] and back.column(T.SOURCE).to_pylist() == ["yolo"]
