"""Pascal VOC AP (mlcycle.evaluation.voc) against the stated values of the external fixtures
and against a direct port of the py-faster-rcnn / devkit loop on generated data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlcycle import table as T
from mlcycle.errors import MlcycleError
from mlcycle.evaluation import voc

REVIEW = "rafaelpadilla__review_object_detection_metrics"


# --------------------------------------------------------------------------- loaders

def load_txt(folder: Path, source: str, scored: bool, corners: bool = False) -> pa.Table:
    """``class [score] x y w h`` (or ``class [score] left top right bottom [difficult]``,
    Cartucho's form) per line, one file per sample; an empty file becomes a sample row."""
    sid, lab, box, score, diff = [], [], [], [], []
    files = sorted(Path(folder).glob("*.txt"))
    assert files, folder
    for f in files:
        lines = [ln.split() for ln in f.read_text().splitlines() if ln.strip()]
        for p in lines:
            diff.append(p[-1] == "difficult")
            vals = [float(v) for v in p[1:] if v != "difficult"]
            if scored:
                score.append(vals.pop(0))
            x, y, a, b = vals[:4]
            sid.append(f.stem)
            lab.append(p[0])
            box.append([x, y, a - x, b - y] if corners else [x, y, a, b])
        if not lines:
            sid.append(f.stem)
            lab.append(None)
            box.append([np.nan] * 4)
            diff.append(None)
            if scored:
                score.append(None)
    cols = {T.SAMPLE_ID: sid, T.SOURCE: [source] * len(sid), T.LABEL: lab, T.BBOX: np.array(box, dtype=float)}
    if scored:
        cols[T.SCORE] = score
    else:
        cols[T.DIFFICULT] = diff
    return T.from_columns(cols)


def load_voc_xml(folder: Path, source: str = "gt") -> pa.Table:
    """VOC XML ground truth (corners, no +1: w = xmax - xmin) with the difficult flag."""
    from mlcycle.formats._xml import parse_xml

    sid, lab, box, diff = [], [], [], []
    for f in sorted(Path(folder).glob("*.xml")):
        objs = parse_xml(f).findall("object")
        for o in objs:
            bb = o.find("bndbox")
            x1, y1, x2, y2 = (float(bb.find(k).text) for k in ("xmin", "ymin", "xmax", "ymax"))
            d = o.find("difficult")
            sid.append(f.stem)
            lab.append(o.find("name").text)
            box.append([x1, y1, x2 - x1, y2 - y1])
            diff.append(d is not None and d.text.strip() == "1")
        if not objs:
            sid.append(f.stem)
            lab.append(None)
            box.append([np.nan] * 4)
            diff.append(None)
    return T.from_columns({
        T.SAMPLE_ID: sid, T.SOURCE: [source] * len(sid), T.LABEL: lab,
        T.BBOX: np.array(box, dtype=float), T.DIFFICULT: diff,
    })


def both(gt: pa.Table, dt: pa.Table) -> pa.Table:
    return pa.concat_tables([gt, dt], promote_options="default")


@pytest.fixture(scope="module")
def test_case_1(external: Path) -> pa.Table:
    root = external / REVIEW / "tests" / "test_case_1"
    return both(load_txt(root / "gts", "gt", False), load_txt(root / "dets", "pred", True))


# --------------------------------------------------------------------------- stated values

@pytest.mark.parametrize("thr", ["0.1", "0.3", "0.5", "0.75"])
@pytest.mark.parametrize("style", ["eleven_point", "every_point"])
def test_review_test_case_1_stated_values(test_case_1, expected, thr, style):
    stated = expected["voc_style"]["review_test_case_1"]["stated"][style][thr]
    res = voc.evaluate(test_case_1, iou=float(thr), use_07=style == "eleven_point")
    assert res["method"] == ("voc07" if style == "eleven_point" else "voc")
    assert res["inclusive_pixels"] is True
    assert res["mAP"] == pytest.approx(stated, abs=1e-10)  # stated to 10 decimals
    assert res["per_class"]["object"]["AP"] == res["mAP"]
    assert res["per_class"]["object"]["num_gt"] == 15
    assert res["per_class"]["object"]["num_pred"] == 24


def test_review_test_case_1_needs_plus_one(test_case_1, expected):
    """Without the inclusive-pixel convention the stated values are not reproduced
    (the figures EXPECTED.json records for that case)."""
    stated = expected["voc_style"]["review_test_case_1"]["stated"]
    assert voc.evaluate(test_case_1, iou=0.1, inclusive=False)["mAP"] == pytest.approx(0.2801328502, abs=1e-10)
    assert voc.evaluate(test_case_1, iou=0.3, inclusive=False)["mAP"] == pytest.approx(0.2253968254, abs=1e-10)
    assert voc.evaluate(test_case_1, iou=0.1, use_07=True, inclusive=False)["mAP"] == pytest.approx(0.3024538867, abs=1e-10)
    assert voc.evaluate(test_case_1, iou=0.1, inclusive=False)["mAP"] != pytest.approx(stated["every_point"]["0.1"], abs=1e-6)


def test_object_detection_metrics_sample(external, expected):
    root = external / "rafaelpadilla__Object-Detection-Metrics"
    table = both(load_txt(root / "groundtruths", "gt", False), load_txt(root / "detections", "pred", True))
    stated = expected["voc_style"]["odm_sample"]["stated"]
    every = voc.evaluate(table, iou=0.3)
    eleven = voc.evaluate(table, iou=0.3, use_07=True)
    assert round(every["per_class"]["person"]["AP"] * 100, 2) == stated["every_point_t0.3_percent"]
    assert round(every["mAP"] * 100, 2) == stated["every_point_t0.3_percent"]
    assert round(eleven["mAP"] * 100, 2) == stated["eleven_point_t0.3_percent"]


@pytest.mark.parametrize("dets,corners", [("dets_classname_abs_xywh", False), ("dets_classname_abs_xyx2y2", True)])
def test_toyexample_cat(external, expected, dets, corners):
    root = external / REVIEW / "toyexample"
    table = both(load_voc_xml(root / "gts_vocpascal_format"), load_txt(root / dets, "pred", True, corners))
    stated = expected["voc_style"]["review_toyexample_cat"]["stated"]
    for thr, key in ((0.5, "t0.5"), (0.75, "t0.75")):
        eleven = voc.evaluate(table, iou=thr, use_07=True)["per_class"]["cat"]
        every = voc.evaluate(table, iou=thr)["per_class"]["cat"]
        assert round(eleven["AP"] * 100, 2) == stated[key]["eleven_point_percent"]
        assert round(every["AP"] * 100, 2) == stated[key]["every_point_percent"]
        assert every["num_gt"] == 12 and every["num_pred"] == 12
    # the re-implementation figures recorded in EXPECTED.json
    assert voc.evaluate(table, iou=0.5, use_07=True)["mAP"] == pytest.approx(0.886364, abs=1e-6)
    assert voc.evaluate(table, iou=0.75)["mAP"] == pytest.approx(0.509722, abs=1e-6)


def test_cartucho_map_and_per_class(external, expected):
    root = external / "Cartucho__mAP" / "input"
    table = both(load_txt(root / "ground-truth", "gt", False, corners=True),
                 load_txt(root / "detection-results", "pred", True, corners=True))
    computed = expected["voc_style"]["cartucho_sample"]["computed"]
    res = voc.evaluate(table)
    assert res["mAP"] == pytest.approx(computed["mAP_exact"], abs=1e-12)
    assert round(res["mAP"] * 100, 2) == computed["mAP_percent"]
    got = {c: round(v["AP"] * 100, 2) for c, v in res["per_class"].items() if v["AP"] is not None}
    assert got == computed["per_class_AP_percent"]
    assert res["counts"]["classes_in_mAP"] == computed["n_classes_in_mean"]
    assert res["classes_without_gt"] == ["keyboard", "knife", "lamp", "laptop", "oven",
                                         "refrigerator", "toilet", "toothbrush"]
    assert res["counts"]["gt"] == 686 and res["counts"]["pred"] == 494
    for c in res["classes_without_gt"]:
        entry = res["per_class"][c]
        assert entry["AP"] is None and entry["num_gt"] == 0 and entry["fp"] == entry["num_pred"] > 0


# --------------------------------------------------------------------------- semantics

def make(gt, pred, difficult=None) -> pa.Table:
    """gt: [(sample, label, [x,y,w,h])], pred: [(sample, label, score, [x,y,w,h])]."""
    rows = {T.SAMPLE_ID: [], T.SOURCE: [], T.LABEL: [], T.BBOX: [], T.SCORE: []}
    for s, lab, box in gt:
        for k, v in zip(rows, (s, "gt", lab, box, None)):
            rows[k].append(v)
    for s, lab, sc, box in pred:
        for k, v in zip(rows, (s, "pred", lab, box, sc)):
            rows[k].append(v)
    rows[T.BBOX] = np.array([b if b is not None else [np.nan] * 4 for b in rows[T.BBOX]], dtype=float)
    if difficult is not None:
        rows[T.DIFFICULT] = list(difficult) + [None] * len(pred)
    return T.from_columns(rows)


def test_duplicate_detection_is_fp_and_curve():
    t = make([("a", "cat", [0, 0, 10, 10])],
             [("a", "cat", 0.9, [0, 0, 10, 10]), ("a", "cat", 0.8, [0, 0, 10, 10])])
    c = voc.evaluate(t)["per_class"]["cat"]
    assert (c["tp"], c["fp"]) == (1, 1)
    assert c["precision"] == [1.0, 0.5] and c["recall"] == [1.0, 1.0] and c["scores"] == [0.9, 0.8]
    assert c["AP"] == 1.0


def test_best_box_taken_means_fp_even_if_another_box_overlaps():
    """VOC takes the argmax-IoU box whether or not it is already detected (unlike COCO)."""
    t = make([("a", "cat", [0, 0, 10, 10]), ("a", "cat", [2, 0, 10, 10])],
             [("a", "cat", 0.9, [0, 0, 10, 10]), ("a", "cat", 0.8, [0, 0, 10, 10])])
    c = voc.evaluate(t)["per_class"]["cat"]
    assert (c["tp"], c["fp"]) == (1, 1)
    assert c["AP"] == pytest.approx(0.5)


def test_difficult_is_neither_counted_nor_penalised():
    t = make([("a", "cat", [0, 0, 10, 10]), ("a", "cat", [50, 50, 10, 10])],
             [("a", "cat", 0.9, [50, 50, 10, 10]), ("a", "cat", 0.5, [0, 0, 10, 10]),
              ("a", "cat", 0.4, [50, 50, 10, 10])],
             difficult=[False, True])
    r = voc.evaluate(t)
    c = r["per_class"]["cat"]
    assert c["num_gt"] == 1 and c["num_difficult"] == 1
    assert (c["tp"], c["fp"], c["ignored"]) == (1, 0, 2)
    assert c["AP"] == 1.0 and c["precision"] == [1.0] and c["scores"] == [0.5]
    assert r["counts"]["pred_ignored"] == 2 and r["counts"]["gt_difficult"] == 1


@pytest.mark.parametrize("values", [[0, 1], [False, True], ["0", "1"]])
def test_difficult_column_int_or_bool(values):
    t = make([("a", "cat", [0, 0, 10, 10]), ("a", "cat", [50, 50, 10, 10])],
             [("a", "cat", 0.9, [50, 50, 10, 10])], difficult=values)
    assert voc.evaluate(t)["per_class"]["cat"]["ignored"] == 1


def test_only_difficult_class_is_not_averaged():
    t = make([("a", "cat", [0, 0, 10, 10]), ("a", "dog", [50, 50, 10, 10])],
             [("a", "cat", 0.9, [0, 0, 10, 10])], difficult=[False, True])
    r = voc.evaluate(t)
    assert r["mAP"] == 1.0 and r["per_class"]["dog"]["AP"] is None
    assert r["classes_without_gt"] == ["dog"]


def test_threshold_is_inclusive_at_exact_iou():
    """IoU exactly at the threshold is a TP (devkit/Cartucho/review `>=`; py-faster-rcnn
    uses `>`, which the stated fixtures do not distinguish)."""
    # continuous: [0,0,10,10] vs [0,0,20,10]: I=100, U=200 -> 0.5 exactly
    t = make([("a", "cat", [0, 0, 10, 10])], [("a", "cat", 0.9, [0, 0, 20, 10])])
    assert voc.evaluate(t, iou=0.5, inclusive=False)["per_class"]["cat"]["tp"] == 1
    # inclusive: widths 10 and 21 pixels (x2 = x + w), heights 10 -> 11*11 / (11*21)
    t = make([("a", "cat", [0, 0, 10, 10])], [("a", "cat", 0.9, [0, 0, 20, 10])])
    assert voc.evaluate(t, iou=11 / 21, inclusive=True)["per_class"]["cat"]["tp"] == 1
    assert voc.evaluate(t, iou=11 / 21 + 1e-9, inclusive=True)["per_class"]["cat"]["tp"] == 0


def test_plus_one_pixel_arithmetic():
    # touching boxes share one pixel column under the inclusive convention
    t = make([("a", "cat", [0, 0, 9, 9])], [("a", "cat", 0.9, [9, 0, 9, 9])])
    c = voc.evaluate(t, iou=0.05)["per_class"]["cat"]
    assert c["tp"] == 1  # I = 1*10, U = 190 -> 0.0526
    assert voc.evaluate(t, iou=0.05, inclusive=False)["per_class"]["cat"]["tp"] == 0


def test_other_image_or_class_never_matches_and_rows_without_box_are_skipped():
    t = make([("a", "cat", [0, 0, 10, 10]), ("b", None, None), ("b", "cat", None)],
             [("b", "cat", 0.9, [0, 0, 10, 10]), ("a", "dog", 0.8, [0, 0, 10, 10]),
              ("a", "cat", 0.7, [0, 0, 10, 10]), ("c", None, None, None)])
    r = voc.evaluate(t)
    assert r["counts"]["gt"] == 1 and r["counts"]["pred"] == 3
    cat = r["per_class"]["cat"]
    assert (cat["tp"], cat["fp"]) == (1, 1) and cat["AP"] == pytest.approx(0.5)
    assert r["mAP"] == cat["AP"]  # dog has no ground truth: listed, not averaged
    assert r["per_class"]["dog"]["fp"] == 1 and r["classes_without_gt"] == ["dog"]


def test_eleven_point_uses_devkit_recall_points():
    # 10 GT, 7 TP then stop: recall 0.7 exactly; devkit's arange gives 0.7000000000000001,
    # so t=0.7 has no point with recall >= t -> 7 of 11 points at precision 1
    gt = [("a", "cat", [i * 20, 0, 10, 10]) for i in range(10)]
    pred = [("a", "cat", 1 - i / 100, [i * 20, 0, 10, 10]) for i in range(7)]
    r = voc.evaluate(make(gt, pred), use_07=True)
    assert r["mAP"] == pytest.approx(7 / 11)
    assert voc.evaluate(make(gt, pred))["mAP"] == pytest.approx(0.7)


def test_empty_predictions_give_zero():
    t = make([("a", "cat", [0, 0, 10, 10])], [])
    r = voc.evaluate(t)
    assert r["mAP"] == 0.0 and r["per_class"]["cat"]["AP"] == 0.0
    assert r["per_class"]["cat"]["precision"] == []


def test_other_sources_are_ignored_and_pred_source_selects():
    t = make([("a", "cat", [0, 0, 10, 10])], [("a", "cat", 0.9, [0, 0, 10, 10])])
    other = T.from_columns({T.SAMPLE_ID: ["a"], T.SOURCE: ["model2"], T.LABEL: ["cat"],
                            T.BBOX: np.array([[50.0, 50, 5, 5]]), T.SCORE: [0.99]})
    t = both(t, other)
    assert voc.evaluate(t)["mAP"] == 1.0
    assert voc.evaluate(t, pred_source="model2")["mAP"] == 0.0


def test_bad_input_messages():
    with pytest.raises(MlcycleError, match="no ground-truth boxes"):
        voc.evaluate(make([], [("a", "cat", 0.9, [0, 0, 1, 1])]))
    with pytest.raises(MlcycleError, match="without a score"):
        voc.evaluate(make([("a", "cat", [0, 0, 1, 1])], [("a", "cat", None, [0, 0, 1, 1])]))
    with pytest.raises(MlcycleError, match=r"row 2 .*NaN"):
        voc.evaluate(make([("a", "cat", [0, 0, 1, 1])], [("a", "cat", 0.5, [0, np.nan, 1, 1])]))


# --------------------------------------------------------------------------- reference

def reference_voc(gt, pred, iou, use_07, inclusive, difficult):
    """Direct port of the devkit loop (py-faster-rcnn voc_eval with `>=`), per class."""
    one = 1.0 if inclusive else 0.0
    classes = sorted({g[1] for g in gt} | {p[1] for p in pred})
    out = {}
    for c in classes:
        recs = {}
        npos = 0
        for (s, lab, b), d in zip(gt, difficult):
            if lab == c:
                recs.setdefault(s, []).append([b[0], b[1], b[0] + b[2], b[1] + b[3], d, False])
                npos += not d
        dets = [p for p in pred if p[1] == c]
        dets = sorted(dets, key=lambda p: -p[2])  # stable: ties keep input order
        tp, fp = [], []
        for s, _, _, b in dets:
            bb = [b[0], b[1], b[0] + b[2], b[1] + b[3]]
            ovmax, jmax = -np.inf, -1
            for j, g in enumerate(recs.get(s, [])):
                iw = max(min(bb[2], g[2]) - max(bb[0], g[0]) + one, 0.0)
                ih = max(min(bb[3], g[3]) - max(bb[1], g[1]) + one, 0.0)
                inter = iw * ih
                uni = (bb[2] - bb[0] + one) * (bb[3] - bb[1] + one) + (g[2] - g[0] + one) * (g[3] - g[1] + one) - inter
                ov = inter / uni if uni > 0 else 0.0
                if ov > ovmax:
                    ovmax, jmax = ov, j
            if ovmax >= iou and ovmax > 0:
                g = recs[s][jmax]
                if g[4]:
                    continue
                if not g[5]:
                    g[5] = True
                    tp.append(1), fp.append(0)
                else:
                    tp.append(0), fp.append(1)
            else:
                tp.append(0), fp.append(1)
        if npos == 0:
            out[c] = None
            continue
        tpc, fpc = np.cumsum(tp, dtype=float), np.cumsum(fp, dtype=float)
        rec = tpc / npos
        prec = tpc / np.maximum(tpc + fpc, np.finfo(np.float64).eps)
        if use_07:
            ap = devkit = 0.0
            for t in np.arange(0.0, 1.1, 0.1):
                p = 0 if np.sum(rec >= t) == 0 else np.max(prec[rec >= t])
                ap = ap + p
                devkit = devkit + p / 11.0
            ap = ap / 11.0  # the devkit adds p / 11 point by point; mlcycle sums first (1.0 stays 1.0)
            assert ap == pytest.approx(devkit, rel=1e-14, abs=1e-15)
        else:
            mrec = np.concatenate(([0.0], rec, [1.0]))
            mpre = np.concatenate(([0.0], prec, [0.0]))
            for i in range(mpre.size - 1, 0, -1):
                mpre[i - 1] = max(mpre[i - 1], mpre[i])
            i = np.where(mrec[1:] != mrec[:-1])[0]
            ap = np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1])
        out[c] = float(ap)
    return out


