"""Hard-example mining: reasons, scores and the search of an unlabeled pool.

``mine(table, MineOptions)`` turns the output of ``mlcycle evaluate`` (ground truth and
prediction rows with ``eval``/``eval_id``/``eval_iou``) into a ranked work list:
every label that looks like an annotation mistake or a model failure gets a
``hard_score`` in [0, 1] (higher = more worth a look) and a ``hard_reason``; the result
holds the flagged rows *and* the other labels of the same samples (an annotator needs
the context), ordered by score. docs/mine-hard.md states every rule and formula; the
short version:

Prediction rows the evaluation left unmatched (``eval == "fp"``), with ``s`` its score
and IoUs taken against the ground truth of the same sample:

=====================  ====================================================  ===========
reason                 rule (checked in this order)                          hard_score
=====================  ====================================================  ===========
duplicate              same-class IoU >= iou (the object is already matched)  w*s
possible_wrong_label   other-class IoU >= iou and s >= conf_wrong             s
class_confusion        other-class IoU >= iou and s < conf_wrong              w*s
localization           low_iou <= best same-class IoU < iou, that GT unmatched s
duplicate              low_iou <= best same-class IoU < iou, that GT matched  w*s
class_confusion        low_iou <= other-class IoU < iou (TIDE "both")         w*s
possible_missing       IoU < low_iou with every GT and s >= conf_missing      s
background             IoU < low_iou with every GT and s < conf_missing       w*s
=====================  ====================================================  ===========

Matched predictions (``tp``) with ``s < conf_low``: ``low_confidence``, ``w*(1-s/conf_low)``.
Unmatched ground truth (``fn``): an other-class unmatched prediction at IoU >= iou makes it
``possible_wrong_label``/``class_confusion`` (score as on the prediction); else a
same-class unmatched prediction at ``low_iou <= IoU < iou`` makes it ``localization``
(score ``s``); else with ``m`` the highest score of any prediction at IoU >= low_iou (0 if
none): ``possible_spurious`` when ``1-m >= conf_spurious``, otherwise ``missed``; both
score ``v*(1-m)``. ``w`` is ``model_weight``: reasons that point at the model rather than
at the labels count less; ``v`` is ``miss_weight``: the absence of a detection is weaker
evidence than a conflicting one. A sample's score is the max (or noisy-or) of its labels'.

``method="objectlab"`` instead scores with cleanlab's ObjectLab (overlooked / badly
located / swapped box scores and the image label-quality score), reproduced exactly
and vectorised.

``search_pool(...)`` ranks the samples of an unlabeled pool by cosine similarity of
their embeddings to the failures (chunked matrix products, bounded memory), drops
near-duplicates of each other and of labeled samples, and returns the chosen pool rows
marked ``similar_to_failure`` with the failure they resemble.

Library code: never prints, knows nothing of the command line.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Sequence

from mlcycle import table as T
from mlcycle.errors import MlcycleError, OptionError

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import pyarrow as pa

# --------------------------------------------------------------------------- reasons

POSSIBLE_MISSING = "possible_missing"
POSSIBLE_WRONG_LABEL = "possible_wrong_label"
CLASS_CONFUSION = "class_confusion"
LOCALIZATION = "localization"
DUPLICATE = "duplicate"
BACKGROUND = "background"
MISSED = "missed"
POSSIBLE_SPURIOUS = "possible_spurious"
LOW_CONFIDENCE = "low_confidence"
SIMILAR_TO_FAILURE = "similar_to_failure"

REASONS = (
    POSSIBLE_MISSING, POSSIBLE_WRONG_LABEL, CLASS_CONFUSION, LOCALIZATION, DUPLICATE,
    BACKGROUND, MISSED, POSSIBLE_SPURIOUS, LOW_CONFIDENCE,
)
_CODE = {r: i for i, r in enumerate(REASONS)}

METHODS = ("rules", "objectlab")
PER = ("label", "sample")
AGGREGATES = ("max", "noisy-or")

# cleanlab ObjectLab constants (cleanlab/internal/constants.py, cleanlab 2.9)
OBJECTLAB_ALPHA = 0.9
OBJECTLAB_EUC_FACTOR = 0.1
OBJECTLAB_LOW_PROBABILITY = 0.5
OBJECTLAB_HIGH_PROBABILITY = 0.95
OBJECTLAB_TEMPERATURE = 0.1
OBJECTLAB_LABEL_OVERLAP = 0.95
_EPSILON = 1e-6
_TINY = 1e-100


@dataclass
class MineOptions:
    """Every threshold of the rules; the CLI exposes each one as a flag."""

    method: str = "rules"
    per: str = "label"
    top: int | None = None
    min_score: float | None = None
    reasons: Sequence[str] | None = None
    source: str | None = None
    iou: float = 0.5
    low_iou: float = 0.1
    conf_missing: float = 0.8
    conf_wrong: float = 0.8
    conf_spurious: float = 0.95
    conf_low: float = 0.3
    model_weight: float = 0.5
    miss_weight: float = 0.25
    aggregate: str = "max"
    context: bool = True
    origin: str = "<stdin>"

    def check(self) -> None:
        if self.method not in METHODS:
            raise OptionError(None, f"--method: unknown method '{self.method}'", hint="choose " + " or ".join(METHODS))
        if self.per not in PER:
            raise OptionError(None, f"--per: expected label or sample, got '{self.per}'")
        if self.aggregate not in AGGREGATES:
            raise OptionError(None, f"--aggregate: expected max or noisy-or, got '{self.aggregate}'")
        if self.top is not None and self.top < 1:
            raise OptionError(None, f"--top: must be at least 1, got {self.top}")
        for name in ("iou", "low_iou", "conf_missing", "conf_wrong", "conf_spurious", "conf_low", "model_weight", "miss_weight"):
            v = getattr(self, name)
            if not (0.0 <= v <= 1.0):
                raise OptionError(None, f"--{name.replace('_', '-')}: must be between 0 and 1, got {v}")
        if self.min_score is not None and not (0.0 <= self.min_score <= 1.0):
            raise OptionError(None, f"--min-score: must be between 0 and 1, got {self.min_score}")
        if self.low_iou > self.iou:
            raise OptionError(None, f"--low-iou ({self.low_iou}) must not exceed --iou ({self.iou})")
        if self.reasons is not None:
            bad = [r for r in self.reasons if r not in REASONS]
            if bad:
                raise OptionError(None, f"--reasons: unknown reason(s) {', '.join(bad)}",
                                 hint="choose from " + ", ".join(REASONS))


@dataclass
class MineResult:
    table: "pa.Table"
    summary: dict[str, Any] = field(default_factory=dict)
    # per-row arrays over the *input* table (for search_pool and tests)
    scores: "np.ndarray | None" = None
    reasons: "np.ndarray | None" = None
    selected_samples: list[str] = field(default_factory=list)
    sample_names: list[str] = field(default_factory=list)
    sample_score_array: "np.ndarray | None" = None   # per sample (order of sample_names), NaN = unscored

    @property
    def sample_scores(self) -> dict[str, float]:
        """{sample_id: hard_sample_score} of the scored samples."""
        import numpy as np

        if self.sample_score_array is None:
            return {}
        idx = np.flatnonzero(~np.isnan(self.sample_score_array))
        names = np.asarray(self.sample_names, dtype=object)[idx]
        return dict(zip(names.tolist(), self.sample_score_array[idx].tolist()))


# --------------------------------------------------------------------------- helpers

def _codes(col) -> "np.ndarray":
    """Dictionary codes of a (chunked) column, -1 for nulls; and the dictionary."""
    import pyarrow as pa
    import pyarrow.compute as pc

    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if len(arr) == 0:
        import numpy as np

        return np.zeros(0, np.int64), []
    if pa.types.is_dictionary(arr.type):
        arr = arr.cast(arr.type.value_type)
    enc = pc.dictionary_encode(arr)
    idx = pc.fill_null(enc.indices.cast(pa.int64()), -1).to_numpy(zero_copy_only=False)
    return idx, enc.dictionary.to_pylist()


def _equal(col, value: str) -> "np.ndarray":
    import pyarrow.compute as pc

    return pc.fill_null(pc.equal(col, value), False).to_numpy(zero_copy_only=False).astype(bool)


def _pairs(sample: "np.ndarray", idx_a: "np.ndarray", idx_b: "np.ndarray") -> tuple["np.ndarray", "np.ndarray"]:
    """Every (a, b) pair of row indices whose rows belong to the same sample.

    Vectorised: ``idx_b`` is sorted by sample once, each ``a`` row finds its sample's
    block with ``searchsorted`` and the blocks are expanded with ``repeat``; the pairs
    of one sample are that sample's IoU matrix, flattened.
    """
    import numpy as np

    if len(idx_a) == 0 or len(idx_b) == 0:
        e = np.zeros(0, np.int64)
        return e, e
    b_sorted = idx_b[np.argsort(sample[idx_b], kind="stable")]
    sb = sample[b_sorted]
    sa = sample[idx_a]
    start = np.searchsorted(sb, sa, "left")
    count = np.searchsorted(sb, sa, "right") - start
    total = int(count.sum())
    a_rep = np.repeat(idx_a, count)
    offsets = np.arange(total) - np.repeat(np.cumsum(count) - count, count)
    b_rep = b_sorted[np.repeat(start, count) + offsets]
    return a_rep, b_rep


def iou_xywh(a: "np.ndarray", b: "np.ndarray") -> "np.ndarray":
    """Element-wise IoU of two (n, 4) arrays of [x, y, w, h] boxes (COCO convention, no +1)."""
    import numpy as np

    iw = np.minimum(a[:, 0] + a[:, 2], b[:, 0] + b[:, 2]) - np.maximum(a[:, 0], b[:, 0])
    ih = np.minimum(a[:, 1] + a[:, 3], b[:, 1] + b[:, 3]) - np.maximum(a[:, 1], b[:, 1])
    inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
    union = a[:, 2] * a[:, 3] + b[:, 2] * b[:, 3] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)
    return out


def _segmax(n: int, keys: "np.ndarray", values: "np.ndarray", mask: "np.ndarray", empty: float = -1.0) -> "np.ndarray":
    """out[k] = max(values[i] for i with keys[i] == k and mask[i]); ``empty`` where none."""
    import numpy as np

    out = np.full(n, empty, dtype=np.float64)
    if mask.any():
        np.maximum.at(out, keys[mask], values[mask])
    return out


# --------------------------------------------------------------------------- input

class _Frame:
    """The numpy view of an evaluated table that the scorers share."""

    def __init__(self, table: "pa.Table", opts: MineOptions, need_eval: bool):
        import numpy as np

        self.n = n = table.num_rows
        cols = table.column_names
        if need_eval and T.EVAL not in cols:
            raise MlcycleError(
                f"{opts.origin}: no '{T.EVAL}' column: mine-hard needs the output of mlcycle evaluate",
                hint=f"run evaluate first: mlcycle evaluate {_shell_name(opts.origin)} | mlcycle mine-hard",
            )
        source = table.column(T.SOURCE)
        self.is_gt = _equal(source, T.GT_SOURCE)
        names = [s for s in T.sources(table) if s != T.GT_SOURCE]
        if opts.source is not None:
            if opts.source not in names:
                raise OptionError(None, f"--source: no rows of source '{opts.source}' in {opts.origin}",
                                 hint="sources present: " + (", ".join(sorted(names)) or "none but gt"))
            pred_source = opts.source
        elif len(names) == 1:
            pred_source = names[0]
        elif not names:
            raise MlcycleError(f"{opts.origin}: no prediction rows (only source '{T.GT_SOURCE}')",
                               hint="mine-hard compares predictions with ground truth: run mlcycle evaluate GT PREDICTIONS | mlcycle mine-hard")
        else:
            raise OptionError(None, f"{opts.origin}: several prediction sources ({', '.join(sorted(names))})",
                             hint="choose one with --source NAME")
        self.pred_source = pred_source
        self.is_pred = _equal(source, pred_source)
        self.boxes = T.bboxes(table)
        self.has_box = ~np.isnan(self.boxes).any(axis=1)
        self.sample, self.sample_names = _codes(table.column(T.SAMPLE_ID))
        self.label, self.label_names = _codes(T.column_or_null(table, T.LABEL))
        self.score = T.numpy_column(table, T.SCORE).astype(np.float64) if n else np.zeros(0)
        self.crowd = (T.numpy_column(table, T.ISCROWD, fill=False).astype(bool)
                      if T.ISCROWD in cols else np.zeros(n, bool))
        if T.EVAL in cols:
            ev = table.column(T.EVAL)
            self.tp, self.fp, self.fn = _equal(ev, "tp"), _equal(ev, "fp"), _equal(ev, "fn")
            # evaluate ignores (eval null) predictions of a class the ground truth never
            # uses, as COCO does; for mining they are unmatched predictions like any other
            gt_classes = np.unique(self.label[self.is_gt & (self.label >= 0)])
            foreign = self.is_pred & (self.label >= 0) & ~np.isin(self.label, gt_classes) & ~ev.is_valid().to_numpy(zero_copy_only=False)
            self.fp = self.fp | foreign
        else:
            self.tp = self.fp = self.fn = np.zeros(n, bool)
        self.gt_rows = np.flatnonzero(self.is_gt & self.has_box)
        self.pred_rows = np.flatnonzero(self.is_pred & self.has_box)
        bad = self.is_pred & self.has_box & np.isnan(self.score)
        if bad.any():
            row = int(np.argmax(bad))
            raise MlcycleError(f"{opts.origin}: row {row + 1}: prediction without a score",
                               hint="every prediction row needs 'score' (its confidence)")


def _shell_name(origin: str) -> str:
    if origin in ("<stdin>", "-", ""):
        return "gt.parquet preds.parquet"
    return origin if all(c.isalnum() or c in "._-/+,=:" for c in origin) else "'" + origin.replace("'", "'\\''") + "'"


# --------------------------------------------------------------------------- rules

def score_rules(f: _Frame, opts: MineOptions) -> tuple["np.ndarray", "np.ndarray"]:
    """Per-row hard score (NaN = none) and reason code (-1 = none) by the documented rules."""
    import numpy as np

    n = f.n
    h = np.full(n, np.nan)
    code = np.full(n, -1, np.int64)
    w = opts.model_weight
    s = f.score

    pp, gg = _pairs(f.sample, f.pred_rows, f.gt_rows)
    iou = iou_xywh(f.boxes[pp], f.boxes[gg])
    same = f.label[pp] == f.label[gg]
    crowd_g = f.crowd[gg]

    # ---- per prediction: best overlaps (0 = nothing)
    u_other = _segmax(n, pp, iou, ~same & ~crowd_g, 0.0)
    u_same_tp = _segmax(n, pp, iou, same & f.tp[gg], 0.0)
    u_same_free = _segmax(n, pp, iou, same & ~f.tp[gg] & ~crowd_g, 0.0)
    u_same = np.maximum(u_same_tp, u_same_free)

    fp = f.is_pred & f.has_box & f.fp
    rules_fp = [
        (DUPLICATE, u_same >= opts.iou, w * s),
        (POSSIBLE_WRONG_LABEL, (u_other >= opts.iou) & (s >= opts.conf_wrong), s),
        (CLASS_CONFUSION, u_other >= opts.iou, w * s),
        (LOCALIZATION, (u_same >= opts.low_iou) & (u_same_free > u_same_tp), s),
        (DUPLICATE, u_same >= opts.low_iou, w * s),
        (CLASS_CONFUSION, u_other >= opts.low_iou, w * s),
        (POSSIBLE_MISSING, s >= opts.conf_missing, s),
        (BACKGROUND, np.ones(n, bool), w * s),
    ]
    todo = fp.copy()
    for reason, cond, value in rules_fp:
        hit = todo & cond
        code[hit] = _CODE[reason]
        h[hit] = value[hit]
        todo &= ~hit

    tp = f.is_pred & f.has_box & f.tp
    if opts.conf_low > 0:
        low = tp & (s < opts.conf_low)
        code[low] = _CODE[LOW_CONFIDENCE]
        h[low] = w * (1.0 - s[low] / opts.conf_low)

    # ---- per unmatched ground truth
    sp = s[pp]
    fp_p = f.fp[pp]
    wrong_s = _segmax(n, gg, sp, ~same & (iou >= opts.iou) & fp_p, -1.0)
    loc_s = _segmax(n, gg, sp, same & (iou >= opts.low_iou) & (iou < opts.iou) & fp_p, -1.0)
    near_s = _segmax(n, gg, sp, iou >= opts.low_iou, 0.0)
    fn = f.is_gt & f.has_box & f.fn & ~f.crowd
    m = np.clip(near_s, 0.0, 1.0)
    rules_fn = [
        (POSSIBLE_WRONG_LABEL, wrong_s >= opts.conf_wrong, wrong_s),
        (CLASS_CONFUSION, wrong_s >= 0, w * wrong_s),
        (LOCALIZATION, loc_s >= 0, loc_s),
        (POSSIBLE_SPURIOUS, (1.0 - m) >= opts.conf_spurious, opts.miss_weight * (1.0 - m)),
        (MISSED, np.ones(n, bool), opts.miss_weight * (1.0 - m)),
    ]
    todo = fn.copy()
    for reason, cond, value in rules_fn:
        hit = todo & cond
        code[hit] = _CODE[reason]
        h[hit] = value[hit]
        todo &= ~hit
    return np.clip(h, 0.0, 1.0), code


# --------------------------------------------------------------------------- ObjectLab

@dataclass
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
    """cleanlab's ``_get_iou`` element-wise on x1y1x2y2 boxes."""
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


