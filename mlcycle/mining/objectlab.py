"""cleanlab's ObjectLab label-quality scores, reproduced exactly and vectorised.

``score_objectlab`` computes what ``cleanlab.object_detection.rank.get_label_quality_scores``
does (cleanlab 2.9): the overlooked score of each prediction, the badly-located and
swapped scores of each ground-truth box, their soft-min pooling per image and the
image's label-quality score, for all images at once. ``objectlab_rows`` turns them into
per-row hard scores and reasons for ``mine-hard --method objectlab``.

Library code: never prints, knows nothing of the command line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from mlcycle.mining.reasons import CODE, LOCALIZATION, POSSIBLE_MISSING, POSSIBLE_WRONG_LABEL

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from mlcycle.mining.frame import Frame

# cleanlab ObjectLab constants (cleanlab/internal/constants.py, cleanlab 2.9)
OBJECTLAB_ALPHA = 0.9
OBJECTLAB_EUC_FACTOR = 0.1
OBJECTLAB_LOW_PROBABILITY = 0.5
OBJECTLAB_HIGH_PROBABILITY = 0.95
OBJECTLAB_TEMPERATURE = 0.1
OBJECTLAB_LABEL_OVERLAP = 0.95
_EPSILON = 1e-6
_TINY = 1e-100


@dataclass(frozen=True)
class ObjectLabScores:
    """cleanlab ObjectLab scores, per row of the table (NaN where not defined)."""

    overlooked: "np.ndarray"   # on prediction rows
    badloc: "np.ndarray"       # on ground-truth rows
    swap: "np.ndarray"         # on ground-truth rows
    image_quality: "np.ndarray"  # per sample code
    overlooked_image: "np.ndarray"
    badloc_image: "np.ndarray"
    swap_image: "np.ndarray"


def _softmin_pool(n_samples: int, keys: "np.ndarray", values: "np.ndarray", temperature: float) -> "np.ndarray":
    """cleanlab's per-image pooling: drop NaN, ``sum(v * softmax(-v / t))``, 1.0 if empty."""
    import numpy as np

    ok = ~np.isnan(values)
    k, v = keys[ok], values[ok]
    out = np.ones(n_samples)
    if len(v) == 0:
        return out
    x = -v / max(temperature, _EPSILON)
    mx = np.full(n_samples, -np.inf)
    np.maximum.at(mx, k, x)
    e = np.exp(x - mx[k])
    z = np.bincount(k, weights=e, minlength=n_samples)
    num = np.bincount(k, weights=e * v, minlength=n_samples)
    has = np.bincount(k, minlength=n_samples) > 0
    out[has] = num[has] / z[has]
    return out


def _cl_iou(a: "np.ndarray", b: "np.ndarray") -> "np.ndarray":
    """cleanlab's ``_get_iou`` element-wise on x1y1x2y2 boxes (not geometry.iou_xywh:
    cleanlab clips the union at epsilon and computes in corner coordinates)."""
    import numpy as np

    xl = np.maximum(a[:, 0], b[:, 0])
    yt = np.maximum(a[:, 1], b[:, 1])
    xr = np.minimum(a[:, 2], b[:, 2])
    yb = np.minimum(a[:, 3], b[:, 3])
    inter = (xr - xl) * (yb - yt)
    a_area = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    b_area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    out = inter / np.clip(a_area + b_area - inter, _EPSILON, None)
    return np.where((xr < xl) | (yb < yt), 0.0, out)


