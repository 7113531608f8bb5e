"""Property tests: random label tables survive export X | ingest X (yolo, voc, kitti)
within each format's text precision, and COCO -> YOLO -> COCO moves no box by more
than YOLO's six decimals allow."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlcycle import formats, io
from mlcycle import table as T
from mlcycle.formats import ReadOptions, WriteOptions

CLASSES = ["cat", "dog", "traffic light", "person"]


@st.composite
def tables(draw, splits=True):
    n_samples = draw(st.integers(1, 6))
    sids, rows = [], []
    for s in range(n_samples):
        w = draw(st.integers(1, 4000))
        h = draw(st.integers(1, 4000))
        ext = draw(st.sampled_from([".jpg", ".png"]))
        sid = draw(st.sampled_from(["", "sub/"])) + f"img_{s}{ext}"
        split = draw(st.sampled_from(["train", "val", None])) if splits else None
        sids.append(sid)
        for _ in range(draw(st.integers(0, 4))):
            x1 = draw(st.floats(0, w, allow_nan=False))
            y1 = draw(st.floats(0, h, allow_nan=False))
            bw = draw(st.floats(0, w - x1, allow_nan=False))
            bh = draw(st.floats(0, h - y1, allow_nan=False))
            rows.append((sid, draw(st.sampled_from(CLASSES)), [x1, y1, bw, bh], w, h, split))
        if not any(r[0] == sid for r in rows):
            rows.append((sid, None, None, w, h, split))
    return T.from_columns({
        T.SAMPLE_ID: [r[0] for r in rows], T.SOURCE: ["gt"] * len(rows),
        T.LABEL: [r[1] for r in rows],
        T.BBOX: np.array([r[2] if r[2] is not None else [np.nan] * 4 for r in rows], dtype=float).reshape(-1, 4),
        T.WIDTH: [r[3] for r in rows], T.HEIGHT: [r[4] for r in rows], T.SPLIT: [r[5] for r in rows],
    })


def canon(table):
    out = []
    for r in table.to_pylist():
        out.append((r[T.SAMPLE_ID], r.get(T.SPLIT), r[T.LABEL], r[T.BBOX], r[T.WIDTH], r[T.HEIGHT]))
    return sorted(out, key=lambda t: (t[0], t[2] or "", t[3] or []))


def compare(a, b, tol_of):
    """Same samples, splits and labels; each box matched to a distinct box within tol."""
    ca, cb = canon(a), canon(b)
    assert sorted((x[0], x[1], x[2] or "") for x in ca) == sorted((x[0], x[1], x[2] or "") for x in cb)
    groups: dict = {}
    for x in cb:
        groups.setdefault((x[0], x[1], x[2]), []).append(x[3])
    for x in ca:
        cands = groups[(x[0], x[1], x[2])]
        if x[3] is None:
            assert None in cands
            cands.remove(None)
            continue
        dist = [np.abs(np.subtract(c, x[3])).max() if c is not None else np.inf for c in cands]
        k = int(np.argmin(dist))
        assert dist[k] <= tol_of(x), (x, cands[k])
        cands.pop(k)


SETTINGS = settings(max_examples=int(os.environ.get("MLCYCLE_HYPOTHESIS_EXAMPLES", "25")), deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(tables())
def test_yolo_round_trip(table):
    with tempfile.TemporaryDirectory() as d:
        sizes = Path(d) / "sizes.parquet"
        io.write_table(table, sizes)
        formats.write("yolo", table, Path(d) / "out")
        back = formats.read("yolo", Path(d) / "out", ReadOptions(image_sizes=sizes))
    # six decimals: centre and size each off by <= 5e-7, a corner by <= 1e-6, times the size
    compare(table, back, lambda r: 1e-6 * max(r[4], r[5]) + 1e-9)


@SETTINGS
@given(tables())
def test_voc_round_trip(table):
    with tempfile.TemporaryDirectory() as d:
        formats.write("voc", table, Path(d) / "out")
        back = formats.read("voc", Path(d) / "out")
    compare(table, back, lambda r: 1e-8 * max(r[4], r[5]))  # 12 significant digits


@SETTINGS
@given(tables())
def test_kitti_round_trip(table):
    with tempfile.TemporaryDirectory() as d:
        formats.write("kitti", table, Path(d) / "out")
        back = formats.read("kitti", Path(d) / "out")
    # two decimals per corner; sample ids keep their names (no images: .png is assumed)
    a = table.set_column(0, T.SAMPLE_ID, [[s.rsplit(".", 1)[0] + ".png" for s in table.column(T.SAMPLE_ID).to_pylist()]])
    split = [{"train": "train", "val": "val", None: "train"}[s] for s in table.column(T.SPLIT).to_pylist()]
    a = a.set_column(a.column_names.index(T.SPLIT), T.SPLIT, [split])
    # KITTI types are one word: spaces become underscores
    labels = [None if v is None else v.replace(" ", "_") for v in a.column(T.LABEL).to_pylist()]
    a = a.set_column(a.column_names.index(T.LABEL), T.LABEL, [labels])
    compare(a, back, lambda r: 0.0100001)


@SETTINGS
@given(tables())
def test_coco_to_yolo_to_coco(table):
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        formats.write("coco", table, d / "a.json")
        coco = formats.read("coco", d / "a.json")
        sizes = d / "sizes.parquet"
        io.write_table(coco, sizes)
        formats.write("yolo", coco, d / "y")
        back = formats.read("yolo", d / "y", ReadOptions(image_sizes=sizes))
        formats.write("coco", back, d / "b.json")
        final = formats.read("coco", d / "b.json")
    compare(coco, final, lambda r: 1e-6 * max(r[4], r[5]) + 1e-9)
