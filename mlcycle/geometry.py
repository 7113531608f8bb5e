"""Box geometry shared by the commands (the COCO convention: [x, y, w, h], no +1).

evaluate's matcher has its own IoU kernels (all pairs of an image-class group at once,
pycocotools-exact, VOC's +1 pixel); this is the plain element-wise IoU that
schema-check (duplicate labels), mine-hard (overlaps) and diff use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np


def iou_xywh(a: "np.ndarray", b: "np.ndarray") -> "np.ndarray":
    """Element-wise IoU of two (n, 4) arrays of [x, y, w, h] boxes; 0 where the union is empty."""
    import numpy as np

    iw = np.minimum(a[:, 0] + a[:, 2], b[:, 0] + b[:, 2]) - np.maximum(a[:, 0], b[:, 0])
    ih = np.minimum(a[:, 1] + a[:, 3], b[:, 1] + b[:, 3]) - np.maximum(a[:, 1], b[:, 1])
    inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
    union = a[:, 2] * a[:, 3] + b[:, 2] * b[:, 3] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)
    return out
