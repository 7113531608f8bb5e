"""Sharded evaluation: compute per shard, merge, finish == one run, bit for bit.

Random label tables (hypothesis) are split into random shards by sample — some empty,
some missing classes others have, with crowd regions, unlabelled and box-less rows,
predictions of unknown classes and on unknown samples — and the finished document of the
merged partials must equal ``mlcycle.evaluate(table, annotate=False).summary`` (``==``
on the dict and on its JSON bytes), and pycocotools on COCO-shaped cases.
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mlcycle
from mlcycle.errors import MlcycleError, OptionError
from mlcycle.evaluation import partial as P
from mlcycle.evaluation import to_json
from mlcycle.evaluation.prepare import Options
from mlcycle.shards import bucket_of, split_by_bucket

XY = st.sampled_from([0.0, 2.0, 5.0, 10.0, 20.0, 40.0])
WH = st.sampled_from([1.0, 4.0, 8.0, 16.0, 31.0, 32.0, 33.0, 64.0, 96.0, 97.0])
SCORE = st.sampled_from([0.1, 0.5, 0.5, 0.7, 0.9, 0.9]) | st.floats(0.0, 1.0)
JIT = st.sampled_from([0.0, 0.0, 1.0, -2.0, 3.5, 8.0])
CLASSES = ["cat", "dog", "emu", "fox"]


@st.composite
def tables(draw, segm=False, max_samples=6):
    """(label table, per-row sample index) with rows of all samples interleaved."""
    n_s = draw(st.integers(1, max_samples))
    names = [f"img/{i:03d}.jpg" for i in draw(st.permutations(range(n_s)))]
    gt_samples = [s for s in names if draw(st.integers(0, 5))]  # some samples only have predictions
    with_ids = draw(st.booleans())
    rows = []

    def box(x, y, w, h):
        return [x, y, w, h]

    def seg(x, y, w, h):
        return json.dumps([[x, y, x + w, y, x + w, y + h, x, y + h]])

    gts = []
    for s in gt_samples:
        rows.append({"sample_id": s, "source": "gt"})  # sample row (no label)
        for _ in range(draw(st.integers(0, 4))):
            x, y, w, h = draw(XY), draw(XY), draw(WH), draw(WH)
            r = {"sample_id": s, "source": "gt", "label": draw(st.sampled_from(CLASSES[:3])),
                 "bbox": box(x, y, w, h), "iscrowd": draw(st.sampled_from([False] * 5 + [True]))}
            if draw(st.integers(0, 3)) == 0:
                r["area"] = draw(st.sampled_from([1024.0, 9216.0, 100.0, 0.0]))
            if segm:
                r["segmentation"] = seg(x, y, w, h)
            if draw(st.integers(0, 12)) == 0:
                r["bbox"] = None
                if not segm:
                    r.pop("segmentation", None)
            rows.append(r)
            gts.append(r)
    for _ in range(draw(st.integers(0, 16))):
        if gts and draw(st.booleans()):
            src = draw(st.sampled_from(gts))
            if src["bbox"] is None:
                continue
            x, y, w, h = src["bbox"]
            x, y, w, h = x + draw(JIT), y + draw(JIT), max(1.0, w + draw(JIT)), max(1.0, h + draw(JIT))
            s = src["sample_id"]
            lab = src["label"] if draw(st.integers(0, 3)) else draw(st.sampled_from(CLASSES))
        else:
            x, y, w, h = draw(XY), draw(XY), draw(WH), draw(WH)
            s = draw(st.sampled_from(names))
            lab = draw(st.sampled_from(CLASSES + [None]))
        r = {"sample_id": s, "source": "pred", "label": lab, "bbox": box(x, y, w, h), "score": draw(SCORE)}
        if segm:
            r["segmentation"] = seg(x, y, w, h)
            if draw(st.integers(0, 4)) == 0:
                r["bbox"] = None
        elif draw(st.integers(0, 15)) == 0:
            r["bbox"] = None
        rows.append(r)
    order = draw(st.permutations(range(len(rows))))
    rows = [rows[i] for i in order]
    ids = {s: i + 1 for i, s in enumerate(draw(st.permutations(names)))}
    table = pa.table({
        "sample_id": pa.array([r["sample_id"] for r in rows], pa.string()),
        "source": pa.array([r["source"] for r in rows], pa.string()),
        "label_id": pa.array(list(range(1, len(rows) + 1)), pa.int64()),
        "label": pa.array([r.get("label") for r in rows], pa.string()),
        "bbox": pa.array([r.get("bbox") for r in rows], pa.list_(pa.float64(), 4)),
        "score": pa.array([r.get("score") for r in rows], pa.float64()),
        "iscrowd": pa.array([r.get("iscrowd", False) for r in rows], pa.bool_()),
        "area": pa.array([r.get("area") for r in rows], pa.float64()),
        "segmentation": pa.array([r.get("segmentation") for r in rows], pa.string()),
        "width": pa.array([200] * len(rows), pa.int32()),
        "height": pa.array([200] * len(rows), pa.int32()),
        "image_id": pa.array([ids[r["sample_id"]] if with_ids else None for r in rows], pa.int64()),
    })
    from mlcycle import table as T

    return T.normalize(table), names


def shards_of(table: pa.Table, assign: dict[str, int], n: int) -> list[tuple[pa.Table, np.ndarray]]:
    """Whole samples per shard, rows in input order, with their row numbers."""
    sid = table.column("sample_id").to_pylist()
    shard = np.array([assign[s] for s in sid], dtype=np.int64)
    rows = np.arange(table.num_rows)
    return [(table.filter(pa.array(shard == k, pa.bool_())), rows[shard == k]) for k in range(n)]


def sharded(table: pa.Table, opts: Options, assign: dict, n: int, classes=None) -> dict:
    parts = [P.compute(t, opts, row_numbers=r, classes=classes) for t, r in shards_of(table, assign, n)]
    return P.finish(P.merge(parts), opts)


def reference(table: pa.Table, **kw) -> dict:
    return mlcycle.evaluate(table, annotate=False, **kw).summary


def assert_same_doc(doc: dict, ref: dict) -> None:
    for key in ref:
        assert doc.get(key) == ref[key], key
    assert to_json(doc) == to_json(ref)


OPTIONS = st.sampled_from([
    {},
    {"iou": 0.75},
    {"iou": 0.6, "conf": 0.5},
    {"max_dets": (1, 2)},
    {"max_dets": (3,)},
    {"area_ranges": {"tiny": (16.0, 1024.0)}},
    {"rel_area_ranges": {"half": (0.0, 0.5)}, "at_recall": (0.5,), "at_precision": (0.9,)},
])
SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def _opts(kw: dict) -> Options:
    return Options(annotate=False, **kw)


@SETTINGS
@given(data=tables(), kw=OPTIONS, n=st.integers(1, 5), seed=st.integers(0, 2 ** 16))
def test_random_shards_equal_one_run_bit_for_bit(data, kw, n, seed):
    table, names = data
    rng = np.random.default_rng(seed)
    assign = {s: int(rng.integers(0, n)) for s in names}
    try:
        ref = reference(table, **kw)
    except MlcycleError as exc:
        with pytest.raises(MlcycleError) as got:
            sharded(table, _opts(kw), assign, n)
        assert type(got.value) is type(exc)
        return
    if ref["method"] != "coco":   # no boxes at all: image-level classification, refused
        with pytest.raises(MlcycleError, match="detection metrics only"):
            sharded(table, _opts(kw), assign, n)
        return
    assert_same_doc(sharded(table, _opts(kw), assign, n), ref)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=tables(segm=True, max_samples=4), n=st.integers(1, 4), seed=st.integers(0, 2 ** 16))
def test_segm_shards_equal_one_run(data, n, seed):
    table, names = data
    rng = np.random.default_rng(seed)
    assign = {s: int(rng.integers(0, n)) for s in names}
    try:
        ref = reference(table, iou_type="segm")
    except MlcycleError:
        return
    if ref["method"] != "coco":
        return
    assert_same_doc(sharded(table, _opts({"iou_type": "segm"}), assign, n), ref)


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=tables(), seed=st.integers(0, 2 ** 16))
def test_merge_is_associative_and_order_free(data, seed):
    table, names = data
    rng = np.random.default_rng(seed)
    assign = {s: int(rng.integers(0, 4)) for s in names}
    opts = _opts({})
    try:
        if reference(table)["method"] != "coco":
            return
    except MlcycleError:
        return
    a, b, c, d = [P.compute(t, opts, row_numbers=r) for t, r in shards_of(table, assign, 4)]
    one = P.finish(P.merge([P.merge([a, b]), P.merge([c, d])]), opts)
    two = P.finish(P.merge([a, P.merge([b, P.merge([c, d])])]), opts)
    three = P.finish(P.merge([d, c, b, a]), opts)
    assert to_json(one) == to_json(two) == to_json(three)


def test_pending_class_counts_as_false_positive_or_unknown():
    """A shard predicts 'dog' where its own ground truth has none: a false positive when
    another shard's ground truth has dogs; dropped with the usual warning otherwise."""
    def tab(rows):
        from mlcycle import table as T

        return T.normalize(pa.table({
            "sample_id": [r[0] for r in rows], "source": [r[1] for r in rows],
            "label": [r[2] for r in rows],
            "bbox": pa.array([[0.0, 0.0, 10.0, 10.0]] * len(rows), pa.list_(pa.float64(), 4)),
            "score": pa.array([0.9 if r[1] == "pred" else None for r in rows], pa.float64())}))

    t = tab([("a", "gt", "cat"), ("a", "pred", "dog"), ("a", "pred", "cat"), ("b", "gt", "dog"),
             ("b", "pred", "dog"), ("c", "gt", "cat"), ("c", "pred", "emu")])
    opts = _opts({})
    assign = {"a": 0, "b": 1, "c": 2}
    ref = reference(t)
    doc = sharded(t, opts, assign, 3)
    assert_same_doc(doc, ref)
    dog = next(r for r in doc["per_class"] if r["label"] == "dog")
    assert dog["fp"] == 1 and dog["tp"] == 1
    assert doc["inputs"]["unknown_classes"] == {"emu": 1}
    # given the global classes, the same
    assert_same_doc(sharded(t, opts, assign, 3, classes=["cat", "dog"]), ref)


