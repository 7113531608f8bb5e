"""mlcycle.stats: the numbers on small hand-made tables, batching, comparison, describe, plots."""

from __future__ import annotations

import json
import math

import numpy as np
import pyarrow as pa
import pytest

from mlcycle import io, stats
from mlcycle import table as T

NAN4 = [np.nan] * 4


def small_table(**extra):
    """3 samples: a has cat, dog, cat; b has cat; c is a sample row (no labels)."""
    cols = {
        T.SAMPLE_ID: ["a", "a", "a", "b", "c"],
        T.SOURCE: ["gt"] * 5,
        T.LABEL: ["cat", "dog", "cat", "cat", None],
        T.BBOX: np.array([[0, 0, 10, 10], [10, 10, 50, 50], [90, 90, 10, 10], [20, 20, 100, 100], NAN4]),
        T.WIDTH: [100, 100, 100, 200, 100],
        T.HEIGHT: [100, 100, 100, 200, 100],
        T.SPLIT: ["train", "train", "train", "val", "val"],
    }
    cols.update(extra)
    return T.from_columns(cols)


def doc_of(table, **kw):
    return stats.compute([table], **kw)


def by_label(rows, key="label"):
    return {r[key]: r for r in rows}


# --------------------------------------------------------------------------- counts

def test_counts_samples_labels_and_sample_rows():
    d = doc_of(small_table())
    c = d["counts"]
    assert (c["rows"], c["samples"], c["labels"], c["samples_without_labels"], c["classes"]) == (5, 3, 4, 1, 2)
    cls = by_label(c["per_class"])
    assert [r["label"] for r in c["per_class"]] == ["cat", "dog"]  # most labels first
    assert (cls["cat"]["labels"], cls["cat"]["samples"], cls["cat"]["share"]) == (3, 2, 0.75)
    assert cls["cat"]["sample_share"] == pytest.approx(2 / 3)
    assert (cls["dog"]["labels"], cls["dog"]["samples"], cls["dog"]["share"]) == (1, 1, 0.25)
    assert c["per_split"] == [
        {"split": "train", "samples": 1, "labels": 3, "samples_without_labels": 0},
        {"split": "val", "samples": 2, "labels": 1, "samples_without_labels": 1},
    ]
    assert c["per_source"] == [{"source": "gt", "samples": 3, "labels": 4, "samples_without_labels": 1}]


def test_only_sample_rows_count_as_samples_not_labels():
    t = T.from_columns({T.SAMPLE_ID: ["x", "y"], T.SOURCE: ["gt", "gt"], T.LABEL: [None, None]})
    d = doc_of(t)
    assert (d["counts"]["samples"], d["counts"]["labels"], d["counts"]["samples_without_labels"]) == (2, 0, 2)
    assert d["counts"]["per_class"] == [] and d["boxes"]["count"] == 0
    assert d["balance"]["imbalance_ratio"] is None
    assert d["per_sample"]["labels"]["histogram"] == [{"value": 0, "samples": 2}]


def test_per_source_counts_samples_per_source():
    t = T.from_columns({
        T.SAMPLE_ID: ["a", "a", "b", "a", "b"],
        T.SOURCE: ["gt", "gt", "gt", "pred", "pred"],
        T.LABEL: ["cat", "dog", None, "cat", None],
    })
    d = doc_of(t)
    src = by_label(d["counts"]["per_source"], "source")
    assert src["gt"] == {"source": "gt", "samples": 2, "labels": 2, "samples_without_labels": 1}
    assert src["pred"] == {"source": "pred", "samples": 2, "labels": 1, "samples_without_labels": 1}
    assert [r["source"] for r in d["counts"]["per_source"]] == ["gt", "pred"]
    only_pred = doc_of(t, sources=["pred"])
    assert only_pred["counts"]["labels"] == 1 and only_pred["input"]["rows_used"] == 2


# --------------------------------------------------------------------------- boxes

