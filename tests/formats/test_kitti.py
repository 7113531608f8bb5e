"""KITTI: stated parse results, attributes kept, bad lines, round trip."""

from __future__ import annotations

import numpy as np
import pytest

from mlcycle import formats
from mlcycle import table as T
from mlcycle.errors import MlcycleError
from mlcycle.formats import ReadOptions, WriteOptions, kitti


def labels(table):
    return [r for r in table.to_pylist() if r[T.LABEL] is not None]


def test_datumaro_kitti_detection(external, expected):
    spec = expected["parse"]["datumaro_kitti_detection"]
    path = external / "openvinotoolkit__datumaro/tests/assets/kitti_dataset/kitti_detection"
    assert formats.detect(path) == "kitti"
    got = labels(kitti.read(path, ReadOptions()))
    for item in spec["items"]:
        rs = [r for r in got if r[T.SAMPLE_ID] == item["id"] + ".png"]
        assert [(r[T.LABEL], r[T.BBOX]) for r in rs] == [(a["label"], a["bbox"]) for a in item["anns"]]
        assert [(r["truncated"] > 0.5, r["occluded"] > 0) for r in rs] == [
            (a["truncated"], a["occluded"]) for a in item["anns"]]
        assert {(r[T.WIDTH], r[T.HEIGHT], r[T.SPLIT]) for r in rs} == {(10, 10, "train")}


def test_kitti_3d_attributes_kept(external):
    path = external / "openvinotoolkit__datumaro/tests/assets/kitti_dataset/kitti_3d"
    rows = labels(formats.read("kitti", path))
    truck = rows[0]
    assert truck[T.LABEL] == "Truck" and truck[T.BBOX] == [600.0, 150.0, 30.0, 40.0]
    assert (truck["alpha"], truck["dim_height"], truck["dim_width"], truck["dim_length"]) == (-1.57, 2.85, 2.63, 12.34)
    assert (truck["loc_x"], truck["loc_y"], truck["loc_z"], truck["rotation_y"]) == (0.47, 1.49, 69.44, -1.56)
    assert rows[1]["occluded"] == 3 and rows[2][T.LABEL] == "DontCare"


def test_round_trip_reproduces_the_files(external, tmp_path):
    src = external / "openvinotoolkit__datumaro/tests/assets/kitti_dataset/kitti_3d"
    table = formats.read("kitti", src)
    formats.write("kitti", table, tmp_path / "o")
    got = (tmp_path / "o/training/label_2/000001.txt").read_text().split()
    want = (src / "training/label_2/000001.txt").read_text().split()
    assert [float(v) if i % 15 else v for i, v in enumerate(got)] == [float(v) if i % 15 else v for i, v in enumerate(want)]
    back = formats.read("kitti", tmp_path / "o")
    assert [r[T.BBOX] for r in labels(back)] == [r[T.BBOX] for r in labels(table)]


@pytest.mark.parametrize("line, message", [
    ("Car 0 0 0 1 2 3\n", r"a\.txt:1: malformed line: expected 15"),
    ("Car 0 0 0 5 2 3 4 1 1 1 1 1 1 1\n", r"a\.txt:1: box has right < left"),
    ("Car 0 0 0 1 2 x 4 1 1 1 1 1 1 1\n", r"a\.txt:1: malformed line: values"),
])
def test_bad_lines(tmp_path, line, message):
    d = tmp_path / "label_2"
    d.mkdir()
    (d / "a.txt").write_text(line)
    with pytest.raises(MlcycleError, match=message):
        kitti.read(tmp_path, ReadOptions())
    assert labels(kitti.read(tmp_path, ReadOptions(skip_invalid=True))) == []


def test_scores_make_predictions(tmp_path):
    d = tmp_path / "label_2"
    d.mkdir()
    (d / "a.txt").write_text("Car -1 -1 -10 1 2 3 4 -1 -1 -1 -1000 -1000 -1000 -10 0.75\n")
    rows = labels(kitti.read(tmp_path, ReadOptions()))
    assert rows[0][T.SOURCE] == "pred" and rows[0][T.SCORE] == 0.75 and rows[0][T.WIDTH] is None


def test_export_from_another_format_uses_unknown_values(tmp_path):
    t = T.from_columns({T.SAMPLE_ID: ["x.png"], T.SOURCE: ["gt"], T.LABEL: ["Car"],
                        T.BBOX: np.array([[1.0, 2, 3, 4]]), T.SPLIT: ["test"], "occluded": [True]})
    kitti.write(t, tmp_path / "o", WriteOptions())
    assert (tmp_path / "o/testing/label_2/x.txt").read_text() == (
        "Car 0.00 1 -10.00 1.00 2.00 4.00 6.00 -1.00 -1.00 -1.00 -1000.00 -1000.00 -1000.00 -10.00\n")


def test_export_refuses_escaping_sample_ids(tmp_path):
    t = T.from_columns({T.SAMPLE_ID: ["../../x.png"], T.SOURCE: ["gt"], T.LABEL: ["Car"], T.BBOX: np.array([[1.0, 2, 3, 4]])})
    with pytest.raises(MlcycleError, match="outside the output folder"):
        kitti.write(t, tmp_path / "o", WriteOptions())
