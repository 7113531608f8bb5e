"""schema-check --infer, and the external fixtures (VOC, CVAT, KITTI) checked against
schemas written for them and against schemas drafted from them."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest

from mlcycle import formats
from mlcycle import schema as S
from mlcycle import table as T

DATUMARO = "openvinotoolkit__datumaro/tests/assets"
REVIEW = "rafaelpadilla__review_object_detection_metrics/data/database/gts"
VOC_CLASSES = ["aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable",
               "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor"]


def read(external: Path, fmt: str, rel: str):
    return formats.read(fmt, external / rel, formats.ReadOptions(allow_missing=True))


def check(table, text: str) -> S.CheckResult:
    return S.find_violations(table, S.loads(textwrap.dedent(text), "schema.yaml"))


def by_rule(result: S.CheckResult) -> dict[str, list[tuple]]:
    out: dict[str, list[tuple]] = {}
    for v in result.report_table().to_pylist():
        out.setdefault(v["rule"], []).append((v["sample_id"], v["label_id"]))
    return out


def draft_passes(table) -> S.Schema:
    text = S.infer(table, "fixture")
    spec = S.loads(text, "draft.yaml")
    result = S.find_violations(table, spec)
    assert not result.failed(), result.report_table().to_pylist()
    return spec


# --------------------------------------------------------------------------- generated data

def generated(n_images: int = 30, seed: int = 0):
    rng = np.random.default_rng(seed)
    rows = {k: [] for k in ("sample_id", "source", "label_id", "label", "category_id", "bbox", "width", "height",
                            "split", "occluded", "truncation", "pose", "plate")}
    lid = 0
    for i in range(n_images):
        for _ in range(int(rng.integers(1, 5))):
            lid += 1
            label = ["person", "car"][int(rng.integers(0, 2))]
            x, y = rng.uniform(0, 50, 2)
            w, h = rng.uniform(5, 40, 2)
            rows["sample_id"].append(f"img/{i:03d}.jpg")
            rows["source"].append("gt")
            rows["label_id"].append(lid)
            rows["label"].append(label)
            rows["category_id"].append(1 if label == "person" else 2)
            rows["bbox"].append([x, y, w, h])
            rows["width"].append(100)
            rows["height"].append(100)
            rows["split"].append("train" if i % 3 else "val")
            rows["occluded"].append(bool(rng.integers(0, 2)))
            rows["truncation"].append(float(rng.uniform(0, 1)) if label == "person" else None)
            rows["pose"].append(["front", "back", "side"][int(rng.integers(0, 3))])
            rows["plate"].append(f"AB{int(rng.integers(100, 999))}" if label == "car" else None)
    rows["bbox"] = np.array(rows["bbox"])
    return T.from_columns(rows)


def test_infer_drafts_what_the_data_always_kept():
    t = generated()
    spec = draft_passes(t)
    assert spec.class_names() == ["person", "car"]
    assert [(c.name, c.id) for c in spec.classes] == [("person", 1), ("car", 2)]
    attrs = {a.name: a for a in spec.attributes}
    assert attrs["occluded"].type == "bool" and attrs["occluded"].required is True
    assert attrs["truncation"].type == "float" and attrs["truncation"].classes == frozenset({"person"})
    assert attrs["truncation"].required is True and 0 <= attrs["truncation"].min <= attrs["truncation"].max <= 1
    assert attrs["pose"].type == "enum" and set(attrs["pose"].values) == {"front", "back", "side"}
    assert attrs["plate"].type == "string" and attrs["plate"].pattern == "[A-Za-z0-9_]+"
    assert spec.inside_image and spec.boxes_required and spec.box_rules.min_width <= 40
    assert spec.required_columns == ("split", "width", "height")
    assert spec.allowed_values == {"split": ("train", "val")}
    assert spec.split_overlap and spec.unique_label_ids and not spec.allow_empty


@pytest.mark.parametrize("column, value, rule", [
    ("label", "dog", "class.unknown"),
    ("occluded", None, "attr.missing"),
    ("truncation", 1.5, "attr.range"),
    ("pose", "upside-down", "attr.enum"),
    ("plate", "ab-1", "attr.pattern"),
    ("bbox", [90.0, 90.0, 20.0, 20.0], "box.outside-image"),
    ("split", "test", "sample.value"),
])
def test_a_label_that_breaks_an_observed_pattern_fails_the_draft(column, value, rule):
    t = generated()
    spec = S.loads(S.infer(t), "draft.yaml")
    rows = t.to_pylist()
    rows[0][column] = value
    bad = T.from_columns({k: ([r[k] for r in rows] if k != "bbox" else np.array([r[k] for r in rows]))
                          for k in t.column_names})
    result = S.find_violations(bad, spec)
    assert result.failed()
    assert rule in by_rule(result)


def test_infer_comments_what_it_observed():
    text = S.infer(generated(), "gen.parquet")
    assert text.startswith("# Drafted by `mlcycle schema-check --infer` from gen.parquet:")
    assert "# rarest class:" in text and "# labels per sample observed:" in text
    assert "inside_image: true  # largest overflow observed: 0 px" in text


def test_infer_on_predictions_only_and_empty_table():
    t = T.from_columns({"sample_id": ["a"], "source": ["pred"], "label": ["x"], "bbox": np.array([[0, 0, 1, 1.0]]),
                        "score": [0.5]})
    draft_passes(t)
    draft_passes(T.empty_table())


def test_infer_turns_errors_in_the_data_into_warnings():
    t = T.from_columns({"sample_id": ["a", "a"], "source": ["gt", "gt"], "label_id": [1, 1], "label": ["x", "x"],
                        "bbox": np.array([[0, 0, 1, 1.0], [0, 0, 0, 1.0]])})
    text = S.infer(t)
    assert "unique_label_ids: false" in text
    assert "box.non-positive: warning  # 1 violations in the data it was drafted from" in text
    draft_passes(t)


# --------------------------------------------------------------------------- external fixtures

VOC_SCHEMA = """
    classes: [cat, person, head, dog]
    attributes:
      difficult: {type: bool, classes: [cat, dog, person]}
      truncated: {type: bool, classes: [cat, dog, person]}
      pose: {type: enum, values: [Unspecified, Frontal, Left, Right, Rear]}
      part_of: {type: int, classes: [head], required: true, min: 1}
      action_other: {type: bool, classes: [person], required: true}
      action_jumping: {type: bool, classes: [person]}
      action_phoning: {type: bool, classes: [person]}
      action_playinginstrument: {type: bool, classes: [person]}
      action_reading: {type: bool, classes: [person]}
      action_ridingbike: {type: bool, classes: [person]}
      action_ridinghorse: {type: bool, classes: [person]}
      action_running: {type: bool, classes: [person]}
      action_takingphoto: {type: bool, classes: [person]}
      action_usingcomputer: {type: bool, classes: [person]}
      action_walking: {type: bool, classes: [person]}
    boxes: {required: true, inside_image: true}
    samples:
      required_columns: [split, width, height]
      allowed_values: {split: [train, val, test]}
      allow_empty: %s
    dataset: {split_overlap: true, duplicate_iou: 0.5}
