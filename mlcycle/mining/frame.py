"""The evaluated table as the scorers see it: numpy arrays of samples, sources, classes,
boxes, scores and the ``eval`` outcome, and the pairs of rows that share a sample.

Library code: never prints, knows nothing of the command line.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterator

from mlcycle import table as T
from mlcycle._pairs import pair_chunks
from mlcycle.errors import MlcycleError, OptionError

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import pyarrow as pa

    from mlcycle.mining.options import MineOptions

# pairs of rows handled at once: memory stays bounded however crowded a sample is
PAIR_CHUNK = 1 << 20

# names that stand for "no file" in messages (the hint then shows placeholder files)
_NO_FILE = ("<stdin>", "<table>", "-", "")


def _equal(col, value: str) -> "np.ndarray":
    import pyarrow.compute as pc

    return pc.fill_null(pc.equal(col, value), False).to_numpy(zero_copy_only=False).astype(bool)


def shell_name(origin: str) -> str:
    """``origin`` as it would be typed in a shell (quoted when needed)."""
    if origin in _NO_FILE:
        return "gt.parquet preds.parquet"
    return origin if all(c.isalnum() or c in "._-/+,=:" for c in origin) else "'" + origin.replace("'", "'\\''") + "'"


class Frame:
    """The numpy view of an evaluated table that the scorers share."""

    def __init__(self, table: "pa.Table", opts: "MineOptions", need_eval: bool):
        import numpy as np

        self.n = n = table.num_rows
        cols = table.column_names
        if need_eval and T.EVAL not in cols:
            raise MlcycleError(
                f"{opts.origin}: no '{T.EVAL}' column: mine-hard needs the output of mlcycle evaluate",
                hint=f"run evaluate first: mlcycle evaluate {shell_name(opts.origin)} | mlcycle mine-hard",
            )
        source = table.column(T.SOURCE)
        self.is_gt = _equal(source, T.GT_SOURCE)
        names = [s for s in T.sources(table) if s != T.GT_SOURCE]
        if opts.source is not None:
            if opts.source not in names:
                raise OptionError("source", f"no rows of source '{opts.source}' in {opts.origin}",
                                  hint="sources present: " + (", ".join(sorted(names)) or "none but gt"))
            pred_source = opts.source
        elif len(names) == 1:
            pred_source = names[0]
        elif not names:
            raise MlcycleError(f"{opts.origin}: no prediction rows (only source '{T.GT_SOURCE}')",
                               hint="mine-hard compares predictions with ground truth: run mlcycle evaluate GT PREDICTIONS | mlcycle mine-hard")
        else:
            raise OptionError("source", f"{opts.origin}: several prediction sources ({', '.join(sorted(names))})",
                              hint="name the one to compare with gt")
        self.pred_source = pred_source
        self.is_pred = _equal(source, pred_source)
        self.boxes = T.bboxes(table)
        self.has_box = ~np.isnan(self.boxes).any(axis=1)
        self.sample, self.sample_names = T.dictionary_codes(table.column(T.SAMPLE_ID))
        self.label, self.label_names = T.dictionary_codes(T.column_or_null(table, T.LABEL))
        self.score = T.numpy_column(table, T.SCORE).astype(np.float64) if n else np.zeros(0)
        self.crowd = (T.numpy_column(table, T.ISCROWD, fill=False).astype(bool)
                      if T.ISCROWD in cols else np.zeros(n, bool))
        if T.EVAL in cols:
            ev = table.column(T.EVAL)
            self.tp, self.fp, self.fn = _equal(ev, T.TP), _equal(ev, T.FP), _equal(ev, T.FN)
            # evaluate ignores (eval null) predictions of a class the ground truth never
            # uses, as COCO does; for mining they are unmatched predictions like any other
            gt_classes = np.unique(self.label[self.is_gt & (self.label >= 0)])
            foreign = self.is_pred & (self.label >= 0) & ~np.isin(self.label, gt_classes) & ~ev.is_valid().to_numpy(zero_copy_only=False)
            self.fp = self.fp | foreign
        else:
            self.tp = self.fp = self.fn = np.zeros(n, bool)
        self.gt_rows = np.flatnonzero(self.is_gt & self.has_box)
        self.pred_rows = np.flatnonzero(self.is_pred & self.has_box)
        bad = self.is_pred & self.has_box & np.isnan(self.score)
        if bad.any():
            row = int(np.argmax(bad))
            raise MlcycleError(f"{opts.origin}: row {row + 1}: prediction without a score",
                               hint="every prediction row needs 'score' (its confidence)")


def same_sample_pairs(sample: "np.ndarray", idx_a: "np.ndarray", idx_b: "np.ndarray",
                      chunk: int = PAIR_CHUNK) -> Iterator[tuple["np.ndarray", "np.ndarray"]]:
    """Every (a, b) pair of row indices whose rows belong to the same sample, as arrays
    of about ``chunk`` pairs at a time (``mlcycle._pairs.pair_chunks``).

    ``idx_b`` is sorted by sample once; each ``a`` row finds its sample's block with
    ``searchsorted``; the pairs of one sample are that sample's IoU matrix, flattened.
    """
    import numpy as np

    if len(idx_a) == 0 or len(idx_b) == 0:
        return
    b_sorted = idx_b[np.argsort(sample[idx_b], kind="stable")]
    sb = sample[b_sorted]
    sa = sample[idx_a]
    start = np.searchsorted(sb, sa, "left")
    count = np.searchsorted(sb, sa, "right") - start
    for row, offset in pair_chunks(count, chunk):
        yield idx_a[row], b_sorted[start[row] + offset]


def segmax_into(out: "np.ndarray", keys: "np.ndarray", values: "np.ndarray", mask: "np.ndarray") -> None:
    """out[k] = max(out[k], values[i] for i with keys[i] == k and mask[i]) — a per-row
    maximum accumulated chunk by chunk (``out`` starts at the value meaning "none")."""
    import numpy as np

    if mask.any():
        np.maximum.at(out, keys[mask], values[mask])
