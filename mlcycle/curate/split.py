"""split: assign every sample to train/val/test (or any named splits).

- **Random** (default): samples (or groups) are shuffled with the seed and cut by ratio.
- **Grouped** (``group``): the unit is a group (a video, a scene, a patient): a group
  never spans two splits; units are taken in shuffled order, each to the split furthest
  below its share of samples.
- **Stratified** (``stratify`` = a column, usually ``label``): iterative stratification
  (Sechidis, Tsoumakas, Vlahavas 2011, "On the stratification of multi-label data"),
  multi-label aware: repeatedly take the class with the fewest unassigned units and
  hand its units, in random order, to the split that still wants most of that class
  (ties: the split that wants most units, then random). A unit's class counts are the
  number of its samples holding the class (``gt`` labels when the table has a ``gt``
  source). Combined with ``group``, whole groups are stratified.

The ``split`` column is written on every row of a sample (all sources), replacing what
was there. Reproducible: the same input, ratios and seed give the same splits.
Ratios are normalised (``train=8,val=1,test=1`` works). The summary holds the achieved
ratios and the per-class distribution per split.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Sequence

from mlcycle import reporting
from mlcycle import table as T
from mlcycle.curate import _samples as S
from mlcycle.errors import OptionError
from mlcycle.results import Result

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import pyarrow as pa


def _cut(weights: "np.ndarray", ratios: "np.ndarray", rng) -> "np.ndarray":
    """Units in random order, each to the split furthest below its share of weight."""
    import numpy as np

    n = len(weights)
    order = rng.permutation(n)
    out = np.empty(n, dtype=np.int64)
    if n and np.all(weights == 1):
        # plain samples: exact cut points
        bounds = np.round(np.cumsum(ratios) * n).astype(np.int64)
        bounds[-1] = n
        out[order] = np.searchsorted(bounds, np.arange(n), side="right")
        return out
    want = ratios * weights.sum()
    for u in order:
        j = int(np.argmax(want))
        out[u] = j
        want[j] -= weights[u]
    return out


def iterative_stratification(unit_weight: "np.ndarray", pair_unit: "np.ndarray", pair_class: "np.ndarray",
                             pair_count: "np.ndarray", n_classes: int, ratios: "np.ndarray", rng) -> "np.ndarray":
    """Sechidis et al. 2011 over units with (unit, class, count) pairs; returns a split
    index per unit. Class bookkeeping is vectorised; the per-unit choice is a short loop
    over the splits."""
    import numpy as np

    n_units, k = len(unit_weight), len(ratios)
    assign = np.full(n_units, -1, dtype=np.int64)
    # CSR of pairs by unit, and of pairs by class
    by_unit = np.argsort(pair_unit, kind="stable")
    pu, pc_, pn = pair_unit[by_unit], pair_class[by_unit], pair_count[by_unit].astype(np.float64)
    u_start = np.searchsorted(pu, np.arange(n_units + 1))
    by_class = np.argsort(pc_, kind="stable")
    c_units = pu[by_class]
    c_start = np.searchsorted(pc_[by_class], np.arange(n_classes + 1))
    class_total = np.bincount(pc_, weights=pn, minlength=n_classes)
    want_class = class_total[:, None] * ratios[None, :]  # classes x splits
    want_units = ratios * unit_weight.sum()
    remaining = np.bincount(pc_, minlength=n_classes).astype(np.int64)  # unassigned units per class
    active = remaining > 0
    while active.any():
        cand = np.flatnonzero(active)
        mins = remaining[cand]
        ties = cand[mins == mins.min()]
        c = int(ties[rng.integers(len(ties))]) if len(ties) > 1 else int(ties[0])
        units = c_units[c_start[c]:c_start[c + 1]]
        units = units[assign[units] < 0]
        units = units[rng.permutation(len(units))]
        wc = want_class[c].copy()
        for u in units:
            # this class's count for unit u
            lo, hi = u_start[u], u_start[u + 1]
            cnt = pn[lo:hi][pc_[lo:hi] == c]
            best = np.flatnonzero(wc == wc.max())
            if len(best) > 1:
                wu = want_units[best]
                best = best[wu == wu.max()]
                j = int(best[rng.integers(len(best))]) if len(best) > 1 else int(best[0])
            else:
                j = int(best[0])
            assign[u] = j
            wc[j] -= cnt[0] if len(cnt) else 0.0
            want_units[j] -= unit_weight[u]
        if len(units):
            # bookkeeping for every class of the units just placed
            starts, ends = u_start[units], u_start[units + 1]
            lens = ends - starts
            idx = np.repeat(starts - np.cumsum(np.r_[0, lens[:-1]]), lens) + np.arange(lens.sum())
            cls, cnts, spl = pc_[idx], pn[idx], np.repeat(assign[units], lens)
            np.subtract.at(want_class, (cls, spl), cnts)
            np.subtract.at(remaining, cls, 1)
        active = remaining > 0
    rest = np.flatnonzero(assign < 0)
    if len(rest):
        order = rest[rng.permutation(len(rest))]
        for u in order:
            j = int(np.argmax(want_units))
            assign[u] = j
            want_units[j] -= unit_weight[u]
    return assign


def _assign(view: S.SampleView, ratios: dict[str, float], seed: int, stratify: bool) -> "np.ndarray":
    import numpy as np

    rng = np.random.default_rng(seed)
    r = np.array(list(ratios.values()), dtype=np.float64)
    n = len(view.samples)
    if view.groups is not None:
        _, unit_of_sample = np.unique(view.groups, return_inverse=True)
        unit_of_sample = unit_of_sample.reshape(-1)
    else:
        unit_of_sample = np.arange(n)
    n_units = int(unit_of_sample.max()) + 1 if n else 0
    weight = np.bincount(unit_of_sample, minlength=n_units).astype(np.float64)
    if stratify:
        k = max(len(view.classes), 1)
        key = unit_of_sample[view.pair_sample] * k + view.pair_class
        uk, inv = np.unique(key, return_inverse=True)
        counts = np.bincount(inv.reshape(-1), minlength=len(uk)).astype(np.int64)  # samples holding the class
        unit_assign = iterative_stratification(weight, uk // k, uk % k, counts, len(view.classes), r, rng)
    else:
        unit_assign = _cut(weight, r, rng)
    return unit_assign[unit_of_sample] if n else np.zeros(0, np.int64)


def _summary(view: S.SampleView, names: list[str], ratios: dict[str, float], assign, seed, stratify, group) -> dict:
    import numpy as np

    n = len(view.samples)
    k = len(names)
    per_split = np.bincount(assign, minlength=k) if n else np.zeros(k, np.int64)
    doc = {
        "seed": seed, "stratify": stratify, "group": group,
        "counted_source": view.counted_source,
        "samples": n,
        "ratios": ratios,
        "achieved": {s: (float(per_split[j]) / n if n else 0.0) for j, s in enumerate(names)},
        "samples_per_split": {s: int(per_split[j]) for j, s in enumerate(names)},
    }
    if view.groups is not None:
        gsplit = {}
        for g, s in zip(view.groups, assign):
            gsplit.setdefault(int(g), set()).add(int(s))
        doc["groups"] = len(gsplit)
        doc["groups_per_split"] = {s: int(sum(1 for v in gsplit.values() if j in v)) for j, s in enumerate(names)}
    if view.classes:
        c = len(view.classes)
        spl = assign[view.pair_sample]
        labels = np.zeros((c, k), dtype=np.int64)
        holding = np.zeros((c, k), dtype=np.int64)
        np.add.at(labels, (view.pair_class, spl), view.pair_count)
        np.add.at(holding, (view.pair_class, spl), 1)
        doc["per_class"] = {
            view.classes[i]: {
                "labels": {s: int(labels[i, j]) for j, s in enumerate(names)},
                "samples": {s: int(holding[i, j]) for j, s in enumerate(names)},
                "share": {s: (float(labels[i, j]) / labels[i].sum() if labels[i].sum() else 0.0) for j, s in enumerate(names)},
            }
            for i in range(c)
        }
        # the largest gap between a class's share and the requested ratio
        share = labels / np.maximum(labels.sum(axis=1, keepdims=True), 1)
        doc["max_class_deviation"] = float(np.abs(share - np.array(list(ratios.values()))[None, :]).max()) if c else 0.0
    return doc


def _check(stratify: str | None, seed: int) -> None:
    if not isinstance(seed, int) or seed < 0:
        raise OptionError("seed", "the seed is a non-negative integer")


def split_table(table: "pa.Table", ratios: str | dict = "train=0.8,val=0.1,test=0.1", seed: int = 0,
                stratify: str | None = None, group: str | None = None, origin: str = "<table>") -> Result:
    """Write the ``split`` column on every row of ``table`` (see the module docstring)."""
    import pyarrow as pa

    r = S.parse_ratios(ratios)
    _check(stratify, seed)
    with reporting.collect() as seen:
        by = stratify or (T.LABEL if T.LABEL in table.column_names else None)  # classes are reported anyway
        view = S.sample_view([table], by, group, origin, table.schema, by_option="stratify")
        assign = _assign(view, r, seed, stratify is not None)
        names = list(r)
        values = pa.array(names, pa.string()).take(pa.array(assign, pa.int64()))
        if T.SPLIT in table.column_names and table.column(T.SPLIT).null_count < table.num_rows:
            reporting.info("the table's split values were replaced")
        out = S.set_column(table, T.SPLIT, S.per_sample_column(table, view.samples, values))
        out = T.normalize(out, origin=origin)
        summary = _summary(view, names, r, assign, seed, stratify, group)
    return Result(out, summary, tuple(seen.warnings))


def split_files(paths: Sequence[str | os.PathLike | None] | None, output: str | os.PathLike | None,
                encoding: str | None, ratios: str | dict = "train=0.8,val=0.1,test=0.1", seed: int = 0,
                stratify: str | None = None, group: str | None = None, batch_rows: int = 262144) -> Result:
    """``split_table`` in two streaming passes: the sample view, then the rows."""
    import pyarrow as pa

    from mlcycle import io
    from mlcycle.curate._stream import write_batches

    r = S.parse_ratios(ratios)
    _check(stratify, seed)
    io.check_binary_to_terminal(output, io.output_encoding(output, encoding))
    origin = io.display_name(paths[0]) if paths and len(paths) == 1 else ("<inputs>" if paths else "<stdin>")
    with reporting.collect() as seen:
        scan = io.scan(paths, batch_rows=batch_rows)
        by = stratify or (T.LABEL if T.LABEL in scan.schema.names else None)  # classes are reported anyway
        cols = [c for c in (by, group) if c]
        view = S.sample_view(scan.batches(columns=cols + [T.BBOX] * (by == T.LABEL)), by, group,
                             origin, scan.schema, by_option="stratify")
        assign = _assign(view, r, seed, stratify is not None)
        names = list(r)
        values = pa.array(names, pa.string()).take(pa.array(assign, pa.int64()))
        schema = scan.schema
        if T.SPLIT in schema.names:
            schema = schema.set(schema.get_field_index(T.SPLIT), pa.field(T.SPLIT, pa.string()))
        else:
            schema = T.normalize(schema.empty_table().append_column(T.SPLIT, pa.array([], pa.string()))).schema

        def rows():
            for b in scan.batches():
                yield S.set_column(b, T.SPLIT, S.per_sample_column(b, view.samples, values))

        write_batches(rows(), schema, output, encoding)
        summary = _summary(view, names, r, assign, seed, stratify, group)
    return Result(None, summary, tuple(seen.warnings))
