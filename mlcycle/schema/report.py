"""The outcome of a check: the violations, their counts, the table to pass on (annotated
or filtered) and the summary document (a JSON contract: keys are never renamed)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from mlcycle import table as T
from mlcycle.schema.model import ERROR, RULES, WARNING, Schema

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa

# The columns of the report: one row per violation.
REPORT_COLUMNS = ("rule", "severity", "sample_id", "label_id", "column", "value", "message")


@dataclass
class CheckResult:
    """The violations of one check.

    ``violations`` is a table with one row per violation: ``rule``, ``severity``,
    ``sample_id``, ``label_id``, ``column``, ``value``, ``message`` plus ``row`` (the row
    index in the checked table; -1 for dataset-level violations) and ``source``.
    ``marks`` are (row, rule) pairs for annotation: sample-level violations mark every
    ground-truth row of the sample.
    """

    violations: "pa.Table"
    mark_rows: "np.ndarray"
    mark_rules: "np.ndarray"       # index into rule_ids
    rule_ids: list[str]
    schema: Schema
    num_rows: int
    num_labels: int

    # -- counts
    def count(self, severity: str | None = None) -> int:
        if severity is None:
            return self.violations.num_rows
        import pyarrow.compute as pc

        return int(pc.sum(pc.equal(self.violations.column("severity"), severity)).as_py() or 0)

    @property
    def errors(self) -> int:
        return self.count(ERROR)

    @property
    def warnings(self) -> int:
        return self.count(WARNING)

    def failed(self, strict: bool = False) -> bool:
        return self.errors > 0 or (strict and self.warnings > 0)

    # -- table outputs
    def report_table(self) -> "pa.Table":
        """The report: one row per violation (``REPORT_COLUMNS``)."""
        return self.violations.select(list(REPORT_COLUMNS))

    def violations_column(self) -> "pa.Array":
        """list<string> per row of the checked table: the rule ids that row breaks."""
        import pyarrow as pa

        rows, rules = self.mark_rows, self.mark_rules
        order = np.lexsort((rules, rows))
        rows, rules = rows[order], rules[order]
        counts = np.bincount(rows, minlength=self.num_rows) if rows.size else np.zeros(self.num_rows, np.int64)
        offsets = np.zeros(self.num_rows + 1, np.int32)
        np.cumsum(counts, out=offsets[1:])
        values = pa.array(self.rule_ids, pa.string()).take(pa.array(rules, pa.int64())) if rules.size else pa.array([], pa.string())
        return pa.ListArray.from_arrays(pa.array(offsets), values)

    def invalid_rows(self, strict: bool = False) -> "np.ndarray":
        """Bool per row: True where the row breaks a rule that fails the check."""
        failing = np.array([self._fails(r, strict) for r in self.rule_ids] or [False], dtype=bool)
        out = np.zeros(self.num_rows, bool)
        if self.mark_rows.size:
            sel = failing[self.mark_rules]
            out[self.mark_rows[sel]] = True
        return out

    def _fails(self, rule: str, strict: bool) -> bool:
        sev = self.schema.severity_of(rule)
        return sev == ERROR or (strict and sev == WARNING)

    def apply(self, table: "pa.Table", annotate: bool = False, keep: str = "all", strict: bool = False) -> "pa.Table":
        """The table to pass on: optionally with a ``violations`` column, optionally only
        the valid or invalid rows (by the rules that fail the check)."""
        if annotate:
            col = self.violations_column()
            if T.VIOLATIONS in table.column_names:
                table = table.set_column(table.column_names.index(T.VIOLATIONS), T.VIOLATIONS, col)
            else:
                table = table.append_column(T.VIOLATIONS, col)
        if keep != "all":
            import pyarrow as pa

            bad = self.invalid_rows(strict)
            table = table.filter(pa.array(bad if keep == "invalid" else ~bad))
        return table

    # -- the summary document
    def summary(self, examples: int = 3, strict: bool = False) -> dict[str, Any]:
        import pyarrow.compute as pc

        v = self.violations
        rules_out = []
        rule_col = v.column("rule")
        for rule in RULES:
            if rule not in self.rule_ids:
                continue
            mask = pc.equal(rule_col, rule)
            sub = v.filter(mask)
            if not sub.num_rows:
                continue
            head = sub.slice(0, examples).select(["sample_id", "label_id", "value", "message"]).to_pylist()
            rules_out.append({
                "rule": rule, "severity": self.schema.severity_of(rule), "count": sub.num_rows,
                "description": RULES[rule][2], "examples": head,
            })
        return {
            "schema": self.schema.path,
            "rows": self.num_rows,
            "labels": self.num_labels,
            "errors": self.errors,
            "warnings": self.warnings,
            "strict": strict,
            "passed": not self.failed(strict),
            "rules": rules_out,
        }

