"""Paired bootstrap over images (mlcycle/evaluation/bootstrap.py).

The fast path (one matching, image multiplicities) is checked against a slow reference:
each resample built explicitly (copies of an image become new images, in the original
order) and evaluated again, by mlcycle's evaluate and by pycocotools; every metric of
every resample must be equal to the last bit for a fixed seed.
"""

from __future__ import annotations

import numpy as np
import pytest

import mlcycle
from mlcycle.evaluation import bootstrap as BS
from mlcycle.evaluation.prepare import Options, prepare
from tests.evaluation._pyco import pycoco, write_coco


def random_coco(seed: int, n_img: int = 14, n_cat: int = 3, crowd: float = 0.08, models=("a",), per_img=8):
    """A small COCO ground truth and detections (per model) with distinct scores."""
    rng = np.random.default_rng(seed)
    images = [{"id": i + 1, "file_name": f"im{i}.jpg", "width": 300, "height": 300} for i in range(n_img)]
    anns, gts = [], {}
    for i in range(n_img):
        for _ in range(int(rng.integers(0, 6))):
            w, h = rng.uniform(4, 160, 2)
            x, y = rng.uniform(0, 300 - w), rng.uniform(0, 300 - h)
            c = int(rng.integers(1, n_cat + 1))
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": c, "bbox": [x, y, w, h],
                         "area": float(w * h), "iscrowd": int(rng.random() < crowd)})
            gts.setdefault(i + 1, []).append(anns[-1])
    cats = [{"id": c, "name": f"c{c}"} for c in range(1, n_cat + 1)]
    dets = {}
    for mi, m in enumerate(models):
        out = []
        noise = 6 + 6 * mi
        for i in range(n_img):
            for _ in range(int(rng.integers(0, per_img))):
                g = gts.get(i + 1)
                if g and rng.random() < 0.75:
                    a = g[int(rng.integers(0, len(g)))]
                    x, y, w, h = a["bbox"]
                    box = [x + rng.normal(0, noise), y + rng.normal(0, noise), w * rng.uniform(.8, 1.2), h * rng.uniform(.8, 1.2)]
                    c = a["category_id"] if rng.random() < 0.85 else int(rng.integers(1, n_cat + 1))
                else:
                    w, h = rng.uniform(4, 160, 2)
                    box = [rng.uniform(0, 300 - w), rng.uniform(0, 300 - h), w, h]
                    c = int(rng.integers(1, n_cat + 1))
                out.append({"image_id": i + 1, "category_id": c, "bbox": [float(v) for v in box],
                            "score": float(rng.random())})
        dets[m] = out
    return {"images": images, "annotations": anns, "categories": cats}, dets


def resampled(gt: dict, dets: list, counts: np.ndarray) -> tuple[dict, list]:
    """The resample as a COCO dataset: copy c of image i gets id i*1000+c (order kept)."""
    images, anns, out = [], [], []
    by_img = {}
    for a in gt["annotations"]:
        by_img.setdefault(a["image_id"], []).append(a)
    d_by = {}
    for d in dets:
        d_by.setdefault(d["image_id"], []).append(d)
    for i, im in enumerate(gt["images"]):
        for c in range(int(counts[i])):
            nid = (i + 1) * 1000 + c
            images.append({**im, "id": nid, "file_name": f"{im['file_name']}#{c}"})
            for a in by_img.get(im["id"], []):
                anns.append({**a, "id": len(anns) + 1, "image_id": nid})
            for d in d_by.get(im["id"], []):
                out.append({**d, "image_id": nid})
    return {**gt, "images": images, "annotations": anns}, out


@pytest.fixture(params=["compiled", "numpy"])
def kernel(request, monkeypatch):
    """Each exactness test runs on both paths of ``metrics``: the compiled kernel (numba,
    the ``fast`` extra, installed with the test extra) and the numpy fallback."""
    if request.param == "numpy":
        monkeypatch.setenv("MLCYCLE_NO_NUMBA", "1")
        assert BS._kernel() is None
    else:
        monkeypatch.delenv("MLCYCLE_NO_NUMBA", raising=False)
        assert BS._kernel() is not None, "numba is in the test extra: the compiled kernel must build"
    return request.param


