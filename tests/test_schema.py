"""The schema file model (precise errors) and every rule, each with a passing and a
failing example on generated tables."""

from __future__ import annotations

import textwrap

import numpy as np
import pyarrow as pa
import pytest

from mlcycle import schema as S
from mlcycle import table as T
from mlcycle.schema.context import Context
from mlcycle.schema.rules.dataset import duplicate_pairs
from mlcycle.errors import MlcycleError

NAN4 = [np.nan] * 4


def make(rows: list[dict]) -> pa.Table:
    """A label table from row dicts (missing keys are null; bbox lists -> (n, 4))."""
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    cols = {}
    for k in keys:
        vals = [r.get(k) for r in rows]
        if k == T.BBOX:
            cols[k] = np.array([NAN4 if v is None else v for v in vals], dtype=float)
        else:
            cols[k] = vals
    return T.from_columns(cols)


def gt(sample="a.jpg", label="person", box=(10, 10, 20, 30), label_id=None, **kw) -> dict:
    row = {"sample_id": sample, "source": "gt", "label": label, "bbox": list(box) if box is not None else None,
           "width": 100, "height": 100, "split": "train"}
    if label_id is not None:
        row["label_id"] = label_id
    row.update(kw)
    return row


def pred(sample="a.jpg", label="person", box=(10, 10, 20, 30), score=0.9, **kw) -> dict:
    row = {"sample_id": sample, "source": "pred", "label": label, "bbox": list(box), "score": score}
    row.update(kw)
    return row


def schema(text: str) -> S.Schema:
    return S.loads(textwrap.dedent(text), "schema.yaml")


def found(rows: list[dict], text: str) -> dict[str, int]:
    """rule id -> number of violations."""
    r = S.find_violations(make(rows), schema(text))
    rules = r.violations.column("rule").to_pylist()
    return {k: rules.count(k) for k in set(rules)}


