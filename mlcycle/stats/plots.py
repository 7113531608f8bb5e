"""PNG charts of a stats document (matplotlib, an optional extra).

``write(document, directory)`` draws from the document ``describe`` returns, never from
the table. When the table holds several sources (the output of ``evaluate``: ground truth
and predictions), every chart draws each source apart (``by_source``), ground truth
first, so predictions are never counted as labels. matplotlib (``pip install 'mlcycle[plot]'``) is imported only when charts are
drawn; without it, ``require_matplotlib`` fails with a hint.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from mlcycle.errors import MlcycleError

PLOT_HINT = "install the plotting extra: pip install 'mlcycle[plot]' (or pip install matplotlib)"


def available() -> bool:
    """Whether matplotlib can be imported."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def require_matplotlib() -> None:
    """Fail early, with a hint, when matplotlib cannot be imported."""
    if not available():
        raise MlcycleError("charts need matplotlib, which is not installed", hint=PLOT_HINT)


def write(doc: dict[str, Any], directory: str | os.PathLike) -> list[Path]:
    """Write PNG charts of a stats document into ``directory``; returns the files written."""
    require_matplotlib()
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    folder = Path(directory)
    if folder.exists() and not folder.is_dir():
        raise MlcycleError(f"{folder}: exists and is not a folder", hint="charts are written into a folder: give a folder name")
    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    if doc.get("by_source"):
        charts = [("classes.png", _sources_classes), ("sizes.png", _sources_sizes),
                  ("aspect_ratio.png", _sources_aspect), ("centres.png", _sources_centres),
                  ("labels_per_sample.png", _sources_per_sample)]
    else:
        charts = [("classes.png", _plot_classes), ("sizes.png", _plot_sizes), ("aspect_ratio.png", _plot_aspect),
                  ("centres.png", _plot_centres), ("labels_per_sample.png", _plot_per_sample)]
    if doc.get("compare"):
        charts.append(("compare.png", _plot_compare))
    with plt.rc_context({"figure.dpi": 110, "font.size": 9, "axes.spines.top": False, "axes.spines.right": False}):
        for name, fn in charts:
            fig = fn(doc, plt)
            if fig is None:
                continue
            written.append(_save(fig, folder / name))
            plt.close(fig)
    return written


def _save(fig, path: Path) -> Path:
    from mlcycle.io import atomic_output

    fig.tight_layout()
    with atomic_output(path, "wb") as fh:
        fig.savefig(fh, format="png")
    return path


def _label(value: Any) -> str:
    return "(none)" if value is None else str(value)


def _plot_classes(doc, plt):
    per_class = doc["counts"]["per_class"][:40]
    if not per_class:
        return None
    names = [_label(d["label"]) for d in per_class][::-1]
    counts = [d["labels"] for d in per_class][::-1]
    fig, ax = plt.subplots(figsize=(7, 0.6 + 0.28 * len(names)))
    ax.barh(names, counts, color="#4c78a8")
    for y, n in enumerate(counts):
        ax.text(n, y, f" {n:,}", va="center", fontsize=8)
    more = len(doc["counts"]["per_class"]) - len(per_class)
    ax.set_title(f"Labels per class ({doc['counts']['labels']:,} labels"
                 + (f"; {more} smaller classes not shown" if more > 0 else "") + ")")
    ax.set_xlabel("labels")
    ax.margins(x=0.12)
    return fig


def _plot_sizes(doc, plt):
    b = doc["boxes"]
    if not b["count"]:
        return None
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.6), gridspec_kw={"width_ratios": [1, 2]})
    names = [d["bucket"] for d in b["size_buckets"]]
    counts = [d["boxes"] for d in b["size_buckets"]]
    a1.bar(names, counts, color=["#e45756", "#f58518", "#54a24b"])
    a1.set_title("COCO size buckets (area < 32², < 96², ≥ 96²)")
    a1.set_ylabel("boxes")
    hist = b["relative_size_histogram"]
    labels = [f"{d['min']:g}–{d['max']:g}" if d["max"] is not None else f"≥{d['min']:g}" for d in hist]
    a2.bar(labels, [d["boxes"] for d in hist], color="#4c78a8")
    a2.set_title("Relative size √(box area / image area)")
    a2.set_ylabel("boxes")
    a2.tick_params(axis="x", labelrotation=30)
    return fig


