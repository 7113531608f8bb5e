"""The subsets the metrics are reported for: object size ranges and slices by a column.

``size_ranges`` gives COCO's all/small/medium/large plus the caller's absolute and
relative (fraction of the image) area ranges; ``slice_specs`` splits the evaluation by the
values of columns (``by``): per sample when a sample's ground truth agrees on the value,
else per label; numbers with many values are binned by quantiles.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlcycle import table as T
from mlcycle.errors import MlcycleError, OptionError

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa

    from mlcycle.evaluation.coco import Range
    from mlcycle.evaluation.prepare import Options, Prepared

MAX_SLICE_VALUES = 50
NUMERIC_BINS = 4


def size_ranges(prep: "Prepared", opts: "Options") -> list["Range"]:
    """The size ranges (``coco.Range``) every metric is computed for, default ones first."""
    import numpy as np

    from mlcycle.evaluation import coco as C

    ranges = [C.area_range(n, lo, hi, prep.gt.area, prep.dt.area) for n, (lo, hi) in C.DEFAULT_AREAS.items()]
    for name, (lo, hi) in opts.area_ranges.items():
        ranges.append(C.area_range(name, lo, hi, prep.gt.area, prep.dt.area))
    if opts.rel_area_ranges:
        ia = prep.img_area
        g_ia, d_ia = ia[prep.gt.img], ia[prep.dt.img]
        if np.isnan(g_ia).any() or np.isnan(d_ia).any():
            bad = prep.samples[int(prep.gt.img[np.argmax(np.isnan(g_ia))])] if np.isnan(g_ia).any() \
                else prep.samples[int(prep.dt.img[np.argmax(np.isnan(d_ia))])]
            raise MlcycleError(f"relative area ranges need image sizes, but sample {bad!r} has no width/height",
                               hint="ingest with image sizes (width/height columns)")
        with np.errstate(divide="ignore", invalid="ignore"):
            g_rel, d_rel = prep.gt.area / g_ia, prep.dt.area / d_ia
        for name, (lo, hi) in opts.rel_area_ranges.items():
            ranges.append(C.area_range(name, lo, hi, g_rel, d_rel))
    return ranges


def slice_specs(table: "pa.Table", prep: "Prepared", columns) -> list[dict]:
    """For each column to slice by: its kind (sample/label) and its values with masks."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    specs = []
    s_codes, s_values = T.dictionary_codes(table.column(T.SAMPLE_ID))
    img_of_code = {v: i for i, v in enumerate(prep.samples)}
    code_img = np.array([img_of_code.get(v, -1) for v in s_values] + [-1], dtype=np.int64)
    row_img = code_img[s_codes]
    gt_rows_all = np.flatnonzero(pc.equal(table.column(T.SOURCE), prep.gt_source).to_numpy(zero_copy_only=False))
    for col in columns:
        if col not in table.column_names:
            raise OptionError("by", f"no column {col!r}", hint=f"columns: {', '.join(table.column_names)}")
        c = table.column(col)
        typ = c.type
        numeric = (pa.types.is_integer(typ) or pa.types.is_floating(typ)) and not pa.types.is_boolean(typ)
        if not (numeric or pa.types.is_string(typ) or pa.types.is_large_string(typ) or pa.types.is_boolean(typ)
                or pa.types.is_dictionary(typ)):
            raise OptionError("by", f"column {col!r} has type {typ}, which cannot be sliced",
                              hint="use a string, bool or number column")
        vals = c.to_numpy(zero_copy_only=False) if numeric else np.array(c.to_pylist(), dtype=object)
        valid = c.is_valid().to_numpy(zero_copy_only=False)
        labels = vals.astype(object)
        if numeric:
            fv = np.asarray(vals, dtype=np.float64)
            gv = fv[gt_rows_all][valid[gt_rows_all]]
            uniq = np.unique(gv[~np.isnan(gv)])
            if len(uniq) > 10:
                edges = np.unique(np.quantile(uniq if len(uniq) < 4 else gv[~np.isnan(gv)], np.linspace(0, 1, NUMERIC_BINS + 1)))
                b = np.clip(np.searchsorted(edges, fv, side="right") - 1, 0, len(edges) - 2)
                names = [f"[{_fmt(edges[i])}, {_fmt(edges[i + 1])}{']' if i == len(edges) - 2 else ')'}" for i in range(len(edges) - 1)]
                labels = np.array([names[i] for i in b], dtype=object)
            else:
                labels = np.array([_fmt(v) for v in fv], dtype=object)
        labels = np.where(valid, labels, None)
        # sample-level when the ground truth rows of each sample agree on the value
        g_img = row_img[gt_rows_all]
        g_lab = labels[gt_rows_all]
        g_ok = valid[gt_rows_all] & (g_img >= 0)
        per_img: dict[int, Any] = {}
        sample_level = True
        for i, v in zip(g_img[g_ok].tolist(), g_lab[g_ok].tolist()):
            if per_img.setdefault(i, v) != v:
                sample_level = False
                break
        if sample_level:
            # a sample row may hold the value while label rows are null (or the reverse)
            img_val = np.full(len(prep.samples), None, dtype=object)
            ok = valid & (row_img >= 0)
            img_val[row_img[ok]] = labels[ok]
            values = sorted({v for v in img_val.tolist() if v is not None}, key=str)
            if len(values) > MAX_SLICE_VALUES:
                raise OptionError("by", f"column {col!r} has {len(values)} values; at most {MAX_SLICE_VALUES} are sliced")
            specs.append({"column": col, "kind": "sample", "values": [
                (v, np.array([x == v for x in img_val.tolist()], dtype=bool)) for v in values]})
        else:
            g_vals = labels[prep.gt_rows]
            values = sorted({v for v in g_vals.tolist() if v is not None}, key=str)
            if len(values) > MAX_SLICE_VALUES:
                raise OptionError("by", f"column {col!r} has {len(values)} values; at most {MAX_SLICE_VALUES} are sliced")
            specs.append({"column": col, "kind": "label", "values": [
                (v, np.array([x == v for x in g_vals.tolist()], dtype=bool)) for v in values]})
    return specs


def _fmt(v: float) -> Any:
    v = float(v)
    if v == int(v) and abs(v) < 2 ** 53:
        return str(int(v))
    return f"{v:.4g}"
