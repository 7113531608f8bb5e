"""Evaluation off the happy path (issue #13): pycocotools' loadRes rules for results
(mask-only results, the first result deciding areas), ground truth without a label, VOC07's
perfect 1.0, empty results through a real pipe, coco-results ingest (skip_invalid, an
instances file, image sizes from a label table), tables that read fine but cannot be
evaluated, and bounded time and memory on absurd masks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from mlcycle import io
from mlcycle import table as T
from mlcycle.errors import MlcycleError
from mlcycle.evaluation import evaluate
from mlcycle.formats import coco_results

from ._pyco import pycoco, write_coco

REPO = Path(__file__).resolve().parents[2]
PY = sys.executable


def _rle(mask: np.ndarray) -> dict:
    from pycocotools import mask as mu

    r = mu.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": r["counts"].decode()}


def _rect(h, w, x0, y0, x1, y1) -> np.ndarray:
    m = np.zeros((h, w), np.uint8)
    m[y0:y1, x0:x1] = 1
    return m


def _gt(n_img=3, h=120, w=160) -> dict:
    images = [{"id": i + 1, "file_name": f"im{i}.jpg", "width": w, "height": h} for i in range(n_img)]
    anns = []
    boxes = [(10, 10, 40, 30), (60, 50, 80, 60), (5, 70, 12, 10)]
    for i in range(n_img):
        for k, (x, y, bw, bh) in enumerate(boxes):
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": 1 + k % 2, "iscrowd": 0,
                         "bbox": [x, y, bw, bh], "area": bw * bh,
                         "segmentation": [[x, y, x + bw, y, x + bw, y + bh, x, y + bh]]})
    return {"images": images, "annotations": anns,
            "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}]}


def _mask_results(gt: dict, with_box=lambda i: False, jitter=(2, 1)) -> list:
    """detectron2-style results: a compressed RLE per detection, a box only where asked."""
    h, w = gt["images"][0]["height"], gt["images"][0]["width"]
    out = []
    for i, a in enumerate(gt["annotations"]):
        x, y, bw, bh = a["bbox"]
        dx, dy = jitter if i % 2 else (0, 0)
        r = {"image_id": a["image_id"], "category_id": a["category_id"], "score": round(0.9 - 0.05 * i, 3),
             "segmentation": _rle(_rect(h, w, x + dx, y + dy, x + bw + dx, y + bh - 3))}
        if with_box(i):
            r["bbox"] = [x, y, bw + 30, bh + 30]  # a box whose area is not the mask's
        out.append(r)
    # a false positive on each image
    for im in gt["images"]:
        out.append({"image_id": im["id"], "category_id": 1, "score": 0.5,
                    "segmentation": _rle(_rect(h, w, 120, 5, 150, 20))})
    return out


def _stats(doc: dict) -> list[float]:
    m = doc["metrics"]
    keys = ["AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large", "AR_1", "AR_10", "AR_100",
            "AR_small", "AR_medium", "AR_large"]
    return [m[k] for k in keys]


# --------------------------------------------------------------------------- loadRes' rules

@pytest.mark.parametrize("iou_type", ["bbox", "segm"])
def test_mask_only_results_equal_pycocotools(tmp_path, iou_type):
    gt = _gt()
    dets = _mask_results(gt)
    assert not any("bbox" in d for d in dets)
    doc = evaluate(write_coco(tmp_path, gt, dets), iou_type=iou_type).summary
    E = pycoco(gt, dets, iou_type)
    assert _stats(doc) == [float(v) for v in E.stats]
    assert doc["metrics"]["AP"] > 0.3  # the boxes come from the masks: not dropped
    assert not any("were left out" in w for w in doc["warnings"])


def test_mask_only_result_gets_box_and_area_of_its_mask(tmp_path):
    gt = _gt(n_img=1)
    dets = _mask_results(gt)[:1]
    t = write_coco(tmp_path, gt, dets)
    pred = T.filter_source(t, "pred")
    assert pred.column(T.BBOX).null_count == 1                 # written back as it came
    assert pred.column(T.AREA).to_pylist() == [40.0 * 27.0]    # maskUtils.area
    assert coco_results.to_list(t) == dets
    res = evaluate(t, iou_type="bbox")
    out = T.filter_source(res.table, "pred")
    # matched on the mask's box (maskUtils.toBbox: [10, 10, 40, 27]) against [10, 10, 40, 30]
    assert out.column(T.EVAL).to_pylist() == ["tp"]
    assert out.column(T.EVAL_IOU).to_pylist() == [pytest.approx(27 / 30)]


def test_cocoapi_fakesegm_results_as_bbox_equal_pycocotools(external):
    gt = external / "MiXaiLL76__faster_coco_eval/tests/dataset/cocoapi/instances_val2014_100.json"
    dt = external / "cocodataset__cocoapi/results/instances_val2014_fakesegm100_results.json"
    from mlcycle.formats import ReadOptions, coco

    table = io.concat([coco.read(gt, ReadOptions()), coco_results.read(dt, coco_results.ReadOptions(images=gt))])
    import contextlib
    import io as _io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(_io.StringIO()):
        cg = COCO(str(gt))
        E = COCOeval(cg, cg.loadRes(str(dt)), "bbox")
        E.evaluate()
        E.accumulate()
        E.summarize()
    doc = evaluate(table, iou_type="bbox").summary
    assert _stats(doc) == [float(v) for v in E.stats]
    assert round(doc["metrics"]["AP"], 3) == 0.483


@pytest.mark.parametrize("iou_type", ["bbox", "segm"])
def test_first_result_without_box_means_mask_areas_for_all(tmp_path, iou_type):
    """loadRes' segm branch: the first result has no bbox, so every area is the mask's,
    also for results that carry a (much larger) box."""
    gt = _gt()
    dets = _mask_results(gt, with_box=lambda i: i % 3 == 1)
    assert "bbox" not in dets[0] and any("bbox" in d for d in dets)
    t = write_coco(tmp_path, gt, dets)
    pred = T.filter_source(t, "pred")
    with_box = [i for i, d in enumerate(dets) if "bbox" in d]
    areas = pred.column(T.AREA).to_pylist()
    assert all(areas[i] != dets[i]["bbox"][2] * dets[i]["bbox"][3] for i in with_box)
    doc = evaluate(t, iou_type=iou_type, area_ranges={"mid": (1000, 1500)}).summary
    E = pycoco(gt, dets, iou_type)
    assert _stats(doc) == [float(v) for v in E.stats]


@pytest.mark.parametrize("iou_type", ["bbox", "segm"])
def test_first_result_with_box_means_box_areas_for_all(tmp_path, iou_type):
    """loadRes' bbox branch: the first result has a bbox, so every area is w*h of the box."""
    gt = _gt()
    from pycocotools import mask as mu

    dets = _mask_results(gt)
    for d in dets:  # a box larger than the mask: its area is not the mask's
        x, y, w, h = mu.toBbox(d["segmentation"]).tolist()
        d["bbox"] = [x, y, w + 30, h + 30]
    t = write_coco(tmp_path, gt, dets)
    areas = T.filter_source(t, "pred").column(T.AREA).to_pylist()
    assert areas == [d["bbox"][2] * d["bbox"][3] for d in dets]
    E = pycoco(gt, dets, iou_type)
    assert _stats(evaluate(t, iou_type=iou_type).summary) == [float(v) for v in E.stats]