def score_objectlab(f: _Frame, aggregation_weights: tuple[float, float, float] = (1 / 3, 1 / 3, 1 / 3)) -> ObjectLabScores:
    """cleanlab.object_detection.rank.get_label_quality_scores, vectorised over all images.

    Ground-truth boxes (crowd boxes excluded) are the labels, the prediction source's boxes
    the predictions; classes are the label names. Each sample of the table is an image.
    """
    import numpy as np

    n = f.n
    n_samples = len(f.sample_names)
    xyxy = f.boxes.copy()
    xyxy[:, 2] = f.boxes[:, 0] + f.boxes[:, 2]
    xyxy[:, 3] = f.boxes[:, 1] + f.boxes[:, 3]
    lab_rows = f.gt_rows[~f.crowd[f.gt_rows]]
    pred_rows = f.pred_rows
    prob = f.score

    ll, pp = _pairs(f.sample, lab_rows, pred_rows)
    iou = _cl_iou(xyxy[ll], xyxy[pp])
    ca = (xyxy[ll, :2] + xyxy[ll, 2:]) / 2
    cb = (xyxy[pp, :2] + xyxy[pp, 2:]) / 2
    d = ca - cb
    e = np.exp(-np.sqrt(d[:, 0] * d[:, 0] + d[:, 1] * d[:, 1]) * OBJECTLAB_EUC_FACTOR)
    sim = iou * OBJECTLAB_ALPHA + (1 - OBJECTLAB_ALPHA) * (1 - (1 - e))
    nz = sim[sim != 0]
    min_sim = float(min(1.0, nz.min())) if len(nz) else 1.0
    same = f.label[ll] == f.label[pp]
    p = prob[pp]

    # overlooked, per prediction
    overlooked = np.full(n, np.nan)
    any_overlap = _segmax(n, pp, iou, iou > 0, 0.0) > 0
    best_same = _segmax(n, pp, sim, same, -1.0)
    cand = np.zeros(n, bool)
    cand[pred_rows] = True
    cand &= ~(prob < OBJECTLAB_HIGH_PROBABILITY) & ~any_overlap
    has_same = best_same >= 0
    overlooked[cand & has_same] = best_same[cand & has_same]
    sel = cand & ~has_same
    overlooked[sel] = min_sim * (1 - prob[sel])

    # badly located, per label
    badloc = np.full(n, np.nan)
    badloc[lab_rows] = 1.0
    best_loc = _segmax(n, ll, sim, same & (p > OBJECTLAB_LOW_PROBABILITY) & (iou > 0), -1.0)
    sel = best_loc >= 0
    badloc[sel] = best_loc[sel]

    # swapped, per label
    swap = np.full(n, np.nan)
    swap[lab_rows] = 1.0
    best_swap = _segmax(n, ll, sim, ~same & (p > OBJECTLAB_HIGH_PROBABILITY), -np.inf)
    sel = np.isfinite(best_swap)
    swap[sel] = np.maximum(min_sim, 1 - best_swap[sel])
    a, b = _pairs(f.sample, lab_rows, lab_rows)
    keep = a != b
    a, b = a[keep], b[keep]
    ov = (_cl_iou(xyxy[a], xyxy[b]) >= OBJECTLAB_LABEL_OVERLAP) & (f.label[a] != f.label[b])
    overlapping = np.zeros(n, bool)
    overlapping[a[ov]] = True
    swap[overlapping] = min_sim

    t = OBJECTLAB_TEMPERATURE
    o_img = _softmin_pool(n_samples, f.sample[pred_rows], overlooked[pred_rows], t)
    b_img = _softmin_pool(n_samples, f.sample[lab_rows], badloc[lab_rows], t)
    s_img = _softmin_pool(n_samples, f.sample[lab_rows], swap[lab_rows], t)
    wo, wb, ws = aggregation_weights
    q = np.exp(wo * np.log(_TINY + o_img) + wb * np.log(_TINY + b_img) + ws * np.log(_TINY + s_img))
    return ObjectLabScores(overlooked, badloc, swap, q, o_img, b_img, s_img)