def test_box_sizes_buckets_relative_size_grid_and_border():
    d = doc_of(small_table())
    b = d["boxes"]
    assert b["count"] == 4 and b["labels_without_box"] == 0
    # areas 100, 2500, 100, 10000 -> small, medium, small, large
    assert [s["boxes"] for s in b["size_buckets"]] == [2, 1, 1]
    assert [s["bucket"] for s in b["size_buckets"]] == ["small", "medium", "large"]
    assert b["size_buckets"][0]["max_area"] == 32 ** 2 and b["size_buckets"][2]["max_area"] is None
    # relative sizes sqrt(100/10000)=0.1, 0.5, 0.1, sqrt(10000/40000)=0.5
    hist = {(h["min"], h["max"]): h["boxes"] for h in b["relative_size_histogram"]}
    assert hist[(0.1, 0.2)] == 2 and hist[(0.5, 0.75)] == 2
    assert b["relative_size"]["p50"] == pytest.approx(0.3)
    assert b["width"]["min"] == 10 and b["width"]["max"] == 100 and b["width"]["p50"] == 30
    assert b["aspect_ratio"]["p50"] == 1.0
    # centres: (5,5)/100 -> cell (0,0); 35/100 -> (1,1); 95/100 -> (4,4); 70/200 -> (1,1)
    grid = b["centre_grid"]["counts"]
    assert grid[0][0] == 1 and grid[1][1] == 2 and grid[4][4] == 1 and sum(map(sum, grid)) == 4
    # x=0 touches the left edge; 90+10 reaches the right edge of a 100 px image
    assert b["touching_border"] == 2 and b["outside_image"] == 0 and b["degenerate"] == 0
    per_class = by_label(b["per_class"])
    assert (per_class["cat"]["small"], per_class["cat"]["medium"], per_class["cat"]["large"]) == (2, 0, 1)


def test_area_column_wins_over_box_area_where_present():
    t = small_table(**{T.AREA: [2000.0, None, None, None, None]})
    b = doc_of(t)["boxes"]
    # first box is 10x10 (small by w*h) but its stated area 2000 makes it medium
    assert [s["boxes"] for s in b["size_buckets"]] == [1, 2, 1]
    assert b["area_from_column"] == 1


def test_boxes_without_image_size_and_outside_and_degenerate():
    t = T.from_columns({
        T.SAMPLE_ID: ["a", "a", "b"], T.SOURCE: ["gt"] * 3, T.LABEL: ["x", "x", "x"],
        T.BBOX: np.array([[-5, 10, 20, 20], [10, 10, 0, 5], [1, 1, 5, 5]]),
        T.WIDTH: [50, 50, None], T.HEIGHT: [50, 50, None],
    })
    b = doc_of(t)["boxes"]
    assert b["outside_image"] == 1 and b["degenerate"] == 1
    assert b["without_image_size"] == 1 and b["relative_size"]["count"] == 2


def test_image_level_labels_have_no_box():
    t = T.from_columns({T.SAMPLE_ID: ["a", "b"], T.SOURCE: ["gt", "gt"], T.LABEL: ["cat", "dog"]})
    d = doc_of(t)
    assert d["counts"]["labels"] == 2 and d["boxes"]["count"] == 0 and d["boxes"]["labels_without_box"] == 2


# --------------------------------------------------------------------------- per sample

def test_labels_and_classes_per_sample_and_cooccurrence():
    t = T.from_columns({
        T.SAMPLE_ID: ["s1", "s1", "s2", "s2", "s2", "s2", "s3", "s4"],
        T.SOURCE: ["gt"] * 8,
        T.LABEL: ["b", "a", "a", "b", "c", "a", "a", None],
    })
    ps = doc_of(t)["per_sample"]
    assert ps["labels"]["histogram"] == [{"value": 0, "samples": 1}, {"value": 1, "samples": 1},
                                         {"value": 2, "samples": 1}, {"value": 4, "samples": 1}]
    assert ps["labels"]["mean"] == 7 / 4 and ps["labels"]["max"] == 4
    assert ps["classes"]["histogram"] == [{"value": 0, "samples": 1}, {"value": 1, "samples": 1},
                                          {"value": 2, "samples": 1}, {"value": 3, "samples": 1}]
    assert ps["cooccurrence"] == [{"a": "a", "b": "b", "samples": 2}, {"a": "a", "b": "c", "samples": 1},
                                  {"a": "b", "b": "c", "samples": 1}]


# --------------------------------------------------------------------------- attributes

