"""COCO detection metrics, bit-identical to pycocotools' ``COCOeval``.

``Params`` holds the exact thresholds (``np.linspace`` as pycocotools builds them);
``evaluate`` matches (``match.py``) and accumulates for every class, area range and
max-detections value with whole-array numpy operations; ``summarize`` computes the
12 standard numbers (plus custom ranges) with the same slicing and masked mean as
``COCOeval.summarize``, so the floating-point results are the same to the last bit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from mlcycle.evaluation.match import Groups, Objects, candidate_pairs, greedy_match, make_groups

AREA_ALL = (0.0 ** 2, 1e5 ** 2)
DEFAULT_AREAS = {
    "all": (0.0 ** 2, 1e5 ** 2),
    "small": (0.0 ** 2, 32.0 ** 2),
    "medium": (32.0 ** 2, 96.0 ** 2),
    "large": (96.0 ** 2, 1e5 ** 2),
}


def iou_thresholds() -> np.ndarray:
    """pycocotools' ``iouThrs``: 0.5:0.05:0.95 via linspace (index 8 is 0.8999999999999999)."""
    return np.linspace(.5, 0.95, int(np.round((0.95 - .5) / .05)) + 1, endpoint=True)


def recall_thresholds() -> np.ndarray:
    """pycocotools' ``recThrs``: 101 points via linspace (10 of them 1 ulp above k/100)."""
    return np.linspace(.0, 1.00, int(np.round((1.00 - .0) / .01)) + 1, endpoint=True)


@dataclass
class Params:
    iou_thrs: np.ndarray = field(default_factory=iou_thresholds)
    rec_thrs: np.ndarray = field(default_factory=recall_thresholds)
    max_dets: list[int] = field(default_factory=lambda: [1, 10, 100])
    iou_type: str = "bbox"

    def __post_init__(self) -> None:
        self.max_dets = sorted(int(m) for m in self.max_dets)


@dataclass
class Range:
    """One 'area range' column of the result arrays: which ground truth is ignored
    (besides crowd) and which detections are ignored when unmatched."""

    name: str
    gt_out: np.ndarray   # bool per gt: outside the range
    dt_out: np.ndarray   # bool per det: outside the range (only matters when unmatched)


def area_range(name: str, lo: float, hi: float, gt_area: np.ndarray, dt_area: np.ndarray) -> Range:
    """COCO semantics: inside when ``lo <= area <= hi`` (both bounds inclusive)."""
    return Range(name, (gt_area < lo) | (gt_area > hi), (dt_area < lo) | (dt_area > hi))


@dataclass
class Result:
    params: Params
    ranges: list[Range]
    precision: np.ndarray   # (T, R, K, A, M)
    recall: np.ndarray      # (T, K, A, M)
    scores: np.ndarray      # (T, R, K, A, M)
    npig: np.ndarray        # (A, K) non-ignored gt per class
    groups: Groups
    match: np.ndarray       # (T', nkept) matched gt index or -1, first range ('all'); T' >= T: extra thresholds
                            # (only the rows evaluate()'s match_rows asks for, when given)
    match_iou: np.ndarray   # (T', nkept) IoU of the match, first range ('all')
    dt_ignore: np.ndarray   # (A, T', nkept)
    thresholds: np.ndarray  # the T' thresholds matched


def evaluate(gt: Objects, dt: Objects, n_img: int, n_cat: int, params: Params,
             ranges: Sequence[Range], extra_thresholds: Sequence[float] = (), full: bool = True,
             match_rows: Sequence[int] | None = None) -> Result:
    """Match and accumulate. ``extra_thresholds`` are matched too (for per-label output)
    but not accumulated. ``full=False`` skips the precision arrays the summary never
    reads (see ``accumulate``); every reported number is the same. ``match_rows``
    (indices into the thresholds matched) keeps ``Result.match``/``match_iou`` for those
    thresholds only, in that order (default: all)."""
    p = params
    m = match_all(gt, dt, n_img, n_cat, params, ranges, extra_thresholds, match_rows)
    groups, matched, dt_ignore, gt_ignore = m.groups, m.matched, m.dt_ignore, m.gt_ignore
    kept = groups.dt_order
    T = len(p.iou_thrs)
    precision, recall, scores, npig = accumulate(groups, dt, matched[:, :T], dt_ignore[:, :T],
                                                 gt, gt_ignore, n_cat, p, full,
                                                 dt_out=[r.dt_out[kept] for r in ranges])
    return Result(p, list(ranges), precision, recall, scores, npig, groups, m.match, m.match_iou, dt_ignore,
                  m.thresholds)


