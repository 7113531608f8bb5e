"""The reasons a label is flagged, and the rules (TIDE-style) that give each its score.

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
        segmax_into(wrong_s, gg, sp, ~same & (iou >= opts.iou) & fp_p)
        segmax_into(loc_s, gg, sp, same & (iou >= opts.low_iou) & (iou < opts.iou) & fp_p)
        segmax_into(near_s, gg, sp, iou >= opts.low_iou)
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
    _apply(rules_fp, fp, h, code)

    tp = f.is_pred & f.has_box & f.tp
    if opts.conf_low > 0:
        low = tp & (s < opts.conf_low)
        code[low] = CODE[LOW_CONFIDENCE]
        h[low] = w * (1.0 - s[low] / opts.conf_low)

    # per unmatched ground truth
    fn = f.is_gt & f.has_box & f.fn & ~f.crowd
    m = np.clip(near_s, 0.0, 1.0)
    rules_fn = [
        (POSSIBLE_WRONG_LABEL, wrong_s >= opts.conf_wrong, wrong_s),
        (CLASS_CONFUSION, wrong_s >= 0, w * wrong_s),
        (LOCALIZATION, loc_s >= 0, loc_s),
        (POSSIBLE_SPURIOUS, (1.0 - m) >= opts.conf_spurious, opts.miss_weight * (1.0 - m)),
        (MISSED, np.ones(n, bool), opts.miss_weight * (1.0 - m)),
    ]
    _apply(rules_fn, fn, h, code)
    return np.clip(h, 0.0, 1.0), code


def _apply(rules, rows: "np.ndarray", h: "np.ndarray", code: "np.ndarray") -> None:
    """The first rule whose condition holds gives each of ``rows`` its reason and score."""
    todo = rows.copy()
    for reason, cond, value in rules:
        hit = todo & cond
        code[hit] = CODE[reason]
        h[hit] = value[hit]
        todo &= ~hit
