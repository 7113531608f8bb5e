"""IoU and greedy matching for all image-class groups at once (pycocotools-exact).

The unit of COCO matching is a *group*: the ground truth and the detections of one
class on one image. pycocotools loops over groups in Python; here every step works on
all groups together:

1. detections are sorted once by (group, -score) with a stable sort, which is the order
   ``np.argsort(-score, kind='mergesort')`` gives inside each group, and truncated to
   ``max_det`` per group (per image *per class*, as pycocotools does);
2. the candidate pairs (detection, ground truth of the same group) are enumerated in bulk
   and their IoUs computed in one vectorised pass (boxes) or with pycocotools' C RLE
   routine per group (masks); pairs below the lowest threshold are dropped;
3. the greedy matching runs in *lockstep*: step ``r`` handles the ``r``-th best detection
   of every group at once, for every IoU threshold and every ignore mask (area range).

Matching rule (pycocotools ``evaluateImg``, eval-spec §1.5, in closed form): a detection
takes, among the available ground truths with ``IoU >= min(t, 1 - 1e-10)``, the one with
the highest IoU (the later one on ties) among the non-ignored ones; only if there is none,
the best among the ignored ones. A crowd region stays available after a match; any other
ground truth is used once. Ground truth is identified by row, so — unlike pycocotools —
a ground truth whose annotation id is 0 is matched like any other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from mlcycle._pairs import pair_chunks

# pairs are generated in chunks of about this many to bound memory; small chunks
# reuse the same (already mapped) memory, large ones cost page faults (20k images:
# 4M -> 250k took ~0.3 s of system time off and ~150 MB off the peak)
_PAIR_CHUNK = 250_000


@dataclass
class Objects:
    """One side (ground truth or detections) as flat arrays, one entry per object.

    ``img``/``cat`` are dense indices (image order = evaluation order, class order =
    category order); ``area`` is the area used for ranges; ``box`` is ``[x, y, w, h]``;
    ``rle`` (segm only) is a list of pycocotools RLE dicts; ``score`` is for detections.
    """

    img: np.ndarray
    cat: np.ndarray
    box: np.ndarray
    area: np.ndarray
    crowd: np.ndarray | None = None
    score: np.ndarray | None = None
    rle: list | None = None

    def __len__(self) -> int:
        return int(self.img.shape[0])


@dataclass
class Groups:
    """Sorted detections (kept ones only) and ground truth, with their groups."""

    n_img: int
    n_cat: int
    gt_order: np.ndarray        # gt indices sorted by (group, input order)
    gt_group: np.ndarray        # group key of gt_order entries
    dt_order: np.ndarray        # kept det indices sorted by (group, -score, input order)
    dt_group: np.ndarray
    dt_rank: np.ndarray         # rank of each kept det within its group (0 = best)
    dt_dropped: np.ndarray      # det indices beyond max_det in their group
    extra: dict = field(default_factory=dict)


def group_key(img: np.ndarray, cat: np.ndarray, n_cat: int) -> np.ndarray:
    return img.astype(np.int64) * max(n_cat, 1) + cat.astype(np.int64)


def make_groups(gt: Objects, dt: Objects, n_img: int, n_cat: int, max_det: int) -> Groups:
    gkey = group_key(gt.img, gt.cat, n_cat)
    gt_order = np.argsort(gkey, kind="stable")
    dkey = group_key(dt.img, dt.cat, n_cat)
    # stable: within a group, -score then input order (== mergesort argsort of -score)
    dt_sorted = _group_score_order(dkey, dt.score)
    dk = dkey[dt_sorted]
    if len(dk):
        starts = np.flatnonzero(np.r_[True, dk[1:] != dk[:-1]])
        lengths = np.diff(np.r_[starts, len(dk)])
        rank = np.arange(len(dk)) - np.repeat(starts, lengths)
    else:
        rank = np.zeros(0, np.int64)
    keep = rank < max_det
    return Groups(
        n_img=n_img, n_cat=n_cat,
        gt_order=gt_order, gt_group=gkey[gt_order],
        dt_order=dt_sorted[keep], dt_group=dk[keep], dt_rank=rank[keep],
        dt_dropped=dt_sorted[~keep],
    )


def _group_score_order(key: np.ndarray, score: np.ndarray) -> np.ndarray:
    """``np.lexsort((-score, key))``: by key, then by descending score, then input order.

    Detectors write each image's detections by descending score, so a stable sort by
    key alone (fast on input already grouped by image) usually leaves every group in
    score order already; that is checked, and the full sort is done only otherwise."""
    if not len(key):
        return np.zeros(0, np.int64)
    order = np.argsort(key, kind="stable")
    k, sc = key[order], score[order]
    if bool(np.all((sc[1:] <= sc[:-1]) | (k[1:] != k[:-1]))):
        return order
    return np.lexsort((-score, key))


# --------------------------------------------------------------------------- IoU

def _box_iou_pairs(db: np.ndarray, gb: np.ndarray, crowd: np.ndarray) -> np.ndarray:
    """IoU of box pairs ((n, 4) arrays) exactly as pycocotools' ``bbIou`` computes it."""
    return _box_iou_cols(*(np.ascontiguousarray(db[:, i]) for i in range(4)),
                         *(np.ascontiguousarray(gb[:, i]) for i in range(4)), crowd)


