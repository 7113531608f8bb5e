"""What a rule function sees and gives back, and the registry of rule functions.

Each rule has one function (``RULE_FUNCS[rule_id]``, registered with ``@rule``) that
checks it over the whole table at once with numpy / pyarrow compute — no Python loop per
row. It receives a ``Context`` (the table, the schema and the arrays several rules share,
computed once per check) and yields ``Found`` items.

Ground-truth rows are those whose ``source`` is ``gt``; every other source is a set of
predictions and is checked by the ``pred.*`` rules only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

import numpy as np

from mlcycle import table as T
from mlcycle.schema.model import RULES, Schema

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa


@dataclass
class Found:
    """What one rule found: row indices (or sample codes, or nothing) and their details."""

    rule: str
    rows: "np.ndarray"                 # int64 row index per violation (-1: dataset scope)
    column: str | None
    values: Any = None                 # pa.Array of text, a str, or None
    messages: Any = None               # pa.Array of text or a str


class Context:
    """Arrays every rule shares, computed once."""

    def __init__(self, table: "pa.Table", schema: Schema):
        import pyarrow as pa
        import pyarrow.compute as pc

        self.table = table
        self.schema = schema
        self.n = n = table.num_rows
        source = table.column(T.SOURCE).combine_chunks() if n else pa.array([], pa.string())
        self.gt = np.asarray(pc.equal(source, T.GT_SOURCE).to_numpy(zero_copy_only=False), dtype=bool) if n else np.zeros(0, bool)
        self.is_label = T.label_mask(table) if n else np.zeros(0, bool)
        self.gt_label = self.gt & self.is_label
        self.pred_label = ~self.gt & self.is_label
        lab = T.column_or_null(table, T.LABEL).combine_chunks()
        if pa.types.is_dictionary(lab.type):
            lab = lab.cast(lab.type.value_type)
        codes, self.label_dict = T.dictionary_codes(lab)
        # null labels get the extra code len(label_dict): per_label's lookup ends with the default
        self.label_codes = np.where(codes < 0, len(self.label_dict), codes)
        self.label_text = lab
        self._boxes = None
        self._samples = None
        self.cache: dict[str, Any] = {}   # arrays several rules share, computed on first use

    # -- lazily computed shared arrays
    @property
    def boxes(self) -> "np.ndarray":
        if self._boxes is None:
            self._boxes = T.bboxes(self.table)
        return self._boxes

    def samples(self) -> tuple["np.ndarray", list]:
        """(code per row, the distinct sample ids)."""
        if self._samples is None:
            self._samples = T.dictionary_codes(self.table.column(T.SAMPLE_ID))
        return self._samples

    def per_label(self, mapping: dict, default: Any, dtype=None) -> "np.ndarray":
        """A per-row array from a class -> value mapping (rows of other classes: default)."""
        lookup = np.array([mapping.get(s, default) for s in self.label_dict] + [default], dtype=dtype)
        return lookup[self.label_codes]

    def in_classes(self, names: Iterable[str]) -> "np.ndarray":
        names = set(names)
        return self.per_label({s: True for s in self.label_dict if s in names}, False, dtype=bool) if self.n else np.zeros(0, bool)

    def class_counts(self, mask: "np.ndarray") -> dict[str, int]:
        """Labels per class among the ``mask`` rows."""
        counts = np.bincount(self.label_codes[mask], minlength=len(self.label_dict) + 1)
        return {name: int(cnt) for name, cnt in zip(self.label_dict, counts)}

    def text(self, name: str) -> "pa.Array":
        """A column as text (nulls stay null)."""
        import pyarrow as pa
        import pyarrow.compute as pc

        col = T.column_or_null(self.table, name).combine_chunks()
        if pa.types.is_dictionary(col.type):
            col = col.cast(col.type.value_type)
        if pa.types.is_string(col.type):
            return col
        if pa.types.is_large_string(col.type):
            return col.cast(pa.string())
        if pa.types.is_nested(col.type) or pa.types.is_binary(col.type):
            return _nested_text(col)
        return pc.cast(col, pa.string())


def _nested_text(col: "pa.Array") -> "pa.Array":
    import pyarrow as pa
    import pyarrow.compute as pc

    marker = pa.scalar(f"<{col.type}>", pa.string())
    return pc.if_else(pc.is_valid(col), marker, pa.scalar(None, pa.string()))


# --------------------------------------------------------------------------- the registry

RuleFunc = Callable[[Context], Iterator[Found]]
RULE_FUNCS: dict[str, RuleFunc] = {}


def rule(rule_id: str) -> Callable[[RuleFunc], RuleFunc]:
    """Register the function that checks one rule (each yields that rule's findings)."""

    def deco(fn: RuleFunc) -> RuleFunc:
        assert rule_id in RULES, rule_id
        RULE_FUNCS[rule_id] = fn
        return fn

    return deco