def score_objectlab(f: "Frame", aggregation_weights: tuple[float, float, float] = (1 / 3, 1 / 3, 1 / 3)) -> ObjectLabScores:
    """cleanlab.object_detection.rank.get_label_quality_scores, vectorised over all images.

    Ground-truth boxes (crowd boxes excluded) are the labels, the prediction source's boxes
    the predictions; classes are the label names. Each sample of the table is an image.
    Label-prediction pairs are visited a bounded chunk at a time.
    """
    import numpy as np

    from mlcycle.mining.frame import same_sample_pairs, segmax_into

    n = f.n
    n_samples = len(f.sample_names)
    xyxy = f.boxes.copy()
    xyxy[:, 2] = f.boxes[:, 0] + f.boxes[:, 2]
    xyxy[:, 3] = f.boxes[:, 1] + f.boxes[:, 3]
    lab_rows = f.gt_rows[~f.crowd[f.gt_rows]]
    pred_rows = f.pred_rows
    prob = f.score

    min_sim = 1.0                       # the smallest non-zero similarity of any pair (at most 1)
    any_overlap = np.zeros(n)           # per prediction: best IoU with a label
    best_same = np.full(n, -1.0)        # per prediction: best similarity to a same-class label
    best_loc = np.full(n, -1.0)         # per label: best similarity to a confident same-class prediction
    best_swap = np.full(n, -np.inf)     # per label: best similarity to a very confident other-class one
    for ll, pp in same_sample_pairs(f.sample, lab_rows, pred_rows):
        iou = _cl_iou(xyxy[ll], xyxy[pp])
        ca = (xyxy[ll, :2] + xyxy[ll, 2:]) / 2
        cb = (xyxy[pp, :2] + xyxy[pp, 2:]) / 2
        d = ca - cb
        e = np.exp(-np.sqrt(d[:, 0] * d[:, 0] + d[:, 1] * d[:, 1]) * OBJECTLAB_EUC_FACTOR)
        sim = iou * OBJECTLAB_ALPHA + (1 - OBJECTLAB_ALPHA) * (1 - (1 - e))
        nz = sim[sim != 0]
        if len(nz):
            min_sim = float(min(min_sim, nz.min()))
        same = f.label[ll] == f.label[pp]
        p = prob[pp]
        segmax_into(any_overlap, pp, iou, iou > 0)
        segmax_into(best_same, pp, sim, same)
        segmax_into(best_loc, ll, sim, same & (p > OBJECTLAB_LOW_PROBABILITY) & (iou > 0))
        segmax_into(best_swap, ll, sim, ~same & (p > OBJECTLAB_HIGH_PROBABILITY))

    # overlooked, per prediction
    overlooked = np.full(n, np.nan)
    cand = np.zeros(n, bool)
    cand[pred_rows] = True
    cand &= ~(prob < OBJECTLAB_HIGH_PROBABILITY) & ~(any_overlap > 0)
    has_same = best_same >= 0
    overlooked[cand & has_same] = best_same[cand & has_same]
    sel = cand & ~has_same
    overlooked[sel] = min_sim * (1 - prob[sel])

    # badly located, per label
    badloc = np.full(n, np.nan)
    badloc[lab_rows] = 1.0
    sel = best_loc >= 0
    badloc[sel] = best_loc[sel]

    # swapped, per label
    swap = np.full(n, np.nan)
    swap[lab_rows] = 1.0
    sel = np.isfinite(best_swap)
    swap[sel] = np.maximum(min_sim, 1 - best_swap[sel])
    overlapping = np.zeros(n, bool)
    for a, b in same_sample_pairs(f.sample, lab_rows, lab_rows):
        keep = a != b
        a, b = a[keep], b[keep]
        ov = (_cl_iou(xyxy[a], xyxy[b]) >= OBJECTLAB_LABEL_OVERLAP) & (f.label[a] != f.label[b])
        overlapping[a[ov]] = True
    swap[overlapping] = min_sim

    t = OBJECTLAB_TEMPERATURE
    o_img = _softmin_pool(n_samples, f.sample[pred_rows], overlooked[pred_rows], t)
    b_img = _softmin_pool(n_samples, f.sample[lab_rows], badloc[lab_rows], t)
    s_img = _softmin_pool(n_samples, f.sample[lab_rows], swap[lab_rows], t)
    wo, wb, ws = aggregation_weights
    q = np.exp(wo * np.log(_TINY + o_img) + wb * np.log(_TINY + b_img) + ws * np.log(_TINY + s_img))
    return ObjectLabScores(overlooked, badloc, swap, q, o_img, b_img, s_img)


def objectlab_rows(ol: ObjectLabScores, f: "Frame") -> tuple["np.ndarray", "np.ndarray"]:
    """Per-row hard score ``1 - subtype score`` and reason: overlooked -> possible_missing,
    badly located -> localization, swapped -> possible_wrong_label."""
    import numpy as np

    h = np.full(f.n, np.nan)
    code = np.full(f.n, -1, np.int64)
    o = 1 - ol.overlooked
    sel = ~np.isnan(o)
    h[sel], code[sel] = o[sel], CODE[POSSIBLE_MISSING]
    bl = 1 - ol.badloc
    sw = 1 - ol.swap
    sel = ~np.isnan(bl)
    use_swap = sel & (sw > bl)
    h[sel] = np.where(use_swap, sw, bl)[sel]
    code[sel] = np.where(use_swap[sel], CODE[POSSIBLE_WRONG_LABEL], CODE[LOCALIZATION])
    zero = code >= 0
    zero &= h <= 0
    h[zero] = np.nan
    code[zero] = -1
    return np.clip(h, 0.0, 1.0), code