def _box_iou_cols(dx, dy, dw, dh, gx, gy, gw, gh, crowd: np.ndarray) -> np.ndarray:
    """IoU of box pairs given as contiguous columns, exactly as pycocotools' ``bbIou``
    (maskApi.c): same operations in the same order, done in place."""
    w = np.minimum(dw + dx, gw + gx)
    w -= np.maximum(dx, gx)
    h = np.minimum(dh + dy, gh + gy)
    h -= np.maximum(dy, gy)
    none = (w <= 0) | (h <= 0)
    inter = w
    inter *= h
    da = dw * dh
    union = gw * gh
    union += da                      # da + ga (addition commutes exactly)
    union -= inter
    if crowd.any():                  # crowd: intersection over the detection's area
        union[crowd] = da[crowd]
    iou = inter
    with np.errstate(divide="ignore", invalid="ignore"):
        iou /= union
    iou[none] = 0.0
    return iou


def candidate_pairs(gt: Objects, dt: Objects, groups: Groups, min_thr: float,
                    iou_type: str = "bbox") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All (det, gt) pairs of the same group with IoU >= ``min_thr``.

    Returns (det positions into ``groups.dt_order``, gt indices, IoU), ordered by det
    position then ground-truth input order.
    """
    nd = len(groups.dt_order)
    if nd == 0 or len(groups.gt_order) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    gs = np.searchsorted(groups.gt_group, groups.dt_group, side="left")
    ge = np.searchsorted(groups.gt_group, groups.dt_group, side="right")
    counts = ge - gs
    if iou_type == "segm":
        return _segm_pairs(gt, dt, groups, gs, ge, min_thr)
    out_d, out_g, out_iou = [], [], []
    crowd_all = gt.crowd if gt.crowd is not None else np.zeros(len(gt), bool)
    # contiguous columns in group order: 1-D gathers are much faster than row gathers
    dcols = [np.ascontiguousarray(dt.box[groups.dt_order, i]) for i in range(4)]
    gcols = [np.ascontiguousarray(gt.box[groups.gt_order, i]) for i in range(4)]
    gcrowd = crowd_all[groups.gt_order]
    for dpos, offs in pair_chunks(counts, _PAIR_CHUNK):
        gpos = gs[dpos] + offs
        iou = _box_iou_cols(*(c[dpos] for c in dcols), *(c[gpos] for c in gcols), gcrowd[gpos])
        keep = np.flatnonzero(iou >= min_thr)
        out_d.append(dpos[keep])
        out_g.append(groups.gt_order[gpos[keep]])
        out_iou.append(iou[keep])
    if not out_d:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    return np.concatenate(out_d), np.concatenate(out_g), np.concatenate(out_iou)


# a second process computes half of the mask IoUs when there are at least this many
# detections with a mask to compare (pycocotools' C routines hold the GIL: threads
# would not run them in parallel)
PARALLEL_MASKS_MIN = 20_000


def _segm_pairs(gt: Objects, dt: Objects, groups: Groups, gs, ge, min_thr):
    """Mask IoUs with pycocotools' C routine (``maskUtils.iou``, as ``computeIoU``).

    One call per image (all its detections against all its ground truth, cross-class
    pairs dropped afterwards): the C routine skips pairs whose boxes do not overlap, and
    one call per image costs far less than one per image-class group. On Linux with a
    second core, a forked process takes the later half of the images (building their
    masks and IoUs) while this one does the first half.
    """
    nd = len(groups.dt_order)
    gt_order = groups.gt_order
    n_cat = max(groups.n_cat, 1)
    d_img = groups.dt_group // n_cat
    g_img = groups.gt_group // n_cat
    d_starts = np.flatnonzero(np.r_[True, d_img[1:] != d_img[:-1]])
    d_ends = np.r_[d_starts[1:], nd]
    imgs = d_img[d_starts]
    g_lo = np.searchsorted(g_img, imgs, side="left")
    g_hi = np.searchsorted(g_img, imgs, side="right")
    dgrp, ggrp = groups.dt_group, groups.gt_group
    # only objects that meet the other side in their group need a mask at all
    d_part = (ge - gs) > 0                                   # per det position
    g_part = np.zeros(len(gt_order), bool)
    if len(ggrp):
        lo = np.searchsorted(dgrp, ggrp, side="left")
        hi = np.searchsorted(dgrp, ggrp, side="right")
        g_part = hi > lo
    dp_all = np.flatnonzero(d_part)                          # det positions with a mask
    gp_all = np.flatnonzero(g_part)
    d_a = np.searchsorted(dp_all, d_starts)
    d_b = np.searchsorted(dp_all, d_ends)
    g_a = np.searchsorted(gp_all, g_lo)
    g_b = np.searchsorted(gp_all, g_hi)
    use = (d_a < d_b) & (g_a < g_b)
    d_a, d_b, g_a, g_b = d_a[use], d_b[use], g_a[use], g_b[use]
    crowd_all = gt.crowd if gt.crowd is not None else np.zeros(len(gt), bool)
    ctx = (gt, dt, groups, dp_all, gp_all, crowd_all.astype(np.uint8), min_thr)
    if not len(d_a):
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    if len(dp_all) >= PARALLEL_MASKS_MIN and _can_fork():
        # split where half of the detections with a mask are done
        half = int(np.searchsorted(d_b, len(dp_all) // 2))
        half = min(max(half, 1), len(d_a) - 1) if len(d_a) > 1 else len(d_a)
        first = (d_a[:half], d_b[:half], g_a[:half], g_b[:half])
        second = (d_a[half:], d_b[half:], g_a[half:], g_b[half:])
        if len(second[0]):
            pairs2, pending = _in_child(_segm_ious, ctx, second)
            pairs1 = _segm_ious(ctx, first)
            pairs2 = pending() if pairs2 is None else pairs2
            if pairs2 is None:              # the child failed: do it here (errors surface)
                pairs2 = _segm_ious(ctx, second)
            return tuple(np.concatenate([a, b]) for a, b in zip(pairs1, pairs2))
    return _segm_ious(ctx, (d_a, d_b, g_a, g_b))


def _segm_ious(ctx, ranges) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The same-group pairs with mask IoU >= min_thr for the images in ``ranges``
    (per image: slices of ``dp_all`` and ``gp_all``)."""
    from pycocotools import mask as mask_utils

    gt, dt, groups, dp_all, gp_all, crowd_int, min_thr = ctx
    d_a, d_b, g_a, g_b = ranges
    if not len(d_a):
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    dgrp, ggrp = groups.dt_group, groups.gt_group
    gt_order = groups.gt_order
    d0, d1, g0, g1 = int(d_a[0]), int(d_b[-1]), int(g_a[0]), int(g_b[-1])
    d_rles = take_masks(dt.rle, groups.dt_order[dp_all[d0:d1]])
    g_rles = take_masks(gt.rle, gt_order[gp_all[g0:g1]])
    out_d, out_g, out_iou = [], [], []
    for da, db, ga, gb in zip(d_a.tolist(), d_b.tolist(), g_a.tolist(), g_b.tolist()):
        dp = dp_all[da:db]
        gp = gp_all[ga:gb]
        gidx = gt_order[gp]
        ious = mask_utils.iou(d_rles[da - d0:db - d0], g_rles[ga - g0:gb - g0], crowd_int[gidx].tolist())
        ious = np.asarray(ious, dtype=np.float64).reshape(db - da, gb - ga)
        same = dgrp[dp][:, None] == ggrp[gp][None, :]
        di, gj = np.nonzero(same & (ious >= min_thr))
        if len(di):
            out_d.append(dp[di])
            out_g.append(gidx[gj])
            out_iou.append(ious[di, gj])
    if not out_d:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    return np.concatenate(out_d), np.concatenate(out_g), np.concatenate(out_iou)