"""


def test_datumaro_voc_against_its_schema(external):
    t = read(external, "voc", f"{DATUMARO}/voc_dataset/voc_dataset1")
    assert not check(t, VOC_SCHEMA % "true").failed(strict=True)
    # stated: 2007_000002 is in the test subset with no objects
    r = check(t, VOC_SCHEMA % "false")
    assert by_rule(r) == {"sample.empty": [("2007_000002.jpg", None)]}
    # stated: the cat is truncated, and the person carries the actions
    r = check(t, (VOC_SCHEMA % "true").replace("truncated: {type: bool,", "truncated: {type: enum, values: [false],"))
    assert by_rule(r) == {"attr.enum": [("2007_000001.jpg", 1)]}
    draft_passes(t)


def test_review_voc_difficult_count_and_boxes_inside(external):
    t = read(external, "voc", f"{REVIEW}/pascalvoc_format")
    schema = f"""
        classes: {VOC_CLASSES}
        attributes:
          difficult: {{type: bool, required: true}}
          truncated: {{type: bool, required: true}}
          pose: {{type: enum, values: [Unspecified, Frontal, Left, Right, Rear], required: true}}
        boxes: {{required: true, inside_image: true, min_width: 1, min_height: 1}}
        samples: {{required_columns: [width, height], allow_empty: false}}
    """
    r = check(t, schema)
    assert r.violations.num_rows == 0 and r.num_labels == 273
    # stated: 38 objects have difficult=1
    r = check(t, schema.replace("difficult: {type: bool, required: true}", "difficult: {type: enum, values: [false]}"))
    assert {k: len(v) for k, v in by_rule(r).items()} == {"attr.enum": 38}
    draft_passes(t)


def test_review_cvat_same_boxes_pass_the_same_box_rules(external):
    t = read(external, "cvat", f"{REVIEW}/cvat_format/annotations.xml")
    r = check(t, f"""
        classes: {VOC_CLASSES}
        attributes:
          occluded: {{type: bool, required: true}}
          z_order: {{type: int, min: 0}}
          shape: {{type: enum, values: [box]}}
          annotation_source: {{type: enum, values: [manual, auto]}}
        boxes: {{required: true, inside_image: true, min_width: 1, min_height: 1}}
        dataset: {{unique_label_ids: true}}
    """)
    assert r.violations.num_rows == 0 and r.num_labels == 273
    draft_passes(t)


CVAT_SCHEMA = """
    classes: [label1, label2]
    attributes:
      a1: {type: bool, classes: [label1], required: true}
      a2: {type: enum, values: [v1, v2, v3], classes: [label1]}
      a3: {type: string, pattern: '[0-9]{4}', classes: [label1]}
      a4: {type: float, min: 0, max: 5, classes: [label1]}
      occluded: {type: bool}
      z_order: {type: int, min: 0}
      shape: {type: enum, values: [box, polygon, polyline, points]}
    boxes: {inside_image: true}
