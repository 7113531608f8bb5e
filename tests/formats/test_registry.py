"""The format registry and its options: typed per-format options, errors that name the
parameter, ``split`` applied by ``formats.write``, command columns never exported,
one shape for skipped invalid input, and ``ingest``/``export`` for Python users."""

from __future__ import annotations

import dataclasses
import json

import pytest

from mlcycle import formats, reporting
from mlcycle import table as T
from mlcycle.errors import MlcycleError, OptionError
from mlcycle.formats import coco_results, csv_table, html, kitti, voc, yolo
from mlcycle.formats._invalid import InvalidInput


def small_table(**extra):
    cols = {T.SAMPLE_ID: ["a.jpg", "b.jpg"], T.SOURCE: ["gt", "gt"], T.LABEL_ID: [1, 1],
            T.LABEL: ["cat", "dog"], T.BBOX: [[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]],
            T.WIDTH: [100, 100], T.HEIGHT: [100, 100], T.SPLIT: ["train", "val"]}
    cols.update(extra)
    return T.from_columns(cols)


def test_each_format_names_its_own_options():
    assert formats.options_class("csv") is csv_table.ReadOptions
    assert formats.options_class("coco-results") is coco_results.ReadOptions
    assert formats.options_class("voc") is voc.ReadOptions and formats.options_class("kitti") is voc.ReadOptions
    assert kitti.WriteOptions is voc.WriteOptions
    assert formats.options_class("yolo", "write") is yolo.WriteOptions
    assert formats.options_class("html", "write") is html.WriteOptions
    assert formats.options_class("coco") is formats.ReadOptions
    assert formats.options_class("coco", "write") is formats.WriteOptions
    for cls in (csv_table.ReadOptions, yolo.WriteOptions, html.WriteOptions, voc.ReadOptions):
        assert issubclass(cls, (formats.ReadOptions, formats.WriteOptions))
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(cls(), "source", "x")


def test_common_options_become_a_formats_own():
    common = formats.ReadOptions(split="val", skip_invalid=True)
    own = csv_table.ReadOptions.of(common)
    assert isinstance(own, csv_table.ReadOptions)
    assert (own.split, own.skip_invalid, own.box_format) == ("val", True, "xyxy")
    assert csv_table.ReadOptions.of(None) == csv_table.ReadOptions()


@pytest.mark.parametrize("make,option,text", [
    (lambda: formats.info("nope"), "format_name", "unknown format 'nope'"),
    (lambda: csv_table.ReadOptions(box_format="xyz"), "box_format", "'xyz': expected one of"),
    (lambda: csv_table.ReadOptions(columns={"colour": "c"}), "columns", "unknown field 'colour'"),
    (lambda: voc.ReadOptions(corners="half"), "corners", "must be 'exclusive' or 'inclusive'"),
    (lambda: yolo.WriteOptions(layout="mine"), "layout", "unknown YOLO layout"),
    (lambda: html.WriteOptions(limit=-1), "limit", "must be 0 or more"),
    (lambda: formats.write("coco", small_table(), None, yolo.WriteOptions()), "options", "not options of format 'coco'"),
    (lambda: formats.write("yolo", small_table(), None), "output", "yolo writes a folder"),
    (lambda: formats.read("html", "x"), "format_name", "can be written but not read"),
    (lambda: coco_results.read("dets.json"), "images", "needs the ground truth"),
    (lambda: formats.ingest("x.csv", "csv", layout="flat"), "layout", "has no read option 'layout'"),
])
def test_option_errors_name_the_parameter_not_a_flag(make, option, text):
    with pytest.raises(OptionError) as err:
        make()
    assert err.value.option == option and text in err.value.message
    assert "--" not in err.value.message


def test_write_keeps_only_the_rows_of_the_split(tmp_path):
    out = tmp_path / "labels.csv"
    formats.write("csv", small_table(), out, formats.WriteOptions(split="val"))
    text = out.read_text()
    assert "b.jpg" in text and "a.jpg" not in text


def test_ingest_and_export_for_python_users(tmp_path):
    p = tmp_path / "boxes.csv"
    p.write_text("file,cls,x,y,w,h,width,height\na.jpg,cat,1,2,3,4,100,100\n")
    t = formats.ingest(p, "csv", columns={"image": "file", "label": "cls", "x": "x", "y": "y", "w": "w", "h": "h"},
                       box_format="xywh", split="val")
    assert t.column(T.BBOX).to_pylist() == [[1.0, 2.0, 3.0, 4.0]] and t.column(T.SPLIT).to_pylist() == ["val"]
    formats.export(t, "yolo", tmp_path / "y", layout="flat")
    assert (tmp_path / "y" / "classes.txt").read_text().split() == ["cat"]


