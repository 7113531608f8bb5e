"""Paired bootstrap over images: COCO metrics of resampled image sets, from one matching.

A bootstrap resample draws ``n`` images with replacement; an image drawn ``w`` times
counts ``w`` times. Matching is per image and class, so it does not change when images
are duplicated: ``contributions`` matches a source once (pycocotools' rules, every IoU
threshold and size range) and keeps, per class, the detections in pycocotools' order
(by -score, then image, then rank) with their true-positive / ignored flags and image,
and the ground-truth counts per image. ``metrics`` then turns image multiplicities
``W`` (resamples x images) into the COCO numbers of every resample:

- the number of detections, ignored detections and true positives up to a detection
  are weighted cumulative sums (a detection of an image drawn ``w`` times is ``w``
  consecutive copies with the same flags);
- precision rises only at a true positive, so the envelope at a recall point is the
  largest ``tp / (fp + tp + eps)`` over the true positives from that point on — only the
  detections matched at some threshold are visited per resample (the others enter
  through the cumulative counts);
- the means are taken exactly as ``COCOeval.summarize`` does (same masked flatten).

The result equals evaluating the explicitly resampled images with pycocotools (copies
of an image given consecutive image ids), to the last bit, except where one image has
two detections of one class with the same score (the copies' interleaving differs);
tests/evaluation/test_bootstrap.py checks it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from mlcycle.evaluation.prepare import Options, Prepared

# elements of the largest temporary (thresholds x matched detections x resamples) per block
_BLOCK_ELEMENTS = 6_000_000
# elements of the precision arrays (resamples x ranges x thresholds x recall points x classes) per block
_SUMMARY_ELEMENTS = 16_000_000


@dataclass
class Contributions:
    """One source's matching, kept per detection and per image (see the module doc)."""

    n_img: int
    n_cat: int
    range_names: list[str]
    max_dets: list[int]
    iou_thrs: np.ndarray
    rec_thrs: np.ndarray
    seg_start: np.ndarray      # (K,) first position of each class in the sorted order
    seg_end: np.ndarray        # (K,) end of the part of each class that matters (last matched + 1)
    img: np.ndarray            # (n,) image of each detection, sorted order
    rank: np.ndarray           # (n,) rank of the detection within its image and class
    tp: np.ndarray             # (A, T, n) bool
    ig: np.ndarray             # (A, T, n) bool: ignored (neither tp nor fp)
    out: np.ndarray            # (A, n) bool: outside the size range
    gt_count: np.ndarray       # (n_img, K * A) non-ignored ground truth per image, class, range
    user_tp: np.ndarray | None = None   # (n,) tp at the extra threshold, range 'all' (operating points)
    user_ig: np.ndarray | None = None
    score: np.ndarray | None = None     # (n,) scores, sorted order
    cat: np.ndarray | None = None       # (n,) class, sorted order