def test_later_result_without_box_in_the_box_branch_gets_its_masks_box(tmp_path):
    """pycocotools fails (KeyError) on it; mlcycle gives it its mask's box, and, as in the
    branch the first result chose, the area w*h of that box."""
    gt = _gt(n_img=1)
    dets = _mask_results(gt, with_box=lambda i: i == 0)[:2]
    t = write_coco(tmp_path, gt, dets)
    pred = T.filter_source(t, "pred")
    assert pred.column(T.AREA).to_pylist()[1] == 80.0 * 56.0  # w*h of the mask's box [62, 51, 80, 56]
    out = T.filter_source(evaluate(t, iou_type="bbox").table, "pred")
    assert out.column(T.EVAL_IOU).to_pylist()[1] == pytest.approx((78 * 56) / (80 * 60 + 80 * 56 - 78 * 56))


# --------------------------------------------------------------------------- labels

def _table(rows: list[dict]) -> pa.Table:
    cols = {k: [r.get(k) for r in rows] for k in dict.fromkeys(k for r in rows for k in r)}
    if T.BBOX in cols:
        cols[T.BBOX] = np.array([b if b is not None else [np.nan] * 4 for b in cols[T.BBOX]], float)
    return T.from_columns(cols)


def test_ground_truth_without_label_is_an_error_naming_the_row():
    t = _table([
        {T.SAMPLE_ID: "a.jpg", T.SOURCE: "gt", T.LABEL: "cat", T.BBOX: [0, 0, 10, 10]},
        {T.SAMPLE_ID: "b.jpg", T.SOURCE: "gt", T.LABEL: None, T.BBOX: [0, 0, 10, 10]},
        {T.SAMPLE_ID: "a.jpg", T.SOURCE: "pred", T.LABEL: "cat", T.BBOX: [0, 0, 10, 10], T.SCORE: 0.9},
    ])
    with pytest.raises(MlcycleError, match=r"row 2 \(sample 'b.jpg'\)") as err:
        evaluate(t)
    assert "no label" in str(err.value)
    # all labels null: the same error, not a crash
    t2 = t.set_column(t.column_names.index(T.LABEL), T.LABEL, pa.array([None, None, "cat"], pa.string()))
    with pytest.raises(MlcycleError, match=r"2 ground-truth label\(s\) have a box or mask but no label"):
        evaluate(t2)