def test_attributes_summarised_by_type_and_per_class():
    t = small_table(
        occluded=[True, False, None, True, None],
        annotator=["x", "y", "x", "y", None],
        conf=[0.5, 1.0, 2.0, 3.0, None],
        tags=pa.array([["a", "b"], [], None, ["a"], None], pa.list_(pa.string())),
        embedding=pa.array([[0.1, 0.2], [0.3, 0.4], [0.5, 0.6], None, None], pa.list_(pa.float32())),
    )
    attrs = {a["name"]: a for a in doc_of(t)["attributes"]}
    assert set(attrs) == {"occluded", "annotator", "conf", "tags", "embedding"}
    occ = attrs["occluded"]  # over the 4 label rows; the sample row does not count
    assert (occ["type"], occ["rows"], occ["true"], occ["false"], occ["missing"]) == ("bool", 4, 2, 1, 1)
    assert occ["missing_share"] == 0.25
    occ_cls = by_label(occ["per_class"])
    assert (occ_cls["cat"]["true"], occ_cls["cat"]["missing"], occ_cls["dog"]["false"]) == (2, 1, 1)
    ann = attrs["annotator"]
    assert ann["type"] == "categorical" and ann["distinct"] == 2 and ann["missing"] == 0
    assert {v["value"]: v["count"] for v in ann["values"]} == {"x": 2, "y": 2}
    assert {v["value"]: v["count"] for v in by_label(ann["per_class"])["cat"]["values"]} == {"x": 2, "y": 1}
    conf = attrs["conf"]
    assert conf["type"] == "number" and conf["quantiles"]["p50"] == 1.5 and conf["quantiles"]["mean"] == 1.625
    assert by_label(conf["per_class"])["cat"] == {"label": "cat", "count": 3, "missing": 0,
                                                   "mean": pytest.approx(11 / 6), "min": 0.5, "max": 3.0}
    tags = attrs["tags"]
    assert tags["type"] == "categorical" and tags["list"] is True and tags["missing"] == 1
    assert {v["value"]: v["count"] for v in tags["values"]} == {"a": 2, "b": 1}
    emb = attrs["embedding"]
    assert emb["type"] == "list" and emb["length"]["p50"] == 2 and emb["missing"] == 1


def test_high_cardinality_attribute_is_flagged_not_listed(monkeypatch):
    from mlcycle.stats import attributes

    monkeypatch.setattr(attributes, "MAX_DISTINCT", 5)
    n = 20
    t = T.from_columns({T.SAMPLE_ID: [f"s{i}" for i in range(n)], T.SOURCE: ["gt"] * n, T.LABEL: ["x"] * n,
                        "url": [f"http://x/{i}" for i in range(n)]})
    a = doc_of(t)["attributes"][0]
    assert a["high_cardinality"] is True and a["values"] == [] and a["distinct"] is None


def test_added_columns_are_not_attributes():
    t = small_table(**{T.HARD_SCORE: [0.9, None, None, None, None], T.HARD_REASON: ["duplicate", None, None, None, None]})
    d = doc_of(t)
    assert d["attributes"] == []
    assert d["hard"]["rows"] == 1


# --------------------------------------------------------------------------- balance

def test_balance_imbalance_and_effective_classes():
    bal = doc_of(small_table())["balance"]
    assert bal["imbalance_ratio"] == 3.0
    assert bal["largest"] == {"label": "cat", "labels": 3} and bal["smallest"] == {"label": "dog", "labels": 1}
    h = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    assert bal["entropy"] == pytest.approx(h) and bal["effective_classes"] == pytest.approx(math.exp(h))
    assert bal["normalized_entropy"] == pytest.approx(h / math.log(2))


def test_balance_of_uniform_classes():
    t = T.from_columns({T.SAMPLE_ID: list("abcd"), T.SOURCE: ["gt"] * 4, T.LABEL: ["w", "x", "y", "z"]})
    bal = doc_of(t)["balance"]
    assert bal["imbalance_ratio"] == 1.0 and bal["effective_classes"] == pytest.approx(4.0)


# --------------------------------------------------------------------------- evaluate and mine-hard output

def eval_table():
    # gt: cat matched (tp), cat missed (fn, large), dog missed (fn)
    # pred: cat tp, cat fp (small), dog fp
    return T.from_columns({
        T.SAMPLE_ID: ["a", "a", "a", "a", "a", "a", "b"],
        T.SOURCE: ["gt", "gt", "gt", "pred", "pred", "pred", "gt"],
        T.LABEL: ["cat", "cat", "dog", "cat", "cat", "dog", None],
        T.BBOX: np.array([[0, 0, 40, 40], [0, 0, 100, 100], [0, 0, 40, 40],
                          [0, 0, 40, 40], [0, 0, 10, 10], [0, 0, 50, 50], NAN4]),
        T.SCORE: [None, None, None, 0.9, 0.8, 0.7, None],
        T.EVAL: ["tp", "fn", "fn", "tp", "fp", "fp", None],
        T.EVAL_ID: [4, None, None, 1, None, None, None],
        T.EVAL_IOU: [1.0, None, None, 1.0, None, None, None],
    })