def test_pycocotools_on_sharded_coco(tmp_path):
    from tests.evaluation._pyco import pycoco, write_coco

    rng = np.random.default_rng(3)
    images = [{"id": i, "file_name": f"im{i}.jpg", "width": 100, "height": 100} for i in range(1, 31)]
    cats = [{"id": c, "name": f"c{c}"} for c in range(1, 5)]
    anns, dets = [], []
    for k in range(120):
        x, y, w, h = (float(v) for v in rng.integers(0, 60, 4) + [0, 0, 4, 4])
        img, cat = int(rng.integers(1, 31)), int(rng.integers(1, 5))
        anns.append({"id": k + 1, "image_id": img, "category_id": cat, "bbox": [x, y, w, h], "area": w * h,
                     "iscrowd": int(rng.random() < 0.05)})
        for _ in range(int(rng.integers(0, 3))):
            j = rng.normal(0, 3, 4)
            dets.append({"image_id": img, "category_id": cat if rng.random() < 0.8 else int(rng.integers(1, 5)),
                         "bbox": [x + j[0], y + j[1], max(1.0, w + j[2]), max(1.0, h + j[3])],
                         "score": float(np.round(rng.random(), 2))})
    gt = {"images": images, "categories": cats, "annotations": anns}
    table = write_coco(tmp_path, gt, dets)
    E = pycoco(gt, dets, "bbox")
    opts = _opts({})
    for n in (2, 5):
        doc = P.finish(P.merge([P.compute(s, opts) for s in split_by_bucket(table, n)]), opts)
        assert list(doc["metrics"].values())[:12] == [float(s) for s in E.stats]
        assert_same_doc(doc, reference(table))


