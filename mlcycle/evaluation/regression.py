"""The metric-regression gate: this run's headline metrics against a stored metrics document.

``load_reference(path)`` reads a document ``evaluate`` wrote (its metrics JSON);
``compare(doc, reference, tolerance)`` lists, per metric both documents define, the old
and new value and whether the new one is worse by more than ``tolerance`` (absolute;
every metric is a fraction where higher is better). With several prediction sources, each
source is checked: against the reference's source of the same name when the reference
has several, else against the reference's one set of metrics.
"""

from __future__ import annotations

from pathlib import Path

from mlcycle.errors import MlcycleError, OptionError, printable


def parse(spec: str) -> tuple[str, float]:
    """``"metrics.json:0.01"`` -> ("metrics.json", 0.01); no ``:NUMBER`` suffix: tolerance 0."""
    path, tol = spec, 0.0
    if ":" in spec:
        head, tail = spec.rsplit(":", 1)
        try:
            tol = float(tail)
            path = head
        except ValueError:
            path, tol = spec, 0.0
    if not path:
        raise OptionError("fail_if_worse_than", "expected FILE or FILE:TOLERANCE")
    if not (0.0 <= tol <= 1.0):
        raise OptionError("fail_if_worse_than", f"tolerance {tol:g} must be in [0, 1] (metrics are fractions)")
    return path, tol


def load_reference(path: str | Path) -> dict:
    import orjson

    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise MlcycleError(f"{printable(str(p))}: no such reference metrics file",
                           hint="write one with evaluate's metrics output from a run you trust") from None
    except OSError as exc:
        raise MlcycleError(f"{printable(str(p))}: cannot read: {exc.strerror or exc}") from None
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise MlcycleError(f"{printable(str(p))}: not a JSON metrics document ({printable(str(exc))})") from None
    if not isinstance(doc, dict) or not (isinstance(doc.get("metrics"), dict) or isinstance(doc.get("sources"), dict)):
        raise MlcycleError(f"{printable(str(p))}: not an evaluate metrics document (no 'metrics' key)")
    return doc


def _flat(doc: dict) -> dict[str, float | None]:
    from mlcycle.evaluation.gate import flat_metrics

    out: dict[str, float | None] = {}
    for k, v in flat_metrics(doc).items():
        out[k] = v if isinstance(v, (int, float)) and v > -1 else None
    return out


def compare(doc: dict, reference: dict, tolerance: float = 0.0) -> dict:
    """``{"tolerance", "rows": [{source, metric, reference, value, delta, worse}], "failed": [messages]}``."""
    pairs: list[tuple[str | None, dict, dict]] = []
    ref_sources = reference.get("sources") if isinstance(reference.get("sources"), dict) else None
    if isinstance(doc.get("sources"), dict):
        for name, d in doc["sources"].items():
            if ref_sources is not None:
                if name in ref_sources:
                    pairs.append((name, d, ref_sources[name]))
            else:
                pairs.append((name, d, reference))
    else:
        ref = reference
        if ref_sources is not None:
            src = doc.get("params", {}).get("pred_source")
            ref = ref_sources.get(src) or next(iter(ref_sources.values()))
        pairs.append((None, doc, ref))
    rows, failed = [], []
    for name, d, r in pairs:
        new, old = _flat(d), _flat(r)
        for metric, ov in old.items():
            if metric not in new or ov is None:
                continue
            nv = new[metric]
            worse = nv is None or nv < ov - tolerance
            delta = None if nv is None else nv - ov
            rows.append({"source": name, "metric": metric, "reference": ov, "value": nv, "delta": delta,
                         "worse": worse})
            if worse:
                who = f"{name}: " if name else ""
                now = "undefined" if nv is None else f"{nv:.4f}"
                failed.append(f"{who}{metric} {ov:.4f} -> {now}" + ("" if delta is None else f" ({delta:+.4f})"))
    if not rows:
        raise MlcycleError("the reference metrics document has no metric in common with this run",
                           hint="compare runs of the same method (COCO, VOC or classification)")
    return {"tolerance": tolerance, "rows": rows, "failed": failed}
