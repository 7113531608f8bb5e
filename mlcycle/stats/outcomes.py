"""The columns ``evaluate`` and ``mine-hard`` add: tp/fp/fn per class and object size
(``eval``), and the rows flagged as hard with their scores and reasons."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

from mlcycle import table as T
from mlcycle.stats.attributes import attr_kind
from mlcycle.stats.boxes import SIZE_BUCKETS, size_bucket
from mlcycle.stats.codes import CodeBook, Shared, float_column, grow, sort_key
from mlcycle.stats.sketches import Merger, Quantiles, group_sum

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import pyarrow as pa


class Evaluation:
    """The ``eval`` section: outcomes per class and per COCO size bucket."""

    def __init__(self, shared: Shared) -> None:
        import numpy as np

        self.shared = shared
        self.has_eval = False
        self.eval_class = np.zeros((0, 4), np.int64)  # tp (pred side), fp, fn, tp (gt side)
        self.eval_size = np.zeros((3, 4), np.int64)
        self.eval_unbucketed = np.zeros(4, np.int64)
        self.eval_ignored = 0

    def update(self, batch: "pa.Table", cls: "np.ndarray", src: "np.ndarray", ncls: int) -> None:
        import numpy as np

        self.has_eval = True
        kinds = CodeBook()
        for k in T.EVAL_VALUES:  # tp, fp, fn -> codes 0, 1, 2
            kinds.code(k)
        codes = kinds.encode(batch.column(T.EVAL))
        is_gt = src == self.shared.sources.code(T.GT_SOURCE)
        # column: 0 tp on predictions, 1 fp, 2 fn, 3 tp on ground truth (matched objects)
        col = np.full(len(codes), -1, np.int64)
        col[(codes == 0) & ~is_gt] = 0
        col[codes == 1] = 1
        col[codes == 2] = 2
        col[(codes == 0) & is_gt] = 3
        self.eval_ignored += int(((col < 0) & T.label_mask(batch)).sum())
        ok = col >= 0
        self.eval_class = grow(self.eval_class, ncls)
        self.eval_class += np.bincount(cls[ok] * 4 + col[ok], minlength=ncls * 4)[: ncls * 4].reshape(ncls, 4)
        boxes = T.bboxes(batch)
        area = self._eval_areas(batch, boxes)
        bucket = size_bucket(area)
        b_ok = ok & (bucket >= 0)
        self.eval_size += np.bincount(bucket[b_ok] * 4 + col[b_ok], minlength=12)[:12].reshape(3, 4)
        nb = ok & (bucket < 0)
        self.eval_unbucketed += np.bincount(col[nb], minlength=4)[:4]

    def merge(self, other: "Evaluation", maps) -> None:
        from mlcycle.stats.counts import remap_add

        self.has_eval = self.has_eval or other.has_eval
        self.eval_class = remap_add(self.eval_class, other.eval_class, maps.classes, len(self.shared.classes))
        self.eval_size = self.eval_size + other.eval_size
        self.eval_unbucketed = self.eval_unbucketed + other.eval_unbucketed
        self.eval_ignored += other.eval_ignored

    def _eval_areas(self, batch, boxes):
        import numpy as np

        area = boxes[:, 2] * boxes[:, 3]
        if T.AREA in batch.column_names:
            stated = float_column(batch, T.AREA)
            area = np.where(np.isfinite(stated), stated, area)
        return area

    def document(self, order: Sequence[int]) -> dict[str, Any]:
        classes = self.shared.classes.values
        ec = grow(self.eval_class, len(classes))

        def rec(row) -> dict[str, Any]:
            tp, fp, fn, matched = (int(v) for v in row)
            return {T.TP: tp, T.FP: fp, T.FN: fn, "matched_gt": matched,
                    "precision": tp / (tp + fp) if tp + fp else None,
                    "recall": matched / (matched + fn) if matched + fn else None}

        in_order = set(order)
        extra = sorted((c for c in range(len(classes)) if ec[c].any() and c not in in_order),
                       key=lambda c: sort_key(classes[c]))  # by name: codes differ between shards
        per_class_codes = list(order) + extra
        return {
            "total": rec(ec.sum(axis=0)),
            "per_class": [dict(label=classes[c], **rec(ec[c])) for c in per_class_codes if ec[c].any()],
            "per_size": [dict(bucket=b, **rec(self.eval_size[i])) for i, b in enumerate(SIZE_BUCKETS)]
                        + ([dict(bucket=None, **rec(self.eval_unbucketed))] if self.eval_unbucketed.any() else []),
            "ignored": self.eval_ignored,
        }


class Hard:
    """The ``hard`` section: rows mine-hard flagged, their scores and reasons."""

    def __init__(self, shared: Shared) -> None:
        self.shared = shared
        self.has_hard = False
        self.hard_rows = 0
        self.hard_score = Quantiles()
        self.hard_reasons = Merger(["reason"], ["n"])
        self.hard_class = Merger(["cls", "reason"], ["n"])

    def update(self, batch: "pa.Table", cls: "np.ndarray") -> None:
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        self.has_hard = True
        flagged = np.zeros(batch.num_rows, bool)
        if T.HARD_SCORE in batch.column_names:
            score = float_column(batch, T.HARD_SCORE)
            flagged |= np.isfinite(score)
            self.hard_score.add(score)
        if T.HARD_REASON in batch.column_names:
            reason = batch.column(T.HARD_REASON).combine_chunks()
            if attr_kind(reason.type) == "list_categorical":
                lengths = pc.fill_null(pc.list_value_length(reason), 0).to_numpy(zero_copy_only=False)
                flat = pc.list_flatten(reason)
                rcls = np.repeat(cls, lengths)
                flagged |= lengths > 0
            else:
                flat = reason.cast(pa.string()) if not pa.types.is_string(reason.type) else reason
                rcls = cls
                valid = flat.is_valid().to_numpy(zero_copy_only=False)
                flagged |= valid
                keep = pa.array(valid)
                flat = flat.filter(keep)
                rcls = rcls[valid]
            if len(flat):
                flat = flat.cast(pa.string())
                ones = pa.array(np.ones(len(flat), np.int64))
                self.hard_reasons.add(group_sum(pa.table({"reason": flat, "n": ones}), ["reason"], ["n"]))
                self.hard_class.add(group_sum(pa.table({"cls": pa.array(rcls.astype(np.int32)), "reason": flat, "n": ones}),
                                              ["cls", "reason"], ["n"]))
        self.hard_rows += int(flagged.sum())

    def merge(self, other: "Hard", maps) -> None:
        self.has_hard = self.has_hard or other.has_hard
        self.hard_rows += other.hard_rows
        self.hard_score.merge(other.hard_score)
        self.hard_reasons.merge(other.hard_reasons)
        self.hard_class.merge(other.hard_class, {"cls": maps.classes})

    def document(self) -> dict[str, Any]:
        classes = self.shared.classes.values
        rt = self.hard_reasons.result()
        reasons = []
        if rt is not None:
            tot = sum(rt.column("n").to_pylist())
            reasons = [{"reason": r, "count": n, "share": n / tot}
                       for r, n in zip(rt.column("reason").to_pylist(), rt.column("n").to_pylist())]
            reasons.sort(key=lambda d: (-d["count"], sort_key(d["reason"])))
        ct = self.hard_class.result()
        per_class: dict[int, dict] = {}
        if ct is not None:
            for c, r, n in zip(ct.column("cls").to_pylist(), ct.column("reason").to_pylist(), ct.column("n").to_pylist()):
                per_class.setdefault(c, {})[r] = n
        rows = [{"label": classes[c], "count": sum(v.values()),
                 "reasons": [{"reason": r, "count": n} for r, n in sorted(v.items(), key=lambda kv: (-kv[1], sort_key(kv[0])))]}
                for c, v in per_class.items()]
        rows.sort(key=lambda d: (-d["count"], sort_key(d["label"])))
        return {"rows": self.hard_rows, "score": self.hard_score.summary(), "reasons": reasons, "per_class": rows}
