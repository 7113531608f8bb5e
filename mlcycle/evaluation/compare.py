"""Several prediction sources evaluated against one ground truth, and compared.

``run_many(table, opts, sources)`` evaluates each source on its own (the single-source
document, unchanged, under ``sources[name]``), then compares every source with the
baseline (``opts.baseline``, default: the first source): headline metrics, per-class and
per-slice deltas, and — with ``opts.bootstrap`` resamples — paired bootstrap confidence
intervals over images for every headline metric and delta (``bootstrap.py``: one
matching per source, the same resampled images for every source). A delta is
*significant* when its interval excludes 0. docs/evaluate-compare.md documents the keys.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from mlcycle import table as T
from mlcycle.errors import MlcycleError, OptionError

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa

    from mlcycle.evaluation.prepare import Options

CONFIDENCE = 0.95
MAX_BOOTSTRAP = 100_000


def prediction_sources(table: "pa.Table", gt_source: str) -> list[str]:
    """The prediction sources of ``table`` in order of first appearance."""
    return [s for s in T.sources(table) if s != gt_source]


def check_options(opts: "Options", sources: list[str]) -> str:
    """The baseline source; ``OptionError`` for bad comparison options."""
    if opts.bootstrap < 0 or opts.bootstrap > MAX_BOOTSTRAP:
        raise OptionError("bootstrap", f"expected a number of resamples in 0..{MAX_BOOTSTRAP}, got {opts.bootstrap}")
    if opts.baseline is not None and opts.baseline not in sources:
        raise OptionError("baseline", f"no prediction source {opts.baseline!r}",
                          hint=f"prediction sources: {', '.join(sources)}")
    return opts.baseline if opts.baseline is not None else sources[0]


def _defined(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v is not None and v > -1


def run_many(table: "pa.Table", opts: "Options", sources: list[str]) -> tuple["pa.Table | None", dict]:
    from mlcycle.evaluation.gate import flat_metrics
    from mlcycle.evaluation.report import _version
    from mlcycle.evaluation.run import run

    baseline = check_options(opts, sources)
    docs: dict[str, dict] = {}
    outs: dict[str, "pa.Table | None"] = {}
    for s in sources:
        outs[s], docs[s] = run(table, replace(opts, pred_source=s, baseline=None, bootstrap=0))
    flat = {s: flat_metrics(d) for s, d in docs.items()}
    base = flat[baseline]
    deltas = {s: {m: flat[s][m] - v for m, v in base.items() if _defined(v) and _defined(flat[s].get(m))}
              for s in sources if s != baseline}
    comparison: dict = {
        "baseline": baseline,
        "metrics": flat,
        "deltas": deltas,
        "per_class": _per_class_deltas(docs, baseline),
        "slices": _slice_deltas(docs, baseline),
        "bootstrap": None,
        "significant": [],
    }
    if opts.bootstrap:
        comparison["bootstrap"] = _bootstrap(table, opts, sources, baseline, docs)
        comparison["significant"] = [
            {"source": s, "metric": m, **d} for s, per in comparison["bootstrap"]["deltas"].items()
            for m, d in per.items() if d["significant"]]
    first = docs[sources[0]]
    doc = {
        "mlcycle_version": _version(),
        "method": first.get("method"),
        "iou_type": first.get("iou_type"),
        "sources": docs,
        "comparison": comparison,
        "params": {"gt_source": opts.gt_source, "pred_sources": sources, "baseline": baseline,
                   "bootstrap": opts.bootstrap, "seed": opts.seed, "confidence": CONFIDENCE},
        "warnings": [f"{s}: {w}" for s, d in docs.items() for w in d.get("warnings", [])],
    }
    return _combine(outs, baseline, sources), doc


def _per_class_deltas(docs: dict, baseline: str) -> dict:
    base = docs[baseline].get("per_class")
    if not isinstance(base, list):
        return {}
    keys = ("AP", "AP50", "AP75", "precision", "recall", "f1")
    b_rows = {r["label"]: r for r in base}
    out = {}
    for s, d in docs.items():
        if s == baseline or not isinstance(d.get("per_class"), list):
            continue
        rows = []
        for r in d["per_class"]:
            b = b_rows.get(r["label"], {})
            row = {"label": r["label"]}
            for k in keys:
                if k in r:
                    row[k] = r[k]
                    row[f"delta_{k}"] = r[k] - b[k] if _defined(r[k]) and _defined(b.get(k)) else None
            rows.append(row)
        out[s] = rows
    return out


def _slice_deltas(docs: dict, baseline: str) -> dict:
    def key(x):
        return (x["column"], str(x["value"]))

    b_rows = {key(x): x for x in docs[baseline].get("slices", []) or []}
    out = {}
    for s, d in docs.items():
        if s == baseline or not d.get("slices"):
            continue
        rows = []
        for x in d["slices"]:
            bm = b_rows.get(key(x), {}).get("metrics", {})
            rows.append({"column": x["column"], "value": x["value"], "metrics": x["metrics"],
                         "deltas": {m: v - bm[m] for m, v in x["metrics"].items()
                                    if _defined(v) and _defined(bm.get(m))}})
        out[s] = rows
    return out


def _bootstrap(table, opts: "Options", sources: list[str], baseline: str, docs: dict) -> dict:
    import numpy as np

    from mlcycle.evaluation import bootstrap as BS
    from mlcycle.evaluation.prepare import has_boxes, prepare

    if opts.method != "coco" or not all(has_boxes(table, opts.gt_source, s) for s in sources):
        raise OptionError("bootstrap", "confidence intervals are computed for COCO detection metrics only",
                          hint=f"leave out {_mention('bootstrap')} for {opts.method} or classification")
    conts, samples = {}, None
    for s in sources:
        prep = prepare(table, replace(opts, pred_source=s), s)
        if samples is None:
            samples = prep.samples
        elif prep.samples != samples:  # pragma: no cover - the images come from the ground truth
            raise MlcycleError(f"{opts.origin}: source '{s}' is evaluated on other images than '{sources[0]}'")
        conts[s] = (prep, prep.classes)
    n = len(samples or [])
    if n == 0:
        raise MlcycleError(f"{opts.origin}: no images to resample")
    W = BS.weights(BS.resample_indices(n, opts.bootstrap, opts.seed), n)
    # each process matches its own sources (the matching is a per-source cost too)
    reps = dict(zip(sources, _in_processes(
        lambda s: BS.metrics(BS.contributions(conts[s][0], opts), W, per_class=True), sources)))
    names = [m for m in reps[baseline] if m != "class_AP"]
    intervals = {s: {m: BS.interval(np.where(reps[s][m] > -1, reps[s][m], np.nan), CONFIDENCE) for m in names}
                 for s in sources}
    deltas = {}
    per_class = {}
    classes = conts[baseline][1]
    for s in sources:
        if s == baseline:
            continue
        deltas[s] = {}
        for m in names:
            v, b = docs[s]["metrics"].get(m), docs[baseline]["metrics"].get(m)
            st = BS.delta_stats(reps[s][m], reps[baseline][m], CONFIDENCE)
            deltas[s][m] = {"delta": v - b if _defined(v) and _defined(b) else None, **st}
        rows = []
        pc_s = {r["label"]: r for r in docs[s].get("per_class", [])}
        pc_b = {r["label"]: r for r in docs[baseline].get("per_class", [])}
        for k, label in enumerate(classes):
            v, b = pc_s.get(label, {}).get("AP"), pc_b.get(label, {}).get("AP")
            st = BS.delta_stats(reps[s]["class_AP"][:, k], reps[baseline]["class_AP"][:, k], CONFIDENCE)
            rows.append({"label": label, "delta_AP": v - b if _defined(v) and _defined(b) else None, **st})
        per_class[s] = rows
    return {"resamples": opts.bootstrap, "seed": opts.seed, "confidence": CONFIDENCE, "unit": "image",
            "method": "percentile, paired (the same resampled images for every source)",
            "intervals": intervals, "deltas": deltas, "per_class_AP": per_class}


def single_bootstrap(prep, opts: "Options", doc: dict) -> dict:
    """Bootstrap intervals of one source's headline metrics (``doc["bootstrap"]``)."""
    from mlcycle.evaluation import bootstrap as BS

    n = len(prep.samples)
    if n == 0:
        raise MlcycleError(f"{opts.origin}: no images to resample")
    c = BS.contributions(prep, opts)
    W = BS.weights(BS.resample_indices(n, opts.bootstrap, opts.seed), n)
    reps = BS.metrics(c, W)
    import numpy as np

    return {"resamples": opts.bootstrap, "seed": opts.seed, "confidence": CONFIDENCE, "unit": "image",
            "method": "percentile",
            "intervals": {m: BS.interval(np.where(v > -1, v, np.nan), CONFIDENCE) for m, v in reps.items()}}