def _objectlab_rows(ol: ObjectLabScores, f: _Frame) -> tuple["np.ndarray", "np.ndarray"]:
    """Per-row hard score ``1 - subtype score`` and reason: overlooked -> possible_missing,
    badly located -> localization, swapped -> possible_wrong_label."""
    import numpy as np

    h = np.full(f.n, np.nan)
    code = np.full(f.n, -1, np.int64)
    o = 1 - ol.overlooked
    sel = ~np.isnan(o)
    h[sel], code[sel] = o[sel], _CODE[POSSIBLE_MISSING]
    bl = 1 - ol.badloc
    sw = 1 - ol.swap
    sel = ~np.isnan(bl)
    use_swap = sel & (sw > bl)
    h[sel] = np.where(use_swap, sw, bl)[sel]
    code[sel] = np.where(use_swap[sel], _CODE[POSSIBLE_WRONG_LABEL], _CODE[LOCALIZATION])
    zero = code >= 0
    zero &= h <= 0
    h[zero] = np.nan
    code[zero] = -1
    return np.clip(h, 0.0, 1.0), code


# --------------------------------------------------------------------------- mine

def aggregate(keys: "np.ndarray", values: "np.ndarray", n_samples: int, how: str = "max") -> "np.ndarray":
    """Per-sample aggregate of label scores (NaN ignored; NaN where a sample has none).

    ``max``: the sample is as hard as its hardest label. ``noisy-or``: ``1 - prod(1 - h)``,
    the chance that at least one label is a real problem if each were one with its score.
    """
    import numpy as np

    ok = ~np.isnan(values)
    k, v = keys[ok], values[ok]
    has = np.bincount(k, minlength=n_samples) > 0
    if how == "max":
        out = np.full(n_samples, -np.inf)
        np.maximum.at(out, k, v)
    else:
        logs = np.bincount(k, weights=np.log1p(-np.clip(v, 0, 1 - 1e-16)), minlength=n_samples)
        out = 1.0 - np.exp(logs)
    out = out.astype(np.float64)
    out[~has] = np.nan
    return out


