"""One function per rule, grouped by theme; importing this package registers them all in
``RULE_FUNCS`` (rule id -> function, see ``mlcycle.schema.context``)."""

from __future__ import annotations

from mlcycle.schema.context import RULE_FUNCS
from mlcycle.schema.model import RULES
from mlcycle.schema.rules import attributes, boxes, classes, dataset, predictions, samples  # noqa: F401 - registers

assert set(RULE_FUNCS) == set(RULES), sorted(set(RULES) - set(RULE_FUNCS))

__all__ = ["RULE_FUNCS"]
