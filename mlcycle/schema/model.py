"""The schema model: the rule catalogue and the frozen dataclasses a schema file becomes.

``RULES`` lists every rule id with its default severity, its scope and its meaning; the
ids are a contract (never rename one). A schema's ``severity:`` map may change a rule's
severity to ``error``, ``warning`` or ``off``.

A violation has a *scope*:

- ``label``: one label row (most rules);
- ``sample``: one sample (``sample.*``, ``dataset.split-overlap``); the report row names
  the sample, and annotating or keeping rows marks every ground-truth row of the sample;
- ``dataset``: a class count or the class balance (``dataset.min-examples*``,
  ``dataset.imbalance``); these mark no row.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mlcycle import table as T

ERROR = "error"
WARNING = "warning"
OFF = "off"
SEVERITIES = (ERROR, WARNING, OFF)

# rule id -> (default severity, scope, meaning). The ids are a contract: never rename one.
RULES: dict[str, tuple[str, str, str]] = {
    "class.unknown": (ERROR, "label", "the class of a ground-truth label is not in the schema (or it has none)"),
    "class.synonym": (ERROR, "label", "a label uses a synonym of a class instead of the class name"),
    "class.id-mismatch": (ERROR, "label", "category_id differs from the id the schema gives the class"),
    "attr.missing": (ERROR, "label", "a required attribute is null, or its column is absent"),
    "attr.type": (ERROR, "label", "an attribute value does not have the declared type"),
    "attr.range": (ERROR, "label", "a number is outside the declared min/max"),
    "attr.enum": (ERROR, "label", "a value is not one of the declared values"),
    "attr.pattern": (ERROR, "label", "a string does not match the declared pattern"),
    "attr.not-applicable": (WARNING, "label", "an attribute is set on a class it does not apply to"),
    "attr.unknown": (WARNING, "label", "a label has a value in a column the schema does not declare"),
    "box.missing": (ERROR, "label", "a ground-truth label has no box (boxes.required)"),
    "box.not-finite": (ERROR, "label", "a box coordinate is NaN or infinite"),
    "box.non-positive": (ERROR, "label", "a box has zero or negative width or height"),
    "box.outside-image": (ERROR, "label", "a box leaves the image by more than the tolerance"),
    "box.no-image-size": (WARNING, "label", "the image size is unknown, so the box could not be placed"),
    "box.too-small": (WARNING, "label", "a box is narrower or lower than the minimum (pixels or fraction of the image)"),
    "box.aspect-ratio": (WARNING, "label", "a box is more elongated than max_aspect_ratio"),
    "sample.missing-value": (ERROR, "sample", "a required sample column is null or absent"),
    "sample.value": (ERROR, "sample", "a sample column has a value that is not allowed"),
    "sample.empty": (ERROR, "sample", "a sample has no labels and samples.allow_empty is false"),
    "sample.too-few-labels": (WARNING, "sample", "a sample has fewer labels than samples.min_labels"),
    "sample.too-many-labels": (WARNING, "sample", "a sample has more labels than samples.max_labels"),
    "dataset.min-examples": (ERROR, "dataset", "a class has fewer labels than its minimum"),
    "dataset.min-examples-per-split": (WARNING, "dataset", "a class has fewer labels in a split than the minimum"),
    "dataset.imbalance": (WARNING, "dataset", "the most common class outnumbers the rarest by more than max_imbalance"),
    "dataset.duplicate-label": (WARNING, "label", "two labels of one class in one image overlap above duplicate_iou"),
    "dataset.duplicate-label-id": (ERROR, "label", "a label_id appears more than once within its source"),
    "dataset.split-overlap": (ERROR, "sample", "the same image appears in more than one split"),
    "pred.score-missing": (ERROR, "label", "a prediction has no score"),
    "pred.score-range": (ERROR, "label", "a prediction's score is outside [0, 1] or NaN"),
    "pred.class-unknown": (ERROR, "label", "a prediction's class is not in the schema"),
    "pred.box-invalid": (ERROR, "label", "a predicted box is NaN, infinite, or has zero or negative size"),
}

# Columns that are not attributes, so never "unknown": the geometry columns some formats
# add (CVAT points) and the columns mlcycle commands add.
GEOMETRY_COLUMNS = (T.POINTS,)
NOT_ATTRIBUTES = frozenset(T.COMMAND_COLUMNS) | frozenset(GEOMETRY_COLUMNS)
ATTR_TYPES = ("bool", "int", "float", "enum", "string")

# Which rows a check passes on: all, only the valid ones, or only the invalid ones.
KEEP_CHOICES = ("all", "valid", "invalid")



@dataclass(frozen=True)
class BoxRules:
    """Box limits; ``None`` means the limit is not checked."""

    min_width: float | None = None
    min_height: float | None = None
    min_relative_width: float | None = None
    min_relative_height: float | None = None
    max_aspect_ratio: float | None = None

    def merged(self, other: dict) -> "BoxRules":
        return BoxRules(**{**self.__dict__, **other})


@dataclass(frozen=True)
class ClassSpec:
    name: str
    id: int | None = None
    supercategory: str | None = None
    synonyms: tuple[str, ...] = ()
    min_examples: int | None = None
    description: str | None = None


@dataclass(frozen=True)
class AttrSpec:
    name: str
    type: str
    required: bool | frozenset = False      # True: on every class it applies to; a set: these classes
    classes: frozenset | None = None        # None: every class
    min: float | None = None
    max: float | None = None
    values: tuple = ()
    pattern: str | None = None
    description: str | None = None

    def required_classes(self) -> frozenset | None:
        """None = required on every applicable class; empty = not required."""
        if self.required is True:
            return self.classes
        if self.required is False:
            return frozenset()
        return self.required


@dataclass(frozen=True)
class Schema:
    path: str = "<schema>"
    classes: tuple[ClassSpec, ...] | None = None
    attributes: tuple[AttrSpec, ...] | None = None
    boxes_required: bool = False
    inside_image: bool = False
    tolerance: float = 0.0
    box_rules: BoxRules = BoxRules()
    box_overrides: dict = field(default_factory=dict)   # class -> BoxRules (merged with the defaults)
    required_columns: tuple[str, ...] = ()
    allowed_values: dict = field(default_factory=dict)  # column -> tuple of values (as text)
    min_labels: int | None = None
    max_labels: int | None = None
    allow_empty: bool = True
    min_examples: int | None = None
    min_examples_per_split: int | None = None
    max_imbalance: float | None = None
    duplicate_iou: float | None = None
    unique_label_ids: bool = True
    split_overlap: bool = False
    split_overlap_key: str = "sample_id"
    score_required: bool = True
    pred_classes_known: bool = True
    severity: dict = field(default_factory=dict)        # rule id -> severity (overrides only)
    description: str | None = None

    def severity_of(self, rule: str) -> str:
        return self.severity.get(rule, RULES[rule][0])

    def class_names(self) -> list[str]:
        return [c.name for c in self.classes or ()]


def full_match_pattern(pattern: str) -> str:
    """The regular expression that matches ``pattern`` against a whole value."""
    return f"^(?:{pattern})$"