def _plot_aspect(doc, plt):
    b = doc["boxes"]
    if not b["count"]:
        return None
    hist = b["aspect_ratio_histogram"]
    labels = [f"{d['min']:.2g}–{d['max']:.2g}" if d["max"] is not None else f"≥{d['min']:.2g}" for d in hist]
    fig, ax = plt.subplots(figsize=(7, 3.4))
    ax.bar(labels, [d["boxes"] for d in hist], color="#72b7b2")
    q = b["aspect_ratio"]
    ax.set_title(f"Aspect ratio width / height (median {q['p50']:.2f})" if q["p50"] is not None else "Aspect ratio")
    ax.set_ylabel("boxes")
    ax.tick_params(axis="x", labelrotation=30)
    return fig


def _plot_centres(doc, plt):
    grid = doc["boxes"]["centre_grid"]
    counts = grid["counts"]
    if not any(any(r) for r in counts):
        return None
    fig, ax = plt.subplots(figsize=(4.6, 4))
    im = ax.imshow(counts, cmap="viridis", extent=(0, 1, 1, 0))
    n = grid["size"]
    peak = max(max(r) for r in counts) or 1
    for i, row in enumerate(counts):
        for j, v in enumerate(row):
            ax.text((j + 0.5) / n, (i + 0.5) / n, f"{v:,}", ha="center", va="center", fontsize=8,
                    color="white" if v < peak * 0.6 else "black")
    ax.set_title("Where box centres fall in the image")
    ax.set_xlabel("x / image width")
    ax.set_ylabel("y / image height")
    fig.colorbar(im, ax=ax, label="boxes")
    return fig


def _plot_per_sample(doc, plt):
    dist = doc["per_sample"]["labels"]
    if not dist["samples"]:
        return None
    fig, ax = plt.subplots(figsize=(7, 3.4))
    ax.bar([h["value"] for h in dist["histogram"]], [h["samples"] for h in dist["histogram"]], color="#eeca3b")
    ax.set_title(f"Labels per sample (mean {dist['mean']:.2f}, max {dist['max']})")
    ax.set_xlabel("labels in the sample")
    ax.set_ylabel("samples")
    return fig


def _plot_compare(doc, plt):
    cmp = doc["compare"]
    values, docs = cmp["values"], cmp["per_value"]
    shares: dict = {}
    for j, d in enumerate(docs):
        for c in d["counts"]["per_class"]:
            shares.setdefault(c["label"], [0.0] * len(docs))[j] = c["share"]
    names = sorted(shares, key=lambda k: -max(shares[k]))[:25]
    if not names:
        return None
    import numpy as np

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 0.8 + 0.3 * max(len(names), 10)),
                                 gridspec_kw={"width_ratios": [2, 1]})
    y = np.arange(len(names))
    h = 0.8 / len(values)
    for j, v in enumerate(values):
        a1.barh(y + j * h, [shares[k][j] for k in names], height=h, label=_label(v))
    a1.set_yticks(y + h * (len(values) - 1) / 2, [_label(k) for k in names])
    a1.invert_yaxis()
    a1.set_xlabel("share of labels")
    a1.set_title(f"Class shares by {cmp['column']}")
    a1.legend(fontsize=8)
    buckets = ["small", "medium", "large"]
    x = np.arange(3)
    for j, (v, d) in enumerate(zip(values, docs)):
        a2.bar(x + j * h, [s["share"] or 0 for s in d["boxes"]["size_buckets"]], width=h, label=_label(v))
    a2.set_xticks(x + h * (len(values) - 1) / 2, buckets)
    a2.set_ylabel("share of boxes")
    a2.set_title(f"Size buckets by {cmp['column']}")
    a2.legend(fontsize=8)
    return fig


# --------------------------------------------------------------------------- one chart, every source apart

def _source_name(d: dict) -> str:
    return f"{_label(d['source'])} ({d['kind']})"


def _grouped(ax, names: list, series: list[tuple[str, list]], horizontal: bool = False) -> None:
    """Bars of several sources side by side for each name."""
    import numpy as np

    x = np.arange(len(names))
    h = 0.8 / max(len(series), 1)
    for j, (label, values) in enumerate(series):
        if horizontal:
            ax.barh(x + j * h, values, height=h, label=label)
        else:
            ax.bar(x + j * h, values, width=h, label=label)
    ticks = x + h * (len(series) - 1) / 2
    if horizontal:
        ax.set_yticks(ticks, [_label(n) for n in names])
        ax.invert_yaxis()
        ax.margins(x=0.3)
    else:
        ax.set_xticks(ticks, [_label(n) for n in names])
    ax.legend(fontsize=8)


