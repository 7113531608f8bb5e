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
        self.sealed = False  # seal(): per-sample state reduced to mergeable counts

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

    def seal(self) -> None:
        """Reduce the per-sample arrays to numbers that add up across shards: samples,
        histograms of labels and classes per sample, samples per class, per source and
        per split, and class pair counts. Called once all rows of every sample seen have
        been counted (a shard holds all rows of its samples); frees the per-sample state."""
        import numpy as np

        if self.sealed:
            return
        sh = self.shared
        ncls = len(sh.classes)
        nsamples = sh.samples.count if sh.samples is not None else 0
        rows = grow(self.sample_rows, nsamples)[:nsamples]
        present = rows > 0
        self.sample_count = int(present.sum())
        per_sample_labels = grow(self.sample_labels, nsamples)[:nsamples][present]
        self.labels_hist = (np.bincount(per_sample_labels.astype(np.int64)) if len(per_sample_labels)
                            else np.zeros(1, np.int64))

        def parts(table: dict) -> dict[int, tuple[int, int]]:
            out = {}
            for code, (r, lab) in table.items():
                seen = grow(r, nsamples)[:nsamples] > 0
                if seen.any():
                    out[code] = (int(seen.sum()), int((seen & (grow(lab, nsamples)[:nsamples] == 0)).sum()))
            return out

        self.src_samples, self.split_samples = parts(self.by_source), parts(self.by_split)
        self.class_samples = np.zeros(ncls, np.int64)
        cps = np.zeros(self.sample_count, np.int64)
        self.pair_a = self.pair_b = self.pair_n = np.zeros(0, np.int64)
        if self.pairs:
            keys = self.pairs[0] if len(self.pairs) == 1 else unique(np.concatenate(self.pairs))
            p_sid = keys >> CLS_BITS
            p_cls = keys & ((1 << CLS_BITS) - 1)
            self.class_samples = add_counts(self.class_samples, p_cls, ncls)
            cps = np.bincount(p_sid, minlength=nsamples)[present]
            self.pair_a, self.pair_b, self.pair_n = pair_counts(p_sid, p_cls, ncls)
        self.cps_hist = np.bincount(cps, minlength=1) if len(cps) else np.zeros(1, np.int64)
        self.sample_rows = self.sample_labels = np.zeros(0, np.int64)
        self.by_source, self.by_split, self.pairs = {}, {}, []
        self.sealed = True

    def merge(self, other: "Counts", maps: "CodeMaps") -> None:
        """Add another sealed shard's counts (its codes mapped through ``maps``)."""
        import numpy as np

        self.seal()
        other.seal()
        sh = self.shared
        self.rows += other.rows
        self.labels += other.labels
        self.label_counts = remap_add(self.label_counts, other.label_counts, maps.classes, len(sh.classes))
        self.split_labels = remap_add(self.split_labels, other.split_labels, maps.splits, len(sh.splits))
        self.source_labels = remap_add(self.source_labels, other.source_labels, maps.sources, len(sh.sources))
        self.class_samples = remap_add(self.class_samples, other.class_samples, maps.classes, len(sh.classes))
        self.sample_count += other.sample_count
        self.labels_hist = add_hist(self.labels_hist, other.labels_hist)
        self.cps_hist = add_hist(self.cps_hist, other.cps_hist)
        for mine, theirs, mapping in ((self.src_samples, other.src_samples, maps.sources),
                                      (self.split_samples, other.split_samples, maps.splits)):
            for code, (n, empty) in theirs.items():
                new = int(mapping[code])
                old = mine.get(new, (0, 0))
                mine[new] = (old[0] + n, old[1] + empty)
        a, b = maps.classes[other.pair_a], maps.classes[other.pair_b]
        a, b = np.minimum(a, b), np.maximum(a, b)
        na = np.concatenate([self.pair_a, a])
        nb = np.concatenate([self.pair_b, b])
        nn = np.concatenate([self.pair_n, other.pair_n])
        if len(nn):
            key, inv = unique(na * (1 << CLS_BITS) + nb, inverse=True)
            self.pair_a, self.pair_b = key >> CLS_BITS, key & ((1 << CLS_BITS) - 1)
            self.pair_n = np.bincount(inv, weights=nn).astype(np.int64)

    def document(self, order: list[int]) -> tuple[dict[str, Any], dict[str, Any]]:
        """(the ``counts`` section, the ``per_sample`` section)."""
        self.seal()
        sh = self.shared
        ncls = len(sh.classes)
        label_counts = grow(self.label_counts, ncls)
        class_samples = grow(self.class_samples, ncls)
        sample_count = self.sample_count
        no_label_samples = int(self.labels_hist[0]) if sample_count else 0

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
                      "samples_without_labels": r[1]} for s, r in self.split_samples.items()]
        per_split.sort(key=lambda d: sort_key(d["split"]))
        per_source = [{"source": sh.sources.values[s], "samples": r[0], "labels": int(source_labels[s]),
                       "samples_without_labels": r[1]} for s, r in self.src_samples.items()]
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
            "labels": distribution_from_histogram(self.labels_hist if sample_count else self.labels_hist[:0]),
            "classes": distribution_from_histogram(self.cps_hist),
            "cooccurrence": top_pairs(self.pair_a, self.pair_b, self.pair_n, sh.classes.values),
        }
        return counts, per_sample