def test_eval_column_gives_tp_fp_fn_per_class_and_size():
    d = doc_of(eval_table())
    ev = d["eval"]
    assert ev["total"] == {"tp": 1, "fp": 2, "fn": 2, "matched_gt": 1, "precision": 1 / 3, "recall": 1 / 3}
    cls = by_label(ev["per_class"])
    assert (cls["cat"]["tp"], cls["cat"]["fp"], cls["cat"]["fn"]) == (1, 1, 1)
    assert cls["cat"]["precision"] == 0.5 and cls["cat"]["recall"] == 0.5
    assert (cls["dog"]["tp"], cls["dog"]["fp"], cls["dog"]["fn"], cls["dog"]["precision"]) == (0, 1, 1, 0.0)
    size = {r["bucket"]: r for r in ev["per_size"]}
    assert (size["small"]["fp"], size["medium"]["tp"], size["medium"]["fn"], size["medium"]["fp"]) == (1, 1, 1, 1)
    assert (size["large"]["fn"], size["large"]["tp"]) == (1, 0)
    assert d["attributes"] == []  # eval, eval_id, eval_iou are not attributes
    assert doc_of(small_table())["eval"] is None


def test_mine_hard_output_summarised():
    t = small_table(**{T.HARD_SCORE: [0.9, 0.5, None, 0.1, None],
                       T.HARD_REASON: ["duplicate", "localization", None, "duplicate", None]})
    h = doc_of(t)["hard"]
    assert h["rows"] == 3
    assert h["reasons"][0] == {"reason": "duplicate", "count": 2, "share": 2 / 3}
    assert h["score"]["max"] == 0.9 and h["score"]["count"] == 3
    cls = by_label(h["per_class"])
    assert cls["cat"]["reasons"] == [{"reason": "duplicate", "count": 2}]
    assert cls["dog"]["reasons"] == [{"reason": "localization", "count": 1}]


# --------------------------------------------------------------------------- by / compare

def test_by_split_gives_a_document_per_value():
    d = doc_of(small_table(), by=["split"])
    groups = {g["by"]["split"]: g for g in d["groups"]}
    assert set(groups) == {"train", "val"}
    assert groups["train"]["counts"]["labels"] == 3 and groups["train"]["counts"]["samples"] == 1
    assert groups["val"]["counts"]["samples_without_labels"] == 1
    assert set(d["groups"][0]) >= {"by", "counts", "boxes", "per_sample", "attributes", "balance", "eval", "hard"}
    assert doc_of(small_table())["groups"] == []


def test_by_two_columns_makes_combinations():
    d = doc_of(small_table(annotator=["x", "y", "x", "x", None]), by=["split", "annotator"])
    keys = [(g["by"]["split"], g["by"]["annotator"]) for g in d["groups"]]
    assert keys == [("train", "x"), ("train", "y"), ("val", "x"), ("val", None)]


def test_compare_distances_and_largest_differences():
    t = T.from_columns({
        T.SAMPLE_ID: ["a", "b", "c", "d"], T.SOURCE: ["gt"] * 4,
        T.LABEL: ["cat", "cat", "dog", "dog"], T.SPLIT: ["train", "train", "val", "val"],
        T.BBOX: np.array([[0, 0, 10, 10]] * 4),
    })
    cmp = doc_of(t, compare="split")["compare"]
    assert cmp["column"] == "split" and cmp["values"] == ["train", "val"]
    assert [p["value"] for p in cmp["per_value"]] == ["train", "val"]
    (dist,) = cmp["distances"]
    assert (dist["a"], dist["b"]) == ("train", "val")
    assert dist["class_shares"] == pytest.approx(1.0)  # disjoint classes
    assert dist["size_buckets"] == pytest.approx(0.0)  # the same sizes
    top = cmp["largest_differences"][0]
    assert top["statistic"] == "class_share" and top["difference"] == 1.0
    assert {s["value"]: s["share"] for s in top["shares"]} in ({"train": 1.0, "val": 0.0}, {"train": 0.0, "val": 1.0})