def test_bytes_round_trip_and_damaged_bytes():
    table = _sample_table()
    opts = _opts({})
    parts = [P.compute(s, opts) for s in split_by_bucket(table, 3)]
    merged = P.merge(parts)
    data = merged.to_bytes()
    again = P.Partial.from_bytes(data)
    assert again.to_bytes() == data
    assert to_json(P.finish(again, opts)) == to_json(P.finish(merged, opts))
    # a partial from bytes merges like any other
    assert to_json(P.finish(P.merge([P.Partial.from_bytes(p.to_bytes()) for p in parts]), opts)) \
        == to_json(reference(table))
    with pytest.raises(MlcycleError, match="not a partial"):
        P.Partial.from_bytes(data[: len(data) // 2])
    with pytest.raises(MlcycleError, match="not a partial"):
        P.Partial.from_bytes(b"PK\x03\x04 garbage")


def _sample_table() -> pa.Table:
    from pathlib import Path

    root = Path(mlcycle.sample_dataset())
    gt = mlcycle.ingest(root / "annotations" / "instances_val.json", "coco")
    dt = mlcycle.ingest(root / "predictions" / "detections_val.json", "coco-results",
                        images=root / "annotations" / "instances_val.json")
    return mlcycle.concat([gt, dt])


def test_sample_in_two_partials_is_refused():
    table = _sample_table()
    opts = _opts({})
    a = P.compute(table, opts)
    first = table.column("sample_id")[0].as_py()
    b = P.compute(table.filter(pa.compute.equal(table.column("sample_id"), first)), opts)
    with pytest.raises(MlcycleError, match="is in two shards") as exc:
        P.merge([a, b])
    assert repr(first) in str(exc.value)


@pytest.mark.parametrize("kw,param", [({"by": ("split",)}, "by"), ({"bootstrap": 10}, "bootstrap"),
                                      ({"tide": True}, "tide"), ({"method": "voc"}, "method"),
                                      ({"conf_auto": "best-f1"}, "conf")])
def test_options_that_cannot_be_sharded_are_refused(kw, param):
    with pytest.raises(OptionError) as exc:
        P.compute(_sample_table(), _opts(kw))
    assert exc.value.option == param


def test_finish_refuses_other_options():
    table = _sample_table()
    part = P.compute(table, _opts({}))
    with pytest.raises(MlcycleError, match="other options"):
        P.finish(part, _opts({"iou": 0.75}))


def test_bucket_of_is_stable_and_keeps_samples_whole():
    ids = pa.array(["img/a.jpg", "img/b.jpg", "", "é/ü.png", "img/a.jpg"])
    b = bucket_of(ids, 7)
    # fixed values: the same in every process and Python run (no salted hash())
    assert b.tolist() == bucket_of(pa.chunked_array([ids.slice(0, 2), ids.slice(2)]), 7).tolist()
    assert b.tolist() == bucket_of(ids.dictionary_encode(), 7).tolist()
    assert b[0] == b[4]
    import subprocess
    import sys

    code = ("import pyarrow as pa; from mlcycle.shards import bucket_of; "
            "print(bucket_of(pa.array(['img/a.jpg','img/b.jpg','','é/ü.png','img/a.jpg']), 7).tolist())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={"PYTHONHASHSEED": "123",
                                                                                              "PATH": ""})
    assert out.stdout.strip() == str(b.tolist())
    many = pa.array([f"s{i}" for i in range(10000)])
    counts = np.bincount(bucket_of(many, 8), minlength=8)
    assert counts.min() > 1000   # roughly even
    table = _sample_table()
    parts = split_by_bucket(table, 4)
    assert sum(p.num_rows for p in parts) == table.num_rows
    seen = [set(p.column("sample_id").to_pylist()) for p in parts]
    assert all(not (seen[i] & seen[j]) for i in range(4) for j in range(i + 1, 4))


def test_finish_in_class_groups_equals_one_group(monkeypatch):
    """finish accumulates a few classes at a time (bounded memory): the same numbers."""
    table = _sample_table()
    opts = _opts({"area_ranges": {"tiny": (0.0, 256.0)}})
    merged = P.merge([P.compute(s, opts) for s in split_by_bucket(table, 3)])
    whole = to_json(P.finish(merged, opts))
    monkeypatch.setattr(P, "ACCUMULATE_CHUNK", 1)
    assert to_json(P.finish(merged, opts)) == whole == to_json(reference(table, area_ranges={"tiny": (0.0, 256.0)}))