def _can_fork() -> bool:
    import os
    import sys

    if not sys.platform.startswith("linux") or not hasattr(os, "fork"):
        return False
    try:
        return len(os.sched_getaffinity(0)) >= 2
    except (AttributeError, OSError):
        return (os.cpu_count() or 1) >= 2


def _in_child(fn, *args):
    """Run ``fn(*args)`` in a forked process. Returns ``(None, pending)``; ``pending()``
    waits and gives the result, or None when the child failed (the caller then runs
    ``fn`` itself, so that any error surfaces normally)."""
    import os
    import pickle

    try:
        r, w = os.pipe()
        pid = os.fork()
    except OSError:
        return None, lambda: None
    if pid == 0:  # pragma: no cover - the child; coverage does not follow forks
        code = 1
        try:
            os.close(r)
            data = pickle.dumps(fn(*args), protocol=pickle.HIGHEST_PROTOCOL)
            with os.fdopen(w, "wb") as fh:
                fh.write(data)
            code = 0
        finally:
            os._exit(code)
    os.close(w)

    def pending():
        with os.fdopen(r, "rb") as fh:
            data = fh.read()
        _, status = os.waitpid(pid, 0)
        if status != 0 or not data:
            return None
        try:
            return pickle.loads(data)
        except Exception:
            return None

    return None, pending