@dataclass
class Matched:
    """What ``match_all`` gives: the groups and, per kept detection, the matching."""

    groups: Groups
    match: np.ndarray       # (T', nkept) matched gt index or -1, first range (rows: match_rows)
    match_iou: np.ndarray   # (T', nkept)
    matched: np.ndarray     # (A, T, nkept) bool, every threshold matched
    dt_ignore: np.ndarray   # (A, T, nkept) bool: pycocotools' dtIg
    gt_ignore: np.ndarray   # (A, n_gt) bool: crowd or outside the range
    thresholds: np.ndarray


def match_all(gt: Objects, dt: Objects, n_img: int, n_cat: int, params: Params,
              ranges: Sequence[Range], extra_thresholds: Sequence[float] = (),
              match_rows: Sequence[int] | None = None) -> Matched:
    """The matching half of ``evaluate``: groups, greedy matches and dtIg for every
    threshold (``params.iou_thrs`` then ``extra_thresholds``) and range."""
    p = params
    crowd = gt.crowd if gt.crowd is not None else np.zeros(len(gt), bool)
    groups = make_groups(gt, dt, n_img, n_cat, p.max_dets[-1])
    thresholds = np.concatenate([p.iou_thrs, np.asarray(extra_thresholds, dtype=np.float64)])
    min_thr = min(min(float(t), 1 - 1e-10) for t in thresholds)
    pairs = candidate_pairs(gt, dt, groups, min_thr, p.iou_type)
    gt_ignore = np.stack([crowd | r.gt_out for r in ranges]) if len(ranges) else np.zeros((0, len(gt)), bool)
    match, miou, matched, dt_ignore = greedy_match(groups, pairs, thresholds, gt_ignore, crowd, len(gt),
                                                   keep=match_rows)
    # dtIg: matched to an ignored gt (already in dt_ignore), or unmatched and outside the range
    kept = groups.dt_order
    for a, r in enumerate(ranges):
        dt_ignore[a] |= ~matched[a] & r.dt_out[kept][None, :]
    return Matched(groups, match, miou, matched, dt_ignore, gt_ignore, thresholds)


def accumulate(groups: Groups, dt: Objects, matched: np.ndarray, dt_ignore: np.ndarray,
               gt: Objects, gt_ignore: np.ndarray, n_cat: int, p: Params, full: bool = True,
               dt_out: Sequence[np.ndarray] | None = None):
    """``COCOeval.accumulate`` for all classes at once (see ``accumulate_kept``)."""
    A = gt_ignore.shape[0]
    npig = np.zeros((A, n_cat), dtype=np.int64)
    for a in range(A):
        npig[a] = np.bincount(gt.cat[~gt_ignore[a]], minlength=n_cat)[:n_cat]
    kept = groups.dt_order
    return accumulate_kept(dt.cat[kept], groups.dt_rank, dt.score[kept], matched, dt_ignore, npig, p, full,
                           dt_out)


