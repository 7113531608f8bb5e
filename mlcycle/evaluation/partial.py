"""Mergeable COCO evaluation: a partial result per shard, merged, then finished.

``compute(shard, opts)`` prepares and matches one shard — a table holding *whole*
samples (all of a sample's ground-truth and prediction rows, in their input order) — and
keeps only what accumulation needs. ``merge(parts)`` puts partials together (associative;
a sample in two partials is an error). ``finish(part, opts)`` accumulates and
summarizes: the metrics document has the same keys and bit-identical values as
``mlcycle.evaluate(table, annotate=False, ...).summary`` on the whole table.

What a partial keeps (``Partial.arrays``):

- per sample of the shard: its id (to refuse a sample seen twice); per ground-truth
  sample its sort key (the smallest image id), from which ``finish`` rebuilds the
  global image order (image id, then sample id);
- per kept detection (the best ``max(max_dets)`` of its image and class): image, class,
  rank in its group, score, and packed bits: matched / ignored (pycocotools' dtIg) per
  range and IoU threshold, outside each range, matched at ``iou`` and to a crowd region;
- per class: non-ignored ground truth per range (npig), ground truth, crowd regions and
  evaluated predictions; the confusion counts at ``iou``/``conf``;
- the input counts and warnings as facts (counts, first rows, class details).

Classes: a shard knows the classes of its own ground truth (and the table's COCO
categories); its predictions of other classes are kept as *pending* classes. ``finish``
counts them as false positives when another shard's ground truth has the class, and
drops them with the usual "classes the ground truth does not have" warning otherwise.
The confusion counts (sums over images) of the images where a pending class's
prediction is a leftover false positive are kept once per combination of those pending
classes existing or not (``_confusions``); pass ``classes`` (the global class names) to
``compute`` to decide up front (needed beyond ``MAX_VARIANTS`` combinations).

Options: ``iou_type`` bbox and segm, ``max_dets``, ``area_ranges``, ``rel_area_ranges``,
``iou``, ``conf`` (a number), ``gt_source``/``pred_source``, ``at_recall``/
``at_precision``/``beta`` are supported (operating points, calibration, P/R/F1, counts and
the confusion matrix are all computed from merged per-detection arrays or summed
per-image counts). Refused with ``OptionError`` naming the parameter: ``method`` other
than coco, ``by`` (slices), ``bootstrap``, ``baseline``, ``tide`` and ``conf="best-f1"``
(the threshold is known only after the merge, but the confusion matrix needs it per
image). Image-level classification tables are refused (``MlcycleError``).

Messages name rows by their number in the whole input when ``compute`` is given
``row_numbers``; the ``pred_no_label`` warning then equals the whole-table run's. Rows of
a sample must keep their input order within a shard: ties between equal scores are
broken by it, as in one run.

Size: compute, merge and finish share one layout of the partial (the arrays and meta
keys compute writes are what merge and finish read); one module keeps it in one place.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from mlcycle import table as T
from mlcycle.errors import MlcycleError, OptionError, printable
from mlcycle.evaluation.prepare import NOTE_KINDS, Options, check_options, warning_text

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import pyarrow as pa

__all__ = ["Partial", "compute", "compute_annotated", "merge", "finish"]

FORMAT = 1
_COUNT_KEYS = ("rows", "gt_labels", "predictions", "predictions_evaluated", "gt_crowd",
               "predictions_without_label", "predictions_on_unknown_samples")


@dataclass
class Partial:
    """One shard's (or several merged shards') evaluation state.

    ``meta`` is JSON-ready (options it was computed with, sources, counts, warnings as
    facts, per-shard class tables); ``arrays`` are numpy arrays. Several merged shards
    are kept as a list of *pieces* (one per shard) whose class and image indices are
    local; ``finish`` maps them onto the global lists."""

    pieces: list[dict] = field(default_factory=list)

    # ------------------------------------------------------------------ bytes
    def to_bytes(self) -> bytes:
        """A compact encoding (an uncompressed npz of plain arrays; no pickle)."""
        import io

        import numpy as np

        arrays: dict[str, np.ndarray] = {}
        metas = []
        for i, piece in enumerate(self.pieces):
            metas.append(piece["meta"])
            for k, v in piece["arrays"].items():
                arrays[f"{i}/{k}"] = v
        arrays["meta"] = np.frombuffer(json.dumps({"format": FORMAT, "pieces": metas}).encode(), np.uint8)
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes, origin: str = "<partial>") -> "Partial":
        import io
        import zipfile

        import numpy as np

        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as z:
                meta = json.loads(bytes(z["meta"]).decode())
                if meta.get("format") != FORMAT:
                    raise MlcycleError(f"{origin}: partial result format {meta.get('format')!r} is not {FORMAT}")
                pieces = [{"meta": m, "arrays": {}} for m in meta["pieces"]]
                for key in z.files:
                    if key == "meta":
                        continue
                    i, name = key.split("/", 1)
                    pieces[int(i)]["arrays"][name] = z[key]
        except MlcycleError:
            raise
        except (ValueError, KeyError, OSError, zipfile.BadZipFile, IndexError, UnicodeDecodeError) as exc:
            raise MlcycleError(f"{origin}: not a partial evaluation result ({printable(str(exc), 200)})") from None
        return cls(pieces)


# --------------------------------------------------------------------------- checks

def _check(opts: Options) -> None:
    check_options(opts)
    if opts.method != "coco":
        raise OptionError("method", f"sharded evaluation computes COCO metrics only, not {opts.method!r}")
    for name in ("by", "bootstrap", "baseline", "tide"):
        if getattr(opts, name):
            raise OptionError(name, "not supported by sharded (streaming) evaluation",
                              hint="evaluate the whole table in memory for this")
    if opts.conf_auto is not None:
        raise OptionError("conf", f"{opts.conf_auto} is not supported by sharded (streaming) evaluation: "
                                  "the threshold is known only after all shards",
                          hint="run once without it to read the threshold, then pass it as a number")
    from mlcycle.evaluation import operating_points

    operating_points.check(opts.beta, opts.at_recall, opts.at_precision)


def _range_names(opts: Options) -> list[str]:
    from mlcycle.evaluation.coco import DEFAULT_AREAS

    return list(DEFAULT_AREAS) + list(opts.area_ranges) + list(opts.rel_area_ranges)


def _fingerprint(opts: Options) -> dict:
    return {"iou_type": opts.iou_type, "iou": opts.iou, "conf": opts.conf, "max_dets": list(opts.max_dets),
            "area_ranges": {k: list(v) for k, v in opts.area_ranges.items()},
            "rel_area_ranges": {k: list(v) for k, v in opts.rel_area_ranges.items()},
            "gt_source": opts.gt_source, "pred_source": opts.pred_source}


# --------------------------------------------------------------------------- compute

def compute(table: "pa.Table", opts: Options, *, row_numbers: "np.ndarray | None" = None,
            classes: Iterable[str] | None = None) -> Partial:
    """Prepare and match one shard (whole samples); keep what accumulation needs.

    ``row_numbers``: each row's 0-based number in the whole input, for messages.
    ``classes``: the global class names, if known (decides the pending classes'
    confusion counts up front)."""
    return _compute(table, opts, row_numbers, classes, annotate=False)[0]


def compute_annotated(table: "pa.Table", opts: Options, classes: Iterable[str], *,
                      row_numbers: "np.ndarray | None" = None) -> "tuple[Partial, pa.Table]":
    """``compute``, and the shard's rows with ``eval``/``eval_id``/``eval_iou`` exactly as
    the whole-table run sets them (which needs the global ``classes``: a prediction of
    a class no ground truth has gets none). The per-label columns depend only on the
    sample's own rows (``conf`` is a number), so the shards' tables together are the
    whole table's, in another row order."""
    return _compute(table, opts, row_numbers, list(classes), annotate=True)


