"""The stats document: the plain-JSON dict ``describe`` returns (documented key by key
in docs/stats.md) — its top level, the class balance, and the side-by-side comparison
with Jensen–Shannon distances."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Sequence

from mlcycle.stats.codes import sort_key
from mlcycle.stats.sketches import json_number

if TYPE_CHECKING:  # pragma: no cover
    from mlcycle.stats.accumulate import Accumulator

STATS_VERSION = 1


def build(main: "Accumulator", *, rows: int, sources_seen: list, source_filter: Sequence[str],
          by: Sequence[str], groups: dict, compare: str | None, compares: dict,
          per_source: dict | None = None) -> dict[str, Any]:
    """The whole document: input, the main sections, one sub-document per group and the
    comparison, as plain JSON types."""
    doc: dict[str, Any] = {
        "stats_version": STATS_VERSION,
        "input": {"rows": rows, "rows_used": main.rows, "sources": sources_seen,
                  "source_filter": list(source_filter) or None},
    }
    doc.update(main.document())
    doc["groups"] = [
        dict(by=dict(zip(by, key)), **groups[key].document())
        for key in sorted(groups, key=lambda k: tuple(sort_key(v) for v in k))
    ]
    if compare:
        values = sorted(compares, key=sort_key)
        doc["compare"] = compare_document(compare, values, [compares[v].document() for v in values])
    else:
        doc["compare"] = None
    # ground truth and each prediction source apart (null with one source): what the
    # charts draw side by side, so predictions are never counted as labels
    if per_source and len(per_source) > 1:
        names = sorted(per_source, key=lambda v: (v != "gt", sort_key(v)))
        doc["by_source"] = [dict(source=v, kind="ground truth" if v == "gt" else "predictions",
                                 **per_source[v].document()) for v in names]
    else:
        doc["by_source"] = None
    return clean(doc)


def balance(per_class: list[dict]) -> dict[str, Any]:
    if not per_class:
        return {"classes": 0, "largest": None, "smallest": None, "imbalance_ratio": None,
                "entropy": None, "effective_classes": None, "normalized_entropy": None}
    counts = [d["labels"] for d in per_class]
    total = sum(counts)
    entropy = -sum((c / total) * math.log(c / total) for c in counts if c)
    big, small = per_class[0], per_class[-1]
    k = len(per_class)
    return {
        "classes": k,
        "largest": {"label": big["label"], "labels": big["labels"]},
        "smallest": {"label": small["label"], "labels": small["labels"]},
        "imbalance_ratio": big["labels"] / small["labels"],
        "entropy": entropy,
        "effective_classes": math.exp(entropy),
        "normalized_entropy": entropy / math.log(k) if k > 1 else None,
    }


def js_distance(p: Sequence[float], q: Sequence[float]) -> float | None:
    """Jensen–Shannon distance (square root of the divergence, base 2): 0 same, 1 disjoint."""
    sp, sq = sum(p), sum(q)
    if sp <= 0 or sq <= 0:
        return None
    div = 0.0
    for a, b in zip(p, q):
        a, b = a / sp, b / sq
        m = (a + b) / 2
        if a > 0:
            div += 0.5 * a * math.log2(a / m)
        if b > 0:
            div += 0.5 * b * math.log2(b / m)
    return math.sqrt(max(div, 0.0))


def distributions(doc: dict) -> dict[str, dict[Any, float]]:
    """Named distributions of a (sub)document, as {key: count}."""
    out = {
        "class_shares": {d["label"]: d["labels"] for d in doc["counts"]["per_class"]},
        "size_buckets": {d["bucket"]: d["boxes"] for d in doc["boxes"]["size_buckets"]},
        "relative_size": {(d["min"], d["max"]): d["boxes"] for d in doc["boxes"]["relative_size_histogram"]},
        "aspect_ratio": {(d["min"], d["max"]): d["boxes"] for d in doc["boxes"]["aspect_ratio_histogram"]},
        "labels_per_sample": {d["value"]: d["samples"] for d in doc["per_sample"]["labels"]["histogram"]},
    }
    for a in doc["attributes"]:
        if a["type"] == "bool":
            out[f"attribute:{a['name']}"] = {True: a["true"], False: a["false"], None: a["missing"]}
        elif a["type"] == "categorical" and a.get("values"):
            d = {v["value"]: v["count"] for v in a["values"]}
            d["(other)"] = a.get("other_values", 0)
            out[f"attribute:{a['name']}"] = d
    return out


DISTRIBUTIONS = ("class_shares", "size_buckets", "relative_size", "aspect_ratio", "labels_per_sample")


def compare_document(column: str, values: list, docs: list[dict]) -> dict[str, Any]:
    dists = [distributions(d) for d in docs]
    attr_names = list(dict.fromkeys(n[len("attribute:"):] for d in dists for n in d if n.startswith("attribute:")))

    def distance(i: int, j: int, name: str) -> float | None:
        p, q = dists[i].get(name, {}), dists[j].get(name, {})
        keys = list(dict.fromkeys(list(p) + list(q)))
        return js_distance([p.get(k, 0) for k in keys], [q.get(k, 0) for k in keys])

    distances = []
    for i in range(len(values)):
        for j in range(i + 1, len(values)):
            row: dict[str, Any] = {"a": values[i], "b": values[j]}
            for name in DISTRIBUTIONS:
                row[name] = distance(i, j, name)
            row["attributes"] = {n: distance(i, j, "attribute:" + n) for n in attr_names}
            distances.append(row)
    # the largest differences in shares across values: classes, size buckets, attribute values
    diffs = []
    for name in ("class_shares", "size_buckets") + tuple("attribute:" + n for n in attr_names):
        per = []
        for d in dists:
            counts = d.get(name, {})
            tot = sum(counts.values())
            per.append({k: (c / tot if tot else 0.0) for k, c in counts.items()})
        keys = list(dict.fromkeys(k for p in per for k in p))
        for k in keys:
            shares = [p.get(k, 0.0) for p in per]
            diffs.append({
                "statistic": {"class_shares": "class_share", "size_buckets": "size_bucket"}.get(name, "attribute"),
                "attribute": name[len("attribute:"):] if name.startswith("attribute:") else None,
                "name": k,
                "shares": [{"value": v, "share": s} for v, s in zip(values, shares)],
                "difference": max(shares) - min(shares),
            })
    diffs.sort(key=lambda d: -d["difference"])
    return {
        "column": column,
        "values": values,
        "per_value": [dict(value=v, **d) for v, d in zip(values, docs)],
        "distances": distances,
        "largest_differences": [d for d in diffs[:10] if d["difference"] > 0],
    }


def clean(value: Any) -> Any:
    """Plain JSON types: numpy scalars -> Python, NaN/inf -> None."""
    import numpy as np

    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return json_number(float(value))
    return value