def mine(table: "pa.Table", opts: MineOptions | None = None) -> MineResult:
    """Score every label, select the top failures and return them with their context."""
    import numpy as np
    import pyarrow as pa

    opts = opts or MineOptions()
    opts.check()
    f = _Frame(table, opts, need_eval=opts.method == "rules")
    n_samples = len(f.sample_names)
    ol = None
    if opts.method == "rules":
        h, code = score_rules(f, opts)
    else:
        ol = score_objectlab(f)
        h, code = _objectlab_rows(ol, f)

    wanted = np.ones(len(REASONS), bool)
    if opts.reasons is not None:
        wanted[:] = False
        wanted[[_CODE[r] for r in opts.reasons]] = True
    eligible = (code >= 0) & wanted[np.maximum(code, 0)]
    h = np.where(eligible, h, np.nan)
    code = np.where(eligible, code, -1)

    if ol is not None:
        sample_score = 1.0 - ol.image_quality
        # only samples with a flagged label (of the chosen reasons) are scored
        sample_score = np.where(np.isnan(aggregate(f.sample, h, n_samples, "max")), np.nan, sample_score)
    else:
        sample_score = aggregate(f.sample, h, n_samples, opts.aggregate)
    row_sample_score = sample_score[f.sample] if f.n else np.zeros(0)

    # ---- selection
    if opts.per == "label":
        cand = np.flatnonzero(eligible & (h >= (opts.min_score or 0.0)))
        cand = cand[np.lexsort((cand, -h[cand]))]
        if opts.top is not None:
            cand = cand[: opts.top]
        selected_rows = cand
        # samples in the order of their best selected label
        uniq, first = np.unique(f.sample[selected_rows], return_index=True)
        sample_order = uniq[np.argsort(first, kind="stable")]
    else:
        ok = ~np.isnan(sample_score) & (sample_score >= (opts.min_score or 0.0))
        cand = np.flatnonzero(ok)
        cand = cand[np.lexsort((cand, -sample_score[cand]))]
        if opts.top is not None:
            cand = cand[: opts.top]
        sample_order = cand
        selected_rows = np.flatnonzero(np.isin(f.sample, sample_order) & eligible)

    rank = np.full(n_samples, np.iinfo(np.int64).max)
    rank[sample_order] = np.arange(len(sample_order))
    is_selected = np.zeros(f.n, bool)
    is_selected[selected_rows] = True
    if opts.context:
        keep = np.flatnonzero(rank[f.sample] < len(sample_order)) if f.n else np.zeros(0, np.int64)
    else:
        keep = selected_rows
    # order: sample rank, then selected before context, then label score (NaN last), then input order
    hk = np.where(np.isnan(h[keep]), np.inf, -h[keep])
    order = np.lexsort((keep, hk, ~is_selected[keep], rank[f.sample[keep]]))
    rows = keep[order]

    out = table.take(pa.array(rows, type=pa.int64()))
    hs = h[rows]
    out = _set_column(out, T.HARD_SCORE, pa.array(hs, type=pa.float64(), mask=np.isnan(hs)))
    rc = code[rows]
    reason = pa.DictionaryArray.from_arrays(pa.array(rc, type=pa.int32(), mask=rc < 0), pa.array(REASONS, type=pa.string()))
    out = _set_column(out, T.HARD_REASON, reason.cast(pa.string()))
    ss = row_sample_score[rows]
    out = _set_column(out, T.HARD_SAMPLE_SCORE, pa.array(ss, type=pa.float64(), mask=np.isnan(ss)))

    summary = _summary(f, opts, h, code, eligible, sample_score, selected_rows, sample_order, rows)
    return MineResult(
        table=out, summary=summary, scores=h, reasons=code,
        selected_samples=np.asarray(f.sample_names, dtype=object)[np.asarray(sample_order, dtype=np.int64)].tolist(),
        sample_names=f.sample_names, sample_score_array=sample_score,
    )