def test_js_distance():
    assert stats.js_distance([1, 0], [0, 1]) == pytest.approx(1.0)
    assert stats.js_distance([2, 2], [1, 1]) == pytest.approx(0.0)
    # JS divergence of (1,0) vs (0.5,0.5) in bits: 1 - 0.5*H2(0.25,0.75)... check against a direct formula
    p, q = np.array([1.0, 0.0]), np.array([0.5, 0.5])
    m = (p + q) / 2
    kl = lambda a, b: sum(x * math.log2(x / y) for x, y in zip(a, b) if x > 0)
    assert stats.js_distance(p, q) == pytest.approx(math.sqrt(0.5 * kl(p, m) + 0.5 * kl(q, m)))
    assert stats.js_distance([0, 0], [1, 1]) is None


def test_group_by_unknown_or_list_column_is_a_usage_error():
    from mlcycle.errors import OptionError

    with pytest.raises(OptionError, match="no column 'nope'") as err:
        doc_of(small_table(), by=["nope"])
    assert err.value.option == "by" and "--" not in err.value.message
    t = small_table(tags=pa.array([["a"]] * 5, pa.list_(pa.string())))
    with pytest.raises(OptionError, match="cannot group by column 'tags'") as err:
        doc_of(t, compare="tags")
    assert err.value.option == "compare"


# --------------------------------------------------------------------------- batches, files, scale

def _strip_versions(doc):
    return json.loads(json.dumps(doc))


def test_batch_size_does_not_change_the_numbers(tmp_path):
    t = small_table(occluded=[True, False, None, True, None], annotator=["x", "y", "x", "y", None])
    whole = doc_of(t, by=["split"], compare="split")
    path = tmp_path / "t.jsonl"
    io.write_table(t, path)
    sliced = stats.describe(io.scan([path], batch_rows=2), by=["split"], compare="split").summary
    assert _strip_versions(sliced) == _strip_versions(whole)


def test_parquet_is_streamed_with_dictionary_strings(tmp_path):
    t = small_table(annotator=["x", "y", "x", "y", None])
    path = tmp_path / "t.parquet"
    io.write_table(t, path)
    scan = io.scan([path], batch_rows=2, keep_dictionaries=True)
    batches = list(scan)
    assert len(batches) == 3
    assert pa.types.is_dictionary(batches[0].schema.field(T.SAMPLE_ID).type)
    from_parquet = stats.describe(scan).summary
    from_memory = doc_of(t)
    assert from_parquet == from_memory


def test_several_inputs_with_different_attribute_columns(tmp_path):
    a = T.from_columns({T.SAMPLE_ID: ["a"], T.SOURCE: ["gt"], T.LABEL: ["cat"], "occluded": [True]})
    b = T.from_columns({T.SAMPLE_ID: ["b"], T.SOURCE: ["gt"], T.LABEL: ["dog"]})
    pa_, pb = tmp_path / "a.parquet", tmp_path / "b.jsonl"
    io.write_table(a, pa_)
    io.write_table(b, pb)
    d = stats.describe([pa_, pb]).summary
    assert d["counts"]["labels"] == 2
    (occ,) = d["attributes"]
    assert (occ["true"], occ["missing"], occ["rows"]) == (1, 1, 2)


def test_attribute_null_in_one_input_takes_the_type_of_the_next(tmp_path):
    a = T.from_columns({T.SAMPLE_ID: ["a"], T.SOURCE: ["gt"], T.LABEL: ["cat"], "conf": pa.nulls(1)})
    b = T.from_columns({T.SAMPLE_ID: ["b"], T.SOURCE: ["gt"], T.LABEL: ["dog"], "conf": [0.5]})
    (conf,) = stats.compute([a, b])["attributes"]
    assert conf["type"] == "number" and conf["missing"] == 1 and conf["quantiles"]["max"] == 0.5


def test_quantiles_exact_then_sketched(monkeypatch):
    q = stats.Quantiles()
    q.add(np.array([1.0, 2.0, 3.0, 4.0, np.nan]))
    s = q.summary()
    assert (s["count"], s["min"], s["p50"], s["max"], s["mean"]) == (4, 1.0, 2.5, 4.0, 2.5)
    from mlcycle.stats import sketches

    monkeypatch.setattr(sketches, "EXACT_QUANTILE_LIMIT", 1000)
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.lognormal(3, 1, 50_000), -rng.lognormal(0, 1, 5_000), np.zeros(100)])
    q = stats.Quantiles()
    for part in np.array_split(values, 7):
        q.add(part)
    assert not q.exact
    s = q.summary()
    assert s["min"] == values.min() and s["max"] == values.max()
    assert s["mean"] == pytest.approx(values.mean())
    for key, p in (("p05", 0.05), ("p25", 0.25), ("p50", 0.5), ("p95", 0.95)):
        exact = np.quantile(values, p)
        assert s[key] == pytest.approx(exact, rel=0.02, abs=1e-9), key