def test_prediction_without_label_is_not_counted_under_a_class():
    t = _table([
        {T.SAMPLE_ID: "a.jpg", T.SOURCE: "gt", T.LABEL: "cat", T.BBOX: [0, 0, 10, 10]},
        {T.SAMPLE_ID: "a.jpg", T.SOURCE: "gt", T.LABEL: "zebra", T.BBOX: [50, 50, 10, 10]},
        {T.SAMPLE_ID: "a.jpg", T.SOURCE: "pred", T.LABEL: "cat", T.BBOX: [0, 0, 10, 10], T.SCORE: 0.9},
        {T.SAMPLE_ID: "a.jpg", T.SOURCE: "pred", T.LABEL: None, T.BBOX: [50, 50, 10, 10], T.SCORE: 0.8},
    ])
    res = evaluate(t)
    doc = res.summary
    assert doc["inputs"].get("predictions_without_label") == 1
    assert "unknown_classes" not in doc["inputs"]
    assert any("1 prediction(s) without a label were ignored" in w for w in doc["warnings"])
    assert not any("zebra" in w or "cat" in w for w in doc["warnings"])
    assert doc["metrics"]["AP50"] == pytest.approx(0.5)  # zebra missed, cat found


# --------------------------------------------------------------------------- VOC07

def test_voc07_perfect_result_is_exactly_one():
    rows = [{T.SAMPLE_ID: f"{i}.jpg", T.SOURCE: s, T.LABEL: "cat", T.BBOX: [i, i, 20, 20],
             **({T.SCORE: 0.5 + i / 100} if s == "pred" else {})} for i in range(7) for s in ("gt", "pred")]
    doc = evaluate(_table(rows), method="voc07").summary
    assert doc["metrics"]["mAP"] == 1.0
    assert doc["per_class"]["cat"]["AP"] == 1.0


# --------------------------------------------------------------------------- coco-results ingest