def _set_column(table: "pa.Table", name: str, values: "pa.Array") -> "pa.Table":
    if name in table.column_names:
        return table.set_column(table.column_names.index(name), name, values)
    return table.append_column(name, values)


def _summary(f: _Frame, opts: MineOptions, h, code, eligible, sample_score, selected_rows, sample_order, rows) -> dict:
    import numpy as np

    counts = np.bincount(code[eligible], minlength=len(REASONS))
    by_reason = {r: int(c) for r, c in zip(REASONS, counts) if c}
    by_class: dict[str, dict[str, int]] = {}
    if eligible.any():
        lab = f.label[eligible]
        rc = code[eligible]
        key = rc * (len(f.label_names) + 1) + (lab + 1)
        uniq, cnt = np.unique(key, return_counts=True)
        for k, c in zip(uniq, cnt):
            r, l = divmod(int(k), len(f.label_names) + 1)
            cls = f.label_names[l - 1] if l > 0 else "(none)"
            by_class.setdefault(REASONS[r], {})[cls] = int(c)
    top = []
    for i in selected_rows[:10] if opts.per == "label" else rows[eligible[rows]][:10]:
        top.append({
            "sample_id": f.sample_names[f.sample[i]],
            "source": T.GT_SOURCE if f.is_gt[i] else f.pred_source,
            "row": int(i),
            "label": f.label_names[f.label[i]] if f.label[i] >= 0 else None,
            "score": None if np.isnan(f.score[i]) else float(f.score[i]),
            T.HARD_REASON: REASONS[code[i]],
            T.HARD_SCORE: float(h[i]),
        })
    top_samples = [
        {"sample_id": f.sample_names[s], T.HARD_SAMPLE_SCORE: float(sample_score[s])}
        for s in list(sample_order)[:10]
    ]
    params = {k: getattr(opts, k) for k in (
        "method", "per", "top", "min_score", "iou", "low_iou", "conf_missing", "conf_wrong",
        "conf_spurious", "conf_low", "model_weight", "miss_weight", "aggregate")}
    params["reasons"] = list(opts.reasons) if opts.reasons is not None else list(REASONS)
    params["source"] = f.pred_source
    return {
        "parameters": params,
        "labels_scored": int(eligible.sum()),
        "samples_scored": int((~np.isnan(sample_score)).sum()),
        "samples": len(f.sample_names),
        "selected_labels": int(len(selected_rows)),
        "selected_samples": int(len(sample_order)),
        "rows_written": int(len(rows)),
        "by_reason": by_reason,
        "by_reason_and_class": by_class,
        "top_labels": top,
        "top_samples": top_samples,
    }


