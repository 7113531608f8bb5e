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

Two implementations of ``metrics``, equal to the bit: a compiled kernel
(``_metrics_kernel``, numba, the optional extra ``fast``) that does a whole size range
per resample in one pass and takes the means itself, adding in numpy's pairwise order;
and the numpy path (no numba, or ``MLCYCLE_NO_NUMBA=1``), blocks of resamples at once.

The result equals evaluating the explicitly resampled images with pycocotools (copies
of an image given consecutive image ids), to the last bit, except where one image has
two detections of one class with the same score (the copies' interleaving differs);
tests/evaluation/test_bootstrap.py checks it.

Size: the numpy path and the compiled kernel of one computation kept side by side (the
kernel's helpers replicate numpy's summation; both must change together).
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
    # np.take: 4x faster than fancy indexing along the last axis
    tp_o, ig_o, out_o = np.take(tp, order, axis=2), np.take(dt_ig, order, axis=2), np.take(out, order, axis=1)
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
    """(resamples, n_img) multiplicities of each image in each resample (one small
    bincount per resample: its counts stay in cache, 25x faster than one flat bincount)."""
    B = indices.shape[0]
    W = np.empty((B, n_img), dtype=np.int32)
    for b in range(B):
        W[b] = np.bincount(indices[b], minlength=n_img)
    return W


def metric_names(c: Contributions) -> list[str]:
    md = c.max_dets
    custom = [n for n in c.range_names if n not in ("all", "small", "medium", "large")]
    return (["AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large"] + [f"AP_{n}" for n in custom]
            + [f"AR_{m}" for m in md] + ["AR_small", "AR_medium", "AR_large"] + [f"AR_{n}" for n in custom])


def metrics(c: Contributions, W: np.ndarray, per_class: bool = False) -> dict[str, np.ndarray]:
    """The summary metrics (``coco.summarize``'s names) of each resample: name -> (B,).

    ``W`` is (B, n_img) multiplicities (all ones: the original evaluation). With
    ``per_class``, also ``"class_AP"`` (B, K): each class's AP@[.5:.95] (-1: no ground
    truth in that resample). Each size range is done on its own: by the compiled kernel
    when numba is there (``_metrics_kernel``), else with numpy, resamples in blocks that
    bound the memory of the precision arrays (about 130 MB). Both give the same bits."""
    B = W.shape[0]
    K, A = c.n_cat, len(c.range_names)
    npig = np.rint(W.astype(np.float64) @ c.gt_count.astype(np.float64)).astype(np.int64).reshape(B, K, A)
    kern = _kernel()
    if kern is not None:
        prec_means, rec_means, class_ap = _metrics_compiled(kern, c, W, npig, per_class)
    else:
        prec_means, rec_means, class_ap = _metrics_numpy(c, W, npig, per_class)
    M = len(c.max_dets)
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


def _metrics_compiled(kern, c: Contributions, W: np.ndarray, npig: np.ndarray, per_class: bool):
    """``metrics``' means by the compiled kernel: one call per size range, every resample."""
    B = W.shape[0]
    A, T, M = len(c.range_names), len(c.iou_thrs), len(c.max_dets)
    Wb = np.ascontiguousarray(W, dtype=np.int32)
    thr = np.r_[c.rec_thrs, np.inf]
    iou = c.iou_thrs
    t_sel = np.r_[np.flatnonzero(iou == .5)[:1], np.flatnonzero(iou == .75)[:1]].astype(np.int64)
    prec_means: dict[tuple, np.ndarray] = {}
    rec_means: dict[tuple, np.ndarray] = {}
    class_ap = None
    for a in range(A):
        first = a == 0
        rest = _kernel_outputs(npig[:, :, a], thr, T, t_sel if first else t_sel[:0], M if first else 1,
                               per_class and first)
        kern(Wb, *_kernel_plan(c, a, small=first), *rest)
        ap, ap_t, cls_ap, ar = rest[-4:]
        prec_means[(a, "all")] = ap
        if first:
            prec_means[(a, 50)], prec_means[(a, 75)] = ap_t[:, 0], ap_t[:, 1]
            for mi in range(M):
                rec_means[(a, mi)] = ar[:, mi]
            class_ap = cls_ap if per_class else None
        else:
            rec_means[(a, M - 1)] = ar[:, 0]
    return prec_means, rec_means, class_ap


def _kernel_plan(c: Contributions, a: int, small: bool) -> tuple:
    """The kernel's index arrays of range ``a`` (int32, cached on ``c``); ``small``: with
    the rank-limited true positives of the smaller max-detections values."""
    cache = c.__dict__.setdefault("_kplans", {})
    key = (a, small)
    if key in cache:
        return cache[key]
    i32 = (lambda v: np.ascontiguousarray(v, dtype=np.int32))
    gp = _global_plan(c, a)
    none = np.zeros(0, np.int32)
    if gp is None:
        plan = (none,) * 13
    else:
        il = np.full(len(gp["grp"]), -1, np.int64)
        il[gp["last"]] = gp["last_grp"]
        plan = tuple(i32(gp[n]) for n in (
            "in_img", "nn_hi", "nn_lo", "cp_img", "cp_sign", "cc_hi", "cc_lo", "tp_img", "tc_hi", "tc_lo",
            "grp", "cls")) + (i32(il),)
    sm_img, sm_bounds, sm_dest, sm_part = [], [], [], [0]
    if small and gp is not None:
        off = 0
        for m in c.max_dets[:-1]:
            si, st, sg = gp["small"][m]
            sm_img.append(si)
            sm_bounds.append(st + off)
            sm_dest.append(sg)
            sm_part.append(sm_part[-1] + len(sg))
            off += len(si)
        sm_bounds.append([off])
    elif small:
        sm_part += [0] * (len(c.max_dets) - 1)
    cat = (lambda xs: i32(np.concatenate(xs)) if xs else none)
    plan += (cat(sm_img), cat(sm_bounds) if sm_bounds else np.zeros(1, np.int32), cat(sm_dest), i32(sm_part))
    cache[key] = plan
    return plan


def _metrics_numpy(c: Contributions, W: np.ndarray, npig: np.ndarray, per_class: bool):
    """``metrics``' means with numpy: precision and recall arrays per block of resamples."""
    B = W.shape[0]
    K, A, T, M, R = c.n_cat, len(c.range_names), len(c.iou_thrs), len(c.max_dets), len(c.rec_thrs)
    widest = max([T * R * max(K, 1)] + [len(gp["in_img"]) for gp in (_global_plan(c, a) for a in range(A)) if gp])
    step = max(1, _SUMMARY_ELEMENTS // widest)
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
                    # every class at once: a contiguous (T * R) row per class, the same
                    # pairwise sum as one class's row
                    v = np.ascontiguousarray(prec.transpose(0, 3, 1, 2)).reshape(b1 - b0, K, -1)
                    has = (v > -1).all(axis=2)
                    class_ap[b0:b1][has] = np.mean(v, axis=2)[has]
            else:
                rec_means[(a, M - 1)] = _put(rec_means.get((a, M - 1)), B, b0, _means(rec[:, M - 1]))
    for gp in c.__dict__.get("_gplans", {}).values():   # the per-block keys (memory) go
        for key in [k for k in (gp or {}) if isinstance(k, tuple)]:
            del gp[key]
    return prec_means, rec_means, class_ap


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


def _global_plan(c: Contributions, a: int) -> dict | None:
    """The per-class plans of range ``a`` concatenated over classes (class-major, then
    threshold), as flat index arrays: one gather and one cumulative sum per quantity
    covers every class (cached on ``c``)."""
    cache = c.__dict__.setdefault("_gplans", {})
    if a in cache:
        return cache[a]
    T = len(c.iou_thrs)
    plans = _plans(c, a)
    in_img, tp_img, cp_img, cp_sign = [], [], [], []
    nn_hi, nn_lo, tc_hi, tc_lo, cc_hi, cc_lo, grp, last = [], [], [], [], [], [], [], []
    sm_img = {m: [] for m in c.max_dets[:-1]}
    sm_grp = {m: [] for m in c.max_dets[:-1]}
    io = to = co = 0
    for k, pl in enumerate(plans):
        if pl is None:
            continue
        imgs = c.img[pl["s"]:pl["e"]]
        et, e_idx = pl["et"], pl["e_idx"]
        in_img.append(imgs[pl["in_pos"]])
        nn_hi.append(io + pl["n_at"])
        nn_lo.append(np.full(len(et), io, np.int64))
        tp_img.append(imgs[pl["p_of"]])
        tc_hi.append(to + e_idx + 1)
        tc_lo.append(to + pl["t_start"][et])
        g = k * T + et
        grp.append(g)
        nxt = np.r_[et[1:], -1]
        last.append(np.flatnonzero(et != nxt))
        last[-1] = (last[-1], g[last[-1]])
        if len(pl["cp"]):
            cp_img.append(imgs[pl["cp"]])
            cp_sign.append(pl["sign"])
            cc_hi.append(co + pl["c_hi"])
            cc_lo.append(co + pl["c_lo"])
            co += len(pl["cp"])
        else:
            cc_hi.append(np.zeros(len(et), np.int64))
            cc_lo.append(np.zeros(len(et), np.int64))
        for m in sm_img:
            small = pl["rank"] < m
            sm_img[m].append(imgs[pl["p_of"][small]])
            sm_grp[m].append(k * T + pl["t_of"][small])
        io += len(pl["in_pos"])
        to += len(pl["p_of"])
    if not grp:
        cache[a] = None
        return None
    ends = np.concatenate([x[0] for x in last])
    offs = np.cumsum([0] + [len(x) for x in grp[:-1]])
    gp = {
        "in_img": np.concatenate(in_img), "tp_img": np.concatenate(tp_img),
        "cp_img": np.concatenate(cp_img) if cp_img else np.zeros(0, np.int64),
        "cp_sign": np.concatenate(cp_sign) if cp_sign else np.zeros(0, np.int32),
        "nn_hi": np.concatenate(nn_hi), "nn_lo": np.concatenate(nn_lo),
        "tc_hi": np.concatenate(tc_hi), "tc_lo": np.concatenate(tc_lo),
        "cc_hi": np.concatenate(cc_hi), "cc_lo": np.concatenate(cc_lo),
        "grp": np.concatenate(grp),
        "last": np.concatenate([o + x[0] for o, x in zip(offs, last)]) if len(ends) else ends,
        "last_grp": np.concatenate([x[1] for x in last]),
        "small": {},
    }
    gp["cls"] = gp["grp"] // T
    for m in sm_img:
        si, sg = np.concatenate(sm_img[m]), np.concatenate(sm_grp[m])
        o = np.argsort(sg, kind="stable")
        si, sg = si[o], sg[o]
        starts = np.flatnonzero(np.r_[True, sg[1:] != sg[:-1]]) if len(sg) else np.zeros(0, np.int64)
        gp["small"][m] = (si, starts, sg[starts] if len(sg) else sg)
    cache[a] = gp
    return gp


def _cum0(Wb: np.ndarray, img: np.ndarray, sign: np.ndarray | None = None) -> np.ndarray:
    """(B, len(img) + 1): 0, then the cumulative sums of the multiplicities of ``img``."""
    out = np.zeros((Wb.shape[0], len(img) + 1), dtype=np.int32)
    if len(img):
        g = np.take(Wb, img, axis=1)
        if sign is not None:
            g *= sign[None, :]
        np.cumsum(g, axis=1, out=out[:, 1:])
    return out


def _range_block(c: Contributions, W: np.ndarray, npig: np.ndarray, a: int):
    """Precision (B, T, R, K) at the largest max-detections value and recall
    (B, M, T, K) of size range ``a`` for the resamples ``W`` (B, n_img); ``npig`` (B, K).

    Every class at once: the weighted counts at the run ends (see ``_plans``) are
    differences of three cumulative sums over the concatenated classes; a run end
    serves the recall points ``r`` with ``recThrs[r] <= tp / npig`` (the recall reached
    there, in float64 as pycocotools computes it), so the precision at a recall point is
    the largest precision among the run ends serving it: the per-slot maximum (run ends
    of a class and threshold reach nondecreasing slots, so equal slots are contiguous)
    followed by a running maximum from the right over the slots."""
    B = W.shape[0]
    K, T, M, R = c.n_cat, len(c.iou_thrs), len(c.max_dets), len(c.rec_thrs)
    valid = npig > 0
    prec = np.zeros((B, K, T, R))
    rec = np.zeros((B, M, T, K))
    gp = _global_plan(c, a)
    Wb = np.ascontiguousarray(W, dtype=np.int32)
    if gp is not None:
        cin = _cum0(Wb, gp["in_img"])
        nn = np.take(cin, gp["nn_hi"], axis=1)
        nn -= np.take(cin, gp["nn_lo"], axis=1)
        del cin
        if len(gp["cp_img"]):
            cc = _cum0(Wb, gp["cp_img"], gp["cp_sign"])
            nn -= np.take(cc, gp["cc_hi"], axis=1)
            nn += np.take(cc, gp["cc_lo"], axis=1)
            del cc
        ctp = _cum0(Wb, gp["tp_img"])
        tce = np.take(ctp, gp["tc_hi"], axis=1)
        tce -= np.take(ctp, gp["tc_lo"], axis=1)
        del ctp
        E = tce.shape[1]
        pr = tce / (nn.astype(np.float64) + np.spacing(1))
        del nn
        npf = np.maximum(npig, 1).astype(np.float64)
        x = tce / np.take(npf, gp["cls"], axis=1)
        # s: the last recall point this run end serves (recThrs[s] <= x < recThrs[s + 1]);
        # floor(100 x) is off by at most one near a threshold: one check each way
        thr = np.r_[c.rec_thrs, np.inf]
        s = (x * (R - 1)).astype(np.int32)
        s -= np.take(thr, s) > x
        s += np.take(thr, s + 1) <= x
        # slots stored right to left: the running maximum then goes left to right
        base = gp.get(("key", B))
        if base is None:
            base = gp[("key", B)] = ((np.arange(B, dtype=np.int64)[:, None] * (K * T) + gp["grp"][None, :]) * R
                                     + (R - 1)).ravel()
            if B * K * T * R < 2**31:
                base = gp[("key", B)] = base.astype(np.int32)
        key = base - s.ravel()
        starts = np.flatnonzero(key[1:] != key[:-1])
        starts += 1
        starts = np.r_[0, starts]
        prec.reshape(-1)[key[starts]] = np.maximum.reduceat(pr.ravel(), starts)
        del pr, key, s, x
        np.maximum.accumulate(prec, axis=-1, out=prec)
        lg = gp["last_grp"]
        fin = np.zeros((B, K * T))
        fin[:, lg] = np.take(tce, gp["last"], axis=1)
        rec[:, M - 1] = fin.reshape(B, K, T).transpose(0, 2, 1)
        if a == 0:
            _small_recall(c, gp, Wb, rec, B, K, T)
        rec /= np.maximum(npig, 1)[:, None, None, :]
    inval = ~valid
    if inval.any():
        prec[inval] = -1.0
        rec.transpose(0, 3, 1, 2)[inval] = -1.0
    prec = np.ascontiguousarray(prec[..., ::-1].transpose(0, 2, 3, 1))
    return prec, rec


def _small_recall(c, gp, Wb, rec, B, K, T):
    """Recall at the smaller max-detections values (range 'all'): true positives of rank < m."""
    for mi, m in enumerate(c.max_dets[:-1]):
        si, st, sg = gp["small"][m]
        cnt = np.zeros((B, K * T))
        if len(si):
            cnt[:, sg] = np.add.reduceat(np.take(Wb, si, axis=1), st, axis=1)
        rec[:, mi] = cnt.reshape(B, K, T).transpose(0, 2, 1)


_KERNEL: list = []


def _kernel():
    """The compiled pass (``_metrics_kernel``, numba: the optional extra ``fast``), or
    None: numba not importable, ``MLCYCLE_NO_NUMBA`` set (non-empty, not 0), or the
    kernel cannot be built. Imported and compiled on first use only; the machine code is
    cached on disk by numba (beside the module, else in the user's cache folder). A
    cache that cannot be written or read (no writable place, a corrupt or stale file)
    never fails a run: the kernel is then compiled without the cache."""
    import os

    if os.environ.get("MLCYCLE_NO_NUMBA", "") not in ("", "0"):
        return None
    if not _KERNEL:
        _KERNEL.append(_build_kernel())
    return _KERNEL[0]


def _build_kernel():
    try:
        import numba
    except ImportError:
        return None
    g = globals()
    for cache in (True, False):
        try:
            jit = numba.njit(cache=cache, nogil=True, error_model="numpy")
            for name in _HELPERS:   # the kernel calls these by their module names
                g[name] = jit(_PY[name])
            kern = jit(_metrics_kernel)
            _warm_up(kern)   # compiles, or loads the cached machine code, now
            return kern
        except Exception:  # noqa: BLE001 - a cache numba cannot use; the retry has none
            continue
    g.update(_PY)
    return None


def _warm_up(kern) -> None:
    """Run ``kern`` once on a tiny input with the argument types of a real call."""
    W = np.ones((1, 2), np.int32)
    i32 = np.zeros(0, np.int32)
    npig = np.ones((1, 1), np.int64)
    kern(W, *([i32] * 13), i32, np.zeros(1, np.int32), i32, np.zeros(1, np.int32),
         *_kernel_outputs(npig, np.r_[np.linspace(0, 1, 3), np.inf], 1, np.zeros(0, np.int64), 1, False))


def _kernel_outputs(npig, thr, n_thr, t_sel, n_ar, per_class):
    """The kernel's arguments after the plan: the per-resample inputs and the outputs."""
    B, K = npig.shape
    return (np.ascontiguousarray(np.maximum(npig, 1), dtype=np.float64), np.ascontiguousarray(npig > 0),
            np.ascontiguousarray(thr, dtype=np.float64), int(n_thr), np.ascontiguousarray(t_sel, dtype=np.int64),
            np.empty(B), np.empty((B, len(t_sel))), np.empty((B if per_class else 0, K)), np.empty((B, n_ar)))


def _leaf_sum(a, lo, n):  # pragma: no cover - compiled
    """numpy's sum of at most 128 float64 numbers ``a[lo:lo + n]``: 8 partial sums."""
    if n < 8:
        res = 0.0
        for i in range(lo, lo + n):
            res += a[i]
        return res
    r0, r1, r2, r3 = a[lo], a[lo + 1], a[lo + 2], a[lo + 3]
    r4, r5, r6, r7 = a[lo + 4], a[lo + 5], a[lo + 6], a[lo + 7]
    m = n - n % 8
    i = 8
    while i < m:
        j = lo + i
        r0 += a[j]
        r1 += a[j + 1]
        r2 += a[j + 2]
        r3 += a[j + 3]
        r4 += a[j + 4]
        r5 += a[j + 5]
        r6 += a[j + 6]
        r7 += a[j + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res += a[lo + i]
        i += 1
    return res


def _pairwise_sum(a, lo, n, stack):  # pragma: no cover - compiled
    """``numpy.add.reduce(a[lo:lo + n])`` for float64, the same additions in the same
    order (numpy's pairwise summation: at most 128 numbers with 8 partial sums, longer
    runs halved at a multiple of 8 and the halves' sums added), so a mean is
    bit-identical to ``np.mean``. The recursion is explicit: ``stack`` (64, 3) int64
    holds frames (start, length, stage)."""
    if n <= 128:
        return 0.0 + _leaf_sum(a, lo, n)
    vals = np.empty(64)
    sp, vp = 1, 0
    stack[0, 0], stack[0, 1], stack[0, 2] = lo, n, 0
    while sp:
        f_lo, f_n, stage = stack[sp - 1, 0], stack[sp - 1, 1], stack[sp - 1, 2]
        if f_n <= 128:
            sp -= 1
            vals[vp] = _leaf_sum(a, f_lo, f_n)
            vp += 1
            continue
        n2 = f_n // 2
        n2 -= n2 % 8
        if stage == 0:
            stack[sp - 1, 2] = 1
            stack[sp, 0], stack[sp, 1], stack[sp, 2] = f_lo, n2, 0
            sp += 1
        elif stage == 1:
            stack[sp - 1, 2] = 2
            stack[sp, 0], stack[sp, 1], stack[sp, 2] = f_lo + n2, f_n - n2, 0
            sp += 1
        else:
            sp -= 1
            vp -= 1
            vals[vp - 1] = vals[vp - 1] + vals[vp]
    return 0.0 + vals[0]


def _leaf_cols(x, lo, n, nc, acc, out):  # pragma: no cover - compiled
    """``_leaf_sum`` of rows lo..lo+n of x (rows of nc numbers, flat) for every column at
    once: out[c] (acc: (8, nc) scratch)."""
    if n < 8:
        for c in range(nc):
            out[c] = 0.0
        for i in range(lo, lo + n):
            for c in range(nc):
                out[c] += x[i * nc + c]
        return
    for j in range(8):
        for c in range(nc):
            acc[j, c] = x[(lo + j) * nc + c]
    m = n - n % 8
    i = 8
    while i < m:
        for j in range(8):
            base = (lo + i + j) * nc
            for c in range(nc):
                acc[j, c] += x[base + c]
        i += 8
    for c in range(nc):
        out[c] = ((acc[0, c] + acc[1, c]) + (acc[2, c] + acc[3, c])) + ((acc[4, c] + acc[5, c]) + (acc[6, c] + acc[7, c]))
    while i < n:
        base = (lo + i) * nc
        for c in range(nc):
            out[c] += x[base + c]
        i += 1


def _pairwise_cols(x, n, nc, stack, vals, acc, out):  # pragma: no cover - compiled
    """``_pairwise_sum`` of each column of x ((n, nc) numbers, flat, row-major): out[c]
    is numpy's sum of x[:, c] (the same tree for every column, walked once).
    vals: (64, nc) scratch."""
    sp, vp = 1, 0
    stack[0, 0], stack[0, 1], stack[0, 2] = 0, n, 0
    while sp:
        f_lo, f_n, stage = stack[sp - 1, 0], stack[sp - 1, 1], stack[sp - 1, 2]
        if f_n <= 128:
            sp -= 1
            _leaf_cols(x, f_lo, f_n, nc, acc, vals[vp])
            vp += 1
            continue
        n2 = f_n // 2
        n2 -= n2 % 8
        if stage == 0:
            stack[sp - 1, 2] = 1
            stack[sp, 0], stack[sp, 1], stack[sp, 2] = f_lo, n2, 0
            sp += 1
        elif stage == 1:
            stack[sp - 1, 2] = 2
            stack[sp, 0], stack[sp, 1], stack[sp, 2] = f_lo + n2, f_n - n2, 0
            sp += 1
        else:
            sp -= 1
            vp -= 1
            for c in range(nc):
                vals[vp - 1, c] = vals[vp - 1, c] + vals[vp, c]
    for c in range(nc):
        out[c] = 0.0 + vals[0, c]


def _cumsum8(Wt, img, out):  # pragma: no cover - compiled
    """out[i + 1, q] = out[i, q] + Wt[img[i], q] for the 8 resamples q of a block (the
    running sums kept in registers)."""
    a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = 0
    for i in range(len(img)):
        j = img[i]
        a0 += Wt[j, 0]
        a1 += Wt[j, 1]
        a2 += Wt[j, 2]
        a3 += Wt[j, 3]
        a4 += Wt[j, 4]
        a5 += Wt[j, 5]
        a6 += Wt[j, 6]
        a7 += Wt[j, 7]
        out[i + 1, 0] = a0
        out[i + 1, 1] = a1
        out[i + 1, 2] = a2
        out[i + 1, 3] = a3
        out[i + 1, 4] = a4
        out[i + 1, 5] = a5
        out[i + 1, 6] = a6
        out[i + 1, 7] = a7


def _metrics_kernel(W, in_img, nn_hi, nn_lo, cp_img, cp_sign, cc_hi, cc_lo, tp_img, tc_hi, tc_lo, grp, cls,
                    is_last, sm_img, sm_bounds, sm_dest, sm_part, npf, valid, thr, n_thr, t_sel,
                    ap, ap_t, class_ap, ar):  # pragma: no cover - compiled
    """Every resample ``b`` of ``W`` (B, n_img), one size range: what ``_range_block``
    and ``_means`` compute with numpy, in one compiled pass, to the bit.

    The weighted counts at the run ends are differences of cumulative sums of image
    multiplicities (integers); precision ``tp / (n + eps)`` and recall ``tp / npig``
    are the same float64 divisions; a run end serves the recall points up to slot ``s``
    (``thr[s] <= recall``); the envelope is the per-slot maximum, then the running
    maximum from the right. The means are pycocotools' (the valid classes' values in
    (threshold, recall point, class) order, added as numpy adds): ``ap`` (B,) over every
    threshold, ``ap_t`` (B, len(t_sel)) at single thresholds, ``class_ap`` (B, K) per
    class (when it has rows; -1 for a class without ground truth), ``ar`` (B, M') the
    recall at the max-detections values (the smaller ones from the rank-limited true
    positives ``sm_*``, the largest from each group's last run end). ``NB`` resamples
    share each pass over the index arrays; the precision of a block is laid out
    (threshold, recall point, class, resample), so the envelope and the gathers for the
    means run along memory."""
    B, n_img = W.shape
    K = valid.shape[1]
    T = n_thr
    R = len(thr) - 1
    G = K * T
    NB = 8   # _cumsum8's width
    eps = np.spacing(1.0)
    n_in, n_cp, n_tp, E = len(in_img), len(cp_img), len(tp_img), len(grp)
    M_out = ar.shape[1]
    want_class = class_ap.shape[0] > 0
    stack = np.zeros((64, 3), np.int64)
    Wt = np.zeros((n_img, NB), np.int32)
    cin = np.zeros((n_in + 1, NB), np.int32)
    cc = np.zeros((n_cp + 1, NB), np.int32)
    ctp = np.zeros((n_tp + 1, NB), np.int32)
    pb = np.zeros((T, R, K, NB))
    pf = pb.reshape(T * R * K * NB)
    fin = np.zeros((G, NB))
    cnt = np.zeros(G)
    prv = np.zeros(NB)
    xv = np.zeros(NB)
    nv = np.ones(NB)
    buf = np.zeros((NB, T * R * K))
    pos = np.zeros(NB, np.int64)
    rbuf = np.zeros(T * K)
    cvals = np.zeros((64, K))
    cacc = np.zeros((8, K))
    csum = np.zeros(K)
    for b0 in range(0, B, NB):
        nb = min(NB, B - b0)
        for q in range(NB):
            if q < nb:
                for j in range(n_img):
                    Wt[j, q] = W[b0 + q, j]
            else:
                for j in range(n_img):
                    Wt[j, q] = 0
        _cumsum8(Wt, in_img, cin)
        for i in range(n_cp):
            j = cp_img[i]
            sg = cp_sign[i]
            for q in range(NB):
                cc[i + 1, q] = cc[i, q] + Wt[j, q] * sg
        _cumsum8(Wt, tp_img, ctp)
        pf[:] = 0.0
        fin[:, :] = 0.0
        kprev = -1
        for e in range(E):
            hi, lo, th, tl = nn_hi[e], nn_lo[e], tc_hi[e], tc_lo[e]
            ch, cl = cc_hi[e], cc_lo[e]
            ke = cls[e]
            if ke != kprev:
                for q in range(nb):
                    nv[q] = npf[b0 + q, ke]
                kprev = ke
            t = grp[e] - ke * T
            for q in range(NB):
                nn = (cin[hi, q] - cin[lo, q]) - (cc[ch, q] - cc[cl, q])
                tce = float(ctp[th, q] - ctp[tl, q])
                prv[q] = tce / (float(nn) + eps)
                xv[q] = tce / nv[q]
            base = (t * R * K + ke) * NB
            for q in range(nb):
                x = xv[q]
                s = np.int64(x * (R - 1))
                if s > R - 1:   # x > 1: not reached (tp <= npig); nothing out of bounds
                    s = R - 1
                if thr[s] > x:
                    s -= 1
                if thr[s + 1] <= x:
                    s += 1
                i = base + s * (K * NB) + q
                pf[i] = max(pf[i], prv[q])
            il = is_last[e]
            if il >= 0:
                for q in range(nb):
                    fin[il, q] = float(ctp[th, q] - ctp[tl, q])
        KN = K * NB
        for t in range(T):
            for r in range(R - 2, -1, -1):
                o = (t * R + r) * KN
                for i in range(KN):
                    pf[o + i] = max(pf[o + i], pf[o + KN + i])
        # the valid classes' precision in (threshold, recall point, class) order
        allv = True
        for q in range(nb):
            for k in range(K):
                if not valid[b0 + q, k]:
                    allv = False
        if allv:
            for i in range(T * R * K):
                for q in range(nb):
                    buf[q, i] = pf[i * NB + q]
            for q in range(nb):
                pos[q] = T * R * K
        else:
            pos[:] = 0
            for i in range(T * R * K):
                k = i % K
                for q in range(nb):
                    if valid[b0 + q, k]:
                        buf[q, pos[q]] = pf[i * NB + q]
                        pos[q] += 1
        for q in range(nb):
            b = b0 + q
            n = pos[q]
            nk = n // (T * R)
            bq = buf[q]
            ap[b] = _pairwise_sum(bq, 0, n, stack) / n if n else -1.0
            for i in range(len(t_sel)):
                m = R * nk
                ap_t[b, i] = _pairwise_sum(bq, t_sel[i] * m, m, stack) / m if m else -1.0
            if want_class:
                if nk:
                    _pairwise_cols(bq, T * R, nk, stack, cvals, cacc, csum)
                j = 0
                for k in range(K):
                    if valid[b, k]:
                        class_ap[b, k] = csum[j] / (T * R)
                        j += 1
                    else:
                        class_ap[b, k] = -1.0
            w = W[b]
            for mi in range(M_out):
                if mi < M_out - 1:   # true positives of rank < max_dets[mi]
                    cnt[:] = 0.0
                    for j in range(sm_part[mi], sm_part[mi + 1]):
                        acc = 0
                        for i in range(sm_bounds[j], sm_bounds[j + 1]):
                            acc += w[sm_img[i]]
                        cnt[sm_dest[j]] = float(acc)
                else:
                    for g in range(G):
                        cnt[g] = fin[g, q]
                n = 0
                for t in range(T):
                    for k in range(K):
                        if valid[b, k]:
                            rbuf[n] = cnt[k * T + t] / npf[b, k]
                            n += 1
                ar[b, mi] = _pairwise_sum(rbuf, 0, n, stack) / n if n else -1.0


# the compiled kernel's helpers: their Python functions (``_build_kernel`` binds the
# module names to the compiled ones)
_HELPERS = ("_leaf_sum", "_pairwise_sum", "_leaf_cols", "_pairwise_cols", "_cumsum8")
_PY = {name: globals()[name] for name in _HELPERS}


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