def _contrib(table, source="pred"):
    opts = Options(pred_source=source)
    prep = prepare(table, opts, source)
    return BS.contributions(prep, opts), prep


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_all_ones_is_the_evaluation(tmp_path, seed, kernel):
    gt, dets = random_coco(seed)
    table = write_coco(tmp_path, gt, dets["a"])
    c, prep = _contrib(table)
    m = BS.metrics(c, np.ones((1, len(prep.samples)), np.int32), per_class=True)
    doc = mlcycle.evaluate(table, annotate=False).summary
    assert {k: float(v[0]) for k, v in m.items() if k != "class_AP"} == doc["metrics"]
    assert [float(v) for v in m["class_AP"][0]] == [r["AP"] for r in doc["per_class"]]


@pytest.mark.parametrize("seed", [3, 4])
def test_resamples_equal_explicit_reevaluation(tmp_path, seed, kernel):
    gt, dets = random_coco(seed, n_img=12)
    table = write_coco(tmp_path, gt, dets["a"])
    c, prep = _contrib(table)
    n = len(prep.samples)
    idx = BS.resample_indices(n, 12, seed)
    W = BS.weights(idx, n)
    fast = BS.metrics(c, W, per_class=True)
    # the samples are in image id order, as gt["images"]
    assert prep.samples == [im["file_name"] for im in gt["images"]]
    for b in range(W.shape[0]):
        rgt, rdets = resampled(gt, dets["a"], W[b])
        doc = mlcycle.evaluate(write_coco(tmp_path, rgt, rdets, name=f"r{b}"), annotate=False).summary
        assert {k: float(v[b]) for k, v in fast.items() if k != "class_AP"} == doc["metrics"], b
        # a class without ground truth in the resample has no AP (-1)
        assert [float(v) for v in fast["class_AP"][b]] == [r["AP"] for r in doc["per_class"]], b
        if b < 4:  # and pycocotools itself
            E = pycoco(rgt, rdets)
            assert [float(fast[k][b]) for k in list(fast)[:12]] == [float(s) for s in E.stats]


@pytest.mark.parametrize("seed", [7, 8])
def test_compiled_and_numpy_paths_give_the_same_bits(tmp_path, monkeypatch, seed):
    """Many resamples of a small set (classes and size ranges without ground truth in
    some resamples, every max-detections value, a custom range): equal to the last bit."""
    gt, dets = random_coco(seed, n_img=9, n_cat=5, per_img=12)
    table = write_coco(tmp_path, gt, dets["a"])
    opts = Options(pred_source="pred", max_dets=(1, 3, 10), area_ranges={"tiny": (0, 40 ** 2)})
    prep = prepare(table, opts, "pred")
    n = len(prep.samples)
    W = BS.weights(BS.resample_indices(n, 301, seed), n)   # not a multiple of the kernel's block
    monkeypatch.delenv("MLCYCLE_NO_NUMBA", raising=False)
    assert BS._kernel() is not None
    fast = BS.metrics(BS.contributions(prep, opts), W, per_class=True)
    monkeypatch.setenv("MLCYCLE_NO_NUMBA", "1")
    slow = BS.metrics(BS.contributions(prep, opts), W, per_class=True)
    assert list(fast) == list(slow) and "AP_tiny" in fast and "AR_3" in fast
    assert (fast["class_AP"] == -1).any() and (fast["AP_small"] == -1).any()   # the undefined cases occur
    for name in slow:
        assert np.array_equal(fast[name], slow[name]), name


def test_compiled_sum_is_numpys_sum(monkeypatch):
    """The kernel's means add in numpy's pairwise order: equal to np.mean to the bit."""
    monkeypatch.delenv("MLCYCLE_NO_NUMBA", raising=False)
    assert BS._kernel() is not None
    rng = np.random.default_rng(0)
    stack = np.zeros((64, 3), np.int64)
    for n in [*range(1, 140), 255, 256, 257, 1010, 8080, 80_800, 100_001]:
        a = rng.random(n + 3) * 10.0 ** rng.integers(-3, 4)
        assert BS._pairwise_sum(a, 3, n, stack) / n == np.mean(a[3:]), n
    # every column of a row-major block at once, as numpy sums one column
    x = rng.random((1010, 7))
    out = np.zeros(7)
    BS._pairwise_cols(x.ravel(), 1010, 7, stack, np.zeros((64, 7)), np.zeros((8, 7)), out)
    assert [float(v) for v in out] == [float(np.add.reduce(np.ascontiguousarray(x[:, j]))) for j in range(7)]