def test_command_columns_are_not_exported(tmp_path):
    """A mine-hard output exported to COCO or Open Images carries no eval/hard_* keys."""
    mined = small_table(**{T.EVAL: ["fn", "fn"], T.HARD_SCORE: [0.5, 0.2], T.HARD_REASON: ["missed", "missed"],
                           T.HARD_SAMPLE_SCORE: [0.5, 0.2], T.HARD_MATCH: ["b.jpg", None], "note": ["x", "y"]})
    formats.write("coco", mined, tmp_path / "c.json")
    doc = json.loads((tmp_path / "c.json").read_text())
    keys = {k for a in doc["annotations"] for k in a} | {k for a in doc["annotations"] for k in a.get("attributes", {})}
    assert "note" in keys
    assert not keys & set(T.COMMAND_COLUMNS)
    formats.write("openimages", mined, tmp_path / "oi")
    header = "".join(p.read_text().splitlines()[0] for p in (tmp_path / "oi").rglob("*.csv"))
    assert not any(c in header for c in T.COMMAND_COLUMNS)


def test_invalid_input_is_an_error_or_one_counted_warning():
    with pytest.raises(MlcycleError) as err:
        InvalidInput(False, "box", "boxes").add("a.csv:2: bad")
    assert "--" not in (err.value.hint or "")
    with reporting.collect() as seen:
        bad = InvalidInput(True, "box", "boxes")
        for i in range(5):
            bad.add(f"a.csv:{i}: bad")
        bad.add("b.csv:1: 3 bad lines", count=3)
        bad.report()
    assert seen.warnings == ["skipped 8 invalid boxes: a.csv:0: bad; a.csv:1: bad; a.csv:2: bad (and 5 more)"]
    with reporting.collect() as seen:
        one = InvalidInput(True, "YOLO line")
        one.add("a.txt:1: x")
        one.report()
        InvalidInput(True).report()
    assert seen.warnings == ["skipped 1 invalid YOLO line: a.txt:1: x"]


def test_cli_names_the_flag(runner, tmp_path):
    p = tmp_path / "a.csv"
    p.write_text("image,label\na.jpg,cat\n")
    res = runner(["ingest", "csv", p, "--box-format", "xyz"])
    assert res.exit_code == 2 and "error: --box-format: 'xyz': expected one of" in res.stderr and res.stdout == ""
    res = runner(["ingest", "nope", p])
    assert res.exit_code == 2 and "error: unknown format 'nope'" in res.stderr
    res = runner(["export", "nope", p])
    assert res.exit_code == 2 and "unknown format 'nope'" in res.stderr


# --------------------------------------------------------------------------- names (issue #13)

def test_yolov8_and_ultralytics_are_aliases_of_yolo(tmp_path, runner):
    assert formats.info("yolov8").name == "yolo" and formats.info("ultralytics").name == "yolo"
    assert formats.options_class("ultralytics", "write") is yolo.WriteOptions
    formats.export(small_table(), "yolov8", tmp_path / "y")
    back = formats.ingest(tmp_path / "y", "ultralytics", image_size=(100, 100))
    assert sorted(back.column(T.LABEL).to_pylist()) == ["cat", "dog"]
    listed = runner(["ingest", "--list-formats"]).stdout.splitlines()
    assert any(line.startswith("yolo ") and "(also: yolov8, ultralytics)" in line for line in listed)
    res = runner(["ingest", "yolov8", tmp_path / "y", "--image-size", "100x100"])
    assert res.exit_code == 0, res.stderr


@pytest.mark.parametrize("name,mode,hint", [
    ("cooc", "read", "did you mean 'coco'?"),
    ("coco_results", "read", "did you mean 'coco-results'?"),
    ("yolo8", "read", "did you mean 'yolov8'?"),
    ("htm", "write", "did you mean 'html'?"),
    ("zzz", "read", "readable formats: coco, "),
])
def test_unknown_format_names_get_a_did_you_mean(name, mode, hint):
    with pytest.raises(OptionError, match=f"unknown format '{name}'") as info:
        formats.info(name, mode)
    assert hint in info.value.hint


def test_write_only_formats_are_not_offered_for_reading(runner):
    assert "html" not in formats.names(reads=True)
    with pytest.raises(OptionError) as info:
        formats.info("htm", "read")
    assert "html" not in info.value.hint  # not suggested, not listed
    res = runner(["ingest", "html", "x"])
    assert res.exit_code == 2 and "format 'html' can be written but not read" in res.stderr
    assert "html" not in res.stderr.split("hint:")[1]
    from mlcycle.cli.ingest import _complete_format_or_path

    assert "html" not in _complete_format_or_path("") and "yolov8" in _complete_format_or_path("yolo")
    res = runner(["ingest", "cooc", "x.json"])
    assert res.exit_code == 2 and "did you mean 'coco'?" in res.stderr
