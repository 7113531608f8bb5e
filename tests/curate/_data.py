"""Small generated label tables for the curation tests."""

from __future__ import annotations

import numpy as np
from mlcycle import table as T


def make_table(n_samples: int = 40, seed: int = 0, classes=("cat", "dog", "bird"), empty_every: int = 7,
               sources=("gt",), extra=True):
    """A label table with ``n_samples`` samples, 0-3 labels each, some sample rows."""
    rng = np.random.default_rng(seed)
    rows = {k: [] for k in (T.SAMPLE_ID, T.SOURCE, T.LABEL_ID, T.LABEL, T.CATEGORY_ID, T.SCORE, T.WIDTH, T.HEIGHT, "scene", "occluded")}
    boxes = []
    for src in sources:
        lid = 0
        for s in range(n_samples):
            k = 0 if (empty_every and s % empty_every == 0) else int(rng.integers(1, 4))
            w, h = 100 + s, 200
            if k == 0:
                rows[T.SAMPLE_ID].append(f"img/{s:04d}.jpg"); rows[T.SOURCE].append(src)
                rows[T.LABEL_ID].append(None); rows[T.LABEL].append(None); rows[T.CATEGORY_ID].append(None)
                rows[T.SCORE].append(None); rows[T.WIDTH].append(w); rows[T.HEIGHT].append(h)
                rows["scene"].append(f"scene{s // 5}"); rows["occluded"].append(None)
                boxes.append([np.nan] * 4)
                continue
            for _ in range(k):
                lid += 1
                c = int(rng.integers(len(classes)))
                rows[T.SAMPLE_ID].append(f"img/{s:04d}.jpg"); rows[T.SOURCE].append(src)
                rows[T.LABEL_ID].append(lid); rows[T.LABEL].append(classes[c]); rows[T.CATEGORY_ID].append(c + 1)
                rows[T.SCORE].append(None if src == "gt" else float(rng.random()))
                rows[T.WIDTH].append(w); rows[T.HEIGHT].append(h)
                rows["scene"].append(f"scene{s // 5}"); rows["occluded"].append(bool(rng.integers(2)))
                boxes.append([float(rng.integers(0, 50)), float(rng.integers(0, 50)), float(rng.integers(1, 60)), float(rng.integers(1, 60))])
    cols = dict(rows)
    cols[T.BBOX] = np.array(boxes, dtype=float).reshape(-1, 4)
    if not extra:
        cols.pop("scene"); cols.pop("occluded")
    meta = {"coco": {"categories": [{"id": i + 1, "name": c, "supercategory": "animal"} for i, c in enumerate(classes)]}}
    return T.from_columns(cols, metadata=meta)