# (rule, schema, passing rows, failing rows, violations expected in the failing table)
CASES = [
    ("class.unknown", "classes: [person, car]",
     [gt(), gt(label="car")], [gt(), gt(label="dog")], 1),
    ("class.synonym", "classes: [{name: person, synonyms: [pedestrian, human]}]",
     [gt()], [gt(label="pedestrian"), gt(label="human"), gt()], 2),
    ("class.id-mismatch", "classes: [{name: person, id: 1}, {name: car, id: 2}]",
     [gt(category_id=1), gt(label="car", category_id=2)], [gt(category_id=1), gt(label="car", category_id=3)], 1),
    ("attr.missing", "attributes: {occluded: {type: bool, required: true}}",
     [gt(occluded=True), gt(occluded=False)], [gt(occluded=True), gt(occluded=None)], 1),
    ("attr.missing", "attributes: {truncation: {type: float, required: [person]}}",
     [gt(truncation=0.5), gt(label="car", truncation=None)],
     [gt(truncation=float("nan")), gt(label="car", truncation=None)], 1),
    ("attr.missing", "attributes: {occluded: {type: bool, required: true}}",
     [gt(occluded=True)], [gt(), gt()], 2),  # column absent
    ("attr.type", "attributes: {count: {type: int}}",
     [gt(count=1.0), gt(count=3.0)], [gt(count=1.5), gt(count=2.0)], 1),
    ("attr.type", "attributes: {occluded: bool}",
     [gt(occluded="true"), gt(occluded="False")], [gt(occluded="yes"), gt(occluded="true")], 1),
    ("attr.type", "attributes: {weight: float}",
     [gt(weight=1), gt(weight=2)], [gt(weight="heavy"), gt(weight="2.5")], 1),
    ("attr.type", "attributes: {note: string}",
     [gt(note="x")], [gt(note=3)], 1),
    ("attr.range", "attributes: {truncation: {type: float, min: 0, max: 1}}",
     [gt(truncation=0.0), gt(truncation=1.0)], [gt(truncation=-0.1), gt(truncation=1.5), gt(truncation=0.5)], 2),
    ("attr.range", "attributes: {count: {type: int, min: 1}}",
     [gt(count=1), gt(count=7)], [gt(count=0), gt(count=7)], 1),
    ("attr.enum", "attributes: {pose: {type: enum, values: [front, back]}}",
     [gt(pose="front"), gt(pose="back")], [gt(pose="side"), gt(pose="front")], 1),
    ("attr.enum", "attributes: {level: {type: enum, values: [0, 1, 2]}}",
     [gt(level=0), gt(level=2)], [gt(level=3), gt(level=1)], 1),
    ("attr.pattern", r"attributes: {plate: {type: string, pattern: '[A-Z]{2}-\d+'}}",
     [gt(plate="AB-12")], [gt(plate="AB-12x"), gt(plate="ab-12"), gt(plate="CD-1")], 2),
    ("attr.not-applicable", "attributes: {plate: {type: string, classes: [car]}}",
     [gt(label="car", plate="X"), gt(plate=None)], [gt(label="car", plate="X"), gt(plate="Y")], 1),
    ("attr.unknown", "attributes: {occluded: bool}",
     [gt(occluded=True)], [gt(occluded=True, colour="red")], 1),
    ("box.missing", "boxes: {required: true}",
     [gt(), gt(label="car")], [gt(), gt(label="car", box=None)], 1),
    ("box.not-finite", "boxes: {}",
     [gt()], [gt(box=(np.nan, 1, 2, 3)), gt(box=(0, 0, np.inf, 3)), gt()], 2),
    ("box.non-positive", "boxes: {}",
     [gt(box=(0, 0, 0.5, 0.5))], [gt(box=(0, 0, 0, 5)), gt(box=(0, 0, 5, -1)), gt()], 2),
    ("box.outside-image", "boxes: {inside_image: true, tolerance: 1}",
     [gt(box=(-1, 0, 10, 10)), gt(box=(90, 90, 11, 11))],
     [gt(box=(-1.5, 0, 10, 10)), gt(box=(90, 90, 12, 10)), gt(box=(0, 0, 100, 100))], 2),
    ("box.no-image-size", "boxes: {inside_image: true}",
     [gt()], [gt(width=None, height=None), gt()], 1),
    ("box.too-small", "boxes: {min_width: 2, min_height: 3}",
     [gt(box=(0, 0, 2, 3))], [gt(box=(0, 0, 1.9, 3)), gt(box=(0, 0, 2, 2.9)), gt(box=(0, 0, 2, 3))], 2),
    ("box.too-small", "boxes: {min_relative_width: 0.1}",
     [gt(box=(0, 0, 10, 1))], [gt(box=(0, 0, 9, 50)), gt(box=(0, 0, 10, 1))], 1),
    ("box.too-small", "classes: [person, {name: car, boxes: {min_width: 10}}]\nboxes: {min_width: 2}",
     [gt(box=(0, 0, 5, 5)), gt(label="car", box=(0, 0, 10, 5))],
     [gt(box=(0, 0, 5, 5)), gt(label="car", box=(0, 0, 9, 5)), gt(box=(0, 0, 1, 5))], 2),
    ("box.too-small", "boxes: {min_height: 4, classes: {car: {min_height: 1}}}",
     [gt(box=(0, 0, 5, 4)), gt(label="car", box=(0, 0, 5, 1))], [gt(box=(0, 0, 5, 3)), gt(label="car", box=(0, 0, 5, 1))], 1),
    ("box.aspect-ratio", "boxes: {max_aspect_ratio: 5}",
     [gt(box=(0, 0, 50, 10)), gt(box=(0, 0, 10, 50))], [gt(box=(0, 0, 51, 10)), gt(box=(0, 0, 10, 60)), gt()], 2),
    ("sample.missing-value", "samples: {required_columns: [split]}",
     [gt(), gt(sample="b.jpg", split="val")], [gt(), gt(sample="b.jpg", split=None), gt(sample="b.jpg", split=None)], 1),
    ("sample.missing-value", "samples: {required_columns: [difficulty]}",
     [gt(difficulty="easy")], [gt(), gt(sample="b.jpg")], 2),  # column absent: one per sample
    ("sample.value", "samples: {allowed_values: {split: [train, val]}}",
     [gt(), gt(sample="b.jpg", split="val")], [gt(), gt(sample="b.jpg", split="test")], 1),
    ("sample.empty", "samples: {allow_empty: false}",
     [gt(), gt(sample="b.jpg")], [gt(), gt(sample="b.jpg", label=None, box=None)], 1),
    ("sample.too-few-labels", "samples: {min_labels: 2}",
     [gt(), gt(), gt(sample="e.jpg", label=None, box=None)], [gt(), gt(), gt(sample="b.jpg")], 1),
    ("sample.too-many-labels", "samples: {max_labels: 2}",
     [gt(), gt()], [gt(), gt(), gt(), gt(sample="b.jpg")], 1),
    ("dataset.min-examples", "classes: [person, car]\ndataset: {min_examples: 2}",
     [gt(), gt(), gt(label="car"), gt(label="car")], [gt(), gt(), gt(label="car")], 1),
    ("dataset.min-examples", "classes: [{name: person, min_examples: 3}, car]",
     [gt(), gt(), gt()], [gt(), gt(), gt(label="car")], 1),
    ("dataset.min-examples-per-split", "classes: [person]\ndataset: {min_examples_per_split: 2}",
     [gt(), gt(), gt(split="val"), gt(split="val")], [gt(), gt(), gt(split="val")], 1),
    ("dataset.imbalance", "dataset: {max_imbalance: 2}",
     [gt(), gt(), gt(label="car")], [gt(), gt(), gt(), gt(label="car")], 1),
    ("dataset.duplicate-label", "dataset: {duplicate_iou: 0.8}",
     [gt(box=(0, 0, 10, 10)), gt(box=(2, 0, 10, 10)), gt(label="car", box=(0, 0, 10, 10)),
      gt(sample="b.jpg", box=(0, 0, 10, 10))],
     [gt(box=(0, 0, 10, 10)), gt(box=(1, 0, 10, 10)), gt(box=(0, 0, 10, 10)), gt(label="car", box=(0, 0, 10, 10))], 2),
    ("dataset.duplicate-label-id", "dataset: {unique_label_ids: true}",
     [gt(label_id=1), gt(label_id=2), pred(label_id=1)], [gt(label_id=1), gt(label_id=1), gt(label_id=1), pred(label_id=2)], 2),
    ("dataset.split-overlap", "dataset: {split_overlap: true}",
     [gt(), gt(sample="b.jpg", split="val")], [gt(), gt(split="val"), gt(sample="b.jpg", split="val")], 1),
    ("dataset.split-overlap", "dataset: {split_overlap: {key: basename}}",
     [gt(sample="train/a.jpg"), gt(sample="val/b.jpg", split="val")],
     [gt(sample="train/a.jpg"), gt(sample="val/a.jpg", split="val")], 1),
    ("pred.score-missing", "predictions: {score_required: true}",
     [gt(), pred()], [gt(), pred(score=None), pred()], 1),
    ("pred.score-range", "predictions: {}",
     [pred(score=0.0), pred(score=1.0)], [pred(score=1.2), pred(score=-0.1), pred(score=float("nan")), pred()], 3),
    ("pred.class-unknown", "classes: [person]",
     [gt(), pred()], [gt(), pred(label="dog")], 1),
    ("pred.box-invalid", "predictions: {}",
     [pred()], [pred(box=(0, 0, 0, 5)), pred(box=(np.nan, 0, 5, 5)), pred()], 2),
]