coord = st.integers(0, 40)
size = st.integers(1, 25)
box = st.tuples(coord, coord, size, size).map(list)
sample = st.sampled_from(["a", "b", "c"])
label = st.sampled_from(["cat", "dog", "eel"])


@settings(max_examples=60, deadline=None)
@given(
    gt=st.lists(st.tuples(sample, label, box, st.booleans()), min_size=1, max_size=14),
    pred=st.lists(st.tuples(sample, label, st.sampled_from([0.1, 0.5, 0.5, 0.7, 0.9, 0.95]), box), max_size=20),
    iou=st.sampled_from([0.1, 0.3, 0.5, 0.75]),
    use_07=st.booleans(),
    inclusive=st.booleans(),
)
def test_matches_devkit_loop(gt, pred, iou, use_07, inclusive):
    difficult = [g[3] for g in gt]
    gt3 = [g[:3] for g in gt]
    res = voc.evaluate(make(gt3, pred, difficult), iou=iou, use_07=use_07, inclusive=inclusive)
    ref = reference_voc(gt3, pred, iou, use_07, inclusive, difficult)
    assert {c: v["AP"] for c, v in res["per_class"].items()} == ref
    aps = [v for v in ref.values() if v is not None]
    assert res["mAP"] == (pytest.approx(float(np.mean(aps)), abs=0) if aps else 0.0)


