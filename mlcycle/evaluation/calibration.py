"""Calibration of detection scores: does a score of 0.8 mean 80 % of such detections are right?

For the detections matched at one IoU threshold (true positive or false positive; those
matched to crowd regions left out), scores are put in equal-width bins over [0, 1]
(scores outside are counted in the end bins). Per bin: the count, the mean score and
the fraction of true positives (accuracy) — the reliability curve. The expected
calibration error is ``ECE = sum_b (n_b / N) * |accuracy_b - mean_score_b|``.
"""

from __future__ import annotations

import numpy as np

BINS = 10


def reliability(scores: np.ndarray, tp: np.ndarray, iou: float, bins: int = BINS) -> dict:
    s = np.asarray(scores, dtype=np.float64)
    t = np.asarray(tp, dtype=bool)
    edges = np.linspace(0.0, 1.0, bins + 1)
    b = np.clip(np.floor(s * bins).astype(np.int64), 0, bins - 1) if len(s) else np.zeros(0, np.int64)
    count = np.bincount(b, minlength=bins)
    ssum = np.bincount(b, weights=s, minlength=bins)
    tsum = np.bincount(b, weights=t.astype(np.float64), minlength=bins)
    rows = []
    for i in range(bins):
        n = int(count[i])
        rows.append({"lo": float(edges[i]), "hi": float(edges[i + 1]), "count": n,
                     "mean_score": float(ssum[i] / n) if n else None,
                     "accuracy": float(tsum[i] / n) if n else None})
    N = int(count.sum())
    ece = float(np.sum(np.abs(tsum - ssum)) / N) if N else None
    return {"iou": iou, "count": N, "ece": ece, "bins": rows,
            "outside_unit_interval": int(((s < 0) | (s > 1)).sum())}