def test_every_rule_has_a_case():
    assert {c[0] for c in CASES} == set(S.RULES)


@pytest.mark.parametrize("rule, text, good, bad, count", CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_rule_passes_and_fails(rule, text, good, bad, count):
    assert rule not in found(good, text)
    assert found(bad, text).get(rule) == count


def test_rule_ids_are_stable_and_have_valid_defaults():
    for rule, (sev, scope, meaning) in S.RULES.items():
        assert rule.split(".")[0] in ("class", "attr", "box", "sample", "dataset", "pred")
        assert sev in (S.ERROR, S.WARNING) and scope in ("label", "sample", "dataset") and meaning
    for rule in ("box.outside-image", "attr.missing", "class.unknown"):
        assert S.RULES[rule][0] == S.ERROR


# --------------------------------------------------------------------------- results

def test_violation_rows_name_sample_label_column_value_and_message():
    rows = [gt(label_id=7, occluded=None), gt(sample="b.jpg", label_id=8, box=(95, 0, 10, 10), occluded=True)]
    r = S.find_violations(make(rows), schema("""
        attributes: {occluded: {type: bool, required: true}}
        boxes: {inside_image: true}
    """))
    rep = r.report_table().to_pylist()
    assert list(r.report_table().column_names) == list(S.REPORT_COLUMNS)
    assert rep == [
        {"rule": "attr.missing", "severity": "error", "sample_id": "a.jpg", "label_id": 7, "column": "occluded",
         "value": None, "message": "required attribute 'occluded' is missing on class 'person'"},
        {"rule": "box.outside-image", "severity": "error", "sample_id": "b.jpg", "label_id": 8, "column": "bbox",
         "value": "[95, 0, 10, 10]", "message": "box [95, 0, 10, 10] leaves the 100x100 image"},
    ]
    assert r.errors == 2 and r.warnings == 0 and r.failed()


def test_severity_override_warning_and_off():
    rows = [gt(box=(95, 0, 10, 10))]
    r = S.find_violations(make(rows), schema("boxes: {inside_image: true}\nseverity: {box.outside-image: warning}"))
    assert (r.errors, r.warnings) == (0, 1)
    assert not r.failed() and r.failed(strict=True)
    r = S.find_violations(make(rows), schema("boxes: {inside_image: true}\nseverity: {box.outside-image: 'off'}"))
    assert r.violations.num_rows == 0
    assert r.violations_column().to_pylist() == [[]]


def test_annotate_marks_label_rows_and_whole_samples_but_not_dataset_rules():
    rows = [gt(label_id=1), gt(label_id=2, box=(0, 0, 0, 1)), gt(sample="b.jpg", split="test", label_id=3),
            gt(sample="b.jpg", split="test", label_id=4)]
    s = schema("""
        classes: [person]
        samples: {allowed_values: {split: [train, val]}}
        dataset: {min_examples: 10}
    """)
    t = make(rows)
    r = S.find_violations(t, s)
    out = r.apply(t, annotate=True)
    assert out.column_names[-1] == T.VIOLATIONS
    assert out.column(T.VIOLATIONS).to_pylist() == [
        [], ["box.non-positive"], ["sample.value"], ["sample.value"]]
    # the sample-level violation is counted once, the dataset-level one has no row
    assert r.summary()["rules"][1]["rule"] == "sample.value" and r.summary()["rules"][1]["count"] == 1
    ds = [v for v in r.report_table().to_pylist() if v["rule"] == "dataset.min-examples"]
    assert ds == [{"rule": "dataset.min-examples", "severity": "error", "sample_id": None, "label_id": None,
                   "column": "label", "value": "person", "message": "class 'person' has 4 labels, fewer than 10"}]
    assert r.apply(t, keep="valid").num_rows == 1
    assert r.apply(t, keep="invalid").column(T.LABEL_ID).to_pylist() == [2, 3, 4]


def test_keep_follows_strict_for_warnings():
    rows = [gt(), gt(box=(0, 0, 60, 5))]
    t = make(rows)
    r = S.find_violations(t, schema("boxes: {max_aspect_ratio: 4}"))
    assert r.apply(t, keep="valid").num_rows == 2
    assert r.apply(t, keep="valid", strict=True).num_rows == 1


def test_annotate_replaces_an_existing_violations_column():
    t = make([gt(), gt(box=(0, 0, 0, 1))])
    r = S.find_violations(t, schema("boxes: {}"))
    once = r.apply(t, annotate=True)
    twice = S.find_violations(once, schema("boxes: {}")).apply(once, annotate=True)
    assert twice.column_names.count(T.VIOLATIONS) == 1
    assert twice.column(T.VIOLATIONS).to_pylist() == [[], ["box.non-positive"]]
    # the violations column itself is not an unknown attribute
    assert "attr.unknown" not in found([gt(violations=["x"])], "attributes: {}")


def test_attributes_apply_to_ground_truth_labels_only():
    rows = [gt(occluded=True), gt(label=None, box=None), pred(), pred(occluded=None)]
    assert found(rows, "attributes: {occluded: {type: bool, required: true}}") == {}


def test_summary_examples_and_counts():
    rows = [gt(label=f"x{i}", label_id=i) for i in range(5)]
    doc = S.find_violations(make(rows), schema("classes: [person]")).summary(examples=2)
    (rule,) = doc["rules"]
    assert rule["rule"] == "class.unknown" and rule["count"] == 5 and rule["severity"] == "error"
    assert [e["label_id"] for e in rule["examples"]] == [0, 1]
    assert doc["errors"] == 5 and doc["passed"] is False and doc["labels"] == 5


def test_empty_table_and_no_sections_pass():
    r = S.find_violations(T.empty_table(), schema("version: 1"))
    assert r.violations.num_rows == 0 and not r.failed()
    assert r.violations_column().to_pylist() == []


def _brute_duplicates(boxes, samples, labels, thr):
    found = set()
    for j in range(len(boxes)):
        for i in range(j):
            if samples[i] != samples[j] or labels[i] != labels[j]:
                continue
            a, b = boxes[i], boxes[j]
            iw = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
            ih = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
            inter = iw * ih
            if inter / (a[2] * a[3] + b[2] * b[3] - inter) > thr:
                found.add(j)
    return found


@pytest.mark.parametrize("seed", range(5))
def test_duplicate_check_matches_a_pairwise_loop(seed):
    rng = np.random.default_rng(seed)
    n = 60
    samples = rng.choice(["a", "b", "c"], n)
    labels = rng.choice(["p", "q"], n)
    xy = rng.integers(0, 4, (n, 2)).astype(float)
    wh = rng.integers(5, 8, (n, 2)).astype(float)
    boxes = np.hstack([xy, wh])
    t = T.from_columns({"sample_id": samples.tolist(), "source": ["gt"] * n, "label": labels.tolist(), "bbox": boxes})
    ctx = Context(t, S.Schema())
    for thr in (0.3, 0.6):
        _, j, _ = duplicate_pairs(ctx, thr, chunk_pairs=7)   # tiny chunks exercise the chunking
        r = S.find_violations(t, S.Schema(duplicate_iou=thr))
        rows = r.violations.column("row").to_pylist()
        assert set(rows) == set(j.tolist()) == _brute_duplicates(boxes, samples, labels, thr)


# --------------------------------------------------------------------------- schema errors

def err(text: str) -> str:
    with pytest.raises(MlcycleError) as info:
        S.loads(textwrap.dedent(text).lstrip("\n"), "s.yaml")
    return info.value.message + (" | hint: " + info.value.hint if info.value.hint else "")


@pytest.mark.parametrize("text, expected", [
    ("version: 1\nclases: [a]\n", "s.yaml:2: clases: unknown key | hint: did you mean 'classes'?"),
    ("boxes:\n  inside_image: true\n  min_widht: 3\n", "s.yaml:3: boxes.min_widht: unknown key"),
    ("boxes:\n  tolerance: lots\n", "s.yaml:2: boxes.tolerance: expected a number, got a string ('lots')"),
    ("boxes:\n  inside_image: 1\n", "s.yaml:2: boxes.inside_image: expected true or false, got a number (1)"),
    ("attributes:\n  plate:\n    type: string\n    pattern: '[A-Z'\n",
     "s.yaml:4: attributes.plate.pattern: bad regular expression"),
    ("attributes:\n  plate:\n    type: string\n    pattern: '(?=A)A'\n",
     "s.yaml:4: attributes.plate.pattern: regular expression not supported"),
    ("attributes:\n  x:\n    type: decimal\n", "s.yaml:3: attributes.x.type: unknown type 'decimal'"),
    ("attributes:\n  x:\n    required: true\n", "s.yaml:2: attributes.x: missing 'type'"),
    ("attributes:\n  x: {type: enum}\n", "s.yaml:2: attributes.x: an enum needs 'values'"),
    ("attributes:\n  x: {type: bool, min: 0}\n", "s.yaml:2: attributes.x.min: 'min' does not apply to type 'bool'"),
    ("attributes:\n  x:\n    type: int\n    min: 5\n    max: 1\n", "s.yaml:5: attributes.x.max: max (1) is below min (5)"),
    ("classes: [person]\nattributes:\n  x:\n    type: bool\n    classes: [persn]\n",
     "s.yaml:5: attributes.x.classes: 'persn' is not a class in 'classes' | hint: did you mean 'person'?"),
    ("attributes:\n  bbox: bool\n", "s.yaml:2: attributes.bbox: 'bbox' is a core column"),
    ("classes:\n  - person\n  - name: car\n    synonyms: [person]\n",
     "s.yaml:3: classes[1]: 'person' is already used by class 'person' (line 2)"),
    ("classes:\n  - {name: a, id: 1}\n  - {name: b, id: 1}\n", "s.yaml:3: classes[1].id: id 1 is already used on line 2"),
    ("classes:\n  - {id: 1}\n", "s.yaml:2: classes[0]: a class needs a non-empty 'name'"),
    ("classes: person\n", "s.yaml:1: classes: expected a list of class names or mappings"),
    ("severity:\n  box.outside: warning\n",
     "s.yaml:2: severity.box.outside: unknown rule id | hint: did you mean 'box.outside-image'?"),
    ("severity:\n  box.too-small: fatal\n", "s.yaml:2: severity.box.too-small: expected one of error, warning, off"),
    ("boxes: {}\nboxes: {}\n", "s.yaml:2: key 'boxes' appears twice (first on line 1)"),
    ("boxes:\n  min_width: 1\n   tolerance: 2\n", "s.yaml:3:"),
    ("version: 2\n", "s.yaml:1: version: unsupported schema version 2"),
    ("", "s.yaml: the schema is empty"),
    ("- a\n- b\n", "s.yaml:1: expected a mapping (key: value lines), got a list"),
    ("dataset:\n  duplicate_iou: 1.5\n", "s.yaml:2: dataset.duplicate_iou: must be <= 1, got 1.5"),
    ("boxes:\n  max_aspect_ratio: 0.5\n", "s.yaml:2: boxes.max_aspect_ratio: the ratio of the longer to the shorter side is >= 1"),
    ("boxes:\n  classes:\n    car: {min_width: 1}\nclasses: [person]\n",
     "s.yaml:3: boxes.classes.car: 'car' is not a class in 'classes'"),
    ("samples:\n  min_labels: 3\n  max_labels: 2\n", "s.yaml:3: samples.max_labels: max_labels (2) is below min_labels (3)"),
    ("dataset:\n  split_overlap: {key: path}\n", "s.yaml:2: dataset.split_overlap.key: expected sample_id or basename"),
])
def test_malformed_schema_is_reported_with_key_and_line(text, expected):
    assert err(text).startswith(expected)


def test_yaml_syntax_error_names_line_and_column():
    msg = err("classes: [a, b\nboxes: {}\n")
    assert msg.startswith("s.yaml:2:") and "not valid YAML" in msg


def test_load_missing_file_and_folder(tmp_path):
    with pytest.raises(MlcycleError, match="no such schema file"):
        S.load(tmp_path / "nope.yaml")
    with pytest.raises(MlcycleError, match="is a folder"):
        S.load(tmp_path)


def test_yaml_is_loaded_safely(tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text("description: !!python/object/apply:os.system ['echo hi']\n")
    with pytest.raises(MlcycleError, match="s.yaml:1"):
        S.load(p)


def test_full_schema_model():
    s = schema("""
        version: 1
        classes:
          - person
          - name: car
            id: 3
            supercategory: vehicle
            synonyms: [automobile]
            min_examples: 5
            boxes: {min_width: 10}
        attributes:
          occluded: bool
          truncation: {type: float, min: 0, max: 1, required: [person], classes: [person, car]}
        boxes: {inside_image: true, tolerance: 2, min_width: 1, max_aspect_ratio: 8}
        samples: {required_columns: [split], allowed_values: {split: [train, val]}, allow_empty: false}
        dataset: {min_examples: 2, duplicate_iou: 0.9, split_overlap: true}
        severity: {box.too-small: error}
    """)
    assert s.class_names() == ["person", "car"]
    assert s.classes[1] == S.ClassSpec("car", 3, "vehicle", ("automobile",), 5)
    occ, trunc = s.attributes
    assert occ.type == "bool" and occ.required is False and occ.classes is None
    assert trunc.required == frozenset({"person"}) and trunc.classes == frozenset({"person", "car"})
    assert s.box_overrides["car"] == S.BoxRules(min_width=10, max_aspect_ratio=8)
    assert s.tolerance == 2 and s.inside_image and not s.allow_empty
    assert s.severity_of("box.too-small") == "error" and s.severity_of("box.aspect-ratio") == "warning"


def test_shipped_sample_schema_is_valid():
    from pathlib import Path

    import mlcycle

    s = S.load(Path(mlcycle.__file__).parent / "data" / "sample" / "schema.yaml")
    assert s.class_names() == ["circle", "square", "triangle"]
    assert {a.name for a in s.attributes} == {"occluded", "truncated"}


def test_the_full_example_in_the_docs_is_a_valid_schema():
    from pathlib import Path

    doc = (Path(__file__).resolve().parent.parent / "docs" / "schema.md").read_text()
    block = doc.split("A full example, with every key:\n\n```yaml\n", 1)[1].split("```", 1)[0]
    s = S.loads(block, "docs/schema.md")
    assert s.class_names() == ["person", "car", "bicycle"]
    assert s.severity_of("attr.unknown") == "off" and s.severity_of("box.too-small") == "error"
    assert s.box_overrides["person"].min_height == 16 and s.box_overrides["car"].min_width == 8
    # every rule id in the docs table is a rule, and every rule is documented
    documented = {line.split("`")[1] for line in doc.splitlines() if line.startswith("| `")}
    assert documented == set(S.RULES)
    for rule, (sev, scope, _) in S.RULES.items():
        assert f"| `{rule}` | {sev} | {scope} |" in doc


from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_ANY_ROW = st.fixed_dictionaries({
    "sample_id": st.sampled_from(["a", "b", "c"]),
    "source": st.sampled_from(["gt", "gt", "pred"]),
    "label": st.one_of(st.none(), st.sampled_from(["person", "car", "automobile", "dog"])),
    "bbox": st.one_of(st.none(), st.lists(st.one_of(st.floats(-10, 700), st.just(float("nan"))), min_size=4, max_size=4)),
    "width": st.one_of(st.none(), st.just(640)),
    "height": st.one_of(st.none(), st.just(480)),
    "split": st.one_of(st.none(), st.sampled_from(["train", "val", "other"])),
    "score": st.one_of(st.none(), st.floats(-1, 2)),
    "label_id": st.one_of(st.none(), st.integers(0, 4)),
    "category_id": st.one_of(st.none(), st.integers(1, 4)),
    "truncation": st.one_of(st.none(), st.floats(-1, 2)),
    "pose": st.one_of(st.none(), st.sampled_from(["front", "up"])),
    "plate": st.one_of(st.none(), st.sampled_from(["A-1", "bad"])),
    "occluded": st.one_of(st.none(), st.booleans()),
})


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_ANY_ROW, min_size=1, max_size=15))
def test_check_invariants_on_random_tables(rows):
    from pathlib import Path

    doc = (Path(__file__).resolve().parent.parent / "docs" / "schema.md").read_text()
    spec = S.loads(doc.split("A full example, with every key:\n\n```yaml\n", 1)[1].split("```", 1)[0])
    t = make(rows)
    r = S.find_violations(t, spec)
    rep = r.violations.to_pylist()
    for v in rep:
        assert v["rule"] in S.RULES and v["severity"] == spec.severity_of(v["rule"]) and v["message"]
        assert -1 <= v["row"] < t.num_rows
        assert (v["row"] == -1) == (S.RULES[v["rule"]][1] == "dataset")
    ann = r.violations_column().to_pylist()
    assert len(ann) == t.num_rows
    label_rules = [(v["row"], v["rule"]) for v in rep if S.RULES[v["rule"]][1] == "label"]
    assert sorted(label_rules) == sorted((i, x) for i, xs in enumerate(ann) for x in xs if S.RULES[x][1] == "label")
    for strict in (False, True):
        valid = r.apply(t, keep="valid", strict=strict).num_rows
        assert valid + r.apply(t, keep="invalid", strict=strict).num_rows == t.num_rows
    assert r.failed() == any(v["severity"] == "error" for v in rep)