def test_empty_table():
    d = doc_of(T.empty_table())
    assert d["counts"]["samples"] == 0 and d["counts"]["labels"] == 0
    assert d["boxes"]["width"]["p50"] is None and d["per_sample"]["labels"]["samples"] == 0


def test_document_is_plain_json_with_stable_top_level_keys():
    d = doc_of(small_table())
    assert json.loads(json.dumps(d, allow_nan=False)) == d
    assert list(d) == ["stats_version", "input", "counts", "boxes", "per_sample", "attributes", "balance",
                       "eval", "hard", "groups", "compare", "by_source"]
    assert d["by_source"] is None  # one source


# --------------------------------------------------------------------------- external fixtures

def test_voc_100_images_class_counts_match_their_annotations(external):
    from mlcycle import formats

    path = external / "rafaelpadilla__review_object_detection_metrics/data/database/gts/coco_format_v1/instances_default.json"
    raw = json.loads(path.read_text())
    names = {c["id"]: c["name"] for c in raw["categories"]}
    want: dict[str, int] = {}
    for ann in raw["annotations"]:
        want[names[ann["category_id"]]] = want.get(names[ann["category_id"]], 0) + 1
    table = formats.read("coco", path, formats.ReadOptions())
    d = doc_of(table)
    assert {r["label"]: r["labels"] for r in d["counts"]["per_class"]} == want
    assert d["counts"]["samples"] == len(raw["images"]) == 100
    assert d["counts"]["labels"] == 273 and d["counts"]["classes"] == 20
    occ = {a["name"]: a for a in d["attributes"]}["occluded"]
    assert occ["true"] + occ["false"] == 273


def test_voc_xml_100_images_class_counts_and_difficult(external):
    from defusedxml import ElementTree

    from mlcycle import formats

    folder = external / "rafaelpadilla__review_object_detection_metrics/data/database/gts/pascalvoc_format"
    want: dict[str, int] = {}
    difficult = 0
    for xml in sorted(folder.glob("*.xml")):
        for obj in ElementTree.parse(xml).getroot().iter("object"):
            name = obj.findtext("name").strip()
            want[name] = want.get(name, 0) + 1
            difficult += obj.findtext("difficult", "0").strip() == "1"
    d = doc_of(formats.read("voc", folder, formats.ReadOptions()))
    assert {r["label"]: r["labels"] for r in d["counts"]["per_class"]} == want
    assert d["counts"]["samples"] == 100 and d["counts"]["labels"] == 273
    assert difficult == 38  # stated in the fixtures' README
    assert {a["name"]: a for a in d["attributes"]}["difficult"]["true"] == 38


def test_coco_val2014_100_crowd_and_sizes(external):
    from mlcycle import formats

    path = external / "MiXaiLL76__faster_coco_eval/tests/dataset/cocoapi/instances_val2014_100.json"
    raw = json.loads(path.read_text())
    d = doc_of(formats.read("coco", path, formats.ReadOptions()))
    assert d["counts"]["labels"] == 839 and d["counts"]["samples"] == 100
    areas = np.array([a["area"] for a in raw["annotations"]])
    want = [int((areas < 32 ** 2).sum()), int(((areas >= 32 ** 2) & (areas < 96 ** 2)).sum()), int((areas >= 96 ** 2).sum())]
    assert [b["boxes"] for b in d["boxes"]["size_buckets"]] == want
    # iscrowd is a core column, not an attribute
    assert "iscrowd" not in {a["name"] for a in d["attributes"]}


# --------------------------------------------------------------------------- describe

def test_describe_returns_a_result_from_a_table_a_scan_or_paths(tmp_path):
    from mlcycle.results import Result

    t = small_table(annotator=["x", "y", "x", "y", None])
    r = stats.describe(t, by="split")
    assert isinstance(r, Result) and r.table is None and r.warnings == ()
    assert r.summary == doc_of(t, by=["split"])
    path = tmp_path / "t.parquet"
    io.write_table(t, path)
    assert stats.describe(path).summary == stats.describe(io.scan(path)).summary == doc_of(t)
    assert json.loads(r.to_json()) == r.summary