# --------------------------------------------------------------------------- annotate

def test_annotate_marks_rows():
    t = make([("a", "cat", [0, 0, 10, 10]), ("a", "cat", [50, 50, 10, 10]), ("a", "cat", [90, 90, 5, 5]),
              ("b", None, None)],
             [("a", "cat", 0.9, [0, 0, 10, 10]), ("a", "cat", 0.8, [1, 0, 10, 10]),
              ("a", "cat", 0.7, [50, 50, 10, 10]), ("a", "dog", 0.6, [0, 0, 10, 10])],
             difficult=[False, True, False, None])
    t = t.append_column(T.LABEL_ID, pa.array([1, 2, 3, None, 11, 12, 13, 14], type=pa.int64()))
    out = voc.annotate(t)
    assert out.num_rows == t.num_rows and out.column_names[: t.num_columns] == t.column_names
    assert out.column(T.EVAL).to_pylist() == ["tp", None, "fn", None, "tp", "fp", None, "fp"]
    assert out.column(T.EVAL_ID).to_pylist() == [11, None, None, None, 1, None, 2, None]
    assert out.column(T.EVAL_IOU).to_pylist() == [1.0, None, None, None, 1.0, None, 1.0, None]
    # annotate twice replaces the columns instead of adding more
    again = voc.annotate(out, iou=0.99)
    assert again.column_names == out.column_names


