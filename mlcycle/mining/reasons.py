"""The reasons a label is flagged, and the rules (TIDE-style) that give each its score.

Prediction rows the evaluation left unmatched (``eval == "fp"``), with ``s`` its score
and IoUs taken against the ground truth of the same sample:

=====================  ====================================================  ===========
reason                 rule (checked in this order)                          hard_score
=====================  ====================================================  ===========
duplicate              same-class IoU >= iou (the object is already matched)  w*s
possible_wrong_label   other-class IoU >= iou and s' >= conf_wrong            s'
class_confusion        other-class IoU >= iou and s' < conf_wrong             w*s
localization           low_iou <= best same-class IoU < iou, that GT unmatched s*t
duplicate              low_iou <= best same-class IoU < iou, that GT matched  w*s
class_confusion        low_iou <= other-class IoU < iou (TIDE "both")         w*s
possible_missing       IoU < low_iou with every GT and s >= conf_missing      s
background             IoU < low_iou with every GT and s < conf_missing       w*s
=====================  ====================================================  ===========

``s' = s*(1-a)`` where ``a`` is the highest score of a prediction *of the ground truth's
class* at IoU >= iou on that box (0 if none): when the model also agrees with the label,
an other-class prediction there is the model hesitating, not evidence against the label.
``t`` (``_localization_trust``) is how well the model localizes objects of this size,
relative to the size it localizes best, estimated from the table itself (1 when there
is too little data): a localization finding is weaker evidence of a sloppy box where the
model's boxes are often off anyway.

Matched predictions (``tp``) with ``s < conf_low``: ``low_confidence``, ``w*(1-s/conf_low)``.
Unmatched ground truth (``fn``): a same-class ground-truth twin at IoU >= iou makes it
``duplicate`` (score: that IoU — the object is annotated twice); else an other-class
unmatched prediction at IoU >= iou makes it ``possible_wrong_label``/``class_confusion``
(score ``s'`` as on the prediction); else a same-class unmatched prediction at
``low_iou <= IoU < iou`` makes it ``localization`` (score ``s*t``); else with ``m`` the
highest score of any prediction at IoU >= low_iou (0 if none): ``possible_spurious``
when ``1-m >= conf_spurious``, otherwise ``missed``; both score ``v*(1-m)``.
``w`` is ``model_weight``: reasons that point at the model rather than at the labels
count less; ``v`` is ``miss_weight``: the absence of a detection is weaker
evidence than a conflicting one. docs/mine-hard.md states every rule and formula.

Library code: never prints, knows nothing of the command line.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlcycle.geometry import iou_xywh

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from mlcycle.mining.frame import Frame
    from mlcycle.mining.options import MineOptions

POSSIBLE_MISSING = "possible_missing"
POSSIBLE_WRONG_LABEL = "possible_wrong_label"
CLASS_CONFUSION = "class_confusion"
LOCALIZATION = "localization"
DUPLICATE = "duplicate"
BACKGROUND = "background"
MISSED = "missed"
POSSIBLE_SPURIOUS = "possible_spurious"
LOW_CONFIDENCE = "low_confidence"
SIMILAR_TO_FAILURE = "similar_to_failure"  # pool search (mlcycle.mining.pool), not a rule

REASONS = (
    POSSIBLE_MISSING, POSSIBLE_WRONG_LABEL, CLASS_CONFUSION, LOCALIZATION, DUPLICATE,
    BACKGROUND, MISSED, POSSIBLE_SPURIOUS, LOW_CONFIDENCE,
)
# reason -> its code in the per-row arrays (-1 = no reason)
CODE = {r: i for i, r in enumerate(REASONS)}


def score_rules(f: "Frame", opts: "MineOptions") -> tuple["np.ndarray", "np.ndarray"]:
    """Per-row hard score (NaN = none) and reason code (-1 = none) by the documented rules.

    The overlaps are reduced per row (best IoU, best nearby score) over the pairs of
    rows of a sample, a bounded chunk of pairs at a time.
    """
    import numpy as np

    from mlcycle.mining.frame import same_sample_pairs, segmax_into

    n = f.n
    h = np.full(n, np.nan)
    code = np.full(n, -1, np.int64)
    w = opts.model_weight
    s = f.score

    # per prediction: best overlaps (0 = nothing)
    u_other = np.zeros(n)
    u_same_tp = np.zeros(n)
    u_same_free = np.zeros(n)
    # per ground truth: best score of an overlapping prediction (-1 = none)
    wrong_s = np.full(n, -1.0)
    loc_s = np.full(n, -1.0)
    near_s = np.zeros(n)
    # per ground truth: best score of a same-class prediction at IoU >= iou — the model
    # agrees with the label; an other-class prediction on that box is then the model
    # hesitating between two classes rather than evidence against the label
    agree = np.zeros(n)
    for pp, gg in same_sample_pairs(f.sample, f.pred_rows, f.gt_rows):
        keep = f.label[pp] == f.label[gg]
        if keep.any():
            pp, gg = pp[keep], gg[keep]
            segmax_into(agree, gg, s[pp], iou_xywh(f.boxes[pp], f.boxes[gg]) >= opts.iou)
    agree = np.clip(agree, 0.0, 1.0)
    # per prediction: its score against the label of an other-class box it covers, s*(1-agree)
    wrong_p = np.full(n, -1.0)
    for pp, gg in same_sample_pairs(f.sample, f.pred_rows, f.gt_rows):
        iou = iou_xywh(f.boxes[pp], f.boxes[gg])
        same = f.label[pp] == f.label[gg]
        crowd_g = f.crowd[gg]
        tp_g = f.tp[gg]
        segmax_into(u_other, pp, iou, ~same & ~crowd_g)
        segmax_into(u_same_tp, pp, iou, same & tp_g)
        segmax_into(u_same_free, pp, iou, same & ~tp_g & ~crowd_g)
        sp = s[pp]
        fp_p = f.fp[pp]
        against = sp * (1.0 - agree[gg])
        segmax_into(wrong_p, pp, against, ~same & ~crowd_g & (iou >= opts.iou))
        segmax_into(wrong_s, gg, against, ~same & (iou >= opts.iou) & fp_p)
        segmax_into(loc_s, gg, sp, same & (iou >= opts.low_iou) & (iou < opts.iou) & fp_p)
        segmax_into(near_s, gg, sp, iou >= opts.low_iou)
    u_same = np.maximum(u_same_tp, u_same_free)
    # per ground truth: best IoU with another same-class ground-truth box (a twin)
    twin = np.zeros(n)
    for aa, bb in same_sample_pairs(f.sample, f.gt_rows, f.gt_rows):
        keep = (aa != bb) & (f.label[aa] == f.label[bb]) & ~f.crowd[aa] & ~f.crowd[bb]
        if keep.any():
            aa, bb = aa[keep], bb[keep]
            segmax_into(twin, aa, iou_xywh(f.boxes[aa], f.boxes[bb]), np.ones(len(aa), bool))

    fp = f.is_pred & f.has_box & f.fp
    # how often the model misplaces objects of this size: a localization finding is
    # weaker evidence of a sloppy label where the model's boxes are often off anyway
    fn = f.is_gt & f.has_box & f.fn & ~f.crowd
    trust = _localization_trust(f, fn & (loc_s >= 0), f.is_gt & f.has_box & f.tp & ~f.crowd)
    rules_fp = [
        (DUPLICATE, u_same >= opts.iou, w * s),
        (POSSIBLE_WRONG_LABEL, (u_other >= opts.iou) & (wrong_p >= opts.conf_wrong), wrong_p),
        (CLASS_CONFUSION, u_other >= opts.iou, w * s),
        (LOCALIZATION, (u_same >= opts.low_iou) & (u_same_free > u_same_tp), s * trust),
        (DUPLICATE, u_same >= opts.low_iou, w * s),
        (CLASS_CONFUSION, u_other >= opts.low_iou, w * s),
        (POSSIBLE_MISSING, s >= opts.conf_missing, s),
        (BACKGROUND, np.ones(n, bool), w * s),
    ]
    _apply(rules_fp, fp, h, code)

    tp = f.is_pred & f.has_box & f.tp
    if opts.conf_low > 0:
        low = tp & (s < opts.conf_low)
        code[low] = CODE[LOW_CONFIDENCE]
        h[low] = w * (1.0 - s[low] / opts.conf_low)

    # per unmatched ground truth
    m = np.clip(near_s, 0.0, 1.0)
    rules_fn = [
        (DUPLICATE, twin >= opts.iou, twin),
        (POSSIBLE_WRONG_LABEL, wrong_s >= opts.conf_wrong, wrong_s),
        (CLASS_CONFUSION, wrong_s >= 0, w * wrong_s),
        (LOCALIZATION, loc_s >= 0, loc_s * trust),
        (POSSIBLE_SPURIOUS, (1.0 - m) >= opts.conf_spurious, opts.miss_weight * (1.0 - m)),
        (MISSED, np.ones(n, bool), opts.miss_weight * (1.0 - m)),
    ]
    _apply(rules_fn, fn, h, code)
    return np.clip(h, 0.0, 1.0), code


def _localization_trust(f: "Frame", loc_gt: "np.ndarray", tp_gt: "np.ndarray", bins: int = 8,
                        prior: float = 20.0, per_bin: int = 50) -> "np.ndarray":
    """Per row: how well the model localizes objects of the row's size, relative to the
    size it localizes best (1.0 there; 1.0 everywhere when there is too little data).

    Ground-truth boxes are put in quantile bins of log area (up to ``bins``, at least
    ``per_bin`` objects each); in each the rate ``r`` is ``#localization / (#localization +
    #matched)`` — the share of the objects found at ``low_iou <= IoU`` whose best box still
    falls short of ``iou`` — shrunk towards the rate over all sizes by ``prior``
    pseudo-counts. The trust is ``(1 - r) / (1 - min r)``. A row's bin is that of its own
    box (a prediction's box is about the size of its object).
    """
    import numpy as np

    out = np.ones(f.n)
    ref = loc_gt | tp_gt
    n_ref = int(ref.sum())
    nb = min(bins, n_ref // per_bin)
    if nb < 2:
        return out
    la = np.log(np.maximum(f.boxes[:, 2] * f.boxes[:, 3], 1e-9))
    edges = np.quantile(la[ref], np.linspace(0, 1, nb + 1)[1:-1])
    ok = f.has_box
    b = np.searchsorted(edges, la[ok], side="right")
    bref = np.searchsorted(edges, la[ref], side="right")
    loc_n = np.bincount(np.searchsorted(edges, la[loc_gt], side="right"), minlength=nb).astype(float)
    all_n = np.bincount(bref, minlength=nb).astype(float)
    overall = loc_n.sum() / all_n.sum()
    rate = (loc_n + prior * overall) / (all_n + prior)
    out[ok] = (1.0 - rate[b]) / (1.0 - rate.min())
    return out


def _apply(rules, rows: "np.ndarray", h: "np.ndarray", code: "np.ndarray") -> None:
    """The first rule whose condition holds gives each of ``rows`` its reason and score."""
    todo = rows.copy()
    for reason, cond, value in rules:
        hit = todo & cond
        code[hit] = CODE[reason]
        h[hit] = value[hit]
        todo &= ~hit