def _compute(table, opts, row_numbers, classes, annotate: bool):
    import numpy as np

    from mlcycle.evaluation import coco as C
    from mlcycle.evaluation import report
    from mlcycle.evaluation.prepare import has_boxes, prepare
    from mlcycle.evaluation.slices import size_ranges

    _check(opts)
    origin = opts.origin
    srcs = T.sources(table) if table.num_rows else []
    has_gt = opts.gt_source in srcs
    preds = [s for s in srcs if s != opts.gt_source]
    if opts.pred_source is not None:
        if opts.pred_source == opts.gt_source:
            raise OptionError("pred_source", f"{opts.pred_source!r} is the ground truth source")
        pred_source = opts.pred_source
    elif len(preds) > 1:
        raise OptionError("pred_source", f"several prediction sources in {origin} ({', '.join(preds)})",
                          hint="choose one of them as the prediction source")
    else:
        pred_source = preds[0] if preds else T.DEFAULT_PRED_SOURCE
    boxes = bool(table.num_rows) and has_boxes(table, opts.gt_source, pred_source)
    if row_numbers is not None:
        row_numbers = np.asarray(row_numbers, dtype=np.int64)
        if len(row_numbers) != table.num_rows:
            raise ValueError("row_numbers must have one entry per row")
    prep = prepare(table, opts, pred_source, row_numbers=row_numbers, pending=True)
    import pyarrow.compute as pc

    all_samples = pc.unique(table.column(T.SAMPLE_ID)) if table.num_rows else []
    K = len(prep.classes)
    n_img = len(prep.samples)
    params = C.Params(max_dets=list(opts.max_dets), iou_type=opts.iou_type)
    ranges = size_ranges(prep, opts)
    A = len(ranges)
    Tn = len(params.iou_thrs)
    extra, t_user = report.user_threshold(params, opts.iou)
    g, d = prep.gt, prep.dt
    m = C.match_all(g, d, n_img, K, params, ranges, extra, match_rows=[t_user])
    kept = m.groups.dt_order
    nk = len(kept)
    crowd = g.crowd
    m_user = m.match[0].astype(np.int64)
    matched_u = m_user >= 0
    to_crowd = matched_u & crowd[np.where(matched_u, m_user, 0)] if len(g) else np.zeros(nk, bool)
    dt_out = np.stack([r.dt_out[kept] for r in ranges]) if A else np.zeros((0, nk), bool)   # (A, n)
    arrays: dict[str, Any] = {
        "gt_keys": np.asarray(prep.sample_keys, dtype=np.int64),
        "img": d.img[kept].astype(np.int32),
        "cat": d.cat[kept].astype(np.int32),
        "rank": m.groups.dt_rank.astype(np.int32),
        "score": d.score[kept].astype(np.float64),
        "matched": _pack(m.matched[:, :Tn].reshape(A * Tn, nk)),
        "ignore": _pack(m.dt_ignore[:, :Tn].reshape(A * Tn, nk)),
        "flags": _pack(np.concatenate([dt_out, matched_u[None], to_crowd[None]])),
        "npig": np.stack([np.bincount(g.cat[~m.gt_ignore[a]], minlength=K)[:K] for a in range(A)])
        if A else np.zeros((0, K), np.int64),
        "ngt": np.bincount(g.cat[~crowd], minlength=K).astype(np.int64),
        "ncrowd": np.bincount(g.cat[crowd], minlength=K).astype(np.int64),
        "npred": np.bincount(d.cat, minlength=K).astype(np.int64),
    }
    arrays["samples_off"], arrays["samples_data"] = _pack_strings(all_samples)
    arrays["gt_off"], arrays["gt_data"] = _pack_strings(prep.samples)
    # confusion counts at iou/conf; with pending classes, once with all of them present
    # and once with none (or, given the global classes, with those that exist)
    conf_ok = d.score[kept] >= opts.conf
    d_state = np.full(len(d), -1, np.int8)
    d_state[kept] = np.where(~conf_ok, -1, np.where(matched_u, np.where(to_crowd, -1, 0), 1))
    g_det = np.full(len(g), -1, np.int64)
    tp_sel = matched_u & conf_ok & ~to_crowd
    g_det[m_user[tp_sel]] = kept[tp_sel]
    g_state = np.where(crowd, -1, np.where(g_det >= 0, 0, 2)).astype(np.int8)
    out = None
    if annotate:
        iou_user = m.match_iou[0]
        d_gt = np.full(len(d), -1, np.int64)
        d_iou = np.full(len(d), np.nan)
        d_gt[kept] = np.where(matched_u & conf_ok, m_user, -1)
        d_iou[kept] = np.where(matched_u & conf_ok, iou_user, np.nan)
        g_iou = np.full(len(g), np.nan)
        g_iou[m_user[tp_sel]] = iou_user[tp_sel]
        known = set(classes)
        gone = [k for k in range(prep.n_known, K) if prep.classes[k] not in known]
        ds = d_state
        if gone:   # predictions of classes no shard's ground truth has: not evaluated
            off = np.isin(d.cat, gone)
            ds = np.where(off, -1, d_state).astype(np.int8)
            d_gt[off] = -1
            d_iou[off] = np.nan
        out = report._with_eval_columns(table, prep, ds, d_gt, d_iou, g_state, g_det, g_iou)
    arrays["cm_base"], groups, arrays["cm_v"] = _confusions(prep, d_state, g_state, n_img, K, opts, classes)
    notes = {k: dict(v) for k, v in prep.notes.items()}
    meta = {
        "options": _fingerprint(opts), "ranges": [r.name for r in ranges], "thresholds": Tn,
        "origin": origin, "has_gt": has_gt, "pred_sources": preds, "boxes": bool(boxes),
        "pred_source": pred_source if pred_source in srcs else None,
        "classes": list(prep.classes), "n_known": prep.n_known,
        "class_info": {k: list(v) for k, v in prep.class_info.items()},
        "pending_rows": prep.pending_rows, "pending_off": prep.pending_off,
        "cm_groups": groups,
        "counts": {k: int(prep.counts.get(k, 0)) for k in _COUNT_KEYS},
        "notes": notes,
    }
    return Partial([{"meta": meta, "arrays": arrays}]), out