# --------------------------------------------------------------------------- pool search

@dataclass
class PoolOptions:
    embedding: str
    k: int = 100
    failures: int | None = None      # how many of the top failure samples to use (None: all selected)
    dup_threshold: float = 0.95     # cosine above which two samples are near-duplicates
    chunk_rows: int = 65536          # pool rows per matrix product
    origin: str = "<pool>"

    def check(self) -> None:
        if self.k < 1:
            raise OptionError(None, f"--k: must be at least 1, got {self.k}")
        if not (-1.0 <= self.dup_threshold <= 1.0):
            raise OptionError(None, f"--dup-threshold: must be between -1 and 1, got {self.dup_threshold}")
        if self.failures is not None and self.failures < 1:
            raise OptionError(None, f"--failures: must be at least 1, got {self.failures}")


def normalize_rows(mat: "np.ndarray") -> "np.ndarray":
    """L2-normalise rows (float32); all-zero rows stay zero."""
    import numpy as np

    mat = np.asarray(mat, dtype=np.float32)
    norm = np.linalg.norm(mat, axis=1, keepdims=True)
    return mat / np.where(norm > 0, norm, 1.0)


def _first_per_sample(sample_codes: "np.ndarray", rows: "np.ndarray") -> "np.ndarray":
    """Of ``rows``, the first row of each sample (input order)."""
    import numpy as np

    _, first = np.unique(sample_codes[rows], return_index=True)
    return rows[np.sort(first)]


def knn_search(
    failures: "np.ndarray",
    pool_chunks: Iterable["np.ndarray"],
    k: int,
    labeled: "np.ndarray | None" = None,
    dup_threshold: float = 0.95,
    chunk_labeled: int = 8192,
) -> tuple["np.ndarray", "np.ndarray", "np.ndarray"]:
    """The core search: for L2-normalised ``failures`` (m, d) and pool chunks (c, d),
    return (pool index, cosine, failure index) of up to ``k`` chosen pool items, best first.

    Each pool item scores ``max_f cos(x, f)`` (one matrix product per chunk); items whose
    cosine to any ``labeled`` embedding exceeds ``dup_threshold`` are dropped; the
    survivors are picked greedily in score order, each pick suppressing pool items with
    cosine > ``dup_threshold`` to it. Memory is bounded by the chunk size and a candidate
    buffer of ``max(8k, 1024)`` items, whatever the pool size.
    """
    import numpy as np

    failures = np.ascontiguousarray(failures, dtype=np.float32)
    buf = max(8 * k, 1024)
    cand_idx = np.zeros(0, np.int64)
    cand_sim = np.zeros(0, np.float32)
    cand_fail = np.zeros(0, np.int64)
    cand_vec = np.zeros((0, failures.shape[1]), np.float32)
    offset = 0
    lab = None if labeled is None or len(labeled) == 0 else np.ascontiguousarray(labeled, dtype=np.float32)
    for chunk in pool_chunks:
        chunk = np.asarray(chunk, dtype=np.float32)
        c = len(chunk)
        if c == 0:
            continue
        sims = chunk @ failures.T                       # (c, m)
        best = sims.argmax(axis=1)
        best_sim = sims[np.arange(c), best]
        del sims
        keep = np.ones(c, bool)
        if lab is not None:
            for j in range(0, len(lab), chunk_labeled):
                keep &= (chunk @ lab[j:j + chunk_labeled].T).max(axis=1) <= dup_threshold
        idx = np.flatnonzero(keep)
        if len(idx) > buf:
            idx = idx[np.argpartition(-best_sim[idx], buf - 1)[:buf]]
        cand_idx = np.concatenate([cand_idx, idx + offset])
        cand_sim = np.concatenate([cand_sim, best_sim[idx]])
        cand_fail = np.concatenate([cand_fail, best[idx]])
        cand_vec = np.concatenate([cand_vec, chunk[idx]])
        if len(cand_idx) > 2 * buf:
            top = np.argpartition(-cand_sim, buf - 1)[:buf]
            cand_idx, cand_sim, cand_fail, cand_vec = cand_idx[top], cand_sim[top], cand_fail[top], cand_vec[top]
        offset += c
    order = np.lexsort((cand_idx, -cand_sim))
    cand_idx, cand_sim, cand_fail, cand_vec = cand_idx[order], cand_sim[order], cand_fail[order], cand_vec[order]
    # greedy diversification in blocks: each pick suppresses its near-duplicates
    picked: list[int] = []
    picked_vec = np.zeros((0, cand_vec.shape[1]), np.float32)
    block = 512
    for start in range(0, len(cand_idx), block):
        if len(picked) >= k:
            break
        vec = cand_vec[start:start + block]
        ok = np.ones(len(vec), bool)
        if len(picked_vec):
            ok &= (vec @ picked_vec.T).max(axis=1) <= dup_threshold
        local = np.flatnonzero(ok)
        gram = vec[local] @ vec[local].T
        suppressed = np.zeros(len(local), bool)
        new = []
        for j in range(len(local)):
            if suppressed[j]:
                continue
            new.append(local[j])
            suppressed |= gram[j] > dup_threshold
            if len(picked) + len(new) >= k:
                break
        picked.extend(start + np.asarray(new, np.int64))
        picked_vec = np.concatenate([picked_vec, vec[new]])
    sel = np.asarray(picked, np.int64)
    return cand_idx[sel], cand_sim[sel], cand_fail[sel]