def contributions(prep: "Prepared", opts: "Options", extra_iou: float | None = None) -> Contributions:
    """Match the prepared source once and keep what the bootstrap needs."""
    from mlcycle.evaluation import coco as C
    from mlcycle.evaluation.match import candidate_pairs, greedy_match, make_groups
    from mlcycle.evaluation.slices import size_ranges

    params = C.Params(max_dets=list(opts.max_dets), iou_type=opts.iou_type)
    ranges = size_ranges(prep, opts)
    gt, dt = prep.gt, prep.dt
    n_img, K = len(prep.samples), len(prep.classes)
    crowd = gt.crowd if gt.crowd is not None else np.zeros(len(gt), bool)
    groups = make_groups(gt, dt, n_img, K, params.max_dets[-1])
    thr = list(params.iou_thrs)
    T = len(thr)
    if extra_iou is not None:
        thr.append(extra_iou)
    min_thr = min(min(float(t), 1 - 1e-10) for t in thr)
    pairs = candidate_pairs(gt, dt, groups, min_thr, opts.iou_type)
    gt_ignore = np.stack([crowd | r.gt_out for r in ranges])
    _, _, matched, dt_ig = greedy_match(groups, pairs, thr, gt_ignore, crowd, len(gt), keep=[])
    kept = groups.dt_order
    out = np.stack([r.dt_out[kept] for r in ranges])               # (A, n)
    dt_ig |= ~matched & out[:, None, :]
    tp = matched & ~dt_ig
    cat = dt.cat[kept].astype(np.int64)
    sc = dt.score[kept]
    order = C._class_score_order(cat, sc, K)
    cat_o = cat[order]
    seg_start = np.searchsorted(cat_o, np.arange(K), side="left")
    seg_full_end = np.searchsorted(cat_o, np.arange(K), side="right")
    tp_o, ig_o, out_o = tp[:, :, order], dt_ig[:, :, order], out[:, order]
    tp_main, ig_main = tp_o[:, :T], ig_o[:, :T]
    anym = (tp_main | (ig_main != out_o[:, None, :])).any(axis=(0, 1))
    # the part of a class after its last matched detection changes no precision envelope
    pos = np.flatnonzero(anym)
    seg_end = seg_start.copy()
    if len(pos):
        last = np.searchsorted(pos, seg_full_end, side="left") - 1
        lp = pos[np.maximum(last, 0)]
        seg_end = np.where((last >= 0) & (lp >= seg_start), lp + 1, seg_start)
    A = len(ranges)
    gcount = np.zeros((n_img, K * A), dtype=np.int64)
    for a in range(A):
        keep = ~gt_ignore[a]
        np.add.at(gcount, (gt.img[keep], gt.cat[keep] * A + a), 1)
    c = Contributions(
        n_img=n_img, n_cat=K, range_names=[r.name for r in ranges], max_dets=params.max_dets,
        iou_thrs=params.iou_thrs, rec_thrs=params.rec_thrs, seg_start=seg_start, seg_end=seg_end,
        img=dt.img[kept][order].astype(np.int64), rank=groups.dt_rank[order], tp=tp_main, ig=ig_main,
        out=out_o, gt_count=gcount, score=sc[order], cat=cat_o)
    if extra_iou is not None:
        c.user_tp, c.user_ig = tp_o[0, T], ig_o[0, T]
    return c