# at most this many confusion matrices per shard for the pending classes' combinations
MAX_VARIANTS = 256


def _confusions(prep, d_state, g_state, n_img: int, K: int, opts: Options, classes):
    """The shard's confusion counts: (base, groups, variants).

    The counts are sums over images. Images where no prediction of a pending class is a
    leftover false positive give ``base``. The others are grouped by the set P of
    pending classes they have such predictions of; per group, one matrix per subset S of
    P (the pending classes that exist globally; the predictions of the others are left
    out) — or only the one subset ``classes`` decides. ``groups`` lists
    ``[P, [S, ...]]`` in the order of ``variants`` (V, K+1, K+1)."""
    import numpy as np

    from itertools import combinations

    from mlcycle.evaluation import report

    g, d = prep.gt, prep.dt
    n_known = prep.n_known
    pend_fp = (d_state == 1) & (d.cat >= n_known)
    if not pend_fp.any():
        return report.confusion_counts(g, d, d_state, g_state, n_img, K, opts), [], np.zeros((0, K + 1, K + 1),
                                                                                            np.int64)
    # per image, the bit set of its pending classes (as a sorted tuple key)
    imgs, inv = np.unique(d.img[pend_fp], return_inverse=True)
    pcat = d.cat[pend_fp]
    key_of: dict[int, set] = {}
    for i, c in zip(inv.tolist(), pcat.tolist()):
        key_of.setdefault(i, set()).add(c)
    sets: dict[tuple, list[int]] = {}
    for i, cs in key_of.items():
        sets.setdefault(tuple(sorted(cs)), []).append(int(imgs[i]))
    in_pending = np.zeros(n_img, bool)
    in_pending[imgs] = True
    base = report.confusion_counts(g, d, np.where(in_pending[d.img], -1, d_state).astype(np.int8),
                                   np.where(in_pending[g.img], -1, g_state).astype(np.int8), n_img, K, opts)
    known = set(classes) if classes is not None else None
    total = sum(1 if known is not None else 2 ** len(P) for P in sets)
    if total > MAX_VARIANTS:
        raise MlcycleError(f"{opts.origin}: a shard's predictions have {len(set().union(*map(set, sets)))} classes "
                           "its ground truth lacks, in too many combinations to merge later",
                           hint="pass the global class names to compute (classes=...)")
    groups, mats = [], []
    for P, members in sets.items():
        on = np.zeros(n_img, bool)
        on[members] = True
        names = [prep.classes[c] for c in P]
        if known is not None:
            subsets = [tuple(c for c in P if prep.classes[c] in known)]
        else:
            subsets = [S for r in range(len(P) + 1) for S in combinations(P, r)]
        g_s = np.where(on[g.img], g_state, -1).astype(np.int8)
        for S in subsets:
            absent = [c for c in P if c not in S]
            keep = on[d.img] & ~np.isin(d.cat, absent)
            mats.append(report.confusion_counts(g, d, np.where(keep, d_state, -1).astype(np.int8), g_s, n_img, K,
                                                opts))
        groups.append([names, [[prep.classes[c] for c in S] for S in subsets]])
    return base, groups, np.stack(mats).astype(np.int64)