def test_one_function_per_rule_and_rules_that_are_off_are_not_run(monkeypatch):
    assert set(S.RULE_FUNCS) == set(S.RULES)

    def boom(ctx):
        raise AssertionError("an 'off' rule was computed")
        yield  # pragma: no cover

    monkeypatch.setitem(S.RULE_FUNCS, "dataset.duplicate-label", boom)
    r = S.find_violations(make([gt(), gt()]), schema("dataset: {duplicate_iou: 0.5}\nseverity: {dataset.duplicate-label: off}"))
    assert r.violations.num_rows == 0


# --------------------------------------------------------------------------- the public entry point

def test_check_returns_a_result_with_the_table_to_pass_on_and_the_summary(tmp_path):
    from mlcycle.results import Result

    t = make([gt(label_id=1), gt(label="dog", label_id=2)])
    text = "classes: [person]\n"
    r = S.check(t, schema(text), annotate=True, keep="valid", examples=1)
    assert isinstance(r, Result) and r.warnings == ()
    assert r.table.column("label_id").to_pylist() == [1]
    assert r.table.column(T.VIOLATIONS).to_pylist() == [[]]
    assert r.summary == S.find_violations(t, schema(text)).summary(examples=1)
    assert r.summary["passed"] is False and r.summary["errors"] == 1
    p = tmp_path / "s.yaml"
    p.write_text(text)
    assert S.check(t, p).summary["schema"] == str(p) and S.check(t, p).table.num_rows == 2


@pytest.mark.parametrize("kw, option", [({"keep": "some"}, "keep"), ({"examples": -1}, "examples")])
def test_check_options_are_checked_and_named_without_flags(kw, option):
    from mlcycle.errors import OptionError

    with pytest.raises(OptionError) as info:
        S.check(make([gt()]), schema("version: 1"), **kw)
    assert info.value.option == option and "--" not in info.value.message


def test_import_mlcycle_schema_is_light():
    import subprocess
    import sys

    code = ("import sys, mlcycle.schema as s\n"
            "heavy = [m for m in ('numpy', 'pyarrow', 'yaml', 'rich', 'typer') if m in sys.modules]\n"
            "assert not heavy, heavy\n"
            "assert all(hasattr(s, n) for n in s.__all__)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