def resample_indices(n_img: int, resamples: int, seed: int) -> np.ndarray:
    """(resamples, n_img) image indices drawn with replacement (numpy's PCG64, ``seed``)."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, n_img, size=(resamples, n_img), dtype=np.int64)


def weights(indices: np.ndarray, n_img: int) -> np.ndarray:
    """(resamples, n_img) multiplicities of each image in each resample."""
    B = indices.shape[0]
    flat = (indices + (np.arange(B, dtype=np.int64) * n_img)[:, None]).ravel()
    return np.bincount(flat, minlength=B * n_img).reshape(B, n_img).astype(np.int32)


def metric_names(c: Contributions) -> list[str]:
    md = c.max_dets
    custom = [n for n in c.range_names if n not in ("all", "small", "medium", "large")]
    return (["AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large"] + [f"AP_{n}" for n in custom]
            + [f"AR_{m}" for m in md] + ["AR_small", "AR_medium", "AR_large"] + [f"AR_{n}" for n in custom])


def metrics(c: Contributions, W: np.ndarray, per_class: bool = False) -> dict[str, np.ndarray]:
    """The summary metrics (``coco.summarize``'s names) of each resample: name -> (B,).

    ``W`` is (B, n_img) multiplicities (all ones: the original evaluation). With
    ``per_class``, also ``"class_AP"`` (B, K): each class's AP@[.5:.95] (-1: no ground
    truth in that resample). Each size range is done on its own, resamples in blocks
    that bound the memory of the precision arrays (about 130 MB)."""
    B = W.shape[0]
    K, A, T, M, R = c.n_cat, len(c.range_names), len(c.iou_thrs), len(c.max_dets), len(c.rec_thrs)
    npig = np.rint(W.astype(np.float64) @ c.gt_count.astype(np.float64)).astype(np.int64).reshape(B, K, A)
    step = max(1, _SUMMARY_ELEMENTS // (T * R * max(K, 1)))
    prec_means: dict[tuple, np.ndarray] = {}
    rec_means: dict[tuple, np.ndarray] = {}
    class_ap = np.full((B, K), -1.0) if per_class else None
    iou = c.iou_thrs
    t50, t75 = np.flatnonzero(iou == .5), np.flatnonzero(iou == .75)
    for a in range(A):
        for b0 in range(0, B, step):
            b1 = min(B, b0 + step)
            prec, rec = _range_block(c, W[b0:b1], npig[b0:b1, :, a], a)
            prec_means[(a, "all")] = _put(prec_means.get((a, "all")), B, b0, _means(prec))
            if a == 0:
                prec_means[(a, 50)] = _put(prec_means.get((a, 50)), B, b0, _means(prec[:, t50]))
                prec_means[(a, 75)] = _put(prec_means.get((a, 75)), B, b0, _means(prec[:, t75]))
                for mi in range(M):
                    rec_means[(a, mi)] = _put(rec_means.get((a, mi)), B, b0, _means(rec[:, mi]))
                if class_ap is not None:
                    for k in range(K):
                        v = np.ascontiguousarray(prec[:, :, :, k]).reshape(b1 - b0, -1)
                        has = (v > -1).all(axis=1)
                        class_ap[b0 + np.flatnonzero(has), k] = np.mean(v[has], axis=1)
            else:
                rec_means[(a, M - 1)] = _put(rec_means.get((a, M - 1)), B, b0, _means(rec[:, M - 1]))
    names = c.range_names
    ai = {n: i for i, n in enumerate(names)}
    custom = [n for n in names if n not in ("all", "small", "medium", "large")]
    out = {"AP": prec_means[(0, "all")], "AP50": prec_means[(0, 50)], "AP75": prec_means[(0, 75)]}
    for n in ("small", "medium", "large", *custom):
        out[f"AP_{n}"] = prec_means[(ai[n], "all")]
    for mi, m in enumerate(c.max_dets):
        out[f"AR_{m}"] = rec_means[(0, mi)]
    for n in ("small", "medium", "large", *custom):
        out[f"AR_{n}"] = rec_means[(ai[n], M - 1)]
    out = {n: out[n] for n in metric_names(c)}
    if class_ap is not None:
        out["class_AP"] = class_ap
    return out


def _put(dest, B, b0, values):
    if dest is None:
        dest = np.empty(B)
    dest[b0:b0 + len(values)] = values
    return dest


def _plans(c: Contributions, a: int) -> list:
    """Per class, what ``_range_block`` needs that does not depend on the resample
    (made once per range, cached on ``c``)."""
    cache = c.__dict__.setdefault("_plans", {})
    if a in cache:
        return cache[a]
    T = len(c.iou_thrs)
    plans = []
    for k in range(c.n_cat):
        s, e = int(c.seg_start[k]), int(c.seg_end[k])
        tp, ig, out = c.tp[a, :, s:e], c.ig[a, :, s:e], c.out[a, s:e]
        t_of, p_of = np.nonzero(tp)
        if e <= s or not len(p_of):
            plans.append(None)
            continue
        n = e - s
        fp = ~tp & ~ig
        cnt = np.bincount(t_of, minlength=T)
        t_start = np.r_[0, np.cumsum(cnt)[:-1]]
        # a true positive followed by another without a false positive in between has the
        # lower precision of the two: only the last of such a run can be an envelope point
        cf = np.zeros((T, n + 1), dtype=np.int64)
        np.cumsum(fp, axis=1, out=cf[:, 1:])
        last_of_t = np.arange(len(p_of)) == (t_start + cnt - 1)[t_of]
        nxt = np.where(last_of_t, n, np.r_[p_of[1:], n])
        e_idx = np.flatnonzero(last_of_t | (cf[t_of, nxt] - cf[t_of, p_of + 1] > 0))
        et, ep = t_of[e_idx], p_of[e_idx]
        in_pos = np.flatnonzero(~out)
        ct, cp = np.nonzero(ig != out[None, :])
        ecnt = np.bincount(et, minlength=T)
        e_start = np.r_[0, np.cumsum(ecnt)[:-1]]
        plan = {
            "s": s, "e": e, "t_of": t_of, "p_of": p_of, "cnt": cnt, "t_start": t_start, "e_idx": e_idx,
            "et": et, "ep": ep, "in_pos": in_pos, "n_at": np.searchsorted(in_pos, ep, side="right"),
            "ecnt": ecnt, "L": int(ecnt.max()), "slot": np.arange(len(et)) - e_start[et], "cp": cp,
            "rank": c.rank[s:e][p_of],
        }
        if len(cp):
            sign = np.where(out[cp], -1, 1).astype(np.int32)     # ignored in range: +1, counted out of range: -1
            ckey = ct.astype(np.int64) * (n + 1) + cp
            plan["sign"] = sign
            plan["c_hi"] = np.searchsorted(ckey, et.astype(np.int64) * (n + 1) + ep, side="right")
            plan["c_lo"] = np.searchsorted(ckey, et.astype(np.int64) * (n + 1), side="left")
        plans.append(plan)
    cache[a] = plans
    return plans


def _range_block(c: Contributions, W: np.ndarray, npig: np.ndarray, a: int):
    """Precision (B, T, R, K) at the largest max-detections value and recall
    (B, M, T, K) of size range ``a`` for the resamples ``W`` (B, n_img); ``npig`` (B, K)."""
    from mlcycle.evaluation.coco import _min_count

    B = W.shape[0]
    K, T, M, R = c.n_cat, len(c.iou_thrs), len(c.max_dets), len(c.rec_thrs)
    valid = npig > 0
    # class-major while filling (contiguous writes), (B, T, R, K) for the summaries
    prec_k = np.where(valid.T[:, :, None, None], 0.0, -1.0) * np.ones((1, 1, T, R))
    rec = np.where(valid[:, None, None, :], 0.0, -1.0) * np.ones((1, M, T, 1))
    Wt = np.ascontiguousarray(W.T)                                  # (n_img, B)
    eps = np.spacing(1)
    plans = _plans(c, a)
    for k in range(K):
        pl = plans[k]
        ok = valid[:, k]
        if pl is None or not ok.any():
            continue
        imgs = c.img[pl["s"]:pl["e"]]
        # in-range detections up to each run end (ignored unmatched ones are out of range)
        cin = np.zeros((len(pl["in_pos"]) + 1, B), dtype=np.int32)
        np.cumsum(Wt[imgs[pl["in_pos"]]], axis=0, out=cin[1:])
        nn = cin[pl["n_at"]]
        p_of, t_of, cnt, t_start = pl["p_of"], pl["t_of"], pl["cnt"], pl["t_start"]
        wtp = Wt[imgs[p_of]]
        tc_all = np.cumsum(wtp, axis=0, dtype=np.int32)
        has_t = cnt > 0
        base = np.zeros((T, B), dtype=np.int32)
        first = t_start[has_t]
        base[has_t] = tc_all[first] - wtp[first]
        et = pl["et"]
        tce = tc_all[pl["e_idx"]] - base[et]                        # (n_e, B)
        cp = pl["cp"]
        if len(cp):
            cc = np.zeros((len(cp) + 1, B), dtype=np.int32)
            np.cumsum(Wt[imgs[cp]] * pl["sign"][:, None], axis=0, out=cc[1:])
            nn = nn - (cc[pl["c_hi"]] - cc[pl["c_lo"]])
        pr = tce / (nn.astype(np.float64) + eps)
        # per threshold (its run ends are contiguous): the envelope (suffix max) and the
        # first run end whose true-positive count reaches each recall point
        need = _min_count(np.maximum(npig[:, k], 1), c.rec_thrs)    # (B, R)
        sel = np.flatnonzero(ok)
        ecnt = pl["ecnt"]
        r0 = 0
        boff = np.arange(B, dtype=np.int64)[:, None]
        for t in range(T):
            nt = int(ecnt[t])
            if not nt:
                continue
            r1 = r0 + nt
            env = np.maximum.accumulate(pr[r0:r1][::-1], axis=0)[::-1]
            tcs = tce[r0:r1]
            span = int(tcs[-1].max()) + int(need.max()) + 2
            keys = (tcs.T + boff * span).ravel()                     # (B, nt) rows, ascending overall
            jj = np.searchsorted(keys, (need + boff * span).ravel(), side="left").reshape(B, R) - boff * nt
            inside = jj < nt
            q = np.where(inside, env.T[boff, np.minimum(jj, nt - 1)], 0.0)
            prec_k[k, sel, t] = q[sel]
            r0 = r1
        final = np.zeros((T, B))
        lt = np.flatnonzero(has_t)
        final[lt] = tc_all[t_start[lt] + cnt[lt] - 1] - base[lt]
        rec[sel, M - 1, :, k] = final.T[sel] / npig[sel, k][:, None]
        for mi, m in enumerate(c.max_dets[:-1]):
            small = pl["rank"] < m
            ts = t_of[small]                                        # ascending
            cs = np.zeros((len(ts) + 1, B), dtype=np.int64)
            np.cumsum(wtp[small], axis=0, out=cs[1:])
            bnd = np.searchsorted(ts, np.arange(T + 1))
            cm = (cs[bnd[1:]] - cs[bnd[:-1]]).astype(np.float64)    # (T, B)
            rec[sel, mi, :, k] = cm.T[sel] / npig[sel, k][:, None]
    return np.ascontiguousarray(prec_k.transpose(1, 2, 3, 0)), rec


def _means(x: np.ndarray) -> np.ndarray:
    """Per row of (B, ...): ``np.mean(row[row > -1])`` (-1 when empty), as pycocotools'
    summarize computes it. Rows without -1 are reduced together (a contiguous row sum is
    the same pairwise sum as the 1-D mean's); the others one by one."""
    B = x.shape[0]
    flat = np.ascontiguousarray(x).reshape(B, -1)
    out = np.empty(B)
    full = (flat > -1).all(axis=1)
    if full.any():
        out[full] = np.mean(flat[full], axis=1)
    for b in np.flatnonzero(~full).tolist():
        v = flat[b][flat[b] > -1]
        out[b] = float(np.mean(v)) if v.size else -1.0
    return out


# --------------------------------------------------------------------------- intervals

def interval(values: np.ndarray, confidence: float = 0.95) -> list[float] | None:
    """The percentile interval of bootstrap replicates (undefined ones, -1/NaN, left out)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if not v.size:
        return None
    lo, hi = np.quantile(v, [(1 - confidence) / 2, 1 - (1 - confidence) / 2])
    return [float(lo), float(hi)]


def delta_stats(cand: np.ndarray, base: np.ndarray, confidence: float = 0.95) -> dict:
    """Paired replicate differences: their interval, a two-sided bootstrap p-value and
    whether the interval excludes 0 (the difference is significant at that level)."""
    ok = (cand > -1) & (base > -1)
    d = (cand - base)[ok]
    if not d.size:
        return {"ci": None, "p": None, "significant": False}
    ci = interval(d, confidence)
    p = float(min(1.0, 2 * min(np.mean(d <= 0), np.mean(d >= 0))))
    return {"ci": ci, "p": p, "significant": bool(ci is not None and (ci[0] > 0 or ci[1] < 0))}

