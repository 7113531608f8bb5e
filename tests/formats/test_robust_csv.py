"""Generic CSV and Open Images off the happy path (issue #13): encodings, absurd numbers,
boxes without labels, the one bad-geometry rule, JSON given as CSV, formula injection
in what mlcycle writes, and nothing lost silently (iscrowd, split)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlcycle import io, reporting
from mlcycle import table as T
from mlcycle.errors import MlcycleError
from mlcycle.formats import ReadOptions, csv_table, openimages

HEADER = "image,label,xmin,ymin,xmax,ymax,width,height\n"


def write(tmp_path: Path, content, name: str = "a.csv") -> Path:
    p = tmp_path / name
    p.write_bytes(content if isinstance(content, bytes) else content.encode())
    return p


def err_line(runner, fmt: str, path: Path, *extra) -> str:
    res = runner(["ingest", fmt, path, *extra])
    assert res.exit_code == 1, res.stderr
    assert res.stdout == "" and res.stderr.startswith("error: ") and "internal error" not in res.stderr
    return res.stderr


# --------------------------------------------------------------------------- encodings

@pytest.mark.parametrize("fmt,text", [
    ("csv", HEADER + "a.jpg,cat,1,2,3,4,10,10\n"),
    ("openimages", ",".join(openimages.STANDARD) + "\na,x,/m/0,1,0.1,0.2,0.1,0.2,0,0,0,0,0\n"),
])
def test_bom_is_accepted_utf16_and_bad_utf8_are_one_error(tmp_path, runner, fmt, text):
    opts = ["--image-size", "10x10"]
    res = runner(["ingest", fmt, write(tmp_path, b"\xef\xbb\xbf" + text.encode()), *opts])
    assert res.exit_code == 0, res.stderr
    assert io.decode(res.stdout.encode()).num_rows == 1
    err = err_line(runner, fmt, write(tmp_path, text.encode("utf-16"), "u16.csv"), *opts)
    assert "u16.csv: the file is UTF-16 or UTF-32 text" in err
    body = text.encode()
    bad = body.replace(b"\n", b"\n\xc3(", 1)  # a broken two-byte sequence on line 2
    err = err_line(runner, fmt, write(tmp_path, bad, "bad.csv"), *opts)
    assert "bad.csv:2:1: invalid UTF-8 (byte 0xc3)" in err


@pytest.mark.parametrize("fmt", ["csv", "openimages"])
@pytest.mark.parametrize("content,kind", [
    ('{"images": [], "annotations": [], "categories": []}', "COCO JSON (read it as coco)"),
    ('[{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 0.5}]', "COCO results"),
    ('{"version": "5.0.1", "shapes": [], "imagePath": "a.jpg"}', "LabelMe JSON (read it as labelme)"),
])
def test_json_given_as_csv_says_what_it_looks_like(tmp_path, runner, fmt, content, kind):
    err = err_line(runner, fmt, write(tmp_path, content))
    assert "a.csv: not CSV: this looks like" in err and kind in err


# --------------------------------------------------------------------------- generic CSV rows

@pytest.mark.parametrize("row,message", [
    ("a.jpg,cat,1,2,inf,4,10,10", r"a\.csv:2: column 'xmax' value 'inf' is not a finite number"),
    ("a.jpg,cat,nan,2,3,4,10,10", r"a\.csv:2: column 'xmin' value 'nan' is not a finite number"),
    ("a.jpg,cat,1e309,2,3,4,10,10", r"a\.csv:2: column 'xmin' value '1e309' is not a finite number"),
    ("a.jpg,cat,5,2,3,4,10,10", r"a\.csv:2: the box has a negative width or height \(x2 < x1 or y2 < y1\) \(xmin='5'"),
    ("a.jpg,,1,2,3,4,10,10", r"a\.csv:2: a box without a label"),
    ("a.jpg,cat,1,2,3,4,3e9,10", r"a\.csv:2: column 'width' value '3e9' is not an image size in pixels"),
    ("a.jpg,cat,1,2,3,4,640.5,10", r"a\.csv:2: column 'width' value '640.5' is not an image size"),
])
def test_invalid_rows_name_file_and_line_or_are_skipped(tmp_path, row, message):
    p = write(tmp_path, HEADER + "b.jpg,dog,1,1,2,2,10,10\n" .replace("b.jpg", "z.jpg") + row + "\n", "a.csv")
    # the bad row is line 3 (header, one good row, the bad row)
    message = message.replace(r"a\.csv:2", r"a\.csv:3")
    with pytest.raises(MlcycleError, match=message):
        csv_table.read(p)
    with reporting.collect() as seen:
        t = csv_table.read(p, csv_table.ReadOptions(skip_invalid=True))
    assert len(seen.warnings) == 1 and seen.warnings[0].startswith("skipped 1 invalid row: ")
    rows = t.to_pylist()
    # the good row stays; the image of the skipped one stays, as a sample row
    assert [(r[T.SAMPLE_ID], r[T.LABEL]) for r in rows] == [("z.jpg", "dog"), ("a.jpg", None)]


def test_integral_float_sizes_are_pixels(tmp_path):
    t = csv_table.read(write(tmp_path, HEADER + "a.jpg,cat,1,2,3,4,640.0,480\n"))
    assert t.column(T.WIDTH).type == "int32" and t.column(T.WIDTH).to_pylist() == [640]


def test_segmentation_that_is_not_json_is_an_invalid_row(tmp_path):
    p = write(tmp_path, "image,label,segmentation\na.jpg,cat,\"[[1,2\"\n")
    with pytest.raises(MlcycleError, match=r"a\.csv:2: column 'segmentation' value '\[\[1,2' is not a COCO segmentation"):
        csv_table.read(p)


# --------------------------------------------------------------------------- writing

def _table(**extra):
    cols = {T.SAMPLE_ID: ["=cmd|' /C calc'!A0.jpg", "b.jpg", "c.jpg"], T.SOURCE: ["gt"] * 3,
            T.LABEL: ["@SUM(1+1)", "-dog", "+cat"],
            T.BBOX: [[-3.5, 2.0, 3.0, 4.0], [1.0, 1.0, 2.0, 2.0], [0.0, 0.0, 1.0, 1.0]],
            T.WIDTH: [10, 10, 10], T.HEIGHT: [10, 10, 10], "note": ["\tx", "\rx", "plain"]}
    cols.update(extra)
    return T.from_columns(cols)


def test_export_csv_neutralises_formulas_but_not_numbers_and_reads_back(tmp_path):
    out = tmp_path / "o.csv"
    csv_table.write(_table(), out)
    text = out.read_text()
    assert "'=cmd" in text and "'@SUM(1+1)" in text and "'-dog" in text and "'+cat" in text
    assert '"\'\tx"' in text or "'\tx" in text
    line = text.splitlines()[1]
    assert ",-3.5," in line  # a number in a numeric column is not text
    back = csv_table.read(out).to_pylist()
    assert [r[T.LABEL] for r in back] == ["@SUM(1+1)", "-dog", "+cat"]
    assert back[0][T.SAMPLE_ID] == "=cmd|' /C calc'!A0.jpg" and back[0][T.BBOX][0] == -3.5
    assert [r["note"] for r in back] == ["\tx", "\rx", "plain"]


def test_export_openimages_neutralises_text_cells_and_keeps_negative_fractions(tmp_path):
    out = tmp_path / "o.csv"
    openimages.write(_table(), out)
    rows = out.read_text().splitlines()[1:]
    first = rows[0].split(",")
    assert first[0].startswith("'=cmd") and first[2] == "'@SUM(1+1)" and first[4] == "-0.35"
    back = openimages.read(out, ReadOptions(image_size=(10, 10))).to_pylist()
    assert [r[T.LABEL] for r in back] == ["@SUM(1+1)", "-dog", "+cat"]


def test_export_csv_keeps_iscrowd(tmp_path):
    out = tmp_path / "o.csv"
    csv_table.write(_table(**{T.ISCROWD: [True, False, None]}), out)
    back = csv_table.read(out)
    assert back.column(T.ISCROWD).to_pylist() == [True, False, False]


def test_openimages_keeps_crowd_as_group_of_and_split_by_folder(tmp_path):
    t = _table(**{T.ISCROWD: [True, False, False], T.SPLIT: ["train", "val", "val"]})
    with reporting.collect() as seen:
        openimages.write(t, tmp_path / "one.csv")
    assert any("split (train, val) not written" in w for w in seen.warnings)
    back = openimages.read(tmp_path / "one.csv", ReadOptions(image_size=(10, 10)))
    assert back.column(T.GROUP_OF).to_pylist() == [True, None, None]  # -1: not stated
    openimages.write(t, tmp_path / "oi")
    back = openimages.read(tmp_path / "oi", ReadOptions(image_size=(10, 10)))
    got = {(r[T.LABEL], r[T.SPLIT], r[T.GROUP_OF]) for r in back.to_pylist()}
    assert got == {("@SUM(1+1)", "train", True), ("-dog", "val", None), ("+cat", "val", None)}


# --------------------------------------------------------------------------- Open Images rows

@pytest.mark.parametrize("row,message", [
    ("a,x,/m/0,1,inf,0.2,0.1,0.2,0,0,0,0,0", r"b\.csv:3: column 'XMin' value 'inf' is not a finite number"),
    ("a,x,/m/0,nan,0.1,0.2,0.1,0.2,0,0,0,0,0", r"b\.csv:3: column 'Confidence' value 'nan' is not a finite number"),
    ("a,x,,1,0.1,0.2,0.1,0.2,0,0,0,0,0", r"b\.csv:3: LabelName is empty"),
    ("a,x,/m/0,1,0.1,0.2,0.5,0.2,0,0,0,0,0", r"b\.csv:3: the box has a negative width or height"),
])
def test_openimages_invalid_boxes_name_the_line_or_are_skipped(tmp_path, row, message):
    p = write(tmp_path, ",".join(openimages.STANDARD) + "\nz,x,/m/1,1,0.1,0.2,0.1,0.2,0,0,0,0,0\n" + row + "\n", "b.csv")
    with pytest.raises(MlcycleError, match=message):
        openimages.read(p, ReadOptions(image_size=(10, 10)))
    with reporting.collect() as seen:
        t = openimages.read(p, ReadOptions(image_size=(10, 10), skip_invalid=True))
    assert len(seen.warnings) == 1 and "skipped 1 invalid box" in seen.warnings[0]
    assert [(r[T.SAMPLE_ID], r[T.LABEL]) for r in t.to_pylist()] == [("z", "/m/1"), ("a", None)]


def test_images_meta_with_absurd_sizes_names_the_line(tmp_path):
    ann = tmp_path / "ds" / "annotations"
    ann.mkdir(parents=True)
    (ann / "train-annotations-bbox.csv").write_text(",".join(openimages.STANDARD) + "\na,x,/m/0,1,0.1,0.2,0.1,0.2,0,0,0,0,0\n")
    (ann / "images.meta").write_text("a 480 640\nb 99999999999 5\n")
    with pytest.raises(MlcycleError, match=r"images\.meta:2: expected 'ImageID height width' \(sizes in pixels\)"):
        openimages.read(tmp_path / "ds")


def test_formula_cells_written_by_mlcycle_keep_json_columns_intact(tmp_path):
    seg = json.dumps([[0, 0, 1, 0, 1, 1]])
    t = _table(**{T.SEGMENTATION: [seg, None, None]})
    out = tmp_path / "o.csv"
    csv_table.write(t, out)
    assert csv_table.read(out).column(T.SEGMENTATION).to_pylist()[0] == seg


@pytest.mark.parametrize("fmt,header", [
    ("csv", b"ima\x95ge,label,xmin,ymin,xmax,ymax\na.jpg,cat,1,2,3,4\n"),
    ("openimages", b"Imag\x95eID,Source,LabelName,Confidence,XMin,XMax,YMin,YMax\na,x,/m/0,1,0.1,0.2,0.1,0.2\n"),
])
def test_a_header_that_is_not_utf8_names_its_place(tmp_path, runner, fmt, header):
    err = err_line(runner, fmt, write(tmp_path, header))
    assert "a.csv:1:" in err and "invalid UTF-8 (byte 0x95)" in err


def test_an_image_id_with_a_nul_byte_is_one_clear_error(tmp_path, runner):
    p = write(tmp_path, (",".join(openimages.STANDARD) + "\n").encode() + b"a\x00b,x,/m/0,1,0.1,0.2,0.1,0.2,0,0,0,0,0\n")
    err = err_line(runner, "openimages", p)
    assert "not a valid file name (it contains a NUL byte)" in err and "\x00" not in err