def _sample_gt(tmp_path) -> tuple[Path, Path]:
    from mlcycle import sample_dataset

    root = Path(sample_dataset())
    gj = root / "annotations" / "instances_val.json"
    gp = tmp_path / "gt.parquet"
    r = subprocess.run([PY, "-m", "mlcycle", "ingest", "coco", gj, "-o", gp, "-q"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return gj, gp


def test_empty_results_through_a_real_pipe(tmp_path):
    """`ingest coco-results [] | evaluate gt -`: AP 0 with the documented warning."""
    gj, gp = _sample_gt(tmp_path)
    empty = tmp_path / "empty.json"
    empty.write_text("[]")
    cmd = (f"{PY} -m mlcycle ingest coco-results {empty} --images {gj} "
           f"| {PY} -m mlcycle evaluate {gp} - --json; echo \"rc=${{PIPESTATUS[0]}},${{PIPESTATUS[1]}}\" >&2")
    r = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=120)
    assert "rc=0,0" in r.stderr, r.stderr
    doc = json.loads(r.stdout)
    assert doc["metrics"]["AP"] == 0.0 and doc["metrics"]["AR_100"] == 0.0
    assert "warning: no predictions" in r.stderr
    assert "internal error" not in r.stderr


def test_coco_results_skip_invalid(tmp_path):
    gt = _gt(n_img=1)
    gp = tmp_path / "gt.json"
    gp.write_text(json.dumps(gt))
    dets = [
        {"image_id": 1, "category_id": 1, "bbox": [10, 10, 40, 30], "score": 0.9},
        {"image_id": 99, "category_id": 1, "bbox": [10, 10, 40, 30], "score": 0.8},   # unknown image
        {"image_id": 1, "category_id": 7, "bbox": [10, 10, 40, 30], "score": 0.8},    # unknown class
        {"image_id": 1, "category_id": 1, "bbox": [10, 10, "x", 30], "score": 0.8},   # bad box
        {"image_id": 1, "category_id": 1, "bbox": [10, 10, 40, 30], "score": None},   # no score
        {"image_id": 1.0, "category_id": 2.0, "bbox": [60, 50, 80, 60], "score": 0.7},  # 1.0: an integer
        "not an object",
    ]
    dp = tmp_path / "dt.json"
    dp.write_text(json.dumps(dets))
    with pytest.raises(MlcycleError, match=r"dt.json: \[6\] is not an object"):
        coco_results.read(dp, coco_results.ReadOptions(images=gp))
    from mlcycle import reporting

    with reporting.collect() as seen:
        t = coco_results.read(dp, coco_results.ReadOptions(images=gp, skip_invalid=True))
    assert t.column(T.LABEL_ID).to_pylist() == [1, 6]
    assert t.column(T.LABEL).to_pylist() == ["cat", "dog"]
    assert t.column(T.IMAGE_ID).to_pylist() == [1, 1]
    assert len(seen.warnings) == 1 and "skipped 5 invalid COCO results" in seen.warnings[0]


def test_instances_file_given_as_results_says_how_to_read_it(tmp_path, runner):
    gj, _ = _sample_gt(tmp_path)
    r = runner(["ingest", "coco-results", gj, "--images", gj, "-o", tmp_path / "x.parquet"])
    assert r.exit_code == 1
    assert "is a COCO instances file" in r.stderr and "mlcycle ingest coco" in r.stderr
    assert not (tmp_path / "x.parquet").exists()


def test_images_from_a_label_table_give_sizes_like_the_json(tmp_path, runner):
    """README's quick start: `ingest coco-results ... --images gt.parquet`, then YOLO
    export, relative size ranges and segm all work."""
    from mlcycle import sample_dataset

    root = Path(sample_dataset())
    gj, gp = _sample_gt(tmp_path)
    dets = root / "predictions" / "detections_val.json"
    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    assert runner(["ingest", "coco-results", dets, "--images", gj, "-o", a]).exit_code == 0
    assert runner(["ingest", "coco-results", dets, "--images", gp, "-o", b]).exit_code == 0
    ta, tb = io.read_table(a), io.read_table(b)
    assert tb.column(T.WIDTH).null_count == 0
    for col in (T.SAMPLE_ID, T.WIDTH, T.HEIGHT, T.LABEL, T.BBOX, T.AREA):
        assert ta.column(col).to_pylist() == tb.column(col).to_pylist(), col
    r = runner(["export", "yolo", b, "-o", tmp_path / "y", "--source", "pred"])
    assert r.exit_code == 0, r.stderr
    r = runner(["evaluate", gp, b, "--rel-area-range", "under5=0:5%", "--iou-type", "segm", "--json"])
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["metrics"]["AP_under5"] >= 0


# --------------------------------------------------------------------------- tables that cannot be evaluated

GT_ROW = {"sample_id": "a.jpg", "source": "gt", "label": "cat", "bbox": [0, 0, 10, 10], "width": 100, "height": 100}


def _pred(**kw) -> dict:
    row = {"sample_id": "a.jpg", "source": "pred", "label": "cat", "score": 0.5, "width": 100, "height": 100}
    row.update(kw)
    return row


@pytest.mark.parametrize("pred, iou_type, message", [
    (_pred(score="high"), "bbox", "column 'score'"),
    (_pred(bbox=[0, 0, None, 10]), "bbox", r"row 2 (sample 'a.jpg'): bbox has missing or NaN values"),
    (_pred(bbox=[0, 0, 10]), "bbox", "column 'bbox' has 3 values"),
    (_pred(label=5, bbox=[0, 0, 10, 10]), "bbox", "column 'label'"),
    (_pred(area=-4.0, bbox=[0, 0, 10, 10]), "bbox", "row 2 (sample 'a.jpg'): area -4.0"),
    (_pred(segmentation="not json"), "segm", "row 2 (sample 'a.jpg'): segmentation is not valid JSON"),
    (_pred(segmentation="[1, 2, 3]"), "segm", "segmentation is neither polygons"),
    (_pred(segmentation="[[0, 0, 5]]"), "segm", "a polygon needs at least 3 points"),
    (_pred(segmentation='[[0, 0, 5, 0, "x", 5]]'), "segm", "not a number"),
    (_pred(segmentation='{"size": [100, 100], "counts": [5, -1, 9996]}'), "segm", "negative"),
    (_pred(segmentation='{"size": [-100, 100], "counts": "0"}'), "segm", "is not [height, width]"),
    (_pred(segmentation='{"size": [50, 100], "counts": [5000]}'), "segm", "RLE size 50x100 (height x width) is not the image's 100x100"),
    (_pred(segmentation='{"size": [100, 100], "counts": "0a0"}'), "segm", "RLE runs add up to 17 pixels"),
    (_pred(segmentation='{"size": [100, 100], "counts": "0Q"}'), "segm", "not a valid compressed RLE"),
    (_pred(segmentation='{"size": [100, 100], "counts": 5}'), "segm", "RLE 'counts'"),
    (_pred(segmentation="[[0, 0, 1e9, 0, 1e9, 1e9]]"), "segm", "far outside the 100x100 image"),
])
def test_tables_that_cannot_be_evaluated_fail_clearly(runner, tmp_path, pred, iou_type, message):
    src = tmp_path / "t.jsonl"
    src.write_text(json.dumps(GT_ROW) + "\n" + json.dumps(pred) + "\n")
    out = tmp_path / "o.jsonl"
    r = runner(["evaluate", src, "--iou-type", iou_type, "-o", out])
    assert r.exit_code == 1, r.stderr
    assert r.stderr.startswith("error: ") and message in r.stderr, r.stderr
    assert "internal error" not in r.stderr and "Traceback" not in r.stderr
    assert not out.exists()


def test_non_finite_polygon_coordinates_never_reach_pycocotools():
    """A NaN inside a polygon crashes pycocotools' rasteriser: it never gets there."""
    from mlcycle.evaluation.masks import decode

    rles, problems = decode([[[0, 0, float("nan"), 0, 5, 5]], [[0, 0, 5, 0, float("inf"), 5]], [[0, 0, 5, 0, 5, 5]]],
                            np.full(3, 10.0), np.full(3, 10.0))
    assert set(problems) == {0, 1} and all("not finite" in p for p in problems.values())
    assert rles[2] is not None and rles[0] is None
    t = _table([{**GT_ROW, T.BBOX: [0, 0, 10, 10]},
                {**_pred(), T.BBOX: None, T.SEGMENTATION: "[[0, 0, NaN, 0, 5, 5]]"}])
    with pytest.raises(MlcycleError, match=r"row 2 \(sample 'a.jpg'\): segmentation is not valid JSON"):
        evaluate(t, iou_type="segm")


def test_empty_polygon_list_is_no_mask():
    """COCO files write "segmentation": [] for box-only annotations (pycocotools fails on
    them in segm evaluation): the box stands in for the mask, as for a missing one."""
    rows = [{**GT_ROW, T.SEGMENTATION: "[]"}, {**_pred(), T.BBOX: [0, 0, 10, 10], T.SEGMENTATION: "[]"}]
    doc = evaluate(_table(rows), iou_type="segm").summary
    assert doc["metrics"]["AP50"] == pytest.approx(1.0)


def test_compressed_rle_totals_match_pycocotools():
    from pycocotools import mask as mu

    from mlcycle.evaluation.masks import rle_totals

    rng = np.random.default_rng(0)
    counts, sizes = [], []
    for i in range(200):
        h, w = rng.integers(1, 40, 2)
        m = (rng.random((h, w)) < [0.0, 1.0, rng.random()][i % 3]).astype(np.uint8)
        counts.append(mu.encode(np.asfortranarray(m))["counts"])
        sizes.append(h * w)
    total, valid = rle_totals(counts)
    assert valid.all() and total.tolist() == sizes


# --------------------------------------------------------------------------- bounded resources

_LIMITED = textwrap.dedent("""
    import resource, sys
    limit = 3 << 30
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    from mlcycle.cli import main
    sys.argv = ["mlcycle"] + sys.argv[1:]
    main()
""")


def _run_limited(args, timeout=60):
    return subprocess.run([PY, "-c", _LIMITED, *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          cwd=REPO, env={**os.environ, "MLCYCLE_DEBUG": ""})


@pytest.mark.parametrize("case", ["huge_coordinates", "huge_image"])
def test_absurd_masks_end_fast_with_a_clear_error(tmp_path, case):
    """Coordinates of 1e8-1e9 took 16-24 GB and then segfaulted; a 70000x70000 image with a
    full-image polygon never finished. Now: exit 1, at once, under a 3 GB memory limit."""
    if case == "huge_coordinates":
        w = h = 640
        poly = [[1e8, 1e8, 9e8, 1e8, 9e8, 9e8, 1e8, 9e8]]
        expect = "far outside the 640x640 image"
    else:
        w = h = 70000
        poly = [[0, 0, w, 0, w, h, 0, h]]
        expect = "larger than the limit of 2147483647 pixels"
    rows = [{"sample_id": "a.jpg", "source": "gt", "label": "cat", "bbox": [0, 0, 10, 10], "width": w, "height": h,
             "segmentation": json.dumps(poly)},
            {"sample_id": "a.jpg", "source": "pred", "label": "cat", "bbox": [0, 0, 10, 10], "score": 0.9,
             "width": w, "height": h, "segmentation": json.dumps(poly)}]
    src = tmp_path / "t.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    r = _run_limited(["evaluate", src, "--iou-type", "segm", "-o", tmp_path / "o.jsonl"])
    assert r.returncode == 1, (r.returncode, r.stderr[-2000:])
    assert r.stderr.startswith("error: ") and expect in r.stderr, r.stderr
    assert "(sample 'a.jpg'): segmentation" in r.stderr