def _pack(bits: "np.ndarray") -> "np.ndarray":
    """(W, n) bool -> (n, ceil(W/8)) uint8, one row of bytes per detection."""
    import numpy as np

    return np.packbits(np.ascontiguousarray(bits.T), axis=1) if bits.size else \
        np.zeros((bits.shape[1], (bits.shape[0] + 7) // 8), np.uint8)


def _unpack(packed: "np.ndarray", width: int) -> "np.ndarray":
    """The inverse of ``_pack``: (width, n) bool."""
    import numpy as np

    if packed.shape[0] == 0:
        return np.zeros((width, 0), bool)
    return np.unpackbits(packed, axis=1, count=width).T.astype(bool)


def _pack_strings(values) -> tuple["np.ndarray", "np.ndarray"]:
    """Strings as (int64 offsets, uint8 UTF-8 bytes)."""
    import numpy as np
    import pyarrow as pa

    arr = values if isinstance(values, (pa.Array, pa.ChunkedArray)) else pa.array(list(values), type=pa.string())
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks else pa.array([], pa.string())
    arr = arr.cast(pa.large_string())
    n = len(arr)
    if n == 0:
        return np.zeros(1, np.int64), np.zeros(0, np.uint8)
    offsets = np.frombuffer(arr.buffers()[1], np.int64)[arr.offset:arr.offset + n + 1]
    buf = arr.buffers()[2]
    data = np.frombuffer(buf, np.uint8)[offsets[0]:offsets[-1]] if buf is not None else np.zeros(0, np.uint8)
    return (offsets - offsets[0]).astype(np.int64), data.copy()


def _strings(offsets: "np.ndarray", data: "np.ndarray") -> "pa.Array":
    """The string array ``_pack_strings`` packed."""
    import numpy as np
    import pyarrow as pa

    offsets = np.ascontiguousarray(offsets, dtype=np.int64)
    n = len(offsets) - 1
    if n < 0 or (n and (offsets[0] != 0 or offsets[-1] != len(data) or (np.diff(offsets) < 0).any())):
        raise MlcycleError("<partial>: damaged sample ids in a partial result")
    return pa.LargeStringArray.from_buffers(n, pa.py_buffer(offsets.tobytes()),
                                            pa.py_buffer(np.ascontiguousarray(data, np.uint8).tobytes()))


# --------------------------------------------------------------------------- merge

def merge(parts: Sequence[Partial]) -> Partial:
    """The partials of disjoint shards as one (associative; order does not matter for
    ``finish``). Raises ``MlcycleError`` naming a sample found in two partials."""
    import pyarrow as pa
    import pyarrow.compute as pc

    pieces = [p for part in parts for p in part.pieces]
    if len(pieces) > 1:
        ids = pa.chunked_array([_sample_ids(p) for p in pieces], type=pa.large_string())
        counts = pc.value_counts(ids) if len(ids) else None
        if counts is not None and len(counts) < len(ids):
            dup = counts.filter(pc.greater(counts.field("counts"), 1))
            name = dup.field("values")[0].as_py()
            n_dup = len(dup)
            raise MlcycleError(f"{pieces[0]['meta']['origin']}: sample {printable(str(name), 80)!r} is in two shards"
                               + (f" ({n_dup} samples are)" if n_dup > 1 else ""),
                               hint="shard by sample (mlcycle.shards.bucket_of), so that each sample's rows "
                                    "are all in one shard, and merge each shard once")
        first = pieces[0]["meta"]
        for p in pieces[1:]:
            if p["meta"]["options"] != first["options"] or p["meta"]["ranges"] != first["ranges"]:
                raise MlcycleError(f"{first['origin']}: partial results computed with different options cannot "
                                   "be merged")
    return Partial(list(pieces))


def _sample_ids(piece: dict) -> "pa.Array":
    return _strings(piece["arrays"]["samples_off"], piece["arrays"]["samples_data"])


# --------------------------------------------------------------------------- finish

# finish accumulates classes in groups of about this many kept detections: accumulation
# is per class, so the results are the same, and memory is bounded by the group
ACCUMULATE_CHUNK = 400_000


def _accumulate_by_classes(cat, rank, score, packed_m, packed_i, dt_out, npig, params, Tn):
    """``coco.accumulate_kept`` over groups of consecutive classes (kept order kept
    within each), unpacking the flags of one group at a time."""
    import numpy as np

    from mlcycle.evaluation import coco as C

    A, K = npig.shape
    T, R, M = len(params.iou_thrs), len(params.rec_thrs), len(params.max_dets)
    precision = -np.ones((T, R, K, A, M))
    recall = -np.ones((T, K, A, M))
    scores = -np.ones((T, R, K, A, M))
    per_class = np.bincount(cat, minlength=K)[:K]
    cum = np.cumsum(per_class)
    lo = 0
    while lo < K:
        # the next classes up to ACCUMULATE_CHUNK detections (at least one class)
        base = cum[lo - 1] if lo else 0
        hi = int(np.searchsorted(cum, base + ACCUMULATE_CHUNK, side="right"))
        hi = min(max(hi, lo + 1), K)
        idx = np.flatnonzero((cat >= lo) & (cat < hi)) if (lo, hi) != (0, K) else np.arange(len(cat))
        n = len(idx)
        m = _unpack(packed_m[idx], A * Tn).reshape(A, Tn, n)
        ig = _unpack(packed_i[idx], A * Tn).reshape(A, Tn, n)
        p, r, s, _ = C.accumulate_kept(cat[idx] - lo, rank[idx], score[idx], m, ig, npig[:, lo:hi], params,
                                       full=False, dt_out=[o[idx] for o in dt_out])
        precision[:, :, lo:hi] = p
        recall[:, lo:hi] = r
        scores[:, :, lo:hi] = s
        del m, ig, p, r, s
        lo = hi
    return precision, recall, scores


def finish(part: Partial, opts: Options) -> dict:
    """Accumulate and summarize the merged partials: the metrics document of the whole
    table (as ``mlcycle.evaluate(..., annotate=False).summary``, before ``fail_under``/
    ``fail_if_worse_than``, which the caller applies). Warnings are in
    ``doc["warnings"]``; nothing is reported here."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    from mlcycle.evaluation import coco as C
    from mlcycle.evaluation import report

    _check(opts)
    origin = opts.origin
    pieces = part.pieces
    metas = [p["meta"] for p in pieces]
    fp = _fingerprint(opts)
    for mt in metas:
        if mt["options"] != fp:
            raise MlcycleError(f"{origin}: the partial results were computed with other options than these",
                               hint="compute and finish with the same options")
    # ---- sources (as choose_pred_source decides for the whole table)
    if not any(mt["has_gt"] for mt in metas):
        raise MlcycleError(f"{origin}: no ground truth: no rows have source '{opts.gt_source}'",
                           hint="pass the ground truth table too, or name the source its rows have")
    seen = sorted({s for mt in metas for s in mt["pred_sources"]})
    if opts.pred_source is not None:
        if opts.pred_source not in seen:
            raise MlcycleError(f"{origin}: no rows have source '{opts.pred_source}'",
                               hint=f"sources present: {', '.join([opts.gt_source] + seen)}")
        pred_source = opts.pred_source
    elif len(seen) > 1:
        raise OptionError("pred_source", f"several prediction sources in {origin} ({', '.join(seen)})",
                          hint="name one of them: sharded evaluation compares no models")
    else:
        pred_source = seen[0] if seen else T.DEFAULT_PRED_SOURCE
    empty = not seen
    if not any(mt["boxes"] for mt in metas):
        if empty:
            raise MlcycleError(f"{origin}: no predictions: every row has source '{opts.gt_source}'",
                               hint="pass the predictions too: rows of another source, such as 'pred'")
        raise MlcycleError(f"{origin}: no boxes or masks: sharded evaluation computes detection metrics only",
                           hint="evaluate image-level classification tables in memory")

    # ---- classes: ground-truth labels + categories, ordered as prepare() does
    info: dict[str, tuple] = {}
    for mt in metas:
        for name, (cid, row) in mt["class_info"].items():
            old = info.get(name)
            if old is None:
                info[name] = (cid, row)
            elif old[0] is None and cid is not None:
                info[name] = (cid, row)
            elif cid is not None and old[1] != -1 and (row == -1 or row < old[1]):
                info[name] = (cid, row)
    classes = sorted(info, key=lambda k: (info[k][0] is None, info[k][0] if info[k][0] is not None else 0, k))
    cls_index = {c: i for i, c in enumerate(classes)}
    K = len(classes)

    # ---- images: ground-truth samples by (smallest image id, sample id)
    gt_ids, gt_keys, piece_of = [], [], []
    for i, p in enumerate(pieces):
        n = len(p["arrays"]["gt_keys"])
        gt_ids.append(_strings(p["arrays"]["gt_off"], p["arrays"]["gt_data"]))
        gt_keys.append(p["arrays"]["gt_keys"])
        piece_of.append(n)
    keys = np.concatenate(gt_keys) if gt_keys else np.zeros(0, np.int64)
    n_img = len(keys)
    if n_img:
        tbl = pa.table({"k": keys, "s": pa.chunked_array(gt_ids, type=pa.large_string())})
        order = pc.sort_indices(tbl, sort_keys=[("k", "ascending"), ("s", "ascending")]).to_numpy()
    else:
        order = np.zeros(0, np.int64)
    glob = np.empty(n_img, np.int32 if n_img < 2 ** 31 else np.int64)   # 32-bit keys: less memory
    glob[order] = np.arange(n_img)
    img_base = np.concatenate([[0], np.cumsum(piece_of)]).astype(np.int64)

    # ---- kept detections in global kept order; per-class sums
    A = len(metas[0]["ranges"])
    Tn = metas[0]["thresholds"]
    npig = np.zeros((A, K), np.int64)
    ngt_k = np.zeros(K, np.int64)
    ncrowd_k = np.zeros(K, np.int64)
    npred_k = np.zeros(K, np.int64)
    cm = np.zeros((K + 1, K + 1), np.int64)
    d_img, d_cat, d_rank, d_sc, d_m, d_i, d_f = [], [], [], [], [], [], []
    unknown: dict[str, list] = {}     # name -> [count, first row]
    off_extra = 0
    evaluated_drop = 0
    for i, p in enumerate(pieces):
        mt, ar = p["meta"], p["arrays"]
        local = mt["classes"]
        n_known = mt["n_known"]
        to_g = np.array([cls_index.get(c, -1) for c in local] + [K], dtype=np.int64)   # + none
        for k in range(n_known, len(local)):
            name = local[k]
            if name in cls_index:
                off_extra += int(mt["pending_off"].get(name, 0))
            else:
                cnt = int(ar["npred"][k]) + int(mt["pending_off"].get(name, 0))
                evaluated_drop += int(ar["npred"][k])
                row = int(mt["pending_rows"][name])
                if not cnt:      # (only predictions without a box)
                    continue
                u = unknown.setdefault(name, [0, row])
                u[0] += cnt
                u[1] = min(u[1], row)
        ok_k = to_g[:-1] >= 0
        gk = to_g[:-1][ok_k]
        for a in range(A):
            np.add.at(npig[a], gk, ar["npig"][a, ok_k])
        np.add.at(ngt_k, gk, ar["ngt"][ok_k])
        np.add.at(ncrowd_k, gk, ar["ncrowd"][ok_k])
        np.add.at(npred_k, gk, ar["npred"][ok_k])
        def add_cm(lc):
            rr, cc = np.nonzero(lc)
            sel = (to_g[rr] >= 0) & (to_g[cc] >= 0)
            np.add.at(cm, (to_g[rr[sel]], to_g[cc[sel]]), lc[rr[sel], cc[sel]])

        add_cm(ar["cm_base"])
        v = 0
        for names, subsets in mt["cm_groups"]:
            want = sorted(c for c in names if c in cls_index)
            hit = next((j for j, S in enumerate(subsets) if sorted(S) == want), None)
            if hit is None:
                raise MlcycleError(f"{origin}: a shard was computed for other global classes than the merged "
                                   "partials have", hint="pass compute the same classes=... for every shard")
            add_cm(ar["cm_v"][v + hit])
            v += len(subsets)
        cat_l = ar["cat"]
        gcat = to_g.astype(np.int32)[cat_l] if len(cat_l) else np.zeros(0, np.int32)
        keep = gcat >= 0
        d_img.append(glob[img_base[i] + ar["img"][keep]])
        d_cat.append(gcat[keep])
        d_rank.append(ar["rank"][keep])
        d_sc.append(ar["score"][keep])
        d_m.append(ar["matched"][keep])
        d_i.append(ar["ignore"][keep])
        d_f.append(ar["flags"][keep])
    img = np.concatenate(d_img) if d_img else np.zeros(0, np.int32)
    cat = np.concatenate(d_cat) if d_cat else np.zeros(0, np.int32)
    rank = np.concatenate(d_rank) if d_rank else np.zeros(0, np.int32)
    del d_img, d_cat, d_rank
    order = np.lexsort((rank, cat, img))
    del img
    cat, rank = cat[order], rank[order]
    score = np.concatenate(d_sc)[order] if d_sc else np.zeros(0)
    packed_m = np.concatenate(d_m)[order] if d_m else np.zeros((0, 1), np.uint8)
    del d_m
    packed_i = np.concatenate(d_i)[order] if d_i else np.zeros((0, 1), np.uint8)
    del d_i
    flags = _unpack(np.concatenate(d_f)[order] if d_f else np.zeros((0, 1), np.uint8), A + 2)
    del d_f, order
    matched_u, to_crowd = flags[A], flags[A + 1]
    params = C.Params(max_dets=list(opts.max_dets), iou_type=opts.iou_type)
    precision, recall, scores = _accumulate_by_classes(cat, rank, score, packed_m, packed_i, flags[:A], npig,
                                                       params, Tn)
    del packed_m, packed_i
    ranges = [C.Range(name, np.zeros(0, bool), np.zeros(0, bool)) for name in metas[0]["ranges"]]
    res = C.Result(params, ranges, precision, recall, scores, npig, None, None, None, None, params.iou_thrs)
    custom = list(opts.area_ranges) + list(opts.rel_area_ranges)
    summary = C.summarize(res, custom)
    operating, reliability, conf = report.operating_point(score, cat, matched_u, to_crowd, ngt_k, classes, opts)

    # ---- counts and warnings, as prepare() words them for the whole table
    tot = {k: sum(int(mt["counts"].get(k, 0)) for mt in metas) for k in _COUNT_KEYS}
    counts: dict[str, Any] = {}
    notes: dict[str, dict] = {}
    for mt in metas:
        for kind, fact in mt["notes"].items():
            old = notes.get(kind)
            if old is None:
                notes[kind] = dict(fact)
                continue
            old["count"] += fact["count"]
            if kind == "pred_no_label" and fact["row"] < old["row"]:
                old["row"], old["where"] = fact["row"], fact["where"]
    if tot["predictions_without_label"]:
        counts["predictions_without_label"] = tot["predictions_without_label"]
    if unknown:
        detail = {k: v[0] for k, v in sorted(unknown.items(), key=lambda kv: kv[1][1])}
        counts["unknown_classes"] = detail
        notes["unknown_classes"] = {"count": sum(detail.values()), "detail": detail}
    off = tot["predictions_on_unknown_samples"] + off_extra
    if off:
        counts["predictions_on_unknown_samples"] = off
        notes["pred_off_samples"] = {"count": off}
    segm = opts.iou_type == "segm"
    warnings = [warning_text(kind, notes[kind], segm) for kind in NOTE_KINDS if kind in notes]
    counts.update({
        "rows": tot["rows"], "gt_labels": tot["gt_labels"], "predictions": tot["predictions"],
        "predictions_evaluated": tot["predictions_evaluated"] - evaluated_drop, "images": n_img,
        "classes": K, "gt_crowd": tot["gt_crowd"],
    })
    if empty:
        warnings.insert(0, f"no predictions (no rows of a source other than '{opts.gt_source}'): "
                           "every AP and AR is 0")
    if tot["gt_labels"] == 0 and not tot["gt_crowd"]:
        warnings.append("the ground truth has no labels: every metric is -1 (undefined)")
    return report.document(res, summary, classes, cat, score, matched_u, to_crowd, ngt_k, ncrowd_k, npred_k, cm,
                           conf, operating, reliability, [], opts, counts, warnings, opts.gt_source, pred_source)
