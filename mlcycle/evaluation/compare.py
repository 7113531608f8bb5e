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

    baseline = check_options(opts, sources)
    if opts.bootstrap:
        _check_bootstrap(table, opts, sources)
        from mlcycle.evaluation.bootstrap import _kernel

        _kernel()   # loaded (or compiled, on a cold cache) once, before the fork: the child has it
        # each source on its own from start to end (evaluation, matching, resamples):
        # the later half of the sources in a forked process
        done = _in_processes(lambda s: _one_source(table, opts, s), sources, _eval_columns_only)
    else:
        done = [_one_source(table, opts, s) for s in sources]
    docs = {s: d.doc for s, d in zip(sources, done)}
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
        comparison["bootstrap"] = _bootstrap(opts, sources, baseline, docs, {s: d for s, d in zip(sources, done)})
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
    return _combine({s: d.out for s, d in zip(sources, done)}, baseline, sources), doc


class _Done:
    """One source evaluated: its output table (or just its eval columns, from a forked
    process), its document, and with a bootstrap its replicates, image count and classes."""

    def __init__(self, out, doc, reps=None, n_img=0, classes=()):
        self.out, self.doc, self.reps, self.n_img, self.classes = out, doc, reps, n_img, list(classes)


def _one_source(table, opts: "Options", s: str) -> _Done:
    """Source ``s`` evaluated (the single-source document and output table) and, with a
    bootstrap, its replicates. For the bootstrap (COCO detection, checked before) this
    is ``run``'s COCO branch, keeping the prepared arrays for the matching of the
    resamples instead of preparing the source twice; test_compare checks that the
    documents are the single-source ones."""
    from mlcycle.evaluation.run import run

    one = replace(opts, pred_source=s, baseline=None, bootstrap=0)
    if not opts.bootstrap:
        return _Done(*run(table, one))
    from mlcycle.evaluation import bootstrap as BS
    from mlcycle.evaluation import report
    from mlcycle.evaluation.prepare import prepare

    prep = prepare(table, one, s)
    if len(prep.gt) == 0 and not prep.counts.get("gt_crowd"):
        prep.warnings.append("the ground truth has no labels: every metric is -1 (undefined)")
    out, doc = report.coco(table, prep, one)
    if opts.tide:
        from mlcycle.evaluation import tide

        doc["tide"] = tide.compute(prep, one)
    n = len(prep.samples)
    if n == 0:
        raise MlcycleError(f"{opts.origin}: no images to resample")
    W = BS.weights(BS.resample_indices(n, opts.bootstrap, opts.seed), n)
    reps = BS.metrics(BS.contributions(prep, opts), W, per_class=True)
    return _Done(out, doc, reps, n, prep.classes)


def _eval_columns_only(done: "_Done") -> "_Done":
    """What a forked process sends back: the output table's eval columns only (the other
    columns are the input's, which the parent has)."""
    if done.out is not None:
        done.out = done.out.select([T.EVAL, T.EVAL_ID, T.EVAL_IOU])
    return done


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


def _check_bootstrap(table, opts: "Options", sources: list[str]) -> None:
    from mlcycle.evaluation.prepare import has_boxes

    if opts.method != "coco" or not all(has_boxes(table, opts.gt_source, s) for s in sources):
        raise OptionError("bootstrap", "confidence intervals are computed for COCO detection metrics only",
                          hint=f"leave out {_mention('bootstrap')} for {opts.method} or classification")


def _bootstrap(opts: "Options", sources: list[str], baseline: str, docs: dict, done: dict) -> dict:
    import numpy as np

    from mlcycle.evaluation import bootstrap as BS

    for s in sources:   # the same resampled images for every source
        if done[s].n_img != done[sources[0]].n_img:  # pragma: no cover - the images come from the ground truth
            raise MlcycleError(f"{opts.origin}: source '{s}' is evaluated on other images than '{sources[0]}'")
    reps = {s: done[s].reps for s in sources}
    names = [m for m in reps[baseline] if m != "class_AP"]
    intervals = {s: {m: BS.interval(np.where(reps[s][m] > -1, reps[s][m], np.nan), CONFIDENCE) for m in names}
                 for s in sources}
    deltas = {}
    per_class = {}
    classes = done[baseline].classes
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


