"""Counts: labels per class, split and source; samples; labels and classes per sample;
classes seen together in a sample.

Per-sample numbers are ``bincount`` over global sample codes, so memory follows the
number of samples, not of rows. (sample, class) pairs are kept as sorted unique keys
``sample << CLS_BITS | class``, merged as they grow.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlcycle import table as T
from mlcycle.stats import sketches
from mlcycle.stats.codes import Shared, add_counts, grow, sort_key, unique

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

TOP_PAIRS = 20
CLS_BITS = 20  # (sample, class) pairs are packed as sample << 20 | class


class Counts:
    """The ``counts`` and ``per_sample`` sections of a (sub)document."""

    def __init__(self, shared: Shared) -> None:
        import numpy as np

        self.shared = shared
        self.rows = 0
        self.labels = 0
        self.label_counts = np.zeros(0, np.int64)
        self.split_labels = np.zeros(0, np.int64)
        self.source_labels = np.zeros(0, np.int64)
        # per sample (global sample codes): rows and label rows, overall / per source / per split
        self.sample_rows = np.zeros(0, np.int64)
        self.sample_labels = np.zeros(0, np.int64)
        self.by_source: dict[int, list] = {}
        self.by_split: dict[int, list] = {}
        self.pairs: list[np.ndarray] = []  # sorted unique sample << 20 | class
        self.pair_count = 0

    def update(self, cls: "np.ndarray", is_label: "np.ndarray", src: "np.ndarray", split: "np.ndarray",
               sid: "np.ndarray") -> tuple["np.ndarray", "np.ndarray"]:
        """Count one batch; returns the row indices of its labels and their classes."""
        import numpy as np

        sh = self.shared
        self.rows += len(cls)
        nlab = int(is_label.sum())
        self.labels += nlab
        ncls = len(sh.classes)
        lab_cls = cls[is_label]
        self.label_counts = add_counts(self.label_counts, lab_cls, ncls)
        self.split_labels = add_counts(self.split_labels, split[is_label], len(sh.splits))
        self.source_labels = add_counts(self.source_labels, src[is_label], len(sh.sources))

        # per sample: bincount over global sample codes (memory: samples, not rows)
        nsamples = sh.samples.count
        lab_sid = sid[is_label]
        self.sample_rows = add_counts(self.sample_rows, sid, nsamples)
        self.sample_labels = add_counts(self.sample_labels, lab_sid, nsamples)
        for codes, table in ((src, self.by_source), (split, self.by_split)):
            values = np.flatnonzero(np.bincount(codes))
            for v in values:
                acc = table.setdefault(int(v), [np.zeros(0, np.int64), np.zeros(0, np.int64)])
                if len(values) > 1:
                    acc[0] = add_counts(acc[0], sid[codes == v], nsamples)
                    acc[1] = add_counts(acc[1], lab_sid[codes[is_label] == v], nsamples)
                else:
                    acc[0] = add_counts(acc[0], sid, nsamples)
                    acc[1] = add_counts(acc[1], lab_sid, nsamples)
        if not nlab:
            return np.zeros(0, np.int64), lab_cls
        lab_idx = np.flatnonzero(is_label)
        keys = unique((sid[lab_idx] << CLS_BITS) | lab_cls)
        self.pairs.append(keys)
        self.pair_count += len(keys)
        if (self.pair_count > 2 * sketches.EXACT_QUANTILE_LIMIT and len(self.pairs) > 1
                and self.pair_count > 4 * len(self.pairs[0])):
            self.pairs = [unique(np.concatenate(self.pairs))]
            self.pair_count = len(self.pairs[0])
        return lab_idx, lab_cls

    def class_order(self) -> list[int]:
        """Codes of the classes present, most labels first (then by name): the order of
        every per-class list in the document."""
        import numpy as np

        sh = self.shared
        label_counts = grow(self.label_counts, len(sh.classes))
        present = np.flatnonzero(label_counts > 0)
        return sorted(present, key=lambda c: (-label_counts[c], sort_key(sh.classes.values[c])))

    def document(self, order: list[int]) -> tuple[dict[str, Any], dict[str, Any]]:
        """(the ``counts`` section, the ``per_sample`` section)."""
        import numpy as np

        sh = self.shared
        ncls = len(sh.classes)
        label_counts = grow(self.label_counts, ncls)
        nsamples = sh.samples.count
        rows = grow(self.sample_rows, nsamples)[:nsamples]
        present = rows > 0
        sample_count = int(present.sum())
        per_sample_labels = grow(self.sample_labels, nsamples)[:nsamples][present]
        no_label_samples = int((per_sample_labels == 0).sum())

        def parts(table: dict) -> dict[int, tuple[int, int]]:
            out = {}
            for code, (r, lab) in table.items():
                seen = grow(r, nsamples)[:nsamples] > 0
                if seen.any():
                    out[code] = (int(seen.sum()), int((seen & (grow(lab, nsamples)[:nsamples] == 0)).sum()))
            return out

        src_rows, split_rows = parts(self.by_source), parts(self.by_split)

        class_samples = np.zeros(ncls, np.int64)
        cps = np.zeros(sample_count, np.int64)
        cooc: list[dict] = []
        if self.pairs:
            keys = self.pairs[0] if len(self.pairs) == 1 else unique(np.concatenate(self.pairs))
            self.pairs = [keys]
            p_sid = keys >> CLS_BITS
            p_cls = keys & ((1 << CLS_BITS) - 1)
            class_samples = add_counts(class_samples, p_cls, ncls)
            cps = np.bincount(p_sid, minlength=nsamples)[present]
            cooc = cooccurrence(p_sid, p_cls, ncls, sh.classes.values)
        cps_hist = np.bincount(cps, minlength=1) if len(cps) else np.zeros(1, np.int64)

        total = max(self.labels, 1)
        per_class = [{
            "label": sh.classes.values[c],
            "labels": int(label_counts[c]),
            "samples": int(class_samples[c]),
            "share": label_counts[c] / total,
            "sample_share": class_samples[c] / sample_count if sample_count else None,
        } for c in order]

        split_labels = grow(self.split_labels, len(sh.splits))
        source_labels = grow(self.source_labels, len(sh.sources))
        per_split = [{"split": sh.splits.values[s], "samples": r[0], "labels": int(split_labels[s]),
                      "samples_without_labels": r[1]} for s, r in split_rows.items()]
        per_split.sort(key=lambda d: sort_key(d["split"]))
        per_source = [{"source": sh.sources.values[s], "samples": r[0], "labels": int(source_labels[s]),
                       "samples_without_labels": r[1]} for s, r in src_rows.items()]
        per_source.sort(key=lambda d: (d["source"] != T.GT_SOURCE, sort_key(d["source"])))

        counts = {
            "rows": self.rows,
            "samples": sample_count,
            "labels": self.labels,
            "samples_without_labels": no_label_samples,
            "classes": len(order),
            "per_class": per_class,
            "per_split": per_split,
            "per_source": per_source,
        }
        per_sample = {
            "labels": distribution(per_sample_labels),
            "classes": distribution_from_histogram(cps_hist),
            "cooccurrence": cooc,
        }
        return counts, per_sample


def cooccurrence(sid: "np.ndarray", cls: "np.ndarray", ncls: int, names: list) -> list[dict[str, Any]]:
    """Top class pairs by the number of samples holding both, from unique (sample, class)
    pairs sorted by sample: element i pairs with element i+d while the sample is the same."""
    import numpy as np

    if not len(sid):
        return []
    dense = ncls * ncls <= 1 << 24
    counts = np.zeros(ncls * ncls if dense else 0, np.int64)
    sparse: list[np.ndarray] = []
    n = len(sid)
    # sid is sorted: the classes of a sample are a run; rem[i] = elements left in i's run
    starts = np.flatnonzero(np.concatenate(([True], sid[1:] != sid[:-1])))
    ends = np.append(starts[1:], n)
    rem = (np.repeat(ends, np.diff(np.append(starts, n))) - np.arange(n)).astype(np.int32)
    index_type = np.int32 if n < 2 ** 31 and ncls * ncls < 2 ** 31 else np.int64
    cls = cls.astype(index_type)
    row = cls * ncls  # first class of a pair, scaled
    alive = np.flatnonzero(rem > 1).astype(index_type)  # i whose sample continues at i + d
    rem_alive = rem[alive]
    d = 1
    while len(alive):
        codes = row[alive] + cls[alive + d]
        if dense:
            counts += np.bincount(codes, minlength=ncls * ncls)
        else:
            sparse.append(codes)
        d += 1
        keep = rem_alive > d
        alive, rem_alive = alive[keep], rem_alive[keep]
    if dense:
        uniq = np.flatnonzero(counts)
        n = counts[uniq]
    else:
        if not sparse:
            return []
        uniq, inv = unique(np.concatenate(sparse), inverse=True)
        n = np.bincount(inv)
    top = np.lexsort((uniq, -n))[:TOP_PAIRS * 2]
    out = []
    for i in top:
        a, b = sorted((names[int(uniq[i]) // ncls], names[int(uniq[i]) % ncls]), key=sort_key)
        out.append({"a": a, "b": b, "samples": int(n[i])})
    out.sort(key=lambda r: (-r["samples"], sort_key(r["a"]), sort_key(r["b"])))
    return out[:TOP_PAIRS]


def distribution(values: "np.ndarray") -> dict[str, Any]:
    import numpy as np

    if not len(values):
        return distribution_from_histogram(np.zeros(1, np.int64))
    return distribution_from_histogram(np.bincount(values.astype(np.int64)))


def distribution_from_histogram(hist: "np.ndarray") -> dict[str, Any]:
    import numpy as np

    n = int(hist.sum())
    if not n:
        return {"samples": 0, "mean": None, "p50": None, "p95": None, "max": None, "histogram": []}
    vals = np.arange(len(hist))
    cum = np.cumsum(hist)

    def q(p: float) -> int:
        return int(np.searchsorted(cum, p * n, side="left")) if p > 0 else int(vals[hist > 0][0])

    nz = np.flatnonzero(hist)
    return {
        "samples": n,
        "mean": float((vals * hist).sum() / n),
        "p50": q(0.5),
        "p95": q(0.95),
        "max": int(nz[-1]),
        "histogram": [{"value": int(v), "samples": int(hist[v])} for v in nz],
    }
