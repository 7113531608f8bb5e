"""YOLO: stated parse results of other projects' fixtures, layouts, bad input, export."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mlcycle import reporting

from mlcycle import formats, io
from mlcycle import table as T
from mlcycle.errors import MlcycleError
from mlcycle.formats import ReadOptions, WriteOptions, yolo

YOLO_PRECISION = 1e-6  # six decimals: half a unit in the last place for centre, size, corner


def rows(table, source=None):
    t = table if source is None else T.filter_source(table, source)
    return [r for r in t.to_pylist() if r[T.LABEL] is not None]


def assert_boxes(got, want, size):
    w, h = size
    tol = YOLO_PRECISION * max(w, h)
    assert [r[T.LABEL] for r in got] == [a["label"] for a in want]
    for r, a in zip(got, want):
        assert np.allclose(r[T.BBOX], a["bbox"], atol=tol), (r[T.BBOX], a["bbox"])


@pytest.mark.parametrize("layout", ["strict", "labels", "annotations"])
def test_datumaro_yolo_layouts_parse_to_the_stated_boxes(external, expected, layout):
    item = expected["parse"]["datumaro_yolo_strict"]["items"][0]
    path = external / "openvinotoolkit__datumaro/tests/assets/yolo_dataset" / layout
    assert formats.detect(path) == "yolo"
    table = yolo.read(path, ReadOptions())
    got = rows(table)
    per_split = {}
    for r in got:
        per_split.setdefault(r.get(T.SPLIT), []).append(r)
    assert len(per_split) == (2 if layout == "labels" else 1)
    for split, rs in per_split.items():
        assert_boxes(rs, item["anns"], (15, 10))
        assert {(r[T.WIDTH], r[T.HEIGHT]) for r in rs} == {(15, 10)}
        assert {r[T.SAMPLE_ID] for r in rs} == {"1.jpg"}
    if layout == "strict":
        assert set(per_split) == {"train"}
    if layout == "labels":
        assert set(per_split) == {"train", "val"}


def test_roboflow_yolo_equals_stated_values(external, expected):
    spec = expected["parse"]["datumaro_roboflow_coco_voc_yolo"]
    table = formats.read("yolo", external / "openvinotoolkit__datumaro/tests/assets/roboflow_dataset/yolo")
    got = rows(table)
    for item in spec["items"]:
        rs = [r for r in got if r[T.SAMPLE_ID] == item["id"] + ".jpg"]
        assert {r[T.SPLIT] for r in rs} == {item["subset"]}
        assert_boxes(rs, item["anns"], (10, 5))
    meta = T.get_metadata(table)["yolo"]
    assert meta["classes"] == spec["categories"]


def voc100(external: Path) -> Path:
    return external / "rafaelpadilla__review_object_detection_metrics/data/database/gts"


def test_voc100_yolo_equals_coco_within_yolo_precision(external, tmp_path):
    gts = voc100(external)
    sizes = tmp_path / "sizes.parquet"
    io.write_table(formats.read("voc", gts / "pascalvoc_format"), sizes)
    table = formats.read("yolo", gts / "yolo_format", ReadOptions(image_sizes=sizes))
    coco = formats.read("coco", gts / "coco_format_v1/instances_default.json")
    assert table.num_rows == 273 and T.label_mask(table).sum() == 273

    def key(r):
        return (r[T.SAMPLE_ID], r[T.LABEL], tuple(np.round(r[T.BBOX], 0)))

    a = sorted(rows(table), key=key)
    b = sorted(rows(coco), key=key)
    assert [(r[T.SAMPLE_ID], r[T.LABEL]) for r in a] == [(r[T.SAMPLE_ID], r[T.LABEL]) for r in b]
    for ra, rb in zip(a, b):
        tol = YOLO_PRECISION * max(rb[T.WIDTH], rb[T.HEIGHT]) * 1.5
        assert np.allclose(ra[T.BBOX], rb[T.BBOX], atol=tol), (ra, rb)


def test_missing_image_size_is_an_error_naming_the_image(external):
    with pytest.raises(MlcycleError, match=r"2007_000027\.jpg: image not found.*99 more"):
        formats.read("yolo", voc100(external) / "yolo_format")


def test_allow_missing_warns_and_keeps_samples(external, capsys):
    with reporting.collect() as seen:
        table = formats.read("yolo", voc100(external) / "yolo_format", ReadOptions(allow_missing=True))
    assert T.label_mask(table).sum() == 0
    assert len(set(table.column(T.SAMPLE_ID).to_pylist())) == 100
    assert any("not found" in w for w in seen.warnings)


def make(tmp_path: Path, lines: str, names: str | None = "a\nb\n") -> Path:
    d = tmp_path / "ds"
    d.mkdir()
    if names is not None:
        (d / "classes.txt").write_text(names)
    (d / "x.txt").write_text(lines)
    return d


@pytest.mark.parametrize("lines, message", [
    ("0 0.5 0.5 0.2\n", r"x\.txt:1: malformed line"),
    ("0 0.5 0.5 0.2 0.2\n1 0.5 zero 0.2 0.2\n", r"x\.txt:2: malformed line"),
    ("\n0 0.5 0.5 0.2 0.2\n5 0.5 0.5 0.2 0.2\n", r"x\.txt:3: class index 5 is out of range"),
    ("0 0.5 0.5 -0.2 0.2\n", r"x\.txt:1: box has negative width"),
    ("0 320 240 50 60\n", r"x\.txt:1: values must be fractions"),
    ("1.5 0.5 0.5 0.2 0.2\n", r"x\.txt:1: class index"),
])
def test_bad_lines_are_one_line_errors_with_file_and_line(tmp_path, lines, message):
    d = make(tmp_path, lines)
    with pytest.raises(MlcycleError, match=message):
        yolo.read(d, ReadOptions(image_size=(100, 100)))


def test_skip_invalid_counts_and_keeps_the_good_lines(tmp_path, capsys):
    d = make(tmp_path, "0 0.5 0.5 0.2 0.2\n7 0.5 0.5 0.2 0.2\n0 0.5 0.5 0.2\n")
    with reporting.collect() as seen:
        table = yolo.read(d, ReadOptions(image_size=(100, 100), skip_invalid=True))
    assert T.label_mask(table).sum() == 1
    assert any("skipped 2 invalid YOLO lines" in w for w in seen.warnings)


def test_missing_classes_txt_is_an_error(tmp_path):
    d = make(tmp_path, "0 0.5 0.5 0.2 0.2\n", names=None)
    with pytest.raises(MlcycleError, match="missing classes.txt"):
        yolo.read(d, ReadOptions(image_size=(100, 100)))


def test_confidence_column_makes_predictions(tmp_path):
    d = make(tmp_path, "1 0.5 0.5 0.2 0.4 0.875\n")
    table = yolo.read(d, ReadOptions(image_size=(200, 100)))
    r = rows(table)[0]
    assert r[T.SOURCE] == "pred" and r[T.SCORE] == 0.875 and r[T.LABEL] == "b"
    assert np.allclose(r[T.BBOX], [80, 30, 40, 40])
    table = yolo.read(d, ReadOptions(image_size=(200, 100), source="yolov8n"))
    assert T.sources(table) == ["yolov8n"]


def test_image_size_from_header(tmp_path):
    from PIL import Image

    d = make(tmp_path, "0 0.5 0.5 0.5 0.5\n")
    Image.new("RGB", (64, 32)).save(d / "x.png")
    r = rows(yolo.read(d, ReadOptions()))[0]
    assert (r[T.SAMPLE_ID], r[T.WIDTH], r[T.HEIGHT]) == ("x.png", 64, 32)
    assert r[T.BBOX] == [16.0, 8.0, 32.0, 16.0]


def sample_table():
    return T.from_columns({
        T.SAMPLE_ID: ["a/1.jpg", "a/1.jpg", "2.png", "3.jpg"],
        T.SOURCE: ["gt"] * 4,
        T.LABEL_ID: [1, 2, 3, None],
        T.LABEL: ["cat", "dog", "cat", None],
        T.BBOX: np.array([[10, 20, 30, 40], [0, 0, 640, 480], [1.5, 2.25, 3, 4], [np.nan] * 4]),
        T.WIDTH: [640, 640, 100, 50],
        T.HEIGHT: [480, 480, 80, 60],
        T.SPLIT: ["train", "train", "val", "val"],
    })


@pytest.mark.parametrize("layout", ["ultralytics", "darknet", "flat"])
def test_export_then_ingest_keeps_everything(tmp_path, layout):
    src = sample_table()
    out = tmp_path / "out"
    yolo.write(src, out, yolo.WriteOptions(layout=layout))
    sizes = tmp_path / "sizes.parquet"
    io.write_table(src, sizes)
    back = formats.read(formats.detect(out), out, ReadOptions(image_sizes=sizes))
    got = sorted(back.to_pylist(), key=lambda r: (r[T.SAMPLE_ID], r[T.LABEL] or ""))
    want = sorted(src.to_pylist(), key=lambda r: (r[T.SAMPLE_ID], r[T.LABEL] or ""))
    assert [(r[T.SAMPLE_ID], r[T.LABEL]) for r in got] == [(r[T.SAMPLE_ID], r[T.LABEL]) for r in want]
    if layout != "flat":
        assert [r[T.SPLIT] for r in got] == [r[T.SPLIT] for r in want]
    for g, w in zip(got, want):
        if w[T.BBOX] is None:
            assert g[T.BBOX] is None
        else:
            assert np.allclose(g[T.BBOX], w[T.BBOX], atol=YOLO_PRECISION * 640)


def test_ultralytics_export_layout(tmp_path):
    import yaml

    out = tmp_path / "out"
    yolo.write(sample_table(), out, WriteOptions())
    doc = yaml.safe_load((out / "data.yaml").read_text())
    assert doc["names"] == {0: "cat", 1: "dog"} and doc["train"] == "images/train" and doc["val"] == "images/val"
    assert (out / "labels/train/a/1.txt").read_text() == (
        "0 0.039062 0.083333 0.046875 0.083333\n1 0.500000 0.500000 1.000000 1.000000\n")
    assert (out / "labels/val/3.txt").read_text() == ""


def test_ingest_export_reproduces_the_text(external, tmp_path):
    src = external / "openvinotoolkit__datumaro/tests/assets/yolo_dataset/strict"
    table = formats.read("yolo", src)
    out = tmp_path / "out"
    formats.write("yolo", table, out)
    assert (out / "obj_train_data/1.txt").read_text() == (src / "obj_train_data/1.txt").read_text()
    assert (out / "obj.names").read_text() == (src / "obj.names").read_text()


@pytest.mark.parametrize("sid", ["../evil.jpg", "/etc/passwd.jpg", "a/../../b.jpg"])
def test_export_refuses_paths_outside_the_output(tmp_path, sid):
    t = T.from_columns({T.SAMPLE_ID: [sid], T.SOURCE: ["gt"], T.LABEL: ["a"],
                        T.BBOX: np.array([[1.0, 1, 2, 2]]), T.WIDTH: [10], T.HEIGHT: [10]})
    with pytest.raises(MlcycleError, match="outside the output folder"):
        yolo.write(t, tmp_path / "out", WriteOptions())
    assert not (tmp_path / "evil.txt").exists()


def test_cli_ingest_detects_and_reports(runner, external):
    path = external / "openvinotoolkit__datumaro/tests/assets/roboflow_dataset/yolo"
    res = runner(["ingest", path])
    assert res.exit_code == 0
    assert "detected format: yolo" in res.stderr
    lines = [json.loads(x) for x in res.stdout.splitlines() if x.strip()]
    assert sum(1 for r in lines if r.get("label")) == 4


def test_cli_bad_line_exit_1(runner, tmp_path):
    d = make(tmp_path, "0 0.5 0.5\n")
    res = runner(["ingest", "yolo", d, "--image-size", "10x10"])
    assert res.exit_code == 1
    assert res.stdout == ""
    assert "x.txt:1: malformed line" in res.stderr


def test_cli_export_darknet_layout(runner, tmp_path):
    table = tmp_path / "t.parquet"
    io.write_table(sample_table(), table)
    res = runner(["export", "yolo", table, "-o", tmp_path / "dk", "--layout", "darknet"])
    assert res.exit_code == 0, res.stderr
    assert res.stdout == ""
    assert (tmp_path / "dk/obj.names").read_text() == "cat\ndog\n"
    assert (tmp_path / "dk/train.txt").read_text() == "data/obj_train_data/a/1.jpg\n"
    assert (tmp_path / "dk/obj_val_data/2.txt").is_file()


def test_cli_export_yolo_needs_a_folder(runner, tmp_path):
    table = tmp_path / "t.parquet"
    io.write_table(sample_table(), table)
    res = runner(["export", "yolo", table])
    assert res.exit_code == 2
    assert "--output: yolo writes a folder" in res.stderr and res.stdout == ""


def test_cli_image_sizes_from_another_table(runner, external, tmp_path):
    gts = voc100(external)
    sizes = tmp_path / "voc.parquet"
    res = runner(["ingest", "voc", gts / "pascalvoc_format", "-o", sizes])
    assert res.exit_code == 0, res.stderr
    res = runner(["ingest", gts / "yolo_format", "--image-sizes", sizes])
    assert res.exit_code == 0, res.stderr
    assert "detected format: yolo" in res.stderr
    rows_ = [json.loads(x) for x in res.stdout.splitlines() if x.strip() and '"__mlcycle__"' not in x]
    assert sum(1 for r in rows_ if r.get("label")) == 273
    res = runner(["ingest", "yolo", gts / "yolo_format"])
    assert res.exit_code == 1 and res.stdout == ""
    assert "image not found" in res.stderr and "--image-sizes" in res.stderr


def test_predictions_round_trip_with_confidence(tmp_path):
    t = T.from_columns({T.SAMPLE_ID: ["a.jpg", "a.jpg"], T.SOURCE: ["yolov8n"] * 2, T.LABEL: ["cat", "dog"],
                        T.BBOX: np.array([[10.0, 20, 30, 40], [1, 2, 3, 4]]), T.SCORE: [0.91, 0.25],
                        T.WIDTH: [640, 640], T.HEIGHT: [480, 480]})
    yolo.write(t, tmp_path / "o", WriteOptions())
    assert (tmp_path / "o/labels/a.txt").read_text().splitlines()[0].endswith(" 0.910000")
    back = yolo.read(tmp_path / "o", ReadOptions(image_size=(640, 480), source="yolov8n"))
    got = rows(back)
    assert [r[T.SCORE] for r in got] == [0.91, 0.25]
    assert np.allclose([r[T.BBOX] for r in got], [[10, 20, 30, 40], [1, 2, 3, 4]], atol=640e-6)