def accumulate_kept(cat: np.ndarray, rank: np.ndarray, sc: np.ndarray, matched: np.ndarray,
                    dt_ignore: np.ndarray, npig: np.ndarray, p: Params, full: bool = True,
                    dt_out: Sequence[np.ndarray] | None = None):
    """``COCOeval.accumulate`` for all classes at once, from the kept detections.

    ``cat``, ``rank`` (within its image-class group), ``sc`` and the last axis of
    ``matched``/``dt_ignore`` (A, T, n) and of each ``dt_out`` are in *kept order*: by
    image (evaluation order), class, then rank. ``npig`` (A, K) counts the non-ignored
    ground truth per range and class. Returns (precision, recall, scores, npig).

    Per class, detections are in the order pycocotools concatenates them (image order,
    then rank in the image) and stably sorted by -score; each max-detections value keeps
    a subsequence of that order. With ``full=False`` precision and scores are computed
    for the largest max-detections value only (the summary never reads the others; they
    stay -1) and recall for the smaller ones.

    ``dt_out`` (per range, kept order: the detection is outside the range) lets the
    largest max-detections value work on the matched detections only: an unmatched
    detection is ignored exactly when it is outside the range, so the ignored counts
    the precision needs come from one cumulative sum over the detections plus a
    correction over the matched ones, instead of passes over (thresholds x detections).
    """
    A, K = npig.shape
    T, R, M = len(p.iou_thrs), len(p.rec_thrs), len(p.max_dets)
    precision = -np.ones((T, R, K, A, M))
    recall = -np.ones((T, K, A, M))
    scores = -np.ones((T, R, K, A, M))
    nkept = len(cat)
    # class, then -score, then image order, then rank within the image: the stable
    # argsort of the concatenation pycocotools builds
    # kept detections are in (image, class, rank) order already, so a stable sort by
    # (class, -score) gives (class, -score, image, rank)
    order = _class_score_order(cat, sc, K)
    cat_o, rank_o, sc_o = cat[order], rank[order], sc[order]
    rec_thrs = p.rec_thrs
    eps = np.spacing(1)
    kk = np.arange(K)
    cat_k = cat.astype(np.int64)
    tp_all = [matched[a] & ~dt_ignore[a] for a in range(A)]   # (T, nkept) per range
    for mi, max_det in enumerate(p.max_dets):
        if not full and mi < M - 1:
            cols = rank < max_det                           # kept order
            cat_in = cat_k[cols]
            has = np.bincount(cat_in, minlength=K) > 0
            for a in range(A):
                npa = npig[a]
                valid_k = npa > 0
                # true positives within max_det per threshold and class (one threshold at
                # a time: memory O(n), not O(T * true positives) of int64 indices)
                ntp = np.stack([np.bincount(cat_in[tp_all[a][t][cols]], minlength=K)[:K] for t in range(T)]) \
                    if T else np.zeros((0, K), np.int64)
                with np.errstate(divide="ignore", invalid="ignore"):
                    rec = np.where(has[None, :], ntp / np.maximum(npa, 1)[None, :], 0.0)
                recall[:, valid_k, a, mi] = rec[:, valid_k]
            continue
        in_m = rank_o < max_det
        sel = order[in_m]
        c = cat_o[in_m]
        s = sc_o[in_m]
        n = len(sel)
        seg_start = np.searchsorted(c, kk, side="left")
        seg_end = np.searchsorted(c, kk, side="right")
        has = seg_end > seg_start
        if dt_out is not None:
            pos_of = np.full(nkept, -1, np.int64)          # kept index -> sorted position
            pos_of[sel] = np.arange(n)

        def one(a: int):
            if dt_out is None:
                tp_t, tp_p, ign_before = _tp_ignored(tp_all[a][:, sel], dt_ignore[a][:, sel], seg_start, c)
            else:
                tp_t, tp_p, ign_before = _tp_ignored_sparse(tp_all[a], matched[a], dt_ignore[a], dt_out[a],
                                                            sel, pos_of, seg_start, c)
            return _accumulate_one(tp_t, tp_p, ign_before, T, n, c, s, seg_start, has, npig[a], rec_thrs, eps)

        # the ranges are independent and the work is in large numpy operations, which
        # release the GIL: threads use the second core
        results = _map(one, range(A)) if n else [None] * A
        for a, r in enumerate(results):
            valid_k = npig[a] > 0
            if r is None:
                recall[:, valid_k, a, mi] = 0.0
                precision[:, :, valid_k, a, mi] = 0.0
                scores[:, :, valid_k, a, mi] = 0.0
                continue
            q, ss, rec = r
            recall[:, valid_k, a, mi] = rec[:, valid_k]
            precision[:, :, valid_k, a, mi] = q[:, :, valid_k]
            scores[:, :, valid_k, a, mi] = ss[:, :, valid_k]
    return precision, recall, scores, npig


