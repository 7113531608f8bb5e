"""Ranking: from per-label scores to the work list — eligibility by reason, the sample
score (max or noisy-or of its labels'), selection by label or by sample, the context
rows, the order of the output and the summary document.

Library code: never prints, knows nothing of the command line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlcycle import table as T
from mlcycle.mining.reasons import CODE, REASONS

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import pyarrow as pa

    from mlcycle.mining.frame import Frame
    from mlcycle.mining.options import MineOptions


@dataclass(frozen=True)
class Ranking:
    """What ``rank`` found: the output table and summary, and per-row / per-sample arrays
    over the *input* table (what the pool search and tests use)."""

    table: "pa.Table"
    summary: dict[str, Any] = field(default_factory=dict)
    scores: "np.ndarray | None" = None
    reasons: "np.ndarray | None" = None
    selected_samples: list[str] = field(default_factory=list)   # best first
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


def rank(table: "pa.Table", opts: "MineOptions") -> Ranking:
    """Score every label, select the top failures and return them with their context."""
    import numpy as np
    import pyarrow as pa

    from mlcycle.mining.frame import Frame
    from mlcycle.mining.objectlab import objectlab_rows, score_objectlab
    from mlcycle.mining.reasons import score_rules

    f = Frame(table, opts, need_eval=opts.method == "rules")
    n_samples = len(f.sample_names)
    ol = None
    if opts.method == "rules":
        h, code = score_rules(f, opts)
    else:
        ol = score_objectlab(f)
        h, code = objectlab_rows(ol, f)

    wanted = np.ones(len(REASONS), bool)
    if opts.reasons is not None:
        wanted[:] = False
        wanted[[CODE[r] for r in opts.reasons]] = True
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

    # ---- selection: --top / --min-score, else the default cut-off (options.default_top)
    top, cutoff = _cutoff(f, opts, n_samples)
    if opts.per == "label":
        cand = np.flatnonzero(eligible & (h >= (opts.min_score or 0.0)))
        cand = cand[np.lexsort((cand, -h[cand]))]
        if top is not None:
            cutoff["left_out"] = int(max(len(cand) - top, 0))
            cand = cand[: top]
        selected_rows = cand
        # samples in the order of their best selected label
        uniq, first = np.unique(f.sample[selected_rows], return_index=True)
        sample_order = uniq[np.argsort(first, kind="stable")]
    else:
        ok = ~np.isnan(sample_score) & (sample_score >= (opts.min_score or 0.0))
        cand = np.flatnonzero(ok)
        cand = cand[np.lexsort((cand, -sample_score[cand]))]
        if top is not None:
            cutoff["left_out"] = int(max(len(cand) - top, 0))
            cand = cand[: top]
        sample_order = cand
        selected_rows = np.flatnonzero(np.isin(f.sample, sample_order) & eligible)

    rank_of = np.full(n_samples, np.iinfo(np.int64).max)
    rank_of[sample_order] = np.arange(len(sample_order))
    is_selected = np.zeros(f.n, bool)
    is_selected[selected_rows] = True
    if opts.context:
        keep = np.flatnonzero(rank_of[f.sample] < len(sample_order)) if f.n else np.zeros(0, np.int64)
    else:
        keep = selected_rows
    # order: sample rank, then selected before context, then label score (NaN last), then input order
    hk = np.where(np.isnan(h[keep]), np.inf, -h[keep])
    order = np.lexsort((keep, hk, ~is_selected[keep], rank_of[f.sample[keep]]))
    rows = keep[order]

    out = table.take(pa.array(rows, type=pa.int64()))
    hs = h[rows]
    out = set_column(out, T.HARD_SCORE, pa.array(hs, type=pa.float64(), mask=np.isnan(hs)))
    rc = code[rows]
    reason = pa.DictionaryArray.from_arrays(pa.array(rc, type=pa.int32(), mask=rc < 0), pa.array(REASONS, type=pa.string()))
    out = set_column(out, T.HARD_REASON, reason.cast(pa.string()))
    ss = row_sample_score[rows]
    out = set_column(out, T.HARD_SAMPLE_SCORE, pa.array(ss, type=pa.float64(), mask=np.isnan(ss)))

    summary = _summary(f, opts, h, code, eligible, sample_score, selected_rows, sample_order, rows)
    summary["cutoff"] = cutoff
    return Ranking(
        table=out, summary=summary, scores=h, reasons=code,
        selected_samples=np.asarray(f.sample_names, dtype=object)[np.asarray(sample_order, dtype=np.int64)].tolist(),
        sample_names=f.sample_names, sample_score_array=sample_score,
    )


def _cutoff(f: "Frame", opts: "MineOptions", n_samples: int) -> tuple[int | None, dict[str, Any]]:
    """How many labels (samples) to keep, and the summary's ``cutoff`` record: ``rule``
    is ``top`` / ``min_score`` / ``top and min_score`` when given, ``none`` (top None:
    everything flagged), else (top "auto") ``default`` — the
    best-scored ``DEFAULT_FRACTION`` of the counted ground-truth labels (per sample: of
    the samples), at least ``DEFAULT_MINIMUM``."""
    import numpy as np

    from mlcycle.mining.options import AUTO, DEFAULT_FRACTION, DEFAULT_MINIMUM, default_top

    if opts.top != AUTO or opts.min_score is not None:
        top = None if opts.top == AUTO else opts.top
        rule = " and ".join(k for k, v in (("top", top), ("min_score", opts.min_score)) if v is not None) or "none"
        return top, {"rule": rule, "top": top, "min_score": opts.min_score, "left_out": 0}
    if opts.per == "label":
        base, of = int(np.count_nonzero(f.is_gt & (f.label >= 0) & ~f.crowd)), "ground-truth labels"
    else:
        base, of = int(n_samples), "samples"
    top = default_top(base)
    return top, {"rule": "default", "top": top, "min_score": None, "fraction": DEFAULT_FRACTION,
                 "minimum": DEFAULT_MINIMUM, "of": of, "base": base, "left_out": 0}


def set_column(table: "pa.Table", name: str, values: "pa.Array") -> "pa.Table":
    """``table`` with column ``name`` replaced, or appended when it is new."""
    if name in table.column_names:
        return table.set_column(table.column_names.index(name), name, values)
    return table.append_column(name, values)


def _summary(f: "Frame", opts: "MineOptions", h, code, eligible, sample_score, selected_rows, sample_order, rows) -> dict:
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
