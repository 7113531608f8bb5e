"""Box statistics: COCO size buckets, width/height/area/aspect quantiles, size relative
to the image, where centres fall, boxes touching or crossing the border."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Sequence

from mlcycle import table as T
from mlcycle.stats.codes import Shared, add_counts, float_column, grow
from mlcycle.stats.sketches import Quantiles

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import pyarrow as pa

# COCO's object size buckets (pixels of area); half-open here: small < 32², medium < 96².
SMALL_AREA = 32.0 ** 2
LARGE_AREA = 96.0 ** 2
SIZE_BUCKETS = ("small", "medium", "large")
# sqrt(box area / image area)
RELATIVE_SIZE_EDGES = (0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0)
# width / height
ASPECT_EDGES = (0.0, 1 / 8, 1 / 4, 1 / 2, 1 / 1.5, 1.5, 2.0, 4.0, 8.0, math.inf)
GRID = 5
BORDER_TOLERANCE = 1.0  # pixels


class Boxes:
    """The ``boxes`` section of a (sub)document, updated batch by batch."""

    def __init__(self, shared: Shared) -> None:
        import numpy as np

        self.shared = shared
        self.boxes = 0
        self.no_box = 0
        self.size_buckets = np.zeros(3, np.int64)
        self.class_buckets = np.zeros((0, 3), np.int64)
        self.class_boxes = np.zeros(0, np.int64)
        self.rel_hist = np.zeros(len(RELATIVE_SIZE_EDGES) - 1, np.int64)
        self.aspect_hist = np.zeros(len(ASPECT_EDGES) - 1, np.int64)
        self.rel_quant = Quantiles()
        self.area = Quantiles()
        self.width = Quantiles()
        self.height = Quantiles()
        self.aspect = Quantiles()
        self.grid = np.zeros((GRID, GRID), np.int64)
        self.no_image_size = 0
        self.touching = 0
        self.outside = 0
        self.degenerate = 0
        self.area_from_column = 0

    def update(self, batch: "pa.Table", lab_idx: "np.ndarray", lab_cls: "np.ndarray", ncls: int) -> None:
        """Add the boxes of the label rows ``lab_idx`` (classes ``lab_cls``)."""
        import numpy as np

        boxes = T.bboxes(batch)
        boxes = boxes[lab_idx] if len(lab_idx) < len(boxes) else boxes
        has = np.all(np.isfinite(boxes), axis=1)
        self.no_box += int((~has).sum())
        boxes = boxes[has]
        bcls = lab_cls[has]
        idx = lab_idx[has]
        nb = len(boxes)
        if not nb:
            return
        self.boxes += nb
        x, y, w, h = boxes.T
        self.degenerate += int(((w <= 0) | (h <= 0)).sum())
        area = self._areas(batch, idx, w, h)
        bucket = size_bucket(area)
        self.size_buckets += np.bincount(bucket[bucket >= 0], minlength=3)[:3]
        self.class_buckets = grow(self.class_buckets, ncls)
        ok = bucket >= 0
        self.class_buckets += np.bincount(bcls[ok] * 3 + bucket[ok], minlength=ncls * 3)[: ncls * 3].reshape(ncls, 3)
        self.class_boxes = add_counts(self.class_boxes, bcls, ncls)
        self.area.add(area)
        self.width.add(w)
        self.height.add(h)
        with np.errstate(divide="ignore", invalid="ignore"):
            aspect = np.where(h > 0, w / np.where(h > 0, h, 1.0), np.nan)
        self.aspect.add(aspect)
        fin = np.isfinite(aspect)
        self.aspect_hist += histogram(aspect[fin], ASPECT_EDGES)
        W = float_column(batch, T.WIDTH)[idx]
        H = float_column(batch, T.HEIGHT)[idx]
        sized = np.isfinite(W) & np.isfinite(H) & (W > 0) & (H > 0)
        self.no_image_size += int((~sized).sum())
        if sized.any():
            x, y, w, h, W, H = x[sized], y[sized], w[sized], h[sized], W[sized], H[sized]
            rel = np.sqrt(np.clip(w * h, 0, None) / (W * H))
            self.rel_quant.add(rel)
            self.rel_hist += histogram(rel, RELATIVE_SIZE_EDGES)
            cx = (x + w / 2) / W
            cy = (y + h / 2) / H
            gx = np.clip(np.floor(cx * GRID), 0, GRID - 1).astype(np.int64)
            gy = np.clip(np.floor(cy * GRID), 0, GRID - 1).astype(np.int64)
            fin = np.isfinite(cx) & np.isfinite(cy)
            self.grid += np.bincount(gy[fin] * GRID + gx[fin], minlength=GRID * GRID).reshape(GRID, GRID)
            tol = BORDER_TOLERANCE
            self.touching += int(((x <= tol) | (y <= tol) | (x + w >= W - tol) | (y + h >= H - tol)).sum())
            self.outside += int(((x < 0) | (y < 0) | (x + w > W) | (y + h > H)).sum())

    def merge(self, other: "Boxes", maps) -> None:
        """Add another shard's boxes (class codes mapped through ``maps.classes``)."""
        from mlcycle.stats.counts import remap_add

        ncls = len(self.shared.classes)
        for name in ("boxes", "no_box", "no_image_size", "touching", "outside", "degenerate", "area_from_column"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for name in ("size_buckets", "rel_hist", "aspect_hist", "grid"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.class_buckets = remap_add(self.class_buckets, other.class_buckets, maps.classes, ncls)
        self.class_boxes = remap_add(self.class_boxes, other.class_boxes, maps.classes, ncls)
        for name in ("rel_quant", "area", "width", "height", "aspect"):
            getattr(self, name).merge(getattr(other, name))

    def _areas(self, batch: "pa.Table", idx: "np.ndarray", w: "np.ndarray", h: "np.ndarray") -> "np.ndarray":
        import numpy as np

        area = w * h
        if T.AREA in batch.column_names:
            stated = float_column(batch, T.AREA)[idx]
            have = np.isfinite(stated)
            self.area_from_column += int(have.sum())
            area = np.where(have, stated, area)
        return area

    def document(self, order: Sequence[int]) -> dict[str, Any]:
        nb = max(self.boxes, 1)
        ncls = len(self.shared.classes)
        cb = grow(self.class_buckets, ncls)
        cbox = grow(self.class_boxes, ncls)
        edges = [0.0, SMALL_AREA, LARGE_AREA, None]
        sized = int(self.rel_hist.sum())
        return {
            "count": self.boxes,
            "labels_without_box": self.no_box,
            "area_from_column": self.area_from_column,
            "area": self.area.summary(),
            "size_buckets": [
                {"bucket": b, "min_area": edges[i], "max_area": edges[i + 1],
                 "boxes": int(self.size_buckets[i]), "share": self.size_buckets[i] / nb if self.boxes else None}
                for i, b in enumerate(SIZE_BUCKETS)
            ],
            "per_class": [
                {"label": self.shared.classes.values[c], "boxes": int(cbox[c]),
                 "small": int(cb[c, 0]), "medium": int(cb[c, 1]), "large": int(cb[c, 2])}
                for c in order
            ],
            "width": self.width.summary(),
            "height": self.height.summary(),
            "aspect_ratio": self.aspect.summary(),
            "aspect_ratio_histogram": histogram_document(ASPECT_EDGES, self.aspect_hist),
            "relative_size": self.rel_quant.summary(),
            "relative_size_histogram": histogram_document(RELATIVE_SIZE_EDGES, self.rel_hist),
            "without_image_size": self.no_image_size,
            "centre_grid": {"size": GRID, "counts": self.grid.tolist()},
            "touching_border": self.touching,
            "touching_border_share": self.touching / sized if sized else None,
            "border_tolerance": BORDER_TOLERANCE,
            "outside_image": self.outside,
            "degenerate": self.degenerate,
        }


def size_bucket(area: "np.ndarray") -> "np.ndarray":
    import numpy as np

    out = np.full(len(area), -1, np.int64)
    fin = np.isfinite(area)
    out[fin] = np.where(area[fin] < SMALL_AREA, 0, np.where(area[fin] < LARGE_AREA, 1, 2))
    return out


def histogram(values: "np.ndarray", edges: Sequence[float]) -> "np.ndarray":
    """Counts per [edge_i, edge_i+1); values above the last edge go into the last bin."""
    import numpy as np

    inner = np.asarray(edges[1:-1], dtype=np.float64)
    idx = np.searchsorted(inner, values, side="right")
    return np.bincount(idx, minlength=len(edges) - 1)[: len(edges) - 1]


def histogram_document(edges, counts) -> list[dict[str, Any]]:
    """Bins [min, max); the last bin is open-ended (max null)."""
    total = int(counts.sum())
    last = len(counts) - 1
    return [{"min": float(edges[i]), "max": None if i == last else float(edges[i + 1]),
             "boxes": int(counts[i]), "share": counts[i] / total if total else None}
            for i in range(len(counts))]