def test_describe_warns_when_the_source_filter_matches_nothing():
    t = T.from_columns({T.SAMPLE_ID: ["a", "a"], T.SOURCE: ["gt", "pred"], T.LABEL: ["cat", "cat"]})
    r = stats.describe(t, sources=["nope"])
    assert len(r.warnings) == 1 and r.warnings[0].startswith("no rows of source nope; sources present:")
    assert r.summary["input"]["rows_used"] == 0
    from mlcycle import reporting

    with reporting.collect() as seen:
        r = stats.describe(t)
    assert r.warnings == () and any("several sources (gt, pred)" in n for n in seen.notes)
    assert not [n for n in seen.notes if "--" in n]  # the library never speaks of flags


def test_inputs_whose_attribute_types_differ_are_read_one_by_one(tmp_path):
    a = T.from_columns({T.SAMPLE_ID: ["a"], T.SOURCE: ["gt"], T.LABEL: ["cat"], "conf": [1]})
    b = T.from_columns({T.SAMPLE_ID: ["b"], T.SOURCE: ["gt"], T.LABEL: ["dog"], "conf": ["high"]})
    pa_, pb = tmp_path / "a.parquet", tmp_path / "b.jsonl"
    io.write_table(a, pa_)
    io.write_table(b, pb)
    (conf,) = stats.describe([pa_, pb]).summary["attributes"]
    # one scan over both would refuse int64 vs string; from then on the column is text
    assert conf["type"] == "categorical" and conf["rows"] == 2 and conf["values"][0]["value"] == "high"


def test_stdin_twice_is_an_option_error():
    from mlcycle.errors import OptionError

    with pytest.raises(OptionError, match="more than once"):
        stats.describe(["-", "-"])


