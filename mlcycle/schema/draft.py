"""Draft a schema from existing data: ``infer(table)`` -> YAML text.

The draft is YAML text with comments saying what was observed. It is built so that the
data it was inferred from passes it (no errors; see the safety net at the end), while a
label that breaks a pattern the data always kept does not: an unknown class, a missing
attribute that every label of its class had, a value outside the observed range or set,
a box outside the image or smaller than any observed.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from mlcycle import table as T
from mlcycle.schema.checker import find_violations
from mlcycle.schema.context import Context
from mlcycle.schema.loader import loads
from mlcycle.schema.model import ERROR, NOT_ATTRIBUTES, WARNING, Schema, full_match_pattern
from mlcycle.schema.rules.dataset import (
    duplicate_pairs, rule_dataset_duplicate_label_id, rule_dataset_split_overlap,
)

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa

ENUM_MAX_VALUES = 20
_PATTERNS = ("[0-9]+", "[a-z]+", "[A-Z]+", "[A-Za-z]+", "[A-Za-z0-9_]+", "[A-Za-z0-9_.:/-]+")


def _y(value: Any) -> str:
    """One YAML value in flow style (quoted where YAML needs it)."""
    import yaml

    text = yaml.safe_dump(value, default_flow_style=True, width=1 << 30, allow_unicode=True).strip()
    if text.endswith("\n..."):
        text = text[:-4].strip()
    elif text.endswith("..."):
        text = text[:-3].strip()
    return text


def _num(x: float) -> Any:
    x = float(x)
    return int(x) if x.is_integer() else x


def _floor(x: float, digits: int = 2) -> Any:
    f = 10 ** digits
    return _num(math.floor(x * f) / f)


def _ceil(x: float, digits: int = 2) -> Any:
    f = 10 ** digits
    return _num(math.ceil(x * f) / f)


def infer(table: "pa.Table", origin: str = "<stdin>") -> str:
    """A draft schema (YAML text) for the data in ``table``; ``origin`` names the data in
    the header comment."""
    import pyarrow.compute as pc

    ctx = Context(table, Schema())
    L = ctx.gt_label
    counts = ctx.class_counts(L)
    counts = {k: v for k, v in counts.items() if v > 0}
    codes = ctx.samples()[0] if table.num_rows else np.zeros(0, np.int64)
    n_samples = len(np.unique(codes[ctx.gt])) if table.num_rows else 0
    out: list[str] = [
        f"# Drafted by `mlcycle schema-check --infer` from {origin}:",
        f"# {table.num_rows} rows, {int(L.sum())} ground-truth labels, {n_samples} samples.",
        "# Every rule below holds for that data. Review it, tighten it, and keep it in the",
        "# repository; docs/schema.md describes every key.",
        "version: 1",
    ]

    # -- classes
    cat = T.numpy_column(table, T.CATEGORY_ID, dtype=np.float64) if table.num_rows else np.zeros(0)
    supers = _supercategories(table)
    ids: dict[str, int] = {}
    if T.CATEGORY_ID in table.column_names:
        ok = True
        for name in counts:
            vals = np.unique(cat[L & ctx.in_classes([name])])
            vals = vals[~np.isnan(vals)]
            if vals.size == 1:
                ids[name] = int(vals[0])
            elif vals.size > 1:
                ok = False
        if not ok or len(set(ids.values())) != len(ids):
            ids = {}
    names = sorted(counts, key=lambda n: (ids.get(n, 1 << 62), n))
    if names:
        out.append("classes:")
        for name in names:
            out.append(f"  - name: {_y(name)}  # {counts[name]} label{'s' if counts[name] != 1 else ''}")
            if name in ids:
                out.append(f"    id: {ids[name]}")
            if supers.get(name):
                out.append(f"    supercategory: {_y(supers[name])}")
    else:
        out.append("# no ground-truth labels: no classes to describe")

    # -- attributes
    attr_lines, unsupported = _attributes(ctx, names)
    if attr_lines:
        out.append("attributes:")
        out.extend(attr_lines)

    # -- boxes
    out.extend(_boxes(ctx))

    # -- samples
    out.extend(_samples(ctx, codes))

    # -- dataset
    out.extend(_dataset(ctx, counts))

    # -- safety net: whatever the draft still reports as an error on this data becomes a warning
    severity: dict[str, tuple[str, str]] = {}
    if unsupported:
        severity["attr.unknown"] = ("off", f"columns of types the schema cannot describe: {', '.join(unsupported)}")
    text = "\n".join(out) + "\n"
    draft = loads(text + _severity_block(severity), "<draft>")
    result = find_violations(table, draft)
    if result.errors:
        v = result.violations.filter(pc.equal(result.violations.column("severity"), ERROR))
        for rule, cnt in zip(*np.unique(np.asarray(v.column("rule").to_pylist(), dtype=object), return_counts=True)):
            severity.setdefault(rule, (WARNING, f"{cnt} violations in the data it was drafted from"))

    return text + _severity_block(severity)


def _severity_block(severity: dict) -> str:
    if not severity:
        return ""
    lines = ["severity:"]
    for rule, (level, why) in severity.items():
        lines.append(f"  {rule}: {level}  # {why}")
    return "\n".join(lines) + "\n"


def _supercategories(table) -> dict[str, str]:
    meta = T.get_metadata(table)
    out = {}
    for fmt in meta.values():
        if isinstance(fmt, dict) and isinstance(fmt.get("categories"), list):
            for c in fmt["categories"]:
                if isinstance(c, dict) and isinstance(c.get("name"), str) and isinstance(c.get("supercategory"), str):
                    out[c["name"]] = c["supercategory"]
    return out


def _attributes(ctx: Context, names: list[str]) -> tuple[list[str], list[str]]:
    import pyarrow as pa
    import pyarrow.compute as pc

    table = ctx.table
    L = ctx.gt_label
    lines: list[str] = []
    unsupported: list[str] = []
    for col_name in T.attribute_columns(table):
        if col_name in NOT_ATTRIBUTES:
            continue
        col = table.column(col_name).combine_chunks()
        if pa.types.is_dictionary(col.type):
            col = col.cast(col.type.value_type)
        t = col.type
        valid = col.is_valid().to_numpy(zero_copy_only=False)
        if pa.types.is_floating(t):
            valid = valid & ~np.isnan(col.to_numpy(zero_copy_only=False))
        present = L & valid
        n_present = int(present.sum())
        if not n_present:
            continue
        body: list[str] = []
        note = ""
        if pa.types.is_boolean(t):
            typ = "bool"
        elif pa.types.is_integer(t) or pa.types.is_floating(t):
            v = pc.cast(col, pa.float64()).to_numpy(zero_copy_only=False)[present]
            typ = "int" if pa.types.is_integer(t) else "float"
            finite = v[np.isfinite(v)]
            if finite.size == v.size:
                lo, hi = _num(finite.min()), _num(finite.max())
                body += [f"    min: {_y(lo)}", f"    max: {_y(hi)}"]
                note = f"observed {lo} .. {hi}"
            else:
                note = "some values are infinite: no range"
        elif pa.types.is_string(t) or pa.types.is_large_string(t):
            text = col.cast(pa.string()).filter(pa.array(present))
            uniq = pc.value_counts(text)
            values = uniq.field("values").to_pylist()
            if len(values) <= ENUM_MAX_VALUES and (len(values) <= 3 or 2 * len(values) <= n_present):
                typ = "enum"
                body.append(f"    values: {_y(sorted(values))}")
                note = f"{len(values)} distinct values"
            else:
                typ = "string"
                for pat in _PATTERNS:
                    m = pc.match_substring_regex(text, full_match_pattern(pat))
                    if pc.all(m).as_py():
                        body.append(f"    pattern: {_y(pat)}")
                        break
                note = f"{len(values)} distinct values"
        else:
            unsupported.append(col_name)
            continue
        # which classes carry it, and on which it is never missing
        lab_present = ctx.class_counts(present)
        lab_all = ctx.class_counts(L)
        on = sorted(k for k, c in lab_present.items() if c > 0)
        always = sorted(k for k in on if lab_present[k] == lab_all.get(k, 0))
        head = [f"  {_y(col_name)}:  # {typ}; on {n_present} of {int(L.sum())} labels" + (f"; {note}" if note else ""),
                f"    type: {typ}"]
        if set(on) != set(names):
            head.append(f"    classes: {_y(on)}")
        if always and set(always) == set(on):
            head.append("    required: true")
        elif always:
            head.append(f"    required: {_y(always)}")
        lines += head + body
    return lines, unsupported


def _boxes(ctx: Context) -> list[str]:
    table = ctx.table
    L = ctx.gt_label
    if not L.any() or T.BBOX not in table.column_names:
        return ["# no ground-truth boxes: no box rules"]
    has_box = table.column(T.BBOX).is_valid().to_numpy(zero_copy_only=False)
    b = ctx.boxes
    with np.errstate(all="ignore"):
        good = L & has_box & np.isfinite(b).all(axis=1) & (b[:, 2] > 0) & (b[:, 3] > 0)
    lines = ["boxes:"]
    if (L & ~has_box).any():
        lines.append(f"  required: false  # {int((L & ~has_box).sum())} labels have no box")
    else:
        lines.append("  required: true  # every label has a box")
    if not good.any():
        return lines
    x, y, w, h = (b[good, i] for i in range(4))
    W = T.numpy_column(table, T.WIDTH, dtype=np.float64)[good]
    H = T.numpy_column(table, T.HEIGHT, dtype=np.float64)[good]
    if np.all(np.isfinite(W) & np.isfinite(H) & (W > 0) & (H > 0)):
        over = max(0.0, float(np.max(np.maximum.reduce([np.zeros_like(x), -x, -y, x + w - W, y + h - H])))) + 0.0
        lines.append(f"  inside_image: true  # largest overflow observed: {over:g} px")
        if over > 0:
            lines.append(f"  tolerance: {_y(_ceil(over))}")
        rw, rh = float(np.min(w / W)), float(np.min(h / H))
    else:
        lines.append("  # inside_image: true   (not drafted: some images have no width/height)")
        rw = rh = None
    lines.append(f"  min_width: {_y(_floor(float(w.min())))}  # smallest observed: {float(w.min()):g} x {float(h.min()):g} px")
    lines.append(f"  min_height: {_y(_floor(float(h.min())))}")
    if rw is not None:
        lines.append(f"  # smallest relative size observed: {rw:.4g} x {rh:.4g} of the image")
    with np.errstate(over="ignore", divide="ignore"):
        ratio = float(np.max(np.maximum(w / h, h / w)))
    if math.isfinite(ratio) and ratio < 1e12:
        lines.append(f"  max_aspect_ratio: {_y(max(1, _ceil(ratio)))}  # largest observed: {ratio:.4g}")
    else:
        lines.append(f"  # max_aspect_ratio: not drafted (largest observed: {ratio:.4g})")
    return lines


def _samples(ctx: Context, codes: np.ndarray) -> list[str]:
    import pyarrow.compute as pc

    table = ctx.table
    G = ctx.gt
    if not G.any():
        return []
    lines = ["samples:"]
    req = []
    for name in (T.SPLIT, T.WIDTH, T.HEIGHT):
        if name in table.column_names and table.column(name).filter(G).null_count == 0:
            req.append(name)
    if req:
        lines.append(f"  required_columns: {_y(req)}")
    if T.SPLIT in table.column_names:
        splits = sorted(x for x in pc.unique(table.column(T.SPLIT).filter(G)).to_pylist() if x is not None)
        if 0 < len(splits) <= ENUM_MAX_VALUES:
            lines.append("  allowed_values:")
            lines.append(f"    split: {_y(splits)}")
    per = np.bincount(codes[ctx.gt_label], minlength=int(codes.max()) + 1 if codes.size else 0)
    gt_samples = np.unique(codes[G])
    c = per[gt_samples]
    empty = int((c == 0).sum())
    lines.append(f"  allow_empty: {'true' if empty else 'false'}  # {empty} samples have no labels")
    if c.size:
        lines.append(f"  # labels per sample observed: {int(c.min())} .. {int(c.max())}")
    return lines


def _dataset(ctx: Context, counts: dict) -> list[str]:
    table = ctx.table
    lines = ["dataset:"]
    ids = T.numpy_column(table, T.LABEL_ID, dtype=np.float64) if T.LABEL_ID in table.column_names else None
    if ids is not None:
        s = Schema(unique_label_ids=True)
        dup = list(rule_dataset_duplicate_label_id(Context(table, s)))
        if dup:
            lines.append(f"  unique_label_ids: false  # {dup[0].rows.size} repeated label_ids observed")
        else:
            lines.append("  unique_label_ids: true")
    if T.SPLIT in table.column_names:
        s = Schema(split_overlap=True, unique_label_ids=False)
        found = list(rule_dataset_split_overlap(Context(table, s)))
        if found:
            lines.append(f"  split_overlap: false  # {found[0].rows.size} samples are in more than one split")
        else:
            lines.append("  split_overlap: true  # no image is in two splits")
    i, j, iou = duplicate_pairs(ctx, 0.0)
    top = float(iou.max()) if iou.size else 0.0
    thr = max(0.9, _ceil(top))
    if thr < 1:
        lines.append(f"  duplicate_iou: {_y(thr)}  # highest same-class IoU in one image: {top:.4g}")
    else:
        lines.append(f"  # duplicate_iou: not drafted (labels of one class overlap with IoU {top:.4g})")
    if counts:
        rare = min(counts, key=counts.get)
        common = max(counts, key=counts.get)
        lines.append(f"  # rarest class: {rare} ({counts[rare]} labels); most common: {common} ({counts[common]})")

    return lines