def _class_score_order(cat: np.ndarray, sc: np.ndarray, n_cat: int) -> np.ndarray:
    """``np.lexsort((-sc, cat))``. The class pass sorts 16-bit keys when the classes fit,
    which numpy does with a (stable) radix sort instead of a second comparison sort."""
    if n_cat > np.iinfo(np.uint16).max or not len(cat):
        return np.lexsort((-sc, cat))
    by_score = np.argsort(-sc, kind="stable")
    return by_score[np.argsort(cat[by_score].astype(np.uint16), kind="stable")]


def _map(fn, items) -> list:
    """``list(map(fn, items))`` on a few threads when there is more than one core."""
    import os

    items = list(items)
    workers = min(len(items), os.cpu_count() or 1, 4)
    if workers < 2:
        return [fn(x) for x in items]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(fn, items))


def _tp_ignored(tpm, ig, seg_start, c):
    """True positives of (T, n) arrays in sorted order as (threshold, position), and
    per true positive the number of ignored detections of its class before it."""
    T, n = tpm.shape
    # flat indices (t * n + position): np.flatnonzero is far faster than 2-D np.nonzero
    tp_key = np.flatnonzero(tpm)                    # sorted by (threshold, position)
    tp_t = tp_key // n
    tp_p = tp_key - tp_t * n
    ig_cum = np.zeros(T * n + 1, dtype=np.int64 if T * n >= 2 ** 31 else np.int32)
    np.cumsum(ig.ravel(), out=ig_cum[1:])           # ignored detections before a flat index
    first = seg_start[c[tp_p]]
    return tp_t, tp_p, ig_cum[tp_key] - ig_cum[tp_t * n + first]


def _tp_ignored_sparse(tp, matched, ig, out, sel, pos_of, seg_start, c):
    """``_tp_ignored`` from the matched detections only (same integers).

    ``tp``/``matched``/``ig`` are (T, nkept) in kept order, ``out`` (nkept,) whether a
    detection is outside the range, ``sel`` the kept indices in sorted order (within
    max_det) and ``pos_of`` its inverse (-1: beyond max_det). A detection unmatched at a
    threshold is ignored there exactly when it is outside the range, so the ignored
    detections before sorted position p at threshold t are
    ``#out[first:p] + sum over detections q in [first, p) matched at t of (ig - out)``.
    """
    T = tp.shape[0]
    n = len(sel)
    out_s = out[sel]
    cx = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(out_s, out=cx[1:])                     # out detections before a position
    cand = np.flatnonzero(matched.any(axis=0))       # kept indices matched at some threshold
    P = pos_of[cand]
    P = np.sort(P[P >= 0])                           # their sorted positions, increasing
    K_idx = sel[P]
    nI = len(P)
    tpc = tp[:, K_idx]                               # (T, nI)
    # small integer types: w is -1, 0 or 1 and its running sums stay within nI (exact)
    w = matched[:, K_idx].astype(np.int8) * (ig[:, K_idx].astype(np.int8) - out[K_idx].astype(np.int8)[None, :])
    wx = np.zeros((T, nI + 1), dtype=np.int32 if nI < 2 ** 31 - 1 else np.int64)
    np.cumsum(w, axis=1, dtype=wx.dtype, out=wx[:, 1:])   # correction before a compact index
    del w
    key = np.flatnonzero(tpc)                        # sorted by (threshold, position)
    tp_t = key // max(nI, 1)
    tp_j = key - tp_t * nI
    tp_p = P[tp_j]
    k_of = c[tp_p]
    first = seg_start[k_of]
    j_first = np.searchsorted(P, first, side="left")   # first compact index of the class
    ign_before = (cx[tp_p] - cx[first]) + (wx[tp_t, tp_j] - wx[tp_t, j_first])
    return tp_t, tp_p, ign_before