"""


def test_datumaro_cvat_attributes_and_the_unlabelled_polygon(external):
    t = read(external, "cvat", f"{DATUMARO}/cvat_dataset/for_images/export_task")
    r = check(t, CVAT_SCHEMA)
    # stated: img1 has an unlabeled polygon (1,2,3,4,6,5): a box with no class
    assert by_rule(r) == {"class.unknown": [("img1.jpg", 3)]}
    # stated: a3 = "0003", a4 = 2.4: a tighter schema catches both
    r = check(t, CVAT_SCHEMA.replace("[0-9]{4}", "[1-9][0-9]*").replace("max: 5", "max: 2"))
    assert {k: v for k, v in by_rule(r).items() if k.startswith("attr")} == {
        "attr.pattern": [("img0.jpg", 1)], "attr.range": [("img0.jpg", 1)]}
    draft_passes(t)


KITTI_SCHEMA = """
    classes: [Car, Van, Truck, Pedestrian, Person_sitting, Cyclist, Tram, Misc, DontCare]
    attributes:
      truncated: {type: float, min: 0, max: 1, required: true}
      occluded: {type: int, min: 0, max: 3, required: true}
      alpha: {type: float, min: -3.15, max: 3.15}
      dim_height: float
      dim_width: float
      dim_length: float
      loc_x: float
      loc_y: float
      loc_z: float
      rotation_y: {type: float, min: -3.15, max: 3.15}
    boxes: {required: true, inside_image: true}
    samples: {required_columns: [width, height]}
"""


def test_datumaro_kitti_truncation_and_occlusion(external):
    t = read(external, "kitti", f"{DATUMARO}/kitti_dataset/kitti_detection")
    assert not check(t, KITTI_SCHEMA).failed(strict=True)
    # stated: Truck on 000030_10 truncated; Van [0,0,2,2] on 000030_11 truncated and occluded;
    # Van [6,6,1,3] occluded
    r = check(t, KITTI_SCHEMA.replace("min: 0, max: 1, required", "min: 0, max: 0, required")
              .replace("min: 0, max: 3", "min: 0, max: 0"))
    got = by_rule(r)
    assert got["attr.range"] == [("000030_10.png", 1), ("000030_11.png", 3), ("000030_11.png", 3), ("000030_11.png", 5)]
    draft_passes(t)


# --------------------------------------------------------------------------- property

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_row = st.fixed_dictionaries({
    "sample": st.sampled_from(["a.jpg", "b.jpg", "c/d.jpg", "e f.png"]),
    "source": st.sampled_from(["gt", "gt", "gt", "pred"]),
    "label": st.one_of(st.none(), st.sampled_from(["cat", "dog", "a: b", "[x]", "yes"])),
    "box": st.one_of(st.none(), st.tuples(*[st.floats(-20, 120, allow_nan=False)] * 2,
                                          *[st.one_of(st.floats(-5, 80), st.just(float("nan")))] * 2)),
    "width": st.one_of(st.none(), st.sampled_from([64, 100])),
    "split": st.one_of(st.none(), st.sampled_from(["train", "val"])),
    "flag": st.one_of(st.none(), st.booleans()),
    "level": st.one_of(st.none(), st.integers(-3, 3)),
    "ratio": st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)),
    "name": st.one_of(st.none(), st.text(max_size=6)),
    "score": st.one_of(st.none(), st.floats(-1, 2)),
    "label_id": st.one_of(st.none(), st.integers(0, 5)),
})


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_row, min_size=1, max_size=12))
def test_any_table_passes_the_schema_drafted_from_it(rows):
    t = T.from_columns({
        "sample_id": [r["sample"] for r in rows], "source": [r["source"] for r in rows],
        "label_id": [r["label_id"] for r in rows],
        "label": [r["label"] for r in rows],
        "bbox": np.array([list(r["box"]) if r["box"] is not None else [np.nan] * 4 for r in rows], dtype=float),
        "width": [r["width"] for r in rows], "height": [r["width"] for r in rows],
        "split": [r["split"] for r in rows], "score": [r["score"] if r["source"] == "pred" else None for r in rows],
        "flag": [r["flag"] for r in rows], "level": [r["level"] for r in rows],
        "ratio": [r["ratio"] for r in rows], "name": [r["name"] for r in rows],
    })
    draft_passes(t)