class PoolReader:
    """Reads the pool table in record batches, so that a large Parquet pool is streamed
    (three passes, each holding one batch) instead of being loaded whole. Other encodings
    (JSON Lines, Arrow, CSV, standard input) are read into memory once by ``mlcycle.io``."""

    def __init__(self, path: "str | os.PathLike | None" = None, table: "pa.Table | None" = None,
                 batch_size: int = 65536):
        from mlcycle import io

        self.batch_size = batch_size
        self.name = io.display_name(path) if table is None else "<pool>"
        self._table = table
        self._parquet = None
        if table is None:
            p = None if path is None or str(path) == "-" else os.fspath(path)
            if p is not None and os.path.isfile(p):
                try:
                    with open(p, "rb") as fh:
                        magic = fh.read(4)
                except OSError as exc:
                    raise MlcycleError(f"{p}: cannot read the pool: {exc.strerror}") from None
                if magic == b"PAR1":
                    import pyarrow.parquet as pq

                    try:
                        self._parquet = pq.ParquetFile(p)
                    except Exception as exc:  # pyarrow raises several types for a bad file
                        raise MlcycleError(f"{p}: not a readable Parquet file: {str(exc).splitlines()[0]}") from None
            if self._parquet is None:
                self._table = io.read_table(path)
        self.column_names = (self._table.column_names if self._table is not None
                             else self._parquet.schema_arrow.names)
        if T.SAMPLE_ID not in self.column_names:
            raise MlcycleError(f"{self.name}: not a label table: required column '{T.SAMPLE_ID}' is missing")

    def empty(self) -> "pa.Table":
        if self._table is not None:
            return self._table.slice(0, 0)
        return T.normalize(self._parquet.schema_arrow.empty_table(), origin=self.name)

    def batches(self, columns: Sequence[str] | None = None) -> Iterator["pa.Table"]:
        import pyarrow as pa

        if self._table is not None:
            t = self._table if columns is None else self._table.select(list(columns))
            for start in range(0, max(t.num_rows, 1), self.batch_size):
                yield t.slice(start, self.batch_size)
            return
        for batch in self._parquet.iter_batches(batch_size=self.batch_size, columns=list(columns) if columns else None):
            t = pa.Table.from_batches([batch])
            if columns is None:  # whole rows leave through the contract
                t = T.normalize(t, origin=self.name)
            yield t