def _accumulate_one(tp_t, tp_p, ign_before, T, n, c, s, seg_start, has, npig, rec_thrs, eps):
    """Precision/scores at the recall points and final recall for one (area, maxDet),
    all thresholds and classes at once, working on the true positives only.

    In pycocotools' sequence (per class, detections by score), precision rises only at a
    true positive, and every recall point lands on one (except recall 0, which lands on
    the class's first detection), so the envelope at a recall point is the maximum of
    ``tp / (fp + tp + eps)`` over the class's true positives from that point on. The
    ``fp + tp`` there is the number of non-ignored detections up to the true positive.
    """
    K = len(seg_start)
    R = len(rec_thrs)
    k_of = c[tp_p].astype(np.int64)
    seg_id = tp_t * K + k_of                        # (threshold, class) segments, contiguous
    ntp = np.bincount(seg_id, minlength=T * K)
    t_start = np.concatenate([[0], np.cumsum(ntp)[:-1]])
    t_end = t_start + ntp
    j = np.arange(len(tp_p)) - t_start[seg_id] + 1  # tp count at each true positive
    first = seg_start[k_of]
    nn = tp_p - first + 1 - ign_before                # fp + tp (non-ignored so far)
    pr_tp = j.astype(np.float64) / (nn.astype(np.float64) + eps)
    ntp2 = ntp.reshape(T, K)
    with np.errstate(divide="ignore", invalid="ignore"):
        rec = np.where(has[None, :], ntp2.astype(np.float64) / np.maximum(npig, 1)[None, :], 0.0)
    need = _min_count(npig, rec_thrs)                # (K, R)
    need_tk = np.broadcast_to(need[None], (T, K, R)).reshape(T * K, R)
    ntp_f = ntp[:, None]
    has_tk = np.broadcast_to(has[None, :], (T, K)).reshape(T * K)[:, None]
    ok = np.where(need_tk == 0, has_tk, need_tk <= ntp_f)
    qidx = np.where(need_tk == 0, t_start[:, None], t_start[:, None] + need_tk - 1)
    qidx = np.where(ok, qidx, t_end[:, None])
    env = _suffix_max_at(pr_tp, t_start, t_end, qidx)
    q = np.where(ok, env, 0.0)
    seg_first = np.broadcast_to(seg_start[None, :], (T, K)).reshape(T * K)[:, None]
    pos = np.where(need_tk == 0, seg_first, tp_p[np.minimum(qidx, max(len(tp_p) - 1, 0))] if len(tp_p) else seg_first)
    ss = np.where(ok, s[np.minimum(pos, n - 1)], 0.0)
    return (q.reshape(T, K, R).transpose(0, 2, 1), ss.reshape(T, K, R).transpose(0, 2, 1), rec)


def _min_count(npig: np.ndarray, rec_thrs: np.ndarray) -> np.ndarray:
    """(K, R): the smallest integer c with ``c / npig >= recThr`` in float64, i.e. the
    tp count at which ``np.searchsorted(rc, recThrs, 'left')`` lands."""
    n = np.maximum(npig, 1).astype(np.float64)[:, None]
    thr = rec_thrs[None, :]
    c = np.ceil(thr * n)
    for _ in range(3):
        c = np.where((c > 0) & ((c - 1) / n >= thr), c - 1, c)
        c = np.where(c / n < thr, c + 1, c)
    return c.astype(np.int64)