def add_hist(a: "np.ndarray", b: "np.ndarray") -> "np.ndarray":
    n = max(len(a), len(b))
    return grow(a, n) + grow(b, n)


def remap_add(mine: "np.ndarray", theirs: "np.ndarray", mapping: "np.ndarray", size: int) -> "np.ndarray":
    """``mine`` (indexed by new codes) plus ``theirs`` (indexed by old codes; the mapping
    is one-to-one), grown to ``size`` rows."""
    out = grow(mine, size).copy()
    k = min(len(theirs), len(mapping))  # rows past the code book are spare room (zeros)
    if k:
        out[mapping[:k]] += theirs[:k]
    return out


class CodeMaps:
    """New code per old code of one partial's classes, splits and sources."""

    def __init__(self, classes: "np.ndarray", splits: "np.ndarray", sources: "np.ndarray") -> None:
        self.classes, self.splits, self.sources = classes, splits, sources


def pair_counts(sid: "np.ndarray", cls: "np.ndarray", ncls: int) -> tuple["np.ndarray", "np.ndarray", "np.ndarray"]:
    """Class pairs (a < b, as codes) and the number of samples holding both, from unique
    (sample, class) pairs sorted by sample: element i pairs with element i+d while the
    sample is the same."""
    import numpy as np

    empty = (np.zeros(0, np.int64),) * 3
    if not len(sid):
        return empty
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
        num = counts[uniq]
    else:
        if not sparse:
            return empty
        uniq, inv = unique(np.concatenate(sparse).astype(np.int64), inverse=True)
        num = np.bincount(inv)
    uniq = uniq.astype(np.int64)
    return uniq // ncls, uniq % ncls, num.astype(np.int64)


def top_pairs(a: "np.ndarray", b: "np.ndarray", n: "np.ndarray", names: list) -> list[dict[str, Any]]:
    """The ``TOP_PAIRS`` class pairs held by most samples (ties by class names)."""
    import numpy as np

    if not len(n):
        return []
    cut = np.partition(n, len(n) - TOP_PAIRS)[len(n) - TOP_PAIRS] if len(n) > TOP_PAIRS else 0
    out = []
    for i in np.flatnonzero(n >= cut):  # every pair that can make the top, ties included
        x, y = sorted((names[int(a[i])], names[int(b[i])]), key=sort_key)
        out.append({"a": x, "b": y, "samples": int(n[i])})
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