def _in_processes(fn, items, to_parent=None) -> list:
    """``[fn(x) for x in items]`` with the later half in a forked process on Linux with a
    second core (the work is numpy steps that hold the GIL and a compiled kernel: threads
    would not run the numpy parts in parallel). ``to_parent`` trims what the child sends
    back. The child's warnings are reported by this process. If the child fails, this
    process computes its part (so that any error surfaces normally); if this process
    fails or is interrupted, the child is ended."""
    items = list(items)
    if len(items) < 2 or not _can_fork_here():
        return [fn(x) for x in items]
    half = (len(items) + 1) // 2
    mine, theirs = items[:half], items[half:]
    child = _Child(lambda: [(to_parent or (lambda v: v))(fn(x)) for x in theirs])
    try:
        out = [fn(x) for x in mine]
        rest = child.result()
    finally:
        child.end()
    if rest is None:
        rest = [fn(x) for x in theirs]
    return out + rest


def _can_fork_here() -> bool:
    from mlcycle.evaluation.match import _can_fork

    return _can_fork()


class _Recorder:
    """The reporter of a forked child: keeps warnings and notes for the parent."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, str]] = []

    def warn(self, message: str) -> None:
        self.messages.append(("warn", message))

    def info(self, message: str) -> None:
        self.messages.append(("info", message))

    def debug(self, message: str) -> None:
        pass

    def progress(self, description: str, total: float | None = None):
        from mlcycle.reporting import _no_progress

        return _no_progress(description, total)


class _Child:
    """``work()`` in a forked process; ``result()`` is its value (None if it failed)."""

    def __init__(self, work) -> None:
        import os
        import pickle

        self.pid = None
        try:
            r, w = os.pipe()
            pid = os.fork()
        except OSError:
            return
        if pid == 0:  # pragma: no cover - the child; coverage does not follow forks
            code = 1
            try:
                from mlcycle import reporting

                os.close(r)
                rec = _Recorder()
                with reporting.using(rec):
                    value = work()
                data = pickle.dumps((value, rec.messages), protocol=pickle.HIGHEST_PROTOCOL)
                with os.fdopen(w, "wb") as fh:
                    fh.write(data)
                code = 0
            except BaseException:  # noqa: BLE001 - the parent redoes the work and raises
                pass
            finally:
                os._exit(code)
        os.close(w)
        self.pid, self.fd = pid, r

    def result(self):
        import os
        import pickle

        if self.pid is None:
            return None
        with os.fdopen(self.fd, "rb") as fh:
            self.fd = None
            data = fh.read()
        _, status = os.waitpid(self.pid, 0)
        self.pid = None
        if status != 0 or not data:
            return None
        try:
            value, messages = pickle.loads(data)
        except Exception:  # noqa: BLE001
            return None
        from mlcycle import reporting

        for kind, message in messages:
            (reporting.warn if kind == "warn" else reporting.info)(message)
        return value

    def end(self) -> None:
        """Stop a child whose result is not wanted (this process failed)."""
        import os
        import signal

        if getattr(self, "fd", None) is not None:
            os.close(self.fd)
            self.fd = None
        if self.pid is not None:
            try:
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
            except OSError:
                pass
            self.pid = None


def _combine(outs: dict, baseline: str, sources: list[str]) -> "pa.Table | None":
    """One output table: each prediction row with its own source's eval columns; the
    ground truth rows with the baseline's (whether the baseline found them). ``outs``
    holds output tables, some of them only their eval columns (from a forked process)."""
    import pyarrow.compute as pc

    full = [outs[s] for s in sources if outs[s] is not None and T.SOURCE in outs[s].column_names]
    if not full:
        return None
    table = full[0]
    evals = (T.EVAL, T.EVAL_ID, T.EVAL_IOU)
    for name in evals:
        i = table.column_names.index(name)
        table = table.set_column(i, name, outs[baseline].column(name))
    src = table.column(T.SOURCE)
    for s in sources:
        if s == baseline:
            continue
        other = outs[s]
        mask = pc.fill_null(pc.equal(src, s), False)
        for name in evals:
            i = table.column_names.index(name)
            col = pc.if_else(mask, other.column(name), table.column(name))
            table = table.set_column(i, name, col)
    return table