def _suffix_max_at(pr: np.ndarray, seg_start: np.ndarray, seg_end: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """(K, R): max(pr[idx[k, r] : seg_end[k]]) — the precision envelope sampled at the
    query points, exactly (max is exact), without a loop over classes."""
    K, R = idx.shape
    if len(pr) == 0:
        return np.zeros((K, R))
    # intervals [b_r, b_{r+1}) per class, with b_R = seg_end; queries are non-decreasing
    b = np.concatenate([idx, seg_end[:, None]], axis=1)       # (K, R+1)
    lo, hi = b[:, :-1], b[:, 1:]
    flat_lo = lo.ravel()
    padded = np.append(pr, 0.0)
    # reduceat needs non-decreasing indices overall; classes are in index order
    m = np.maximum.reduceat(padded, np.minimum(flat_lo, len(pr)))
    m = m.reshape(K, R)
    m = np.where(lo < hi, m, -np.inf)
    env = np.maximum.accumulate(m[:, ::-1], axis=1)[:, ::-1]
    return np.where(np.isfinite(env), env, 0.0)


# --------------------------------------------------------------------------- summarize

STAT_NAMES = ["AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large",
              "AR_1", "AR_10", "AR_100", "AR_small", "AR_medium", "AR_large"]


def _summ(res: Result, ap: bool, iou_thr: float | None, area: str, max_det: int) -> float:
    """``COCOeval.summarize._summarize``: same slicing, same masked mean."""
    p = res.params
    names = [r.name for r in res.ranges]
    aind = [i for i, n in enumerate(names) if n == area]
    mind = [i for i, m in enumerate(p.max_dets) if m == max_det]
    if ap:
        s = res.precision
        if iou_thr is not None:
            t = np.where(iou_thr == p.iou_thrs)[0]
            s = s[t]
        s = s[:, :, :, aind, mind]
    else:
        s = res.recall
        if iou_thr is not None:
            t = np.where(iou_thr == p.iou_thrs)[0]
            s = s[t]
        s = s[:, :, aind, mind]
    if len(s[s > -1]) == 0:
        return -1.0
    return float(np.mean(s[s > -1]))


def summarize(res: Result, custom: Sequence[str] = ()) -> dict[str, float]:
    """The 12 COCO numbers by name, plus ``AP_<name>``/``AR_<name>`` for custom ranges.

    With the default max detections [1, 10, 100] these equal ``COCOeval.stats``
    (AP uses maxDets=100 as pycocotools hard-codes; the other numbers the largest value).
    With other values AP uses the largest value, AR is reported for each value.
    """
    md = res.params.max_dets
    top = md[-1]
    ap_md = 100 if md == [1, 10, 100] else top
    out = {
        "AP": _summ(res, True, None, "all", ap_md),
        "AP50": _summ(res, True, .5, "all", top),
        "AP75": _summ(res, True, .75, "all", top),
        "AP_small": _summ(res, True, None, "small", top),
        "AP_medium": _summ(res, True, None, "medium", top),
        "AP_large": _summ(res, True, None, "large", top),
    }
    for name in custom:
        out[f"AP_{name}"] = _summ(res, True, None, name, top)
    for m in md:
        out[f"AR_{m}"] = _summ(res, False, None, "all", m)
    out["AR_small"] = _summ(res, False, None, "small", top)
    out["AR_medium"] = _summ(res, False, None, "medium", top)
    out["AR_large"] = _summ(res, False, None, "large", top)
    for name in custom:
        out[f"AR_{name}"] = _summ(res, False, None, name, top)
    return out


def per_class_ap(res: Result, k: int, iou_index: int | None = None, area_index: int = 0) -> float:
    """``mean(precision[t?, :, k, area, -1][> -1])`` (-1 when the class has no ground truth)."""
    s = res.precision[:, :, k, area_index, -1]
    if iou_index is not None:
        s = s[iou_index]
    v = s[s > -1]
    return float(np.mean(v)) if v.size else -1.0


def per_class_ar(res: Result, k: int, area_index: int = 0) -> float:
    s = res.recall[:, k, area_index, -1]
    v = s[s > -1]
    return float(np.mean(v)) if v.size else -1.0
