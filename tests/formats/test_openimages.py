"""Open Images box CSV: decimal commas, image sizes, Datumaro's stated v6 values, folder
layout round trips and bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlcycle import formats, io
from mlcycle import table as T
from mlcycle.errors import MlcycleError
from mlcycle.formats import ReadOptions, WriteOptions, coco, openimages

GTS = "rafaelpadilla__review_object_detection_metrics/data/database/gts"
V6 = "openvinotoolkit__datumaro/tests/assets/open_images_dataset/v6"
V5 = "openvinotoolkit__datumaro/tests/assets/open_images_dataset/v5"


@pytest.fixture(scope="module")
def coco_sizes(external, tmp_path_factory) -> Path:
    """The same 100 images ingested from COCO, as a --image-sizes table."""
    p = tmp_path_factory.mktemp("sizes") / "coco.parquet"
    io.write_table(coco.read(external / GTS / "coco_format_v1/instances_default.json"), p)
    return p


def box_list(table: pa.Table) -> list[tuple]:
    b = T.bboxes(table)
    s = table.column(T.SAMPLE_ID).to_pylist()
    lab = table.column(T.LABEL).to_pylist()
    return sorted((s[i], lab[i], *b[i].tolist()) for i in range(table.num_rows) if not np.isnan(b[i]).all())


def test_voc100_decimal_comma_csv_gives_the_coco_boxes(external, coco_sizes):
    c = box_list(io.read_table(coco_sizes))
    o = box_list(openimages.read(external / GTS / "openimages_format/all_bounding_boxes.csv",
                                 ReadOptions(image_sizes=coco_sizes)))
    assert [b[:2] for b in o] == [b[:2] for b in c]
    # the CSV stores 10 significant digits of fractions of the image size
    np.testing.assert_allclose(np.array([b[2:] for b in o]), np.array([b[2:] for b in c]), rtol=0, atol=1e-6)


def test_cli_notes_decimal_commas_on_stderr(runner, external, coco_sizes):
    res = runner(["ingest", external / GTS / "openimages_format", "--image-sizes", coco_sizes])
    assert res.exit_code == 0, res.stderr
    assert "detected format: openimages" in res.stderr
    assert "decimal commas" in res.stderr
    t = io.decode(res.stdout.encode())
    assert t.num_rows == 273 and "decimal" not in res.stdout


def test_missing_image_sizes_is_a_clear_error(runner, external):
    res = runner(["ingest", "openimages", external / GTS / "openimages_format/all_bounding_boxes.csv"])
    assert res.exit_code == 1 and res.stdout == ""
    assert "2007_000027.jpg: image not found" in res.stderr and "--image-sizes" in res.stderr


def test_one_size_for_all_images(external):
    t = openimages.read(external / GTS / "openimages_format/all_bounding_boxes.csv", ReadOptions(image_size=(1000, 100)))
    first = t.to_pylist()[0]
    assert (first[T.WIDTH], first[T.HEIGHT]) == (1000, 100)
    np.testing.assert_allclose(first[T.BBOX], [358.0246914, 20.2, 718.1069959 - 358.0246914, 50.0], atol=1e-9)


def test_datumaro_v6_stated_values(external, expected):
    stated = expected["parse"]["datumaro_open_images_v6"]
    t = openimages.read(external / V6)
    rows = t.to_pylist()
    by = {}
    for r in rows:
        by.setdefault(r[T.SAMPLE_ID], []).append(r)
    for item in stated["items"]:
        rs = by[item["id"]]
        w, h = (int(v) for v in item["size"].split(" ")[0].split("x"))
        assert {(r[T.WIDTH], r[T.HEIGHT]) for r in rs} == {(w, h)}, item["id"]
        assert {r[T.SPLIT] for r in rs} == {item["subset"]}
        boxes = [r for r in rs if r[T.BBOX] is not None]
        assert len(boxes) == len(item.get("bboxes", []))
        for r, want in zip(boxes, item.get("bboxes", [])):
            assert r[T.LABEL] == want["label"]
            np.testing.assert_allclose(r[T.BBOX], want["bbox"], rtol=0, atol=1e-12)
            assert r[T.CONFIDENCE] == want["score"]
            for key, col in (("occluded", T.OCCLUDED), ("truncated", T.TRUNCATED), ("is_group_of", T.GROUP_OF),
                             ("is_depiction", T.DEPICTION), ("is_inside", T.INSIDE)):
                if key in want:
                    assert r[col] is want[key], key
        image_labels = sorted((r[T.LABEL], r[T.CONFIDENCE]) for r in rs if r[T.BBOX] is None and r[T.LABEL] is not None)
        assert image_labels == sorted((lab["label"], float(lab["score"])) for lab in item.get("image_labels", []))
    # d has no labels: one sample row
    assert [(r[T.LABEL], r[T.LABEL_ID]) for r in by["d"]] == [(None, None)]
    # the -1 flags of b's box are unknown, not false
    b_box = next(r for r in by["b"] if r[T.BBOX] is not None)
    assert b_box[T.OCCLUDED] is None and b_box[T.ANNOTATION_SOURCE] == "xclick"
    meta = T.get_metadata(t)["openimages"]
    assert meta["class_descriptions"]["/m/1"] == "Generic label #1"
    assert meta["hierarchy"]["Subcategory"][0]["Subcategory"][0]["LabelName"] == "/m/1"


def test_datumaro_v5_image_lists_are_sample_rows(external):
    t = openimages.read(external / V5)
    assert sorted((r[T.SAMPLE_ID], r[T.SPLIT], r[T.WIDTH], r[T.HEIGHT], r[T.LABEL]) for r in t.to_pylist()) == [
        ("aa", "train", 6, 8, None), ("cc", "test", 5, 10, None)]


@pytest.mark.parametrize("rel", [f"{GTS}/openimages_format", f"{GTS}/openimages_format/all_bounding_boxes.csv",
                                 V6, f"{V6}/annotations/test-annotations-bbox.csv", V5])
def test_auto_detection_picks_openimages(external, rel):
    assert formats.detect(external / rel) == "openimages"


def test_folder_round_trip_keeps_boxes_labels_sizes_and_empty_images(external, tmp_path):
    first = openimages.read(external / V6)
    openimages.write(first, tmp_path / "oi")
    ann = tmp_path / "oi" / "annotations"
    assert sorted(p.name for p in ann.iterdir()) == [
        "class-descriptions.csv", "image_ids_and_rotation.csv", "images.meta",
        "test-annotations-bbox.csv", "test-annotations-human-imagelabels.csv",
        "train-annotations-bbox.csv", "train-annotations-human-imagelabels.csv"]
    assert (ann / "test-annotations-bbox.csv").read_text().splitlines()[1] == "c,xclick,/m/3,0.7,0.7,0.8,0,0.5,1,0,1,0,0"
    again = openimages.read(tmp_path / "oi")
    key = lambda t: sorted((r[T.SAMPLE_ID], r[T.LABEL] or "", str(r[T.BBOX] and np.round(r[T.BBOX], 9).tolist()),  # noqa: E731
                            r[T.WIDTH], r[T.HEIGHT], r[T.SPLIT], r[T.CONFIDENCE], r[T.OCCLUDED], r[T.GROUP_OF])
                           for r in t.to_pylist())
    assert key(again) == key(first)


def test_voc100_file_round_trip(external, coco_sizes, tmp_path):
    first = openimages.read(external / GTS / "openimages_format/all_bounding_boxes.csv", ReadOptions(image_sizes=coco_sizes))
    out = tmp_path / "boxes.csv"
    openimages.write(first, out)
    assert out.read_text().splitlines()[0] == ",".join(openimages.STANDARD)
    again = openimages.read(out, ReadOptions(image_sizes=coco_sizes))
    assert again.column(T.SAMPLE_ID).to_pylist() == first.column(T.SAMPLE_ID).to_pylist()
    assert again.column(T.LABEL).to_pylist() == first.column(T.LABEL).to_pylist()
    np.testing.assert_allclose(T.bboxes(again), T.bboxes(first), rtol=1e-12, atol=1e-9)


_frac = st.floats(min_value=0, max_value=1, allow_nan=False)


@st.composite
def oi_tables(draw):
    rows = []
    for k in range(draw(st.integers(1, 4))):
        w, h = draw(st.integers(1, 4000)), draw(st.integers(1, 4000))
        split = draw(st.sampled_from([None, "train", "test"]))
        n = draw(st.integers(0, 3))
        for _ in range(n):
            x0, x1 = sorted((draw(_frac), draw(_frac)))
            y0, y1 = sorted((draw(_frac), draw(_frac)))
            rows.append((f"id{k}", draw(st.sampled_from(["/m/01g317", "/m/0k4j", "Person"])),
                         [x0 * w, y0 * h, (x1 - x0) * w, (y1 - y0) * h], w, h, split,
                         draw(st.one_of(st.none(), st.booleans())), draw(st.one_of(st.none(), st.booleans()))))
        if n == 0:
            rows.append((f"id{k}", None, None, w, h, split, None, None))
    return T.from_columns({
        T.SAMPLE_ID: [r[0] for r in rows], T.SOURCE: ["gt"] * len(rows), T.LABEL: [r[1] for r in rows],
        T.BBOX: pa.array([r[2] for r in rows], type=pa.list_(pa.float64(), 4)),
        T.WIDTH: [r[3] for r in rows], T.HEIGHT: [r[4] for r in rows], T.SPLIT: [r[5] for r in rows],
        T.OCCLUDED: pa.array([r[6] for r in rows], type=pa.bool_()),
        T.GROUP_OF: pa.array([r[7] for r in rows], type=pa.bool_()),
    })


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(oi_tables())
def test_round_trip_property(tmp_path, table):
    import shutil

    out = tmp_path / "rt"
    shutil.rmtree(out, ignore_errors=True)
    openimages.write(table, out)
    back = openimages.read(out)

    def key(t):
        return sorted((r[T.SAMPLE_ID], r[T.LABEL] or "", r[T.WIDTH], r[T.HEIGHT], r.get(T.SPLIT) or "",
                       str(r.get(T.OCCLUDED)), str(r.get(T.GROUP_OF)), r[T.BBOX] is None) for r in t.to_pylist())

    assert key(back) == key(table)
    lab = T.label_mask(table)
    a = T.bboxes(table)[lab]
    b = T.bboxes(back)[T.label_mask(back)]
    # per split files: compare as sorted sets; x/W*W is within a few ulps of x
    np.testing.assert_allclose(np.sort(b, axis=0), np.sort(a, axis=0), rtol=1e-12, atol=1e-9)


def test_export_without_sizes_is_an_error(tmp_path):
    t = T.from_columns({T.SAMPLE_ID: ["a"], T.SOURCE: ["gt"], T.LABEL: ["/m/0"], T.BBOX: np.array([[1.0, 2, 3, 4]])})
    with pytest.raises(MlcycleError, match="'a' has a box but no width/height"):
        openimages.write(t, tmp_path / "x.csv")
    assert not (tmp_path / "x.csv").exists()


@pytest.mark.parametrize("split", ["../evil", "a/b", ".."])
def test_folder_export_refuses_a_split_that_escapes(tmp_path, split):
    t = T.from_columns({T.SAMPLE_ID: ["a"], T.SOURCE: ["gt"], T.LABEL: ["/m/0"], T.BBOX: np.array([[1.0, 2, 3, 4]]),
                        T.WIDTH: [10], T.HEIGHT: [10], T.SPLIT: [split]})
    with pytest.raises(MlcycleError, match="cannot be part of a file name"):
        openimages.write(t, tmp_path / "oi", WriteOptions())
    assert not list(tmp_path.glob("**/*evil*"))


def test_image_level_labels_not_in_a_box_csv_are_counted(tmp_path, runner):
    t = T.from_columns({T.SAMPLE_ID: ["a", "a"], T.SOURCE: ["gt", "gt"], T.LABEL: ["/m/0", "/m/1"],
                        T.BBOX: pa.array([[0.0, 0, 5, 5], None], type=pa.list_(pa.float64(), 4)),
                        T.WIDTH: [10, 10], T.HEIGHT: [10, 10]})
    src = tmp_path / "t.parquet"
    io.write_table(t, src)
    res = runner(["export", "openimages", src])
    assert res.exit_code == 0
    assert res.stdout.splitlines()[1] == "a,,/m/0,,0,0.5,0,0.5,-1,-1,-1,-1,-1"
    assert "1 image-level label(s) not written" in res.stderr


def _csv(tmp_path: Path, body: str) -> Path:
    p = tmp_path / "b.csv"
    p.write_text(",".join(openimages.STANDARD) + "\n" + body)
    return p


def test_reversed_box_names_the_line_and_skip_invalid_counts(tmp_path, runner):
    p = _csv(tmp_path, "a,x,/m/0,1,0.1,0.2,0.1,0.2,0,0,0,0,0\na,x,/m/0,1,0.5,0.2,0.1,0.2,0,0,0,0,0\n"
                       "z,x,/m/0,1,0.5,0.2,0.1,0.2,0,0,0,0,0\n")
    with pytest.raises(MlcycleError, match=r"b\.csv:3: the box has a negative width or height"):
        openimages.read(p, ReadOptions(image_size=(10, 10)))
    res = runner(["ingest", "openimages", p, "--image-size", "10x10", "--skip-invalid"])
    assert res.exit_code == 0 and "skipped 2 invalid boxes" in res.stderr
    assert "b.csv:3: the box has a negative width or height (x2 < x1 or y2 < y1) (XMin='0.5', XMax='0.2'" in res.stderr
    rows = io.decode(res.stdout.encode()).to_pylist()
    # z's only box was skipped: the image stays, as a sample row
    assert [(r[T.SAMPLE_ID], r[T.LABEL]) for r in rows] == [("a", "/m/0"), ("z", None)]


def test_not_a_number_names_line_and_column(tmp_path):
    p = _csv(tmp_path, "a,x,/m/0,1,0.1,0.2,0.1,0.2,0,0,0,0,0\na,x,/m/0,1,abc,0.2,0.1,0.2,0,0,0,0,0\n")
    with pytest.raises(MlcycleError, match=r"b\.csv:3: column 'XMin' value 'abc' is not a number"):
        openimages.read(p, ReadOptions(image_size=(10, 10)))


def test_prediction_source_puts_confidence_in_score(tmp_path):
    p = _csv(tmp_path, "a,,/m/0,0.25,0.1,0.2,0.1,0.2,,,,,\n")
    t = openimages.read(p, ReadOptions(image_size=(10, 10), source="detector"))
    r = t.to_pylist()[0]
    assert r[T.SCORE] == 0.25 and T.CONFIDENCE not in t.column_names and r[T.SOURCE] == "detector"


def test_columns_without_a_place_are_named_in_a_warning(tmp_path, runner):
    t = T.from_columns({T.SAMPLE_ID: ["a"], T.SOURCE: ["gt"], T.LABEL: ["/m/0"], T.BBOX: np.array([[1.0, 2, 3, 4]]),
                        T.WIDTH: [10], T.HEIGHT: [10], "difficult": [True], T.OCCLUDED: [True]})
    src = tmp_path / "t.parquet"
    io.write_table(t, src)
    res = runner(["export", "openimages", src, "-o", tmp_path / "b.csv"])
    assert res.exit_code == 0 and res.stdout == ""
    assert "not written: difficult" in res.stderr
    assert (tmp_path / "b.csv").read_text().splitlines()[1] == "a,,/m/0,,0.1,0.4,0.2,0.6,1,-1,-1,-1,-1"


def test_sizes_from_image_headers_next_to_the_csv_and_allow_missing(tmp_path, runner):
    from PIL import Image

    p = _csv(tmp_path, "a,,/m/0,,0.5,1,0,0.5,,,,,\nb,,/m/1,,0,0.5,0.5,1,,,,,\n")
    (tmp_path / "images").mkdir()
    Image.new("RGB", (40, 20)).save(tmp_path / "images" / "a.png")
    with pytest.raises(MlcycleError, match=r"b: image not found"):
        openimages.read(p)
    res = runner(["ingest", "openimages", p, "--allow-missing"])
    assert res.exit_code == 0
    assert "1 image(s) not found" in res.stderr and "1 box(es) on images of unknown size skipped" in res.stderr
    rows = io.decode(res.stdout.encode()).to_pylist()
    # b's box cannot be placed, but b stays as a sample row
    assert [(r[T.SAMPLE_ID], r[T.LABEL], r[T.BBOX], r[T.WIDTH], r[T.HEIGHT]) for r in rows] == [
        ("a", "/m/0", [20.0, 0.0, 20.0, 10.0], 40, 20), ("b", None, None, None, None)]
