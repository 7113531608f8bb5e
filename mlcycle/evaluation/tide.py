"""TIDE: how much AP each kind of error costs (Bolya et al., "TIDE: A General Toolbox for
Identifying Object Detection Errors", ECCV 2020; reference implementation ``tidecv``).

At the foreground IoU threshold ``t_f`` (0.5) detections are matched to ground truth of
their class (COCO's greedy matching). Every detection that is not a true positive gets
one error type, tested in this order (``t_b`` = 0.1 is the background threshold; IoUs
with non-crowd ground truth of the same image):

- ``bkg``  the image has no ground truth at all;
- ``loc``  ``t_b <= max IoU with its own class <= t_f``;
- ``cls``  ``max IoU with another class >= t_f``;
- ``dupe`` ``max IoU with an already matched ground truth of its class >= t_f``;
- ``bkg``  ``max IoU with any ground truth <= t_b``;
- ``both`` anything else (wrong class and poorly localised).

A ground truth that is never matched and that no ``cls``/``loc`` error would fix is
``miss``ed. Each error type's dAP is the AP50 gained by fixing only the errors of that
type: ``cls``/``loc`` errors become true positives (of the ground truth's class) when
theirs is the highest-scoring such error on an unmatched ground truth, and are removed
otherwise; ``dupe``, ``bkg`` and ``both`` detections are removed; missed ground truth
is removed from the count. ``false_pos`` (all false positives scored below every true
positive) and ``false_neg`` (all unmatched ground truth removed) are the special errors.

AP here is TIDE's: 101 recall points, precision without COCO's epsilon, a class without
ground truth but with detections counts as AP 0. Differences from ``tidecv`` (documented
in docs/evaluate-compare.md): crowd regions absorb detections as in COCO (such
detections are neither true positives nor errors), ``max_dets`` applies per image and
class (tidecv: per image), and IoU ties pick the later ground truth (COCO's rule).
Results are fractions (tidecv prints them x100).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from mlcycle.evaluation.prepare import Options, Prepared

POS = 0.5
BKG = 0.1
TYPES = ("cls", "loc", "both", "dupe", "bkg", "miss")
_CLS, _LOC, _BOTH, _DUPE, _BKG = range(5)


def tide_ap(cat: np.ndarray, score: np.ndarray, tp: np.ndarray, n_gt: np.ndarray, present: np.ndarray) -> float:
    """TIDE's mAP: per class (``present``: the classes TIDE knows), 101-point AP of the
    detections sorted by score, precision tp/(tp+fp); classes without ground truth: 0."""
    rec_thrs = np.array([x / 100 for x in range(101)])
    K = len(n_gt)
    order = np.lexsort((-score, cat))
    c, t = cat[order], tp[order].astype(np.int64)
    starts = np.searchsorted(c, np.arange(K + 1))
    aps = []
    for k in np.flatnonzero(present).tolist():
        s0, s1 = starts[k], starts[k + 1]
        if n_gt[k] <= 0:
            if s1 > s0 or n_gt[k] != 0:
                aps.append(0.0)
            continue
        if s1 == s0:
            aps.append(0.0)
            continue
        tt = t[s0:s1]
        ctp = np.cumsum(tt)
        n = np.arange(1, len(tt) + 1)
        pr = ctp / n
        rc = ctp / n_gt[k]
        env = np.maximum.accumulate(pr[::-1])[::-1]
        idx = np.searchsorted(rc, rec_thrs, side="left")
        q = np.where(idx < len(pr), env[np.minimum(idx, len(pr) - 1)], 0.0)
        aps.append(float(np.sum(q) / len(q)))
    return float(np.mean(aps)) if aps else 0.0


def compute(prep: "Prepared", opts: "Options", pos: float = POS, bkg: float = BKG) -> dict:
    """The TIDE breakdown of one prepared source (see the module doc)."""
    from mlcycle.evaluation import coco as C
    from mlcycle.evaluation.match import Groups, candidate_pairs, greedy_match, make_groups

    gt, dt = prep.gt, prep.dt
    n_img, K = len(prep.samples), len(prep.classes)
    crowd = gt.crowd if gt.crowd is not None else np.zeros(len(gt), bool)
    params = C.Params(max_dets=list(opts.max_dets), iou_type=opts.iou_type)
    groups = make_groups(gt, dt, n_img, K, params.max_dets[-1])
    pairs = candidate_pairs(gt, dt, groups, min(pos, 1 - 1e-10), opts.iou_type)
    match, _, matched, to_ign = greedy_match(groups, pairs, [pos], crowd[None, :], crowd, len(gt))
    kept = groups.dt_order
    nd = len(kept)
    m = match[0].astype(np.int64)
    is_tp = matched[0, 0] & ~to_ign[0, 0]
    ignored = matched[0, 0] & to_ign[0, 0]
    gt_used = np.zeros(len(gt), bool)
    gt_used[m[is_tp]] = True
    d_img, d_cat, d_score = dt.img[kept], dt.cat[kept], dt.score[kept]

    # every (detection, non-crowd ground truth) pair of an image with IoU > 0, any class
    ncg = np.flatnonzero(~crowd)
    g_order = ncg[np.argsort(gt.img[ncg], kind="stable")]
    img_groups = Groups(n_img=n_img, n_cat=1, gt_order=g_order, gt_group=gt.img[g_order].astype(np.int64),
                        dt_order=kept, dt_group=d_img.astype(np.int64), dt_rank=np.zeros(nd, np.int64),
                        dt_dropped=np.zeros(0, np.int64))
    # candidate_pairs needs detections sorted by group: sort by image (stable)
    by_img = np.argsort(d_img, kind="stable")
    img_groups.dt_order = kept[by_img]
    img_groups.dt_group = d_img[by_img].astype(np.int64)
    pd_, pg, piou = candidate_pairs(gt, dt, img_groups, np.nextafter(0.0, 1.0), opts.iou_type)
    pd_ = by_img[pd_]                                # positions in kept order
    same = gt.cat[pg] == d_cat[pd_]

    def best(mask):
        """(max IoU, argmax gt: the first on ties in ground-truth order) per detection."""
        v = np.zeros(nd)
        arg = np.full(nd, -1, np.int64)
        sel = np.flatnonzero(mask)
        if len(sel):
            o = np.lexsort((pg[sel], -piou[sel], pd_[sel]))
            s = sel[o]
            first = np.r_[True, pd_[s][1:] != pd_[s][:-1]]
            v[pd_[s][first]] = piou[s][first]
            arg[pd_[s][first]] = pg[s][first]
        return v, arg

    same_v, same_g = best(same)
    other_v, other_g = best(~same)
    used_v, _ = best(same & gt_used[pg])
    any_v, _ = best(np.ones(len(pd_), bool))
    has_gt = np.zeros(max(n_img, 1), bool)
    has_gt[gt.img[~crowd]] = True

    err = np.full(nd, -1, np.int64)
    target = np.full(nd, -1, np.int64)
    neg = ~is_tp & ~ignored
    rest = neg.copy()

    def assign(mask, kind, tgt=None):
        nonlocal rest
        sel = rest & mask
        err[sel] = kind
        if tgt is not None:
            target[sel] = tgt[sel]
        rest = rest & ~sel

    assign(~has_gt[d_img], _BKG)
    assign((same_v >= bkg) & (same_v <= pos), _LOC, same_g)
    assign(other_v >= pos, _CLS, other_g)
    assign(used_v >= pos, _DUPE)
    assign(any_v <= bkg, _BKG)
    assign(np.ones(nd, bool), _BOTH)

    # cls/loc fixes: per unmatched target ground truth, the highest-scoring such error
    # (processing order on ties: image order, then score order in the image)
    fixable = np.flatnonzero(((err == _CLS) | (err == _LOC)) & (target >= 0))
    fixable = fixable[~gt_used[target[fixable]]]
    usable = np.zeros(len(gt), bool)
    usable[target[fixable]] = True
    rank_in_img = np.lexsort((-d_score, d_img))
    proc = np.empty(nd, np.int64)
    proc[rank_in_img] = np.arange(nd)
    o = np.lexsort((proc[fixable], -d_score[fixable], target[fixable]))
    f = fixable[o]
    winner = np.zeros(nd, bool)
    if len(f):
        winner[f[np.r_[True, target[f][1:] != target[f][:-1]]]] = True

    gt_nc = ~crowd
    n_gt = np.bincount(gt.cat[gt_nc], minlength=K).astype(np.int64)
    missed = gt_nc & ~gt_used & ~usable
    unmatched = gt_nc & ~gt_used
    present = (n_gt > 0) | (np.bincount(d_cat[~ignored], minlength=K) > 0)

    base_sel = ~ignored

    def ap(sel, cat=d_cat, score=d_score, tp=is_tp, ngt=n_gt):
        return tide_ap(cat[sel], score[sel], tp[sel], ngt, present)

    base = ap(base_sel)
    main = {}
    for name, kind in (("cls", _CLS), ("loc", _LOC)):
        is_e = err == kind
        keep = base_sel & ~(is_e & ~winner)
        tp2 = is_tp | (is_e & winner)
        cat2 = d_cat.copy()
        if kind == _CLS:
            w = is_e & winner
            cat2[w] = gt.cat[target[w]]
        main[name] = max(ap(keep, cat=cat2, tp=tp2) - base, 0.0)
    for name, kind in (("both", _BOTH), ("dupe", _DUPE), ("bkg", _BKG)):
        main[name] = max(ap(base_sel & (err != kind)) - base, 0.0)
    main["miss"] = max(ap(base_sel, ngt=n_gt - np.bincount(gt.cat[missed], minlength=K)) - base, 0.0)
    fp_score = np.where(is_tp, 1.0, 0.0)
    special = {
        "false_pos": ap(base_sel, score=fp_score) - base,
        "false_neg": ap(base_sel, ngt=n_gt - np.bincount(gt.cat[unmatched], minlength=K)) - base,
    }
    counts = {name: int((err == kind).sum()) for name, kind in
              (("cls", _CLS), ("loc", _LOC), ("both", _BOTH), ("dupe", _DUPE), ("bkg", _BKG))}
    counts["miss"] = int(missed.sum())
    return {"pos_threshold": pos, "background_threshold": bkg, "AP50": base,
            "main": {k: main[k] for k in TYPES}, "special": special, "counts": counts,
            "reference": "Bolya et al., ECCV 2020 (tidecv); fractions, tidecv prints x100"}
