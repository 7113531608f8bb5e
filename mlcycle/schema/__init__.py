"""The annotation schema: a YAML file checked against every label, like a linter.

    from mlcycle import schema
    result = schema.check(table, "schema.yaml", annotate=True)   # a mlcycle.results.Result
    result.summary["passed"], result.summary["errors"], result.table
    draft = schema.infer(table)                                  # YAML text to review

The package, one concept per module:

- ``model``: the rule catalogue (``RULES``: id -> default severity, scope, meaning) and
  the frozen ``Schema`` dataclasses;
- ``loader``: ``load(path)`` / ``loads(text)`` — YAML read safely with line numbers and
  validated whole before any data is read (``file:line: key: what``);
- ``context``: what a rule function receives (``Context``: arrays several rules share,
  computed once) and yields (``Found``), and the registry ``RULE_FUNCS``;
- ``rules/``: one function per rule, by theme (classes, attributes, boxes, samples,
  dataset, predictions), each vectorised over the whole table;
- ``checker``: ``find_violations(table, schema) -> CheckResult`` and ``check``;
- ``report``: ``CheckResult`` — counts, the report table, the table to pass on and the
  summary document;
- ``draft``: ``infer(table)``, a schema drafted from data.

Ground-truth rows are those whose ``source`` is ``gt``; every other source is a set of
predictions and is checked by the ``pred.*`` rules only. The user docs are in
docs/schema.md.

Importing this package loads no numpy or pyarrow: the names that need them are loaded on
first use.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from mlcycle.schema.loader import load, loads
from mlcycle.schema.model import (
    ATTR_TYPES, ERROR, KEEP_CHOICES, OFF, RULES, SEVERITIES, WARNING, AttrSpec, BoxRules, ClassSpec, Schema,
)

if TYPE_CHECKING:  # pragma: no cover
    from mlcycle.schema.checker import check, find_violations, validate_options
    from mlcycle.schema.context import RULE_FUNCS
    from mlcycle.schema.draft import infer
    from mlcycle.schema.report import REPORT_COLUMNS, CheckResult

# name -> module, imported on first use (they need numpy and pyarrow)
_LAZY = {
    "check": "checker", "find_violations": "checker", "validate_options": "checker",
    "CheckResult": "report", "REPORT_COLUMNS": "report",
    "RULE_FUNCS": "rules",
    "infer": "draft",
}

__all__ = [
    "check", "find_violations", "validate_options", "infer", "load", "loads",
    "Schema", "ClassSpec", "AttrSpec", "BoxRules", "CheckResult",
    "RULES", "RULE_FUNCS", "REPORT_COLUMNS", "SEVERITIES", "ERROR", "WARNING", "OFF", "ATTR_TYPES", "KEEP_CHOICES",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'mlcycle.schema' has no attribute {name!r}")
    value = getattr(import_module(f"mlcycle.schema.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