def _embeddings_of(t: "pa.Table", column: str, origin: str, offset: int = 0) -> tuple["np.ndarray", "np.ndarray"]:
    """Rows of ``t`` with an embedding and their L2-normalised (m, d) float32 matrix."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    col = t.column(column).combine_chunks()
    if not (pa.types.is_list(col.type) or pa.types.is_large_list(col.type) or pa.types.is_fixed_size_list(col.type)):
        raise MlcycleError(f"{origin}: column '{column}' has type {col.type}, expected a list of floats")
    valid = col.is_valid().to_numpy(zero_copy_only=False)
    rows = np.flatnonzero(valid)
    if len(rows) == 0:
        return rows, np.zeros((0, 0), np.float32)
    sub = col.filter(pa.array(valid))
    lengths = pc.list_value_length(sub).to_numpy(zero_copy_only=False)
    d = int(lengths[0])
    wrong = lengths != d
    if wrong.any() or d == 0:
        i = int(np.argmax(wrong)) if d else 0
        raise MlcycleError(f"{origin}: row {offset + rows[i] + 1}: embedding has {int(lengths[i])} values, the first has {d}",
                           hint="every embedding in a column must have the same length")
    flat = pc.list_flatten(sub).to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    return rows, normalize_rows(flat.reshape(len(rows), d))


def _is_in(col, values: Sequence[str]) -> "np.ndarray":
    import pyarrow as pa
    import pyarrow.compute as pc

    return pc.fill_null(pc.is_in(col, value_set=pa.array(list(values), type=pa.string())), False) \
        .to_numpy(zero_copy_only=False).astype(bool)


def search_pool(result: MineResult, table: "pa.Table", pool: "PoolReader | pa.Table", opts: PoolOptions) -> tuple["pa.Table", dict]:
    """Pool samples most similar to the selected failures of ``result``.

    Failure embeddings come from ``opts.embedding`` in the evaluated table, or, where a
    failure sample has none there, from the pool rows of the same sample. Pool samples
    already in the evaluated table are never chosen; nor are their near-duplicates.
    Returns the chosen pool rows (every row of each chosen sample) with ``hard_score`` =
    cosine similarity (clipped to [0, 1]), ``hard_reason`` = similar_to_failure and
    ``hard_match`` = the failure sample it resembles, best first. A Parquet pool is
    streamed in batches (bounded memory).
    """
    import numpy as np
    import pyarrow as pa

    opts.check()
    reader = pool if isinstance(pool, PoolReader) else PoolReader(table=pool, batch_size=opts.chunk_rows)
    origin = reader.name if reader.name != "<pool>" else opts.origin
    if opts.embedding not in reader.column_names:
        raise MlcycleError(f"{origin}: no embedding column '{opts.embedding}'",
                           hint="columns present: " + ", ".join(reader.column_names))
    failures = result.selected_samples[: opts.failures] if opts.failures else result.selected_samples
    if not failures:
        raise MlcycleError("no failures to search the pool for: nothing was flagged",
                           hint="lower --min-score or widen --reasons")
    t_codes, t_names = _codes(table.column(T.SAMPLE_ID))
    emb_by_sample: dict[str, np.ndarray] = {}
    lab_vecs = []
    if opts.embedding in table.column_names:
        rows, mat = _embeddings_of(table, opts.embedding, "input table")
        if len(rows):
            first = _first_per_sample(t_codes, rows)
            pos = np.searchsorted(rows, first)
            lab_vecs.append(mat[pos])
            for r, p in zip(first, pos):
                emb_by_sample[t_names[t_codes[r]]] = mat[p]

    cols = [T.SAMPLE_ID, opts.embedding]
    # pass 1: pool rows of labeled samples (near-duplicate exclusion, missing failure embeddings)
    offset = 0
    n_labeled_rows = 0
    labeled_in_pool: set[str] = set()
    for t in reader.batches(cols):
        mask = _is_in(t.column(T.SAMPLE_ID), t_names)
        if mask.any():
            sub = t.filter(pa.array(mask))
            r, m = _embeddings_of(sub, opts.embedding, origin, offset)
            if len(r):
                lab_vecs.append(m)
                names = sub.column(T.SAMPLE_ID).take(pa.array(r)).to_pylist()
                labeled_in_pool.update(names)
                for s, v in zip(names, m):
                    emb_by_sample.setdefault(s, v)
            n_labeled_rows += int(mask.sum())
        offset += t.num_rows
    fail_names = [s for s in failures if s in emb_by_sample]
    if not fail_names:
        raise MlcycleError(f"no embedding for any failure sample in column '{opts.embedding}'",
                           hint="add the embedding column to the evaluated table, or include the labeled samples in the pool")
    fmat = np.stack([emb_by_sample[s] for s in fail_names])
    labeled = np.concatenate(lab_vecs) if lab_vecs else None
    if labeled is not None and labeled.shape[1] != fmat.shape[1]:
        raise MlcycleError(f"{origin}: embeddings have {fmat.shape[1]} and {labeled.shape[1]} values in different places",
                           hint="the pool and the evaluated table need embeddings of one model")

    # pass 2: the search, one chunk at a time
    cand_names: list["pa.Array"] = []
    state = {"rows": 0, "cand": 0}

    def chunks():
        off = 0
        for t in reader.batches(cols):
            keep = ~_is_in(t.column(T.SAMPLE_ID), t_names)
            r, m = _embeddings_of(t, opts.embedding, origin, off)
            sel = keep[r]
            r, m = r[sel], m[sel]
            off += t.num_rows
            state["rows"] = off
            if len(r) == 0:
                continue
            if m.shape[1] != fmat.shape[1]:
                raise MlcycleError(f"{origin}: pool embeddings have {m.shape[1]} values, the failures' {fmat.shape[1]}",
                                   hint="the pool and the evaluated table need embeddings of one model")
            cand_names.append(t.column(T.SAMPLE_ID).combine_chunks().take(pa.array(r)))
            state["cand"] += len(r)
            yield m

    idx, sim, fail = knn_search(fmat, chunks(), opts.k, labeled, opts.dup_threshold)
    names_all = pa.chunked_array(cand_names, type=pa.string()) if cand_names else pa.chunked_array([], type=pa.string())
    chosen_names = names_all.take(pa.array(idx, type=pa.int64())).to_pylist() if len(idx) else []
    # one entry per sample (a sample with several rows could appear twice)
    seen: dict[str, int] = {}
    for i, s in enumerate(chosen_names):
        seen.setdefault(s, i)
    order = sorted(seen.values())
    chosen_names = [chosen_names[i] for i in order]
    sim, fail = sim[order], fail[order]

    # pass 3: every row of the chosen samples
    parts = []
    for t in reader.batches(None):
        mask = _is_in(t.column(T.SAMPLE_ID), chosen_names)
        if mask.any():
            parts.append(t.filter(pa.array(mask)))
    from mlcycle import io

    out = io.concat(parts) if len(parts) > 1 else (parts[0] if parts else reader.empty())
    rank_of = {s: i for i, s in enumerate(chosen_names)}
    r = np.array([rank_of[s] for s in out.column(T.SAMPLE_ID).to_pylist()], dtype=np.int64)
    perm = np.lexsort((np.arange(len(r)), r))
    out = out.take(pa.array(perm, type=pa.int64()))
    r = r[perm]
    out = _set_column(out, T.HARD_SCORE, pa.array(np.clip(sim[r].astype(np.float64), 0.0, 1.0), type=pa.float64()))
    out = _set_column(out, T.HARD_REASON, pa.array([SIMILAR_TO_FAILURE] * len(r), type=pa.string()))
    match = np.array(fail_names, dtype=object)[fail[r]] if len(r) else []
    out = _set_column(out, T.HARD_MATCH, pa.array(list(match), type=pa.string()))
    summary = {
        "failures_used": len(fail_names),
        "failures_without_embedding": len(failures) - len(fail_names),
        "pool_rows": int(state["rows"]),
        "pool_candidates": int(state["cand"]),
        "pool_samples_already_labeled": len(labeled_in_pool),
        "chosen": len(chosen_names),
        "k": opts.k,
        "dup_threshold": opts.dup_threshold,
        "top": [
            {"sample_id": s, "similarity": float(v), T.HARD_MATCH: fail_names[fi]}
            for s, v, fi in list(zip(chosen_names, sim, fail))[:10]
        ],
    }
    return out, summary