def _sources_classes(doc, plt):
    srcs = doc["by_source"]
    totals: dict = {}
    for d in srcs:
        for c in d["counts"]["per_class"]:
            totals[c["label"]] = totals.get(c["label"], 0) + (c["labels"] if d["source"] == "gt" else 0)
    for d in srcs:  # classes only predicted come after the ground truth's, by their counts
        for c in d["counts"]["per_class"]:
            totals.setdefault(c["label"], 0)
    gt_first = sorted(totals, key=lambda k: (-totals[k], -sum(c["labels"] for d in srcs for c in d["counts"]["per_class"]
                                                                if c["label"] == k), str(k)))
    names = gt_first[:40]
    if not names:
        return None
    series = [(_source_name(d) + f": {d['counts']['labels']:,}",
               [next((c["labels"] for c in d["counts"]["per_class"] if c["label"] == k), 0) for k in names]) for d in srcs]
    fig, ax = plt.subplots(figsize=(8, 0.8 + 0.22 * len(names) * len(srcs)))
    _grouped(ax, names, series, horizontal=True)
    more = len(gt_first) - len(names)
    ax.set_title("Labels per class, ground truth and each prediction source apart"
                 + (f" ({more} smaller classes not shown)" if more > 0 else ""))
    ax.set_xlabel("labels (ground truth) / detections (predictions)")
    return fig


def _sources_sizes(doc, plt):
    srcs = [d for d in doc["by_source"] if d["boxes"]["count"]]
    if not srcs:
        return None
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 3.8), gridspec_kw={"width_ratios": [1, 2]})
    buckets = [b["bucket"] for b in srcs[0]["boxes"]["size_buckets"]]
    _grouped(a1, buckets, [(_source_name(d), [b["share"] or 0 for b in d["boxes"]["size_buckets"]]) for d in srcs])
    a1.set_title("COCO size buckets, share of each source's boxes")
    a1.set_ylabel("share of boxes")
    hist = srcs[0]["boxes"]["relative_size_histogram"]
    labels = [f"{d['min']:g}–{d['max']:g}" if d["max"] is not None else f"≥{d['min']:g}" for d in hist]
    series = []
    for d in srcs:
        tot = sum(h["boxes"] for h in d["boxes"]["relative_size_histogram"]) or 1
        series.append((_source_name(d), [h["boxes"] / tot for h in d["boxes"]["relative_size_histogram"]]))
    _grouped(a2, labels, series)
    a2.set_title("Relative size √(box area / image area), share of each source's boxes")
    a2.tick_params(axis="x", labelrotation=30)
    return fig


def _sources_aspect(doc, plt):
    srcs = [d for d in doc["by_source"] if d["boxes"]["count"]]
    if not srcs:
        return None
    hist = srcs[0]["boxes"]["aspect_ratio_histogram"]
    labels = [f"{d['min']:.2g}–{d['max']:.2g}" if d["max"] is not None else f"≥{d['min']:.2g}" for d in hist]
    series = []
    for d in srcs:
        tot = sum(h["boxes"] for h in d["boxes"]["aspect_ratio_histogram"]) or 1
        series.append((_source_name(d), [h["boxes"] / tot for h in d["boxes"]["aspect_ratio_histogram"]]))
    fig, ax = plt.subplots(figsize=(8, 3.6))
    _grouped(ax, labels, series)
    ax.set_title("Aspect ratio width / height, share of each source's boxes")
    ax.set_ylabel("share of boxes")
    ax.tick_params(axis="x", labelrotation=30)
    return fig


def _sources_centres(doc, plt):
    srcs = [d for d in doc["by_source"] if any(any(r) for r in d["boxes"]["centre_grid"]["counts"])]
    if not srcs:
        return None
    fig, axes = plt.subplots(1, len(srcs), figsize=(4.2 * len(srcs), 4), squeeze=False)
    for ax, d in zip(axes[0], srcs):
        im = ax.imshow(d["boxes"]["centre_grid"]["counts"], cmap="viridis", extent=(0, 1, 1, 0))
        ax.set_title(f"Box centres: {_source_name(d)}")
        ax.set_xlabel("x / image width")
        ax.set_ylabel("y / image height")
        fig.colorbar(im, ax=ax, label="boxes", shrink=0.8)
    return fig


def _sources_per_sample(doc, plt):
    srcs = [d for d in doc["by_source"] if d["per_sample"]["labels"]["samples"]]
    if not srcs:
        return None
    values = sorted({h["value"] for d in srcs for h in d["per_sample"]["labels"]["histogram"]})
    series = [(_source_name(d) + f", mean {d['per_sample']['labels']['mean']:.2f}",
               [next((h["samples"] for h in d["per_sample"]["labels"]["histogram"] if h["value"] == v), 0) for v in values])
              for d in srcs]
    fig, ax = plt.subplots(figsize=(8, 3.6))
    _grouped(ax, values, series)
    ax.set_title("Labels per sample, each source apart")
    ax.set_xlabel("labels of the source in the sample")
    ax.set_ylabel("samples")
    return fig