def test_a_cache_numba_cannot_use_does_not_fail_the_run(tmp_path, monkeypatch):
    """An unwritable, corrupt or stale numba cache: the kernel is built without it. (The
    stand-in for an uncached compile runs the kernel's Python source as it is, which also
    checks that source against the evaluation, without a compiler.)"""
    import numba

    calls = []

    def njit(*args, cache=False, **kw):
        calls.append(cache)
        if cache:
            raise RuntimeError("cannot cache function: no locator available")   # what numba raises
        return lambda fn: fn

    monkeypatch.delenv("MLCYCLE_NO_NUMBA", raising=False)
    monkeypatch.setattr(numba, "njit", njit)
    monkeypatch.setattr(BS, "_KERNEL", [])
    for name in BS._HELPERS:
        monkeypatch.setattr(BS, name, BS._PY[name])
    assert BS._kernel() is BS._metrics_kernel and calls == [True, False]
    gt, dets = random_coco(9, n_img=5, n_cat=2)
    table = write_coco(tmp_path, gt, dets["a"])
    c, prep = _contrib(table)
    m = BS.metrics(c, np.ones((1, len(prep.samples)), np.int32))
    assert {k: float(v[0]) for k, v in m.items()} == mlcycle.evaluate(table, annotate=False).summary["metrics"]


def test_weights_are_counts_of_the_draws():
    idx = BS.resample_indices(50, 7, seed=11)
    W = BS.weights(idx, 50)
    assert W.shape == (7, 50) and (W.sum(axis=1) == 50).all()
    assert np.array_equal(W[3], np.bincount(idx[3], minlength=50))
    assert np.array_equal(idx, BS.resample_indices(50, 7, seed=11))          # reproducible
    assert not np.array_equal(idx, BS.resample_indices(50, 7, seed=12))


def test_identical_sources_have_zero_deltas_and_nothing_significant(tmp_path):
    gt, dets = random_coco(5, models=("a",))
    t = write_coco(tmp_path, gt, dets["a"])
    import pyarrow as pa

    from mlcycle import table as T

    pred = T.filter_source(t, "pred")
    other = pred.set_column(pred.column_names.index(T.SOURCE), T.SOURCE, pa.array(["copy"] * pred.num_rows))
    both = pa.concat_tables([t, other])
    doc = mlcycle.evaluate(both, bootstrap=100, annotate=False).summary
    for m, st in doc["comparison"]["bootstrap"]["deltas"]["copy"].items():
        assert st["delta"] in (0.0, None) and not st["significant"]
        assert st["ci"] is None or st["ci"] == [0.0, 0.0]
    assert doc["comparison"]["significant"] == []


def test_a_much_better_model_is_significant(tmp_path):
    gt, dets = random_coco(6, n_img=60, models=("a",))
    t = write_coco(tmp_path, gt, dets["a"])
    import pyarrow as pa

    from mlcycle import table as T

    g = T.filter_source(t, "gt")
    perfect = g.filter(pa.compute.invert(pa.compute.fill_null(g.column(T.ISCROWD), False)))
    perfect = perfect.filter(pa.compute.is_valid(perfect.column(T.LABEL)))
    perfect = perfect.set_column(perfect.column_names.index(T.SOURCE), T.SOURCE, pa.array(["oracle"] * perfect.num_rows))
    perfect = perfect.append_column(T.SCORE, pa.array(np.linspace(1, 0.5, perfect.num_rows))) \
        if T.SCORE not in perfect.column_names else perfect.set_column(
            perfect.column_names.index(T.SCORE), T.SCORE, pa.array(np.linspace(1, 0.5, perfect.num_rows)))
    both = pa.concat_tables([t, perfect], promote_options="permissive")
    doc = mlcycle.evaluate(both, bootstrap=200, seed=3, annotate=False).summary
    st = doc["comparison"]["bootstrap"]["deltas"]["oracle"]["AP"]
    assert st["significant"] and st["ci"][0] > 0 and st["p"] < 0.05
    assert {"source": "oracle", "metric": "AP", **st} in doc["comparison"]["significant"]
    # reproducible for a seed
    again = mlcycle.evaluate(both, bootstrap=200, seed=3, annotate=False).summary
    assert again["comparison"]["bootstrap"] == doc["comparison"]["bootstrap"]


def test_interval_leaves_out_undefined_replicates():
    v = np.array([0.1, 0.2, np.nan, 0.3, 0.4])
    lo, hi = BS.interval(v, 0.5)
    assert lo == pytest.approx(0.175) and hi == pytest.approx(0.325)
    assert BS.interval(np.array([np.nan])) is None
