"""The COCO engine equals pycocotools' COCOeval bit for bit (bbox and segm).

Random datasets come from hypothesis; each is written as COCO JSON, read through
mlcycle's own readers into one label table, evaluated by mlcycle and by pycocotools, and
compared with ``np.array_equal`` on precision, recall and scores and ``==`` on the stats.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.evaluation._pyco import assert_same, engine, pycoco, write_coco

# grid values make ties and exact area edges (1024 = 32*32, 9216 = 96*96) frequent
XY = st.sampled_from([0.0, 2.0, 5.0, 10.0, 20.0, 40.0, 64.0])
WH = st.sampled_from([1.0, 4.0, 8.0, 16.0, 31.0, 32.0, 33.0, 64.0, 96.0, 97.0, 120.0])
SCORE = st.sampled_from([0.1, 0.5, 0.5, 0.7, 0.9, 0.9]) | st.floats(0.0, 1.0)
AREA = st.sampled_from([None, None, None, 1024.0, 1023.0, 9216.0, 9216.5, 0.0])
JITTER = st.sampled_from([0.0, 0.0, 1.0, -2.0, 3.5, 8.0, 16.0])


@st.composite
def datasets(draw, max_images=5, max_cats=3, segm=False):
    n_img = draw(st.integers(1, max_images))
    n_cat = draw(st.integers(1, max_cats))
    ids = draw(st.permutations(list(range(1, n_img + 1))))
    images = [{"id": i, "file_name": f"im{i}.jpg", "width": 200, "height": 200} for i in ids]
    # categories listed may include ones without annotations (npig == 0)
    cats = [{"id": c, "name": f"c{c}"} for c in range(1, n_cat + 2)]
    anns = []
    for k in range(draw(st.integers(0, 14))):
        x, y, w, h = draw(XY), draw(XY), draw(WH), draw(WH)
        area = draw(AREA)
        crowd = draw(st.sampled_from([0, 0, 0, 0, 1]))
        a = {"id": k + 1, "image_id": draw(st.sampled_from(ids)), "category_id": draw(st.integers(1, n_cat)),
             "bbox": [x, y, w, h], "area": w * h if area is None else area, "iscrowd": crowd}
        if segm:
            poly = [x, y, x + w, y, x + w, y + h, x, y + h]
            if crowd:
                from pycocotools import mask as mu
                r = mu.frPyObjects([poly], 200, 200)[0]
                m = mu.decode(r).ravel(order="F")
                # uncompressed RLE, as COCO stores crowd regions
                a["segmentation"] = {"size": [200, 200], "counts": _rle_counts(m)}
            else:
                a["segmentation"] = [poly]
        anns.append(a)
    dets = []
    for _ in range(draw(st.integers(0, 24))):
        if anns and draw(st.booleans()):
            src = draw(st.sampled_from(anns))
            x, y, w, h = src["bbox"]
            x, y = x + draw(JITTER), y + draw(JITTER)
            w, h = max(1.0, w + draw(JITTER)), max(1.0, h + draw(JITTER))
            img, cat = src["image_id"], src["category_id"] if draw(st.integers(0, 4)) else draw(st.integers(1, n_cat + 1))
        else:
            x, y, w, h = draw(XY), draw(XY), draw(WH), draw(WH)
            img, cat = draw(st.sampled_from(ids)), draw(st.integers(1, n_cat + 1))
        d = {"image_id": img, "category_id": cat, "score": draw(SCORE)}
        if segm:
            from pycocotools import mask as mu
            poly = [x, y, x + w, y, x + w, y + h, x, y + h]
            r = mu.frPyObjects([poly], 200, 200)[0]
            d["segmentation"] = {"size": r["size"], "counts": r["counts"].decode()}
        else:
            d["bbox"] = [x, y, w, h]
        dets.append(d)
    return {"images": images, "categories": cats, "annotations": anns}, dets


def _rle_counts(m: np.ndarray) -> list[int]:
    counts, prev, run = [], 0, 0
    for v in m.tolist():
        if v != prev:
            counts.append(run)
            run, prev = 0, v
        run += 1
    counts.append(run)
    return counts


SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                            HealthCheck.too_slow])


@SETTINGS
@given(data=datasets())
def test_bbox_equals_pycocotools(tmp_path, data):
    gt, dets = data
    if not dets:
        return  # pycocotools cannot load an empty result (tested separately)
    table = write_coco(tmp_path, gt, dets)
    E = pycoco(gt, dets, "bbox")
    res, summary = engine(table)
    assert_same(E, res, summary)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(data=datasets(max_images=3, segm=True))
def test_segm_equals_pycocotools(tmp_path, data):
    gt, dets = data
    if not dets:
        return
    table = write_coco(tmp_path, gt, dets)
    E = pycoco(gt, dets, "segm")
    res, summary = engine(table, iou_type="segm")
    assert_same(E, res, summary)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(data=datasets(), max_dets=st.sampled_from([[1], [1, 2], [1, 10, 100], [3, 1, 7]]))
def test_max_dets_per_image_per_class(tmp_path, data, max_dets):
    gt, dets = data
    if not dets:
        return
    table = write_coco(tmp_path, gt, dets)
    E = pycoco(gt, dets, "bbox", max_dets=max_dets)
    res, summary = engine(table, max_dets=max_dets)
    assert_same(E, res, summary if max_dets == [1, 10, 100] else None)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=datasets())
def test_custom_area_range_equals_pycocotools_range(tmp_path, data):
    gt, dets = data
    if not dets:
        return
    table = write_coco(tmp_path, gt, dets)
    rng = [[0, 1e10], [0, 1024], [1024, 9216], [9216, 1e10], [16, 1024]]
    E = pycoco(gt, dets, "bbox", area_rng=rng, area_lbl=["all", "small", "medium", "large", "tiny"])
    res, summary = engine(table, area_ranges={"tiny": (16.0, 1024.0)})
    assert_same(E, res)


def _fixed():
    images = [{"id": 1, "file_name": "a.jpg", "width": 100, "height": 100},
              {"id": 2, "file_name": "b.jpg", "width": 100, "height": 100}]
    cats = [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}]
    return images, cats


def test_score_ties_across_images_follow_image_order(tmp_path):
    images, cats = _fixed()
    anns = [{"id": 1, "image_id": 2, "category_id": 1, "bbox": [0, 0, 10, 10], "area": 100, "iscrowd": 0}]
    # same score: an FP on image 1 and a TP on image 2; image order decides (AP50 0.5)
    dets = [{"image_id": 2, "category_id": 1, "bbox": [0, 0, 10, 10], "score": 0.5},
            {"image_id": 1, "category_id": 1, "bbox": [50, 50, 10, 10], "score": 0.5}]
    gt = {"images": images, "categories": cats, "annotations": anns}
    E = pycoco(gt, dets)
    res, summary = engine(write_coco(tmp_path, gt, dets))
    assert_same(E, res, summary)
    assert summary["AP50"] == float(E.stats[1])


def test_crowd_iou_is_over_detection_area_and_absorbs_many(tmp_path):
    images, cats = _fixed()
    anns = [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 100, 100], "area": 10000, "iscrowd": 1},
            {"id": 2, "image_id": 1, "category_id": 1, "bbox": [10, 10, 20, 20], "area": 400, "iscrowd": 0}]
    dets = [{"image_id": 1, "category_id": 1, "bbox": [50, 50, 10, 10], "score": 0.9},
            {"image_id": 1, "category_id": 1, "bbox": [60, 60, 10, 10], "score": 0.8},
            {"image_id": 1, "category_id": 1, "bbox": [10, 10, 20, 20], "score": 0.7}]
    gt = {"images": images, "categories": cats, "annotations": anns}
    E = pycoco(gt, dets)
    res, summary = engine(write_coco(tmp_path, gt, dets))
    assert_same(E, res, summary)
    assert summary["AP"] == pytest.approx(1.0)


def test_area_1024_is_small_and_medium(tmp_path):
    images, cats = _fixed()
    anns = [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 32, 32], "area": 1024.0, "iscrowd": 0}]
    dets = [{"image_id": 1, "category_id": 1, "bbox": [0, 0, 32, 32], "score": 0.9}]
    gt = {"images": images, "categories": cats, "annotations": anns}
    E = pycoco(gt, dets)
    res, summary = engine(write_coco(tmp_path, gt, dets))
    assert_same(E, res, summary)
    assert summary["AP_small"] > 0.99 and summary["AP_medium"] > 0.99 and summary["AP_large"] == -1


def test_class_without_ground_truth_is_excluded(tmp_path):
    images, cats = _fixed()
    anns = [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 20, 20], "area": 400, "iscrowd": 0}]
    dets = [{"image_id": 1, "category_id": 1, "bbox": [0, 0, 20, 20], "score": 0.9},
            {"image_id": 1, "category_id": 2, "bbox": [50, 50, 20, 20], "score": 0.95}]
    gt = {"images": images, "categories": cats, "annotations": anns}
    E = pycoco(gt, dets)
    res, summary = engine(write_coco(tmp_path, gt, dets))
    assert_same(E, res, summary)
    assert (res.precision[:, :, 1] == -1).all()


def test_gt_label_id_zero_is_matched_unlike_pycocotools(tmp_path):
    """Documented difference: pycocotools never counts a match to annotation id 0."""
    images, cats = _fixed()
    anns = [{"id": 0, "image_id": 1, "category_id": 1, "bbox": [0, 0, 20, 20], "area": 400, "iscrowd": 0},
            {"id": 1, "image_id": 2, "category_id": 1, "bbox": [0, 0, 20, 20], "area": 400, "iscrowd": 0}]
    dets = [{"image_id": 1, "category_id": 1, "bbox": [0, 0, 20, 20], "score": 0.9},
            {"image_id": 2, "category_id": 1, "bbox": [0, 0, 20, 20], "score": 0.8}]
    gt = {"images": images, "categories": cats, "annotations": anns}
    res, summary = engine(write_coco(tmp_path, gt, dets))
    E0 = pycoco(gt, dets)
    assert float(E0.stats[0]) < 0.6          # pycocotools: the id-0 match looks like an FP
    shifted = {**gt, "annotations": [{**a, "id": a["id"] + 1} for a in anns]}
    assert_same(pycoco(shifted, dets), res, summary)  # mlcycle == pycocotools with ids shifted


def test_segm_result_with_bbox_uses_box_area(tmp_path):
    """loadRes quirk: a segm result that carries a bbox gets area w*h (for ranges)."""
    from pycocotools import mask as mu

    images, cats = _fixed()
    poly = [0, 0, 10, 0, 10, 10, 0, 10]
    anns = [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10], "area": 100, "iscrowd": 0,
             "segmentation": [poly]}]
    r = mu.frPyObjects([poly], 100, 100)[0]
    seg = {"size": r["size"], "counts": r["counts"].decode()}
    dets = [{"image_id": 1, "category_id": 1, "segmentation": seg, "bbox": [0, 0, 200, 200], "score": 0.9},
            {"image_id": 1, "category_id": 1, "segmentation": seg, "bbox": [0, 0, 10, 10], "score": 0.8}]
    gt = {"images": images, "categories": cats, "annotations": anns}
    E = pycoco(gt, dets, "segm")
    res, summary = engine(write_coco(tmp_path, gt, dets), iou_type="segm")
    assert_same(E, res, summary)


def test_thresholds_are_pycocotools_linspace():
    from mlcycle.evaluation.coco import iou_thresholds, recall_thresholds

    assert iou_thresholds()[8] == 0.8999999999999999
    r = recall_thresholds()
    assert len(r) == 101 and r[70] == 0.7000000000000001


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=datasets())
def test_ids_from_zero_equal_pycocotools_with_ids_from_one(tmp_path, data):
    """mlcycle matches by row: annotation ids 0.. give what pycocotools gives for ids 1.."""
    gt, dets = data
    if not dets:
        return
    zero_based = {**gt, "annotations": [{**a, "id": a["id"] - 1} for a in gt["annotations"]]}
    res, summary = engine(write_coco(tmp_path, zero_based, dets))
    assert_same(pycoco(gt, dets), res, summary)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=datasets())
def test_summary_mode_reports_the_same_numbers(tmp_path, data):
    """The CLI skips precision arrays the summary never reads; recall and stats are equal."""
    from mlcycle.evaluation import coco as C

    gt, dets = data
    if not dets:
        return
    res, summary = engine(write_coco(tmp_path, gt, dets))
    fast = C.evaluate(*_engine_inputs(write_coco(tmp_path, gt, dets, name="y")), full=False)
    assert np.array_equal(res.recall, fast.recall)
    assert np.array_equal(res.precision[..., -1], fast.precision[..., -1])
    assert C.summarize(fast) == summary


def _engine_inputs(table):
    from mlcycle.evaluation import coco as C
    from mlcycle.evaluation.prepare import Options, choose_pred_source, prepare
    from mlcycle.evaluation.slices import size_ranges

    opts = Options()
    prep = prepare(table, opts, choose_pred_source(table, "gt", None))
    return (prep.gt, prep.dt, len(prep.samples), len(prep.classes), C.Params(), size_ranges(prep, opts))


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=datasets())
def test_per_label_columns_equal_pycocotools_matches(tmp_path, data):
    """eval/eval_id of each prediction = pycocotools' dtMatches/dtIgnore at IoU 0.5,
    area 'all', maxDets 100 (prediction label_id = loadRes id)."""
    from mlcycle.evaluation import evaluate

    gt, dets = data
    if not dets:
        return
    E = pycoco(gt, dets)
    out = evaluate(write_coco(tmp_path, gt, dets)).table
    rows = out.to_pylist()
    pred = {r["label_id"]: r for r in rows if r["source"] == "pred"}
    seen = set()
    for e in E.evalImgs:
        if e is None or e["aRng"] != [0, 1e10]:
            continue
        for j, did in enumerate(e["dtIds"]):
            m, ig = int(e["dtMatches"][0, j]), bool(e["dtIgnore"][0, j])
            want = None if (m and ig) else ("tp" if m else "fp")
            assert pred[did]["eval"] == want, did
            assert pred[did]["eval_id"] == (m if m else None)
            seen.add(did)
    # predictions beyond 100 per image and class, or of unknown classes: null
    for did, r in pred.items():
        if did not in seen:
            assert r["eval"] is None
    gt_rows = {r["label_id"]: r for r in rows if r["source"] == "gt" and r["label_id"] is not None}
    for e in E.evalImgs:
        if e is None or e["aRng"] != [0, 1e10]:
            continue
        for j, gid in enumerate(e["gtIds"]):
            if gt_rows[gid]["iscrowd"]:
                assert gt_rows[gid]["eval"] is None
            else:
                m = int(e["gtMatches"][0, j])
                assert gt_rows[gid]["eval"] == ("tp" if m else "fn")
                assert gt_rows[gid]["eval_id"] == (m if m else None)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(data=datasets(max_images=4, segm=True))
def test_segm_with_a_second_process_equals_pycocotools(tmp_path, monkeypatch, data):
    # large inputs compute half of the mask IoUs in a forked process; force it here
    from mlcycle.evaluation import match

    gt, dets = data
    if not dets:
        return
    monkeypatch.setattr(match, "PARALLEL_MASKS_MIN", 1)
    table = write_coco(tmp_path, gt, dets)
    E = pycoco(gt, dets, "segm")
    res, summary = engine(table, iou_type="segm")
    assert_same(E, res, summary)


def _two_image_segm(tmp_path):
    from pycocotools import mask as mu

    images = [{"id": i, "file_name": f"im{i}.jpg", "width": 200, "height": 200} for i in (1, 2)]
    anns = [{"id": i, "image_id": i, "category_id": 1, "bbox": [10, 10, 50, 50], "area": 2500.0, "iscrowd": 0,
             "segmentation": [[10, 10, 60, 10, 60, 60, 10, 60]]} for i in (1, 2)]
    dets = []
    for i in (1, 2):
        r = mu.frPyObjects([[12, 12, 58, 12, 58, 61, 12, 61]], 200, 200)[0]
        dets.append({"image_id": i, "category_id": 1, "score": 0.9,
                     "segmentation": {"size": r["size"], "counts": r["counts"].decode()}})
    gt = {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "c1"}]}
    return gt, dets


def test_bad_mask_in_the_second_process_half_is_reported_like_any(tmp_path, monkeypatch):
    import pyarrow as pa

    from mlcycle import table as T
    from mlcycle.errors import MlcycleError
    from mlcycle.evaluation import match

    monkeypatch.setattr(match, "PARALLEL_MASKS_MIN", 1)
    gt, dets = _two_image_segm(tmp_path)
    table = write_coco(tmp_path, gt, dets)
    seg = table.column(T.SEGMENTATION).to_pylist()
    src = table.column(T.SOURCE).to_pylist()
    last = max(i for i, s in enumerate(src) if s != "gt")   # the detection on image 2
    seg[last] = "{not json"
    table = table.set_column(table.column_names.index(T.SEGMENTATION), T.SEGMENTATION, pa.array(seg, pa.string()))
    with pytest.raises(MlcycleError, match=f"row {last + 1} \\(sample .im2.jpg.\\): segmentation is not valid JSON"):
        engine(table, iou_type="segm")


def test_rle_text_with_escaped_backslash_is_read_exactly(tmp_path):
    # compressed RLE counts use '0'..'o', which includes the backslash JSON escapes
    from pycocotools import mask as mu

    gt, dets = _two_image_segm(tmp_path)
    found = None
    for w in range(20, 120):
        for h in range(20, 120, 7):
            r = mu.frPyObjects([[11, 9, 11 + w, 9, 11 + w, 9 + h, 11, 9 + h]], 200, 200)[0]
            if b"\\" in r["counts"]:
                found = r
                break
        if found:
            break
    assert found is not None
    dets[0]["segmentation"] = {"size": found["size"], "counts": found["counts"].decode()}
    table = write_coco(tmp_path, gt, dets)
    E = pycoco(gt, dets, "segm")
    res, summary = engine(table, iou_type="segm")
    assert_same(E, res, summary)
    assert summary["AP"] == E.stats[0]


@settings(max_examples=40, deadline=None)
@given(keys=st.lists(st.integers(0, 6), max_size=60), scores=st.lists(SCORE | st.just(-0.0), max_size=60),
       presorted=st.booleans())
def test_sort_shortcuts_equal_lexsort(keys, scores, presorted):
    # the detection orders behind every number: group/class, then -score, then input order
    from mlcycle.evaluation.coco import _class_score_order
    from mlcycle.evaluation.match import _group_score_order

    n = min(len(keys), len(scores))
    key, sc = np.array(keys[:n], dtype=np.int64), np.array(scores[:n], dtype=np.float64)
    if presorted:  # as detectors write them: by image, then descending score
        o = np.lexsort((-sc, key))
        key, sc = key[o], sc[o]
    assert np.array_equal(_group_score_order(key, sc), np.lexsort((-sc, key)))
    assert np.array_equal(_class_score_order(key, sc, 7), np.lexsort((-sc, key)))


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(data=datasets())
def test_bbox_with_pairs_in_many_chunks_equals_pycocotools(tmp_path, monkeypatch, data):
    # large inputs generate box pairs in chunks; force several chunks here
    from mlcycle.evaluation import match

    gt, dets = data
    if not dets:
        return
    monkeypatch.setattr(match, "_PAIR_CHUNK", 3)
    table = write_coco(tmp_path, gt, dets)
    E = pycoco(gt, dets, "bbox")
    res, summary = engine(table)
    assert_same(E, res, summary)