@settings(max_examples=30, deadline=None)
@given(
    gt=st.lists(st.tuples(sample, label, box), min_size=1, max_size=10),
    pred=st.lists(st.tuples(sample, label, st.sampled_from([0.1, 0.5, 0.9]), box), max_size=15),
)
def test_annotate_agrees_with_counts(gt, pred):
    t = make(gt, pred)
    t = t.append_column(T.LABEL_ID, pa.array(range(t.num_rows), type=pa.int64()))
    res = voc.evaluate(t)
    out = voc.annotate(t)
    ev = out.column(T.EVAL).to_pylist()
    src = out.column(T.SOURCE).to_pylist()
    ids = out.column(T.EVAL_ID).to_pylist()
    assert sum(e == "tp" and s == "pred" for e, s in zip(ev, src)) == res["counts"]["tp"]
    assert sum(e == "tp" and s == "gt" for e, s in zip(ev, src)) == res["counts"]["tp"]
    assert sum(e == "fp" for e in ev) == res["counts"]["fp"]
    assert sum(e == "fn" for e in ev) == len(gt) - res["counts"]["tp"]
    for row, (e, i) in enumerate(zip(ev, ids)):
        if e == "tp":
            assert ids[i] == row and ev[i] == "tp" and src[i] != src[row]