def test_the_library_imports_no_cli_and_no_plotting():
    import subprocess
    import sys

    code = ("import sys, mlcycle.stats as S; from mlcycle import table as T\n"
            "S.describe(T.from_columns({'sample_id': ['a'], 'source': ['gt'], 'label': ['x']}))\n"
            "bad = [m for m in sys.modules if m.split('.')[0] in ('rich', 'typer', 'matplotlib')"
            " or m.startswith('mlcycle.cli')]\n"
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


# --------------------------------------------------------------------------- ground truth and predictions apart

def evaluated_table():
    """Ground truth (3 labels: 2 cat, 1 dog) and two prediction sources with other counts."""
    return T.from_columns({
        T.SAMPLE_ID: ["a", "a", "b", "a", "a", "a", "b", "b", "a"],
        T.SOURCE: ["gt", "gt", "gt", "m1", "m1", "m1", "m1", "m1", "m2"],
        T.LABEL: ["cat", "cat", "dog", "cat", "cat", "dog", "dog", "bird", "cat"],
        T.BBOX: np.array([[0, 0, 10, 10], [20, 20, 10, 10], [0, 0, 50, 50], [0, 0, 10, 10], [40, 40, 4, 4],
                          [20, 20, 10, 10], [0, 0, 50, 50], [60, 60, 20, 20], [0, 0, 12, 12]], dtype=float),
        T.WIDTH: [100] * 9, T.HEIGHT: [100] * 9,
        T.SCORE: [None, None, None, 0.9, 0.2, 0.4, 0.8, 0.3, 0.7],
        T.EVAL: ["tp", "fn", "tp", "tp", "fp", "fp", "tp", "fp", "tp"],
    })


def test_by_source_counts_ground_truth_and_each_prediction_source_apart():
    d = doc_of(evaluated_table())
    # the existing keys stay as they were: everything together
    assert d["counts"]["labels"] == 9
    assert by_label(d["counts"]["per_class"])["cat"]["labels"] == 5
    src = {x["source"]: x for x in d["by_source"]}
    assert [x["source"] for x in d["by_source"]] == ["gt", "m1", "m2"]  # ground truth first
    assert {k: v["kind"] for k, v in src.items()} == {"gt": "ground truth", "m1": "predictions", "m2": "predictions"}
    assert {c["label"]: c["labels"] for c in src["gt"]["counts"]["per_class"]} == {"cat": 2, "dog": 1}
    assert {c["label"]: c["labels"] for c in src["m1"]["counts"]["per_class"]} == {"cat": 2, "dog": 2, "bird": 1}
    assert {c["label"]: c["labels"] for c in src["m2"]["counts"]["per_class"]} == {"cat": 1}
    assert src["gt"]["per_sample"]["labels"]["mean"] == 1.5 and src["m1"]["per_sample"]["labels"]["mean"] == 2.5
    assert src["m2"]["counts"]["samples"] == 1
    assert src["gt"]["boxes"]["count"] == 3 and src["m1"]["boxes"]["count"] == 5
    assert src["m1"]["eval"]["per_class"] and src["gt"]["balance"]["classes"] == 2
    # the same whatever order the sources arrive in, and in whatever batches
    t = evaluated_table()
    assert doc_of(t.take(list(range(8, -1, -1))))["by_source"] == d["by_source"]
    assert stats.compute([t.slice(i, 1) for i in range(t.num_rows)])["by_source"] == d["by_source"]
    # one input per source (the first batch has only ground truth)
    import pyarrow.compute as pc

    parts = [t.filter(pc.equal(t[T.SOURCE], s)) for s in ("gt", "m1", "m2")]
    assert stats.compute(parts)["by_source"] == d["by_source"]
    # keeping one source: no by_source
    assert doc_of(t, sources=["m1"])["by_source"] is None


def test_plots_of_an_evaluated_table_draw_each_source_apart(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    from mlcycle.stats import plots

    drawn = {}
    import matplotlib.axes

    real_barh = matplotlib.axes.Axes.barh

    def barh(self, y, width, *a, **k):
        drawn.setdefault(self.get_title() or "?", []).append((k.get("label"), list(width)))
        return real_barh(self, y, width, *a, **k)

    monkeypatch.setattr(matplotlib.axes.Axes, "barh", barh)
    d = doc_of(evaluated_table())
    files = plots.write(d, tmp_path / "charts")
    assert sorted(p.name for p in files) == ["aspect_ratio.png", "centres.png", "classes.png", "labels_per_sample.png",
                                            "sizes.png"]
    # classes.png: one bar series per source, classes in the ground truth's order (cat, dog, bird)
    (series,) = drawn.values()
    assert series == [("gt (ground truth): 3", [2, 1, 0]), ("m1 (predictions): 5", [2, 2, 1]),
                      ("m2 (predictions): 1", [1, 0, 0])]
    # a ground-truth-only table keeps its one-series chart, counting labels
    drawn.clear()
    plots.write(doc_of(small_table()), tmp_path / "one")
    assert [len(v) for v in drawn.values()] == [1]


# --------------------------------------------------------------------------- plots

def test_plot_writes_pngs(tmp_path):
    pytest.importorskip("matplotlib")
    from mlcycle.stats import plots

    d = doc_of(small_table(), compare="split")
    files = plots.write(d, tmp_path / "charts")
    names = sorted(p.name for p in files)
    assert names == ["aspect_ratio.png", "centres.png", "classes.png", "compare.png", "labels_per_sample.png",
                     "sizes.png"]
    for p in files:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in (tmp_path / "charts").iterdir() if p.name.endswith(".tmp")]


# --------------------------------------------------------------------------- property: batching

def _close(a, b) -> bool:
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    return a == b


def test_any_batching_gives_the_same_document():
    from hypothesis import given, settings
    from hypothesis import strategies as st

    row = st.tuples(
        st.sampled_from(["s1", "s2", "s3", "s4"]),
        st.sampled_from(["gt", "gt", "pred"]),
        st.sampled_from(["cat", "dog", "bird", None]),
        st.tuples(st.integers(-5, 90), st.integers(-5, 90), st.integers(0, 60), st.integers(0, 60)),
        st.sampled_from(["train", "val", None]),
        st.sampled_from([True, False, None]),
    )

    @settings(max_examples=40, deadline=None)
    @given(st.lists(row, min_size=1, max_size=30), st.integers(1, 7))
    def check(rows, size):
        t = T.from_columns({
            T.SAMPLE_ID: [r[0] for r in rows], T.SOURCE: [r[1] for r in rows], T.LABEL: [r[2] for r in rows],
            T.BBOX: np.array([r[3] if r[2] is not None else NAN4 for r in rows], dtype=float),
            T.WIDTH: [100] * len(rows), T.HEIGHT: [80] * len(rows),
            T.SPLIT: [r[4] for r in rows], "occluded": pa.array([r[5] for r in rows], pa.bool_()),
        })
        whole = stats.compute([t], compare="split")
        parts = stats.compute([t.slice(i, size) for i in range(0, t.num_rows, size)], compare="split")
        assert _close(json.loads(json.dumps(whole)), json.loads(json.dumps(parts)))
        c = whole["counts"]
        assert c["labels"] == sum(r[2] is not None for r in rows)
        assert c["samples"] == len({r[0] for r in rows})
        assert sum(d["labels"] for d in c["per_class"]) == c["labels"]

    check()
