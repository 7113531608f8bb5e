"""rebalance: subsample samples (or weight them) toward a target class distribution.

Class counts are label counts of the ``by`` column (``gt`` labels when the table has a
``gt`` source). The target shares ``p`` are ``uniform`` (equal), ``sqrt`` (proportional
to the square root of the counts) or given in a YAML file (``class: weight``,
normalised; classes not listed are not constrained).

- ``mode="sample"``: the kept count of class ``c`` aims at ``t_c = s * p_c`` with the
  largest ``s`` such that ``t_c <= n_c`` (subsampling cannot add labels). Class ``c``'s
  keep rate is ``q_c = t_c / n_c``; a sample is kept with probability ``max q_c`` over
  its classes (a sample holding a rare class is always kept, as in repeat-factor
  sampling), drawn with the seed. Samples with no counted label are kept with the
  overall rate ``sum t / sum n``. Whole samples are kept or dropped, all sources alike.
- ``mode="weight"``: nothing is dropped; a ``weight`` column (float64) holds, on every
  row of a sample, ``max p_c / share_c`` over its classes, scaled so that the mean
  weight over samples is 1 (for a weighted sampler).

The summary has the class distribution before and after (expected, for weights).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from mlcycle import reporting
from mlcycle import table as T
from mlcycle import yamlsafe
from mlcycle.curate import _samples as S
from mlcycle.errors import MlcycleError, OptionError
from mlcycle.results import Result

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import pyarrow as pa

WEIGHT = T.WEIGHT  # defined in mlcycle/table.py
TARGETS = ("uniform", "sqrt")
MODES = ("sample", "weight")


def load_target(target: str | os.PathLike | Mapping[str, Any]) -> str | dict[str, float]:
    """'uniform', 'sqrt', a mapping, or a YAML file of ``class: weight``."""
    if isinstance(target, Mapping):
        doc = dict(target)
        where = "target"
    elif str(target) in TARGETS:
        return str(target)
    else:
        import yaml

        path = Path(target)
        if not path.is_file():
            raise OptionError("target", f"'{target}' is neither uniform, sqrt nor a YAML file",
                              hint="uniform, sqrt or a YAML file of class: share (weights.yaml)")
        try:
            doc = yamlsafe.load(path.read_text(encoding="utf-8"), str(path))
        except (yaml.YAMLError, OSError, UnicodeDecodeError) as exc:
            raise MlcycleError(f"{path}: not a readable YAML file ({str(exc).splitlines()[0]})") from None
        where = str(path)
        if not isinstance(doc, dict):
            raise MlcycleError(f"{path}: expected `class: weight` lines")
    out: dict[str, float] = {}
    for k, v in doc.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not (v >= 0) or v == float("inf"):
            raise MlcycleError(f"{where}: weight of '{k}' is {v!r}; expected a number >= 0")
        out[str(k)] = float(v)
    if not out or sum(out.values()) <= 0:
        raise MlcycleError(f"{where}: the weights add up to 0")
    return out


def _plan(view: S.SampleView, target: str | dict, mode: str, seed: int):
    import numpy as np

    n_samples, c = len(view.samples), len(view.classes)
    counts = np.bincount(view.pair_class, weights=view.pair_count, minlength=c).astype(np.float64)
    if isinstance(target, str):
        p = np.ones(c) if target == "uniform" else np.sqrt(counts)
        listed = np.ones(c, dtype=bool)
    else:
        names = {n: i for i, n in enumerate(view.classes)}
        for k in target:
            if k not in names:
                reporting.warn(f"class '{k}' of the target is not in the table")
        p = np.array([target.get(n, 0.0) for n in view.classes])
        listed = np.array([n in target for n in view.classes], dtype=bool)
    p = np.where(listed & (counts > 0), p, 0.0)
    if p.sum() > 0:
        p = p / p.sum()
    # per-sample holding of classes: the max over the sample's listed classes
    rng = np.random.default_rng(seed)
    if mode == "sample":
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = np.min(np.where(p > 0, counts / p, np.inf)) if (p > 0).any() else 0.0
        t = np.where(listed, np.floor(scale * p + 1e-9), counts)
        keep = _greedy_drop(view, n_samples, counts, t, listed, rng)
        after = np.bincount(view.pair_class, weights=view.pair_count * keep[view.pair_sample], minlength=c)
        return keep, None, counts, after, p
    share = counts / max(counts.sum(), 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        f = np.where(listed & (share > 0), p / share, np.nan)
    per = np.full(n_samples, np.nan)
    if len(view.pair_sample):
        vals = f[view.pair_class]
        per_max = np.full(n_samples, -np.inf)
        np.maximum.at(per_max, view.pair_sample, np.where(np.isnan(vals), -np.inf, vals))
        per = np.where(np.isneginf(per_max), np.nan, per_max)
    per = np.where(np.isnan(per), 1.0, per)
    per = per / per.mean() if n_samples and per.mean() > 0 else per
    after = np.bincount(view.pair_class, weights=view.pair_count * per[view.pair_sample], minlength=c)
    return None, per, counts, after, p


def _greedy_drop(view: S.SampleView, n_samples: int, counts, target, listed, rng) -> "np.ndarray":
    """Visit samples in random order; drop one when every counted class it holds stays at
    or above its target without it. Samples with no counted label are dropped with the
    overall rate. No class falls below its target; the rarest class keeps every label."""
    import numpy as np

    keep = np.ones(n_samples, dtype=bool)
    order = np.argsort(view.pair_sample, kind="stable")
    ps, pcl, pn = view.pair_sample[order], view.pair_class[order], view.pair_count[order].astype(np.float64)
    start = np.searchsorted(ps, np.arange(n_samples + 1))
    cur = counts.astype(np.float64).copy()
    slack = np.where(listed, cur - target, np.inf)  # how many labels each class can still lose
    overall = float(target[listed].sum() / max(counts[listed].sum(), 1))
    draws = rng.random(n_samples)
    for sidx in rng.permutation(n_samples):
        lo, hi = start[sidx], start[sidx + 1]
        if lo == hi:
            keep[sidx] = draws[sidx] < overall
            continue
        cls, cnt = pcl[lo:hi], pn[lo:hi]
        if np.all(slack[cls] >= cnt):
            slack[cls] -= cnt
            keep[sidx] = False
    return keep


def _summary(view, counts, after, p, keep, weights, target, mode, seed) -> dict:
    import numpy as np

    tot_b, tot_a = counts.sum(), after.sum()
    doc = {
        "by": None, "mode": mode, "seed": seed,
        "target": target if isinstance(target, str) else dict(target),
        "counted_source": view.counted_source,
        "samples_before": len(view.samples),
        "samples_after": int(keep.sum()) if keep is not None else len(view.samples),
        "per_class": {
            name: {"before": int(counts[i]), "after": (int(round(after[i])) if keep is not None else float(after[i])),
                   "share_before": float(counts[i] / tot_b) if tot_b else 0.0,
                   "share_after": float(after[i] / tot_a) if tot_a else 0.0,
                   "target_share": float(p[i])}
            for i, name in enumerate(view.classes)
        },
    }
    if weights is not None:
        doc["weight_min"] = float(weights.min()) if len(weights) else None
        doc["weight_max"] = float(weights.max()) if len(weights) else None
    if tot_b and tot_a:
        sb, sa = counts / tot_b, after / tot_a
        doc["imbalance_before"] = float(sb.max() / sb[sb > 0].min()) if (sb > 0).any() else None
        doc["imbalance_after"] = float(sa.max() / sa[sa > 0].min()) if (sa > 0).any() else None
    return doc


def _check(by: str, mode: str, seed: int) -> None:
    if mode not in MODES:
        raise OptionError("mode", f"unknown mode '{mode}'", hint="choose sample or weight")
    if not isinstance(seed, int) or seed < 0:
        raise OptionError("seed", "the seed is a non-negative integer")


def _apply(batch, view, keep, weights):
    import pyarrow as pa

    if keep is not None:
        mask = S.per_sample_column(batch, view.samples, pa.array(keep))
        return batch.filter(mask)
    return S.set_column(batch, WEIGHT, S.per_sample_column(batch, view.samples, pa.array(weights, pa.float64())))


def rebalance_table(table: "pa.Table", by: str = T.LABEL, target: str | Mapping[str, Any] = "uniform",
                    mode: str = "sample", seed: int = 0, origin: str = "<table>") -> Result:
    """Subsample samples of ``table`` (or add ``weight``) toward ``target``."""
    _check(by, mode, seed)
    tgt = load_target(target)
    with reporting.collect() as seen:
        view = S.sample_view([table], by, None, origin, table.schema)
        keep, weights, counts, after, p = _plan(view, tgt, mode, seed)
        out = _apply(table, view, keep, weights)
        summary = _summary(view, counts, after, p, keep, weights, tgt, mode, seed)
        summary["by"] = by
    return Result(out, summary, tuple(seen.warnings))


def rebalance_files(paths: Sequence[str | os.PathLike | None] | None, output: str | os.PathLike | None,
                    encoding: str | None, by: str = T.LABEL, target: str | Mapping[str, Any] = "uniform",
                    mode: str = "sample", seed: int = 0, batch_rows: int = 262144) -> Result:
    """``rebalance_table`` in two streaming passes."""
    import pyarrow as pa

    from mlcycle import io
    from mlcycle.curate._stream import write_batches

    _check(by, mode, seed)
    tgt = load_target(target)
    io.check_binary_to_terminal(output, io.output_encoding(output, encoding))
    origin = io.display_name(paths[0]) if paths and len(paths) == 1 else ("<inputs>" if paths else "<stdin>")
    with reporting.collect() as seen:
        scan = io.scan(paths, batch_rows=batch_rows)
        view = S.sample_view(scan.batches(columns=[by, T.BBOX]), by, None, origin, scan.schema)
        keep, weights, counts, after, p = _plan(view, tgt, mode, seed)
        schema = scan.schema
        if weights is not None:
            schema = schema.append(pa.field(WEIGHT, pa.float64())) if WEIGHT not in schema.names else \
                schema.set(schema.get_field_index(WEIGHT), pa.field(WEIGHT, pa.float64()))
        write_batches((_apply(b, view, keep, weights) for b in scan.batches()), schema, output, encoding)
        summary = _summary(view, counts, after, p, keep, weights, tgt, mode, seed)
        summary["by"] = by
    return Result(None, summary, tuple(seen.warnings))
