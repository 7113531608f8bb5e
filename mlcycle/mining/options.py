"""The options of mining: every threshold of the rules, the ranking, the pool search.

Both option sets are frozen and checked when they are made, so a bad value fails before
any table is read. ``OptionError.option`` names the parameter (``"low_iou"``); the CLI
shows it as the flag that sets it.

Library code: never prints, knows nothing of the command line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from mlcycle.errors import OptionError
from mlcycle.mining.reasons import REASONS

METHODS = ("rules", "objectlab")
PER = ("label", "sample")
AGGREGATES = ("max", "noisy-or")
# The default cut-off (``top="auto"``, what ``mine()`` and the command line use when neither
# a count nor ``min_score`` is given): the best-scored 5% of the
# counted ground-truth labels (per sample: of the samples), at least 10. Why a fraction and
# not a score: the scores follow the detector's confidences, so a fixed score threshold
# keeps 90% of the labels with a detector run at a low confidence threshold (202,905 of
# 214,313 on a real set, 144k of them `background`) and almost none with a cautious one;
# a fraction gives a work list a review pass can finish, the same size for any model.
# Why 5%: measured label-error rates of public datasets are a few percent (Northcutt et
# al., NeurIPS 2021: 3.3% on average over ten test sets), so 5% has room for the real
# mistakes while the ranking puts them first. docs/mine-hard.md says the same.
AUTO = "auto"
DEFAULT_FRACTION = 0.05
DEFAULT_MINIMUM = 10


def default_top(base: int) -> int:
    """How many labels (or samples) the default cut-off keeps out of ``base``."""
    import math

    return max(DEFAULT_MINIMUM, math.ceil(DEFAULT_FRACTION * base))


_UNIT = ("iou", "low_iou", "conf_missing", "conf_wrong", "conf_spurious", "conf_low", "model_weight", "miss_weight")


@dataclass(frozen=True)
class MineOptions:
    """How labels are scored and selected (docs/mine-hard.md); ``origin`` names the
    input in messages."""

    method: str = "rules"
    per: str = "label"
    top: int | str | None = None  # a count; "auto": the default cut-off; None: everything flagged
    min_score: float | None = None
    reasons: Sequence[str] | None = None
    source: str | None = None
    iou: float = 0.5
    low_iou: float = 0.1
    conf_missing: float = 0.8
    conf_wrong: float = 0.8
    conf_spurious: float = 0.95
    conf_low: float = 0.3
    model_weight: float = 0.5
    miss_weight: float = 0.25
    aggregate: str = "max"
    context: bool = True
    origin: str = "<table>"

    def __post_init__(self) -> None:
        if self.reasons is not None and not isinstance(self.reasons, tuple):
            object.__setattr__(self, "reasons", tuple(self.reasons))
        self.check()

    def check(self) -> None:
        if self.method not in METHODS:
            raise OptionError("method", f"unknown method '{self.method}'", hint="choose " + " or ".join(METHODS))
        if self.per not in PER:
            raise OptionError("per", f"expected label or sample, got '{self.per}'")
        if self.aggregate not in AGGREGATES:
            raise OptionError("aggregate", f"expected max or noisy-or, got '{self.aggregate}'")
        if self.top is not None and self.top != AUTO and (not isinstance(self.top, int) or self.top < 1):
            raise OptionError("top", f"must be at least 1, got {self.top}")
        for name in _UNIT:
            v = getattr(self, name)
            if not (0.0 <= v <= 1.0):
                raise OptionError(name, f"must be between 0 and 1, got {v}")
        if self.min_score is not None and not (0.0 <= self.min_score <= 1.0):
            raise OptionError("min_score", f"must be between 0 and 1, got {self.min_score}")
        if self.low_iou > self.iou:
            raise OptionError("low_iou", f"{self.low_iou} must not exceed the iou threshold ({self.iou})")
        if self.reasons is not None:
            bad = [r for r in self.reasons if r not in REASONS]
            if bad:
                raise OptionError("reasons", f"unknown reason(s) {', '.join(bad)}",
                                  hint="choose from " + ", ".join(REASONS))


@dataclass(frozen=True)
class PoolOptions:
    """How the unlabeled pool is searched for samples like the failures."""

    embedding: str
    k: int = 100
    failures: int | None = None      # how many of the top failure samples to use (None: all selected)
    dup_threshold: float = 0.95     # cosine above which two samples are near-duplicates
    chunk_rows: int = 65536          # pool rows per matrix product
    origin: str = "<pool>"

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> None:
        if not self.embedding:
            raise OptionError("embedding", "a pool search needs the name of the embedding column")
        if self.k < 1:
            raise OptionError("k", f"must be at least 1, got {self.k}")
        if not (-1.0 <= self.dup_threshold <= 1.0):
            raise OptionError("dup_threshold", f"must be between -1 and 1, got {self.dup_threshold}")
        if self.failures is not None and self.failures < 1:
            raise OptionError("failures", f"must be at least 1, got {self.failures}")
        if self.chunk_rows < 1:
            raise OptionError("chunk_rows", f"must be at least 1, got {self.chunk_rows}")