def take_masks(rle, idx: np.ndarray) -> list:
    """RLEs at ``idx`` from a list or a lazy ``mlcycle.evaluation.masks.Masks``."""
    if hasattr(rle, "take"):
        return rle.take(idx)
    return [rle[i] for i in np.asarray(idx).tolist()]


# --------------------------------------------------------------------------- matching

def greedy_match(groups: Groups, pairs: tuple[np.ndarray, np.ndarray, np.ndarray],
                 thresholds: Sequence[float], gt_ignore: np.ndarray, gt_crowd: np.ndarray,
                 n_gt: int, keep: Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Greedy COCO matching for every threshold and ignore mask, all groups in lockstep.

    ``gt_ignore`` is (A, n_gt) bool (crowd already included). Returns
    ``(match, iou, matched, to_ignored)``, indexed by det position in
    ``groups.dt_order``: under the first ignore mask, (T, n) the matched gt index (int32,
    -1: none) and the IoU of the match; under every mask, (A, T, n) bool whether the det
    is matched and whether the gt it matched is ignored (only flags are kept for the
    other masks, to save memory). ``keep`` (threshold indices) limits the gt index and
    IoU arrays to those thresholds' rows, in that order.
    """
    A = gt_ignore.shape[0]
    thr = np.array([min(float(t), 1 - 1e-10) for t in thresholds])
    T = len(thr)
    nd = len(groups.dt_order)
    keep_idx = np.arange(T) if keep is None else np.asarray(keep, dtype=np.int64)
    row_of = np.full(T, -1, np.int64)
    row_of[keep_idx] = np.arange(len(keep_idx))
    all_rows = keep is None or np.array_equal(keep_idx, np.arange(T))
    match = np.full((len(keep_idx), nd), -1, dtype=np.int32)
    miou = np.zeros((len(keep_idx), nd))
    matched = np.zeros((A, T, nd), dtype=bool)
    to_ignored = np.zeros((A, T, nd), dtype=bool)
    pd, pg, piou = pairs
    if len(pd) == 0:
        return match, miou, matched, to_ignored
    rank = groups.dt_rank[pd]
    # base order: rank-major (lockstep steps), then det, then IoU, then gt input order
    base = np.lexsort((pg, piou, pd, rank))
    pd, pg, piou, rank = pd[base], pg[base], piou[base], rank[base]
    # det sequence number in this order (dets of a step are contiguous)
    newdet = np.r_[True, pd[1:] != pd[:-1]]
    detseq = np.cumsum(newdet) - 1
    step_bounds = np.searchsorted(rank, np.arange(int(rank[-1]) + 2), side="left")
    crowd = np.asarray(gt_crowd, dtype=bool)
    for a in range(A):
        ign_a = gt_ignore[a]
        nonign = ~ign_a[pg]
        # within each det: ignored block first, so the chosen pair is the last candidate
        order = np.argsort(detseq * 2 + nonign, kind="stable")
        apd, apg, aiou = pd[order], pg[order], piou[order]
        avail = np.ones((T, n_gt), dtype=bool)
        above = aiou[None, :] >= thr[:, None]          # (T, P)
        for r in range(len(step_bounds) - 1):
            lo, hi = step_bounds[r], step_bounds[r + 1]
            if lo == hi:
                continue
            sg = apg[lo:hi]
            cand = above[:, lo:hi] & avail[:, sg]
            if not cand.any():
                continue
            n = hi - lo
            pos = np.where(cand, np.arange(n)[None, :], -1)
            seg = np.flatnonzero(np.r_[True, apd[lo + 1:hi] != apd[lo:hi - 1]])
            best = np.maximum.reduceat(pos, seg, axis=1)    # (T, n_dets_in_step)
            tt, kk = np.nonzero(best >= 0)
            p = best[tt, kk]
            g = sg[p]
            d = apd[lo + p]
            if a == 0:
                if all_rows:
                    match[tt, d] = g
                    miou[tt, d] = aiou[lo + p]
                else:
                    rw = row_of[tt]
                    sel = rw >= 0
                    match[rw[sel], d[sel]] = g[sel]
                    miou[rw[sel], d[sel]] = aiou[lo + p[sel]]
            matched[a, tt, d] = True
            to_ignored[a, tt, d] = ign_a[g]
            nc = ~crowd[g]
            avail[tt[nc], g[nc]] = False
    return match, miou, matched, to_ignored


def cross_class_match(gt: Objects, dt: Objects, n_img: int, iou: float,
                      iou_type: str = "bbox") -> tuple[np.ndarray, np.ndarray]:
    """Greedy matching that ignores classes (per image, by score, COCO's rule at one
    threshold). Returns (det -> gt index or -1, IoU of that match).

    Only the detections that have a candidate at all are sorted and matched: greedy
    matching takes the detections of an image in score order, and one without a
    candidate takes nothing, so leaving it out changes no other detection's match (the
    confusion matrix's leftovers are mostly such detections)."""
    zero = np.zeros
    d_match = np.full(len(dt), -1, np.int64)
    d_iou = np.full(len(dt), np.nan)
    if len(gt) == 0 or len(dt) == 0:
        return d_match, d_iou
    thr = min(iou, 1 - 1e-10)
    g2 = Objects(img=gt.img, cat=zero(len(gt), np.int64), box=gt.box, area=gt.area,
                 crowd=zero(len(gt), bool), rle=gt.rle)
    cand = _cross_candidates(g2, dt, n_img, thr, iou_type)
    if not len(cand):
        return d_match, d_iou
    d2 = Objects(img=dt.img[cand], cat=zero(len(cand), np.int64), box=dt.box[cand], area=dt.area[cand],
                 score=dt.score[cand], rle=_take_subset(dt.rle, cand))
    groups = make_groups(g2, d2, n_img, 1, len(cand))
    pairs = candidate_pairs(g2, d2, groups, thr, iou_type)
    match, miou, _, _ = greedy_match(groups, pairs, [iou], zero((1, len(gt)), bool), g2.crowd, len(gt))
    rows = cand[groups.dt_order]
    d_match[rows] = match[0]
    d_iou[rows] = np.where(match[0] >= 0, miou[0], np.nan)
    return d_match, d_iou


def _take_subset(rle, idx: np.ndarray):
    if rle is None:
        return None
    if hasattr(rle, "subset"):
        return rle.subset(idx)
    return [rle[i] for i in idx.tolist()]


def _cross_candidates(gt: Objects, dt: Objects, n_img: int, thr: float, iou_type: str) -> np.ndarray:
    """Indices of the detections with a possible cross-class match, without sorting the
    detections: pairs are generated per detection against the ground truth of its image.

    Boxes: the detections with a pair at IoU >= ``thr``. Masks: the detections whose box
    meets a ground-truth box of the image (masks are costly and most boxes never meet; a
    detection without a box, or any detection when some ground truth has no box, is
    always a candidate)."""
    nd = len(dt)
    g_order = np.argsort(gt.img, kind="stable")
    d_img = dt.img.astype(np.int64)
    pre = Groups(n_img=n_img, n_cat=1, gt_order=g_order, gt_group=gt.img[g_order].astype(np.int64),
                 dt_order=np.arange(nd), dt_group=d_img, dt_rank=np.zeros(nd, np.int64),
                 dt_dropped=np.zeros(0, np.int64))
    if iou_type != "segm":
        pd, _, _ = candidate_pairs(gt, dt, pre, thr, "bbox")
        return np.unique(pd)
    on_gt_img = np.zeros(max(n_img, 1), bool)
    on_gt_img[gt.img] = True
    with_gt = on_gt_img[d_img]
    if np.isnan(gt.box).any():
        return np.flatnonzero(with_gt)
    pd, _, _ = candidate_pairs(gt, dt, pre, np.nextafter(0.0, 1.0), "bbox")
    meet = np.zeros(nd, bool)
    meet[pd] = True
    meet |= np.isnan(dt.box).any(axis=1) & with_gt
    return np.flatnonzero(meet)