def _mention(name: str) -> str:
    from mlcycle.errors import mention

    return mention(name)


def _in_processes(fn, items) -> list:
    """``[fn(x) for x in items]`` with the later half in a forked process on Linux with a
    second core (the work is many small numpy steps that hold the GIL: threads would not
    run them in parallel). If the child fails, the parent computes its part (errors
    surface normally)."""
    from mlcycle.evaluation.match import _can_fork, _in_child

    items = list(items)
    if len(items) < 2 or not _can_fork():
        return [fn(x) for x in items]
    half = (len(items) + 1) // 2
    mine, theirs = items[:half], items[half:]
    _, pending = _in_child(lambda xs: [fn(x) for x in xs], theirs)
    out = [fn(x) for x in mine]
    rest = pending()
    if rest is None:
        rest = [fn(x) for x in theirs]
    return out + rest


def _combine(outs: dict, baseline: str, sources: list[str]) -> "pa.Table | None":
    """One output table: each prediction row with its own source's eval columns; the
    ground truth rows with the baseline's (whether the baseline found them)."""
    import pyarrow.compute as pc

    table = outs[baseline]
    if table is None:
        return None
    src = table.column(T.SOURCE)
    for s in sources:
        if s == baseline:
            continue
        other = outs[s]
        mask = pc.fill_null(pc.equal(src, s), False)
        for name in (T.EVAL, T.EVAL_ID, T.EVAL_IOU):
            i = table.column_names.index(name)
            col = pc.if_else(mask, other.column(name), table.column(name))
            table = table.set_column(i, name, col)
    return table
