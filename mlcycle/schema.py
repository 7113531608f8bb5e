"""The annotation schema: a YAML file checked against every label, like a linter.

Two halves:

- **The schema file model.** ``load(path)`` parses the YAML with a ``yaml.SafeLoader``
  subclass that remembers the line of every key and value, then validates the whole
  schema *before* any data is read: an unknown key, a wrong type, a bad regular
  expression or an unknown rule id is reported as ``file:line: <key>: <what>``
  (``MlcycleError``, exit 1). The result is a plain, frozen ``Schema``.
- **The rules.** Each rule has a stable id (``box.outside-image``, ``attr.missing``,
  ``class.unknown`` ...), a default severity (``RULES``) that the schema's ``severity:``
  map may change (``error``, ``warning`` or ``off``), and one function
  (``RULE_FUNCS[rule_id]``, registered with ``@_rule``) that checks it over the whole
  table at once with numpy / pyarrow compute — no Python loop per row; the duplicate
  check groups by image and class. ``check(table, schema)`` runs the functions of the
  rules that are not off; arrays several rules share (label codes, boxes, per-attribute
  validity) are computed once per check in ``_Ctx``.

A violation has a *scope*:

- ``label``: one label row (most rules);
- ``sample``: one sample (``sample.*``, ``dataset.split-overlap``); the report row names
  the sample, and ``--annotate``/``--keep`` mark every ground-truth row of the sample;
- ``dataset``: a class count or the class balance (``dataset.min-examples*``,
  ``dataset.imbalance``); these mark no row.

Ground-truth rows are those whose ``source`` is ``gt``; every other source is a set of
predictions and is checked by the ``pred.*`` rules only. The user docs are in
docs/schema.md.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

from mlcycle import table as T
from mlcycle._pairs import pair_chunks
from mlcycle.errors import MlcycleError

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa

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

# Geometry columns some formats add (CVAT points): not attributes, never "unknown".
GEOMETRY_COLUMNS = tuple(getattr(T, n) for n in ("POINTS",) if hasattr(T, n))
# Columns that mlcycle commands add: never "unknown attributes".
COMMAND_COLUMNS = tuple(getattr(T, n) for n in (
    "EVAL", "EVAL_ID", "EVAL_IOU", "HARD_SCORE", "HARD_REASON", "HARD_SAMPLE_SCORE", "HARD_MATCH", "VIOLATIONS")
    if hasattr(T, n))
ATTR_TYPES = ("bool", "int", "float", "enum", "string")


# =========================================================================== YAML with lines

class _Map(dict):
    """A mapping that knows the line of itself, of each key and of each value."""

    line: int = 0
    key_lines: dict
    value_lines: dict


class _Seq(list):
    line: int = 0
    item_lines: list


def _loader_class():
    import yaml

    class LineLoader(yaml.SafeLoader):
        """yaml.SafeLoader that records where each mapping key and value starts."""

    def construct_map(loader, node):
        loader.flatten_mapping(node)
        out = _Map()
        out.line = node.start_mark.line + 1
        out.key_lines, out.value_lines = {}, {}
        yield out
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                hash(key)
            except TypeError:
                raise _SchemaSyntax(line, "a mapping key must be a plain value") from None
            if key in out:
                raise _SchemaSyntax(line, f"key '{key}' appears twice (first on line {out.key_lines[key]})")
            out[key] = loader.construct_object(value_node, deep=True)
            out.key_lines[key] = line
            out.value_lines[key] = value_node.start_mark.line + 1

    def construct_seq(loader, node):
        out = _Seq()
        out.line = node.start_mark.line + 1
        out.item_lines = []
        yield out
        for item in node.value:
            out.append(loader.construct_object(item, deep=True))
            out.item_lines.append(item.start_mark.line + 1)

    LineLoader.add_constructor("tag:yaml.org,2002:map", construct_map)
    LineLoader.add_constructor("tag:yaml.org,2002:seq", construct_seq)
    return LineLoader


class _SchemaSyntax(Exception):
    def __init__(self, line: int, message: str):
        super().__init__(message)
        self.line = line
        self.message = message


def _parse_yaml(text: str, name: str) -> Any:
    import yaml

    try:
        return yaml.load(text, Loader=_loader_class())  # noqa: S506 - a SafeLoader subclass
    except _SchemaSyntax as exc:
        raise MlcycleError(f"{name}:{exc.line}: {exc.message}") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{name}:{mark.line + 1}:{mark.column + 1}" if mark else name
        what = exc.problem or exc.context or "malformed YAML"
        raise MlcycleError(f"{where}: not valid YAML: {what}",
                           hint="check the indentation and quoting near that line") from None
    except yaml.YAMLError as exc:
        raise MlcycleError(f"{name}: not valid YAML: {exc}") from None


# =========================================================================== the model

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


# =========================================================================== validation

class _V:
    """Validation helpers that know the file name and report ``file:line: key: what``."""

    def __init__(self, name: str):
        self.name = name

    def fail(self, line: int | None, key: str, message: str, hint: str | None = None) -> MlcycleError:
        where = f"{self.name}:{line}" if line else self.name
        return MlcycleError(f"{where}: {key}: {message}" if key else f"{where}: {message}", hint=hint)

    def mapping(self, value: Any, line: int, key: str, allowed: Iterable[str] | None) -> _Map:
        if value is None:
            value = _Map()
            value.line, value.key_lines, value.value_lines = line, {}, {}
        if not isinstance(value, _Map):
            raise self.fail(line, key, f"expected a mapping (key: value lines), got {_kind(value)}")
        if allowed is not None:
            allowed = list(allowed)
            for k in value:
                if k not in allowed:
                    close = _close(str(k), allowed)
                    raise self.fail(value.key_lines[k], _join(key, k), "unknown key",
                                    hint=(f"did you mean '{close}'? " if close else "") + "allowed: " + ", ".join(allowed))
        return value

    def number(self, m: _Map, k: str, key: str, *, integer: bool = False, low: float | None = None,
               high: float | None = None, low_open: bool = False) -> float | int | None:
        if k not in m or m[k] is None:
            return None
        v = m[k]
        line = m.value_lines[k]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or (integer and not isinstance(v, int)):
            raise self.fail(line, _join(key, k), f"expected {'an integer' if integer else 'a number'}, got {_kind(v)}")
        if isinstance(v, float) and not math.isfinite(v):
            raise self.fail(line, _join(key, k), f"expected a finite number, got {v}")
        if low is not None and (v < low or (low_open and v == low)):
            raise self.fail(line, _join(key, k), f"must be {'>' if low_open else '>='} {low}, got {v}")
        if high is not None and v > high:
            raise self.fail(line, _join(key, k), f"must be <= {high}, got {v}")
        return v

    def boolean(self, m: _Map, k: str, key: str, default: bool) -> bool:
        if k not in m or m[k] is None:
            return default
        if not isinstance(m[k], bool):
            raise self.fail(m.value_lines[k], _join(key, k), f"expected true or false, got {_kind(m[k])}")
        return m[k]

    def text(self, m: _Map, k: str, key: str) -> str | None:
        if k not in m or m[k] is None:
            return None
        if not isinstance(m[k], str):
            raise self.fail(m.value_lines[k], _join(key, k), f"expected a string, got {_kind(m[k])}")
        return m[k]

    def text_list(self, m: _Map, k: str, key: str, scalars: bool = False) -> tuple | None:
        if k not in m or m[k] is None:
            return None
        v = m[k]
        if isinstance(v, str) and not scalars:
            v = [v]
        if not isinstance(v, list):
            raise self.fail(m.value_lines[k], _join(key, k), f"expected a list, got {_kind(v)}")
        lines = getattr(v, "item_lines", [m.value_lines[k]] * len(v))
        out = []
        for item, line in zip(v, lines):
            ok = isinstance(item, str) or (scalars and isinstance(item, (int, float, bool)))
            if not ok:
                raise self.fail(line, _join(key, k), f"expected a list of {'values' if scalars else 'names'}, "
                                                     f"got an item that is {_kind(item)}")
            out.append(item)
        return tuple(out)


def _join(key: str, k: Any) -> str:
    return f"{key}.{k}" if key else str(k)


def _kind(v: Any) -> str:
    if v is None:
        return "nothing (null)"
    if isinstance(v, bool):
        return f"a boolean ({str(v).lower()})"
    if isinstance(v, (int, float)):
        return f"a number ({v})"
    if isinstance(v, str):
        return f"a string ({v!r})"
    if isinstance(v, list):
        return "a list"
    if isinstance(v, dict):
        return "a mapping"
    return type(v).__name__


def _close(word: str, choices: list[str]) -> str | None:
    import difflib

    found = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return found[0] if found else None


def _value_text(v: Any) -> str:
    """How a schema value compares with a table value cast to text."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def full_match_pattern(pattern: str) -> str:
    return f"^(?:{pattern})$"


_TOP_KEYS = ("version", "description", "classes", "attributes", "boxes", "samples", "dataset", "predictions", "severity")
_CLASS_KEYS = ("name", "id", "supercategory", "synonyms", "min_examples", "boxes", "description")
_ATTR_KEYS = ("type", "required", "classes", "min", "max", "values", "pattern", "description")
_BOX_RULE_KEYS = ("min_width", "min_height", "min_relative_width", "min_relative_height", "max_aspect_ratio")
_BOX_KEYS = ("required", "inside_image", "tolerance") + _BOX_RULE_KEYS + ("classes",)
_SAMPLE_KEYS = ("required_columns", "allowed_values", "min_labels", "max_labels", "allow_empty")
_DATASET_KEYS = ("min_examples", "min_examples_per_split", "max_imbalance", "duplicate_iou",
                 "unique_label_ids", "split_overlap")
_PRED_KEYS = ("score_required", "classes_known")


def load(path: str | Path) -> Schema:
    """Read and validate a schema file; ``MlcycleError`` with file:line on any problem."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise MlcycleError(f"{p}: no such schema file") from None
    except IsADirectoryError:
        raise MlcycleError(f"{p}: is a folder, expected a schema YAML file") from None
    except UnicodeDecodeError:
        raise MlcycleError(f"{p}: not UTF-8 text; a schema is a YAML file") from None
    except OSError as exc:
        raise MlcycleError(f"{p}: cannot read: {exc.strerror or exc}") from None
    return loads(text, str(p))


def loads(text: str, name: str = "<schema>") -> Schema:
    """Parse and validate schema YAML text (``name`` is used in error messages)."""
    doc = _parse_yaml(text, name)
    v = _V(name)
    if doc is None:
        raise MlcycleError(f"{name}: the schema is empty", hint="see docs/schema.md for a full example")
    top = v.mapping(doc, 1, "", _TOP_KEYS)
    version = v.number(top, "version", "", integer=True)
    if version is not None and version != 1:
        raise v.fail(top.value_lines["version"], "version", f"unsupported schema version {version}; this mlcycle reads version 1")
    kw: dict[str, Any] = {"path": name, "description": v.text(top, "description", "")}

    classes, class_boxes = _load_classes(v, top)
    kw["classes"] = classes
    known = {c.name for c in classes} if classes is not None else None
    kw["attributes"] = _load_attributes(v, top, known)
    kw.update(_load_boxes(v, top, known, class_boxes))
    kw.update(_load_samples(v, top))
    kw.update(_load_dataset(v, top))
    pred = v.mapping(top.get("predictions"), top.value_lines.get("predictions", 1), "predictions", _PRED_KEYS)
    kw["score_required"] = v.boolean(pred, "score_required", "predictions", True)
    kw["pred_classes_known"] = v.boolean(pred, "classes_known", "predictions", True)
    sev = v.mapping(top.get("severity"), top.value_lines.get("severity", 1), "severity", None)
    severity = {}
    for rule, level in sev.items():
        if rule not in RULES:
            close = _close(str(rule), list(RULES))
            raise v.fail(sev.key_lines[rule], _join("severity", rule), "unknown rule id",
                         hint=f"did you mean '{close}'?" if close else "the rule ids are listed in docs/schema.md")
        if level is False:  # YAML 1.1 reads a plain `off` as false
            level = OFF
        if level not in SEVERITIES:
            raise v.fail(sev.value_lines[rule], _join("severity", rule),
                         f"expected one of {', '.join(SEVERITIES)}, got {_kind(level)}")
        severity[rule] = level
    kw["severity"] = severity
    return Schema(**kw)


def _load_classes(v: _V, top: _Map) -> tuple[tuple[ClassSpec, ...] | None, dict]:
    if "classes" not in top or top["classes"] is None:
        return None, {}
    items = top["classes"]
    if not isinstance(items, _Seq):
        raise v.fail(top.value_lines["classes"], "classes",
                     f"expected a list of class names or mappings, got {_kind(items)}",
                     hint="classes:\n  - person\n  - name: car\n    id: 3")
    out: list[ClassSpec] = []
    boxes: dict[str, tuple[_Map, str]] = {}
    seen: dict[str, tuple[int, str]] = {}
    ids: dict[int, int] = {}
    for i, (item, line) in enumerate(zip(items, items.item_lines)):
        key = f"classes[{i}]"
        if isinstance(item, str):
            item_map = _Map({"name": item})
            item_map.line, item_map.key_lines, item_map.value_lines = line, {"name": line}, {"name": line}
        else:
            item_map = v.mapping(item, line, key, _CLASS_KEYS)
        name = v.text(item_map, "name", key)
        if not name:
            raise v.fail(item_map.line, key, "a class needs a non-empty 'name'")
        spec = ClassSpec(
            name=name,
            id=v.number(item_map, "id", key, integer=True),
            supercategory=v.text(item_map, "supercategory", key),
            synonyms=v.text_list(item_map, "synonyms", key) or (),
            min_examples=v.number(item_map, "min_examples", key, integer=True, low=0),
            description=v.text(item_map, "description", key),
        )
        for word in (spec.name, *spec.synonyms):
            if word in seen:
                first_line, first = seen[word]
                raise v.fail(item_map.line, key, f"'{word}' is already used by class '{first}' (line {first_line})",
                             hint="each class name and synonym must be unique")
            seen[word] = (item_map.line, spec.name)
        if spec.id is not None:
            if spec.id in ids:
                raise v.fail(item_map.value_lines["id"], _join(key, "id"),
                             f"id {spec.id} is already used on line {ids[spec.id]}")
            ids[spec.id] = item_map.value_lines["id"]
        if "boxes" in item_map and item_map["boxes"] is not None:
            boxes[name] = (item_map, key)
        out.append(spec)
    return tuple(out), boxes


def _load_attributes(v: _V, top: _Map, known: set | None) -> tuple[AttrSpec, ...] | None:
    if "attributes" not in top or top["attributes"] is None:
        return None
    attrs = v.mapping(top["attributes"], top.value_lines["attributes"], "attributes", None)
    out = []
    for name, spec in attrs.items():
        key = f"attributes.{name}"
        line = attrs.value_lines[name]
        if not isinstance(name, str) or not name:
            raise v.fail(attrs.key_lines[name], "attributes", f"an attribute name must be a string, got {_kind(name)}")
        if name in T.CORE_COLUMNS or name in COMMAND_COLUMNS:
            raise v.fail(attrs.key_lines[name], key, f"'{name}' is a core column, not an attribute",
                         hint="samples.required_columns and samples.allowed_values check core columns")
        if isinstance(spec, str):  # shorthand: `occluded: bool`
            m = _Map({"type": spec})
            m.line, m.key_lines, m.value_lines = line, {"type": line}, {"type": line}
            spec = m
        m = v.mapping(spec, line, key, _ATTR_KEYS)
        typ = v.text(m, "type", key)
        if typ is None:
            raise v.fail(attrs.key_lines[name], key, "missing 'type'", hint="type: one of " + ", ".join(ATTR_TYPES))
        if typ not in ATTR_TYPES:
            raise v.fail(m.value_lines["type"], _join(key, "type"), f"unknown type '{typ}'",
                         hint="one of " + ", ".join(ATTR_TYPES))
        classes = v.text_list(m, "classes", key)
        if classes is not None:
            _check_known(v, m, "classes", key, classes, known)
        required: bool | frozenset = False
        if "required" in m and m["required"] is not None:
            r = m["required"]
            if isinstance(r, bool):
                required = r
            else:
                names = v.text_list(m, "required", key)
                _check_known(v, m, "required", key, names, known)
                if classes is not None and not set(names) <= set(classes):
                    extra = sorted(set(names) - set(classes))
                    raise v.fail(m.value_lines["required"], _join(key, "required"),
                                 f"class '{extra[0]}' is not in this attribute's 'classes'")
                required = frozenset(names)
        lo = v.number(m, "min", key)
        hi = v.number(m, "max", key)
        values = v.text_list(m, "values", key, scalars=True)
        pattern = v.text(m, "pattern", key)
        for k, ok in (("min", typ in ("int", "float")), ("max", typ in ("int", "float")),
                      ("values", typ == "enum"), ("pattern", typ == "string")):
            if k in m and m[k] is not None and not ok:
                raise v.fail(m.key_lines[k], _join(key, k), f"'{k}' does not apply to type '{typ}'")
        if lo is not None and hi is not None and lo > hi:
            raise v.fail(m.value_lines["max"], _join(key, "max"), f"max ({hi}) is below min ({lo})")
        if typ == "enum" and not values:
            raise v.fail(attrs.key_lines[name], key, "an enum needs 'values' (a non-empty list)")
        if pattern is not None:
            _check_pattern(v, m.value_lines["pattern"], _join(key, "pattern"), pattern)
        out.append(AttrSpec(
            name=name, type=typ, required=required,
            classes=frozenset(classes) if classes is not None else None,
            min=lo, max=hi, values=tuple(_value_text(x) for x in values or ()), pattern=pattern,
            description=v.text(m, "description", key),
        ))
    return tuple(out)


def _check_known(v: _V, m: _Map, k: str, key: str, names: tuple, known: set | None) -> None:
    if known is None:
        return
    lines = getattr(m[k], "item_lines", None) or [m.value_lines[k]] * len(names)
    for n, line in zip(names, lines):
        if n not in known:
            close = _close(n, sorted(known))
            raise v.fail(line, _join(key, k), f"'{n}' is not a class in 'classes'",
                         hint=f"did you mean '{close}'?" if close else None)


def _check_pattern(v: _V, line: int, key: str, pattern: str) -> None:
    """The pattern must compile for Python and for pyarrow's RE2 (which has no look-arounds
    or back-references)."""
    try:
        re.compile(pattern)
    except re.error as exc:
        raise v.fail(line, key, f"bad regular expression: {exc}") from None
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        pc.match_substring_regex(pa.array([""]), full_match_pattern(pattern))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise v.fail(line, key, f"regular expression not supported: {str(exc).splitlines()[0]}",
                     hint="patterns use RE2 syntax: no look-arounds or back-references") from None


def _box_rules(v: _V, m: _Map, key: str) -> dict:
    out = {}
    for k in _BOX_RULE_KEYS:
        val = v.number(m, k, key, low=0, low_open=k == "max_aspect_ratio")
        if k.startswith("min_relative") and val is not None and val > 1:
            raise v.fail(m.value_lines[k], _join(key, k), f"a fraction of the image size must be <= 1, got {val}")
        if k == "max_aspect_ratio" and val is not None and val < 1:
            raise v.fail(m.value_lines[k], _join(key, k), f"the ratio of the longer to the shorter side is >= 1, got {val}")
        if k in m and m[k] is not None:
            out[k] = float(val)
    return out


def _load_boxes(v: _V, top: _Map, known: set | None, class_boxes: dict) -> dict:
    m = v.mapping(top.get("boxes"), top.value_lines.get("boxes", 1), "boxes", _BOX_KEYS)
    kw: dict[str, Any] = {
        "boxes_required": v.boolean(m, "required", "boxes", False),
        "inside_image": v.boolean(m, "inside_image", "boxes", False),
        "tolerance": float(v.number(m, "tolerance", "boxes", low=0) or 0.0),
    }
    defaults = BoxRules(**_box_rules(v, m, "boxes"))
    overrides: dict[str, BoxRules] = {}
    per = v.mapping(m.get("classes"), m.value_lines.get("classes", m.line), "boxes.classes", None)
    for name, spec in per.items():
        key = f"boxes.classes.{name}"
        if known is not None and name not in known:
            close = _close(str(name), sorted(known))
            raise v.fail(per.key_lines[name], key, f"'{name}' is not a class in 'classes'",
                         hint=f"did you mean '{close}'?" if close else None)
        sm = v.mapping(spec, per.value_lines[name], key, _BOX_RULE_KEYS)
        overrides[name] = _box_rules(v, sm, key)
    for name, (cm, key) in class_boxes.items():
        sm = v.mapping(cm["boxes"], cm.value_lines["boxes"], _join(key, "boxes"), _BOX_RULE_KEYS)
        rules = _box_rules(v, sm, _join(key, "boxes"))
        if name in overrides:
            raise v.fail(cm.key_lines["boxes"], _join(key, "boxes"),
                         f"box rules for '{name}' are also given under boxes.classes",
                         hint="give a class's box rules in one place")
        overrides[name] = rules
    kw["box_rules"] = defaults
    kw["box_overrides"] = {name: defaults.merged(r) for name, r in overrides.items()}
    return kw


def _load_samples(v: _V, top: _Map) -> dict:
    m = v.mapping(top.get("samples"), top.value_lines.get("samples", 1), "samples", _SAMPLE_KEYS)
    required = v.text_list(m, "required_columns", "samples") or ()
    allowed_map = v.mapping(m.get("allowed_values"), m.value_lines.get("allowed_values", m.line),
                            "samples.allowed_values", None)
    allowed = {}
    for col in allowed_map:
        vals = v.text_list(allowed_map, col, "samples.allowed_values", scalars=True)
        if not vals:
            raise v.fail(allowed_map.value_lines[col], f"samples.allowed_values.{col}", "expected a non-empty list of values")
        allowed[str(col)] = tuple(_value_text(x) for x in vals)
    lo = v.number(m, "min_labels", "samples", integer=True, low=0)
    hi = v.number(m, "max_labels", "samples", integer=True, low=0)
    if lo is not None and hi is not None and lo > hi:
        raise v.fail(m.value_lines["max_labels"], "samples.max_labels", f"max_labels ({hi}) is below min_labels ({lo})")
    return {"required_columns": tuple(required), "allowed_values": allowed, "min_labels": lo, "max_labels": hi,
            "allow_empty": v.boolean(m, "allow_empty", "samples", True)}


def _load_dataset(v: _V, top: _Map) -> dict:
    m = v.mapping(top.get("dataset"), top.value_lines.get("dataset", 1), "dataset", _DATASET_KEYS)
    kw = {
        "min_examples": v.number(m, "min_examples", "dataset", integer=True, low=0),
        "min_examples_per_split": v.number(m, "min_examples_per_split", "dataset", integer=True, low=0),
        "max_imbalance": v.number(m, "max_imbalance", "dataset", low=1),
        "duplicate_iou": v.number(m, "duplicate_iou", "dataset", low=0, high=1),
        "unique_label_ids": v.boolean(m, "unique_label_ids", "dataset", True),
    }
    so = m.get("split_overlap")
    if so is None or isinstance(so, bool):
        kw["split_overlap"] = bool(so)
    else:
        sm = v.mapping(so, m.value_lines["split_overlap"], "dataset.split_overlap", ("key",))
        key = v.text(sm, "key", "dataset.split_overlap") or "sample_id"
        if key not in ("sample_id", "basename"):
            raise v.fail(sm.value_lines["key"], "dataset.split_overlap.key",
                         f"expected sample_id or basename, got {key!r}")
        kw["split_overlap"] = True
        kw["split_overlap_key"] = key
    return kw


# =========================================================================== checking

@dataclass
class _Found:
    """What one rule found: row indices (or sample codes, or nothing) and their details."""

    rule: str
    rows: "np.ndarray"                 # int64 row index per violation (-1: dataset scope)
    column: str | None
    values: Any = None                 # pa.Array of text, a str, or None
    messages: Any = None               # pa.Array of text or a str


class _Ctx:
    """Arrays every rule shares, computed once."""

    def __init__(self, table: "pa.Table", schema: Schema):
        import numpy as np
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
        enc = pc.dictionary_encode(lab) if n else pa.DictionaryArray.from_arrays(pa.array([], pa.int32()), pa.array([], pa.string()))
        self.label_dict: list = enc.dictionary.to_pylist()
        codes = enc.indices.to_numpy(zero_copy_only=False)
        # null labels get the extra code len(dictionary)
        self.label_codes = np.where(enc.indices.is_valid().to_numpy(zero_copy_only=False), np.nan_to_num(codes, nan=0), len(self.label_dict)).astype(np.int64) if n else np.zeros(0, np.int64)
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

    def samples(self) -> tuple["np.ndarray", "pa.Array"]:
        """(code per row, dictionary of sample ids)."""
        if self._samples is None:
            import pyarrow.compute as pc

            enc = pc.dictionary_encode(self.table.column(T.SAMPLE_ID).combine_chunks())
            self._samples = (enc.indices.to_numpy(zero_copy_only=False).astype(np.int64), enc.dictionary)
        return self._samples

    def per_label(self, mapping: dict, default: Any, dtype=None) -> "np.ndarray":
        """A per-row array from a class -> value mapping (rows of other classes: default)."""
        import numpy as np

        lookup = np.array([mapping.get(s, default) for s in self.label_dict] + [default], dtype=dtype)
        return lookup[self.label_codes]

    def in_classes(self, names: Iterable[str]) -> "np.ndarray":
        import numpy as np

        names = set(names)
        return self.per_label({s: True for s in self.label_dict if s in names}, False, dtype=bool) if self.n else np.zeros(0, bool)

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


def _rows(mask: "np.ndarray") -> "np.ndarray":
    return np.flatnonzero(mask).astype(np.int64)


def _take(arr: "pa.Array", rows: "np.ndarray") -> "pa.Array":
    import pyarrow as pa

    return arr.take(pa.array(rows, pa.int64()))


def _concat(*parts: Any) -> "pa.Array":
    """Element-wise string concatenation of arrays and constant strings."""
    import pyarrow as pa
    import pyarrow.compute as pc

    arrays = [p if isinstance(p, (pa.Array, pa.ChunkedArray)) else pa.scalar(str(p), pa.string()) for p in parts]
    arrays = [pc.fill_null(a, "null") if isinstance(a, (pa.Array, pa.ChunkedArray)) else a for a in arrays]
    return pc.binary_join_element_wise(*arrays, "")


def _num_text(values: "np.ndarray") -> "pa.Array":
    import pyarrow as pa
    import pyarrow.compute as pc

    return pc.cast(pa.array(np.round(np.asarray(values, dtype=np.float64), 4)), pa.string())


def _fmt(x: float | None) -> str:
    if x is None:
        return "?"
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


# ------------------------------------------------------------------- rule registry

RuleFunc = Callable[["_Ctx"], Iterator[_Found]]
RULE_FUNCS: dict[str, RuleFunc] = {}


def _rule(rule_id: str) -> Callable[[RuleFunc], RuleFunc]:
    """Register the function that checks one rule (each yields that rule's findings)."""

    def deco(fn: RuleFunc) -> RuleFunc:
        assert rule_id in RULES, rule_id
        RULE_FUNCS[rule_id] = fn
        return fn

    return deco


# ------------------------------------------------------------------- classes

def _class_masks(ctx: _Ctx) -> tuple["np.ndarray", "np.ndarray", dict]:
    """(known class, synonym of a class, synonym -> class) per row; cached."""
    if "classes" not in ctx.cache:
        s = ctx.schema
        synonyms = {syn: c.name for c in s.classes for syn in c.synonyms}
        ctx.cache["classes"] = (ctx.in_classes(s.class_names()), ctx.in_classes(synonyms), synonyms)
    return ctx.cache["classes"]


@_rule("class.unknown")
def rule_class_unknown(ctx: _Ctx) -> Iterator[_Found]:
    import pyarrow as pa
    import pyarrow.compute as pc

    if ctx.schema.classes is None:
        return
    known, is_syn, _ = _class_masks(ctx)
    rows = _rows(ctx.gt_label & ~known & ~is_syn)   # a box with no class is unknown too
    if rows.size:
        text = _take(ctx.label_text, rows)
        msg = pc.if_else(pc.is_valid(text), _concat("class '", text, "' is not in the schema"),
                         pa.scalar("the label has a box but no class", pa.string()))
        yield _Found("class.unknown", rows, T.LABEL, text, msg)


@_rule("class.synonym")
def rule_class_synonym(ctx: _Ctx) -> Iterator[_Found]:
    import pyarrow as pa

    if ctx.schema.classes is None:
        return
    _, is_syn, synonyms = _class_masks(ctx)
    rows = _rows(ctx.gt_label & is_syn)
    if rows.size:
        target = pa.array(ctx.per_label(synonyms, "", dtype=object)[rows], pa.string())
        text = _take(ctx.label_text, rows)
        yield _Found("class.synonym", rows, T.LABEL, text, _concat("'", text, "' is a synonym: use '", target, "'"))


@_rule("class.id-mismatch")
def rule_class_id_mismatch(ctx: _Ctx) -> Iterator[_Found]:
    s = ctx.schema
    ids = {c.name: float(c.id) for c in s.classes or () if c.id is not None}
    if not ids or T.CATEGORY_ID not in ctx.table.column_names:
        return
    want = ctx.per_label(ids, np.nan, dtype=np.float64)
    have = T.numpy_column(ctx.table, T.CATEGORY_ID, dtype=np.float64)
    rows = _rows(ctx.gt_label & ~np.isnan(want) & ~np.isnan(have) & (have != want))
    if rows.size:
        yield _Found("class.id-mismatch", rows, T.CATEGORY_ID, _num_text(have[rows]),
                     _concat("category_id ", _num_text(have[rows]), " but the schema gives '",
                             _take(ctx.label_text, rows), "' id ", _num_text(want[rows])))


# ------------------------------------------------------------------- attributes

_INT_RE = r"^\s*[+-]?\d+\s*$"
_FLOAT_RE = r"^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$|^\s*[+-]?(inf|nan)\s*$"


@dataclass
class _AttrState:
    """What every attribute rule needs to know about one attribute, computed once."""

    spec: AttrSpec
    absent: bool
    applies: "np.ndarray"        # label rows of the classes it applies to
    required: "np.ndarray"       # label rows on which it is required
    valid: "np.ndarray"          # value present (not null, not NaN)
    present: "np.ndarray"        # ground-truth label rows with a value
    bad_type: "np.ndarray"
    numbers: "np.ndarray | None"
    _text: Any = None
    ctx: Any = None

    @property
    def text(self) -> "pa.Array":
        if self._text is None:
            self._text = self.ctx.text(self.spec.name)
        return self._text

    @property
    def ok(self) -> "np.ndarray":
        return self.present & ~self.bad_type


def _attr_states(ctx: _Ctx) -> list[_AttrState]:
    if "attrs" in ctx.cache:
        return ctx.cache["attrs"]
    import pyarrow as pa

    out = []
    L = ctx.gt_label
    for spec in ctx.schema.attributes or ():
        applies = L & ctx.in_classes(spec.classes) if spec.classes is not None else L
        req_classes = spec.required_classes()
        if req_classes is None:
            required = L
        elif req_classes:
            required = L & ctx.in_classes(req_classes)
        else:
            required = np.zeros(ctx.n, bool)
        absent = spec.name not in ctx.table.column_names
        if absent:
            none = np.zeros(ctx.n, bool)
            out.append(_AttrState(spec, True, applies, required, none, none, none, None, ctx=ctx))
            continue
        col = ctx.table.column(spec.name)
        valid = col.is_valid().to_numpy(zero_copy_only=False) if ctx.n else np.zeros(0, bool)
        if pa.types.is_floating(col.type):  # NaN counts as missing
            valid = valid & ~np.isnan(col.to_numpy(zero_copy_only=False))
        present = L & valid
        if present.any():
            bad_type, numbers = _attr_values(ctx, spec, present)
        else:
            bad_type, numbers = np.zeros(ctx.n, bool), None
        out.append(_AttrState(spec, False, applies, required, valid, present, bad_type, numbers, ctx=ctx))
    ctx.cache["attrs"] = out
    return out


def _attr_values(ctx: _Ctx, spec: AttrSpec, present: "np.ndarray") -> tuple["np.ndarray", "np.ndarray | None"]:
    """(rows of ``present`` whose value has the wrong type, float values for numbers)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    col = ctx.table.column(spec.name).combine_chunks()
    if pa.types.is_dictionary(col.type):
        col = col.cast(col.type.value_type)
    t = col.type
    bad = np.zeros(ctx.n, bool)
    numbers = None
    is_text = pa.types.is_string(t) or pa.types.is_large_string(t)
    if spec.type == "bool":
        if pa.types.is_boolean(t):
            pass
        elif pa.types.is_integer(t) or pa.types.is_floating(t):
            v = col.to_numpy(zero_copy_only=False).astype(np.float64)
            bad = present & ~np.isin(v, (0.0, 1.0))
        elif is_text:
            ok = pc.is_in(pc.utf8_lower(col), value_set=pa.array(["true", "false", "0", "1"])).to_numpy(zero_copy_only=False)
            bad = present & ~ok
        else:
            bad = present.copy()
    elif spec.type in ("int", "float"):
        if pa.types.is_integer(t) or pa.types.is_floating(t):
            numbers = pc.cast(col, pa.float64()).to_numpy(zero_copy_only=False)
        elif is_text:
            ok = pc.fill_null(pc.match_substring_regex(col, _INT_RE if spec.type == "int" else _FLOAT_RE), False)
            bad = present & ~ok.to_numpy(zero_copy_only=False)
            safe = pc.if_else(ok, col, pa.scalar(None, pa.string()))
            numbers = pc.cast(pc.utf8_trim_whitespace(safe), pa.float64()).to_numpy(zero_copy_only=False)
        else:
            bad = present.copy()
        if numbers is not None and spec.type == "int":
            finite = np.isfinite(numbers)
            with np.errstate(all="ignore"):
                frac = finite & (numbers != np.round(numbers))
            bad = bad | (present & (frac | (~finite & ~np.isnan(numbers))))
    elif spec.type == "string":
        if not is_text:
            bad = present.copy()
    return bad, numbers


@_rule("attr.missing")
def rule_attr_missing(ctx: _Ctx) -> Iterator[_Found]:
    for a in _attr_states(ctx):
        name = a.spec.name
        rows = _rows(a.required & ~a.valid)
        if rows.size:
            how = "is absent (class '" if a.absent else "is missing on class '"
            yield _Found("attr.missing", rows, name, None,
                         _concat("required attribute '", name, "' ", how, _take(ctx.label_text, rows), "'" + (")" if a.absent else "")))


@_rule("attr.type")
def rule_attr_type(ctx: _Ctx) -> Iterator[_Found]:
    for a in _attr_states(ctx):
        rows = _rows(a.bad_type)
        if rows.size:
            text = _take(a.text, rows)
            yield _Found("attr.type", rows, a.spec.name, text,
                         _concat("'", a.spec.name, "' should be ", a.spec.type, ", got ", text))


@_rule("attr.range")
def rule_attr_range(ctx: _Ctx) -> Iterator[_Found]:
    for a in _attr_states(ctx):
        spec = a.spec
        if a.numbers is None or (spec.min is None and spec.max is None):
            continue
        out = np.zeros(ctx.n, bool)
        with np.errstate(all="ignore"):
            if spec.min is not None:
                out |= ~(a.numbers >= spec.min)
            if spec.max is not None:
                out |= ~(a.numbers <= spec.max)
        rows = _rows(a.ok & out)
        if rows.size:
            vals = _num_text(a.numbers[rows])
            yield _Found("attr.range", rows, spec.name, vals,
                         _concat("'", spec.name, "' = ", vals, " is outside [",
                                 _fmt(spec.min) if spec.min is not None else "-inf", ", ",
                                 _fmt(spec.max) if spec.max is not None else "inf", "]"))


@_rule("attr.enum")
def rule_attr_enum(ctx: _Ctx) -> Iterator[_Found]:
    import pyarrow as pa
    import pyarrow.compute as pc

    for a in _attr_states(ctx):
        if a.spec.type != "enum" or not a.present.any():
            continue
        member = pc.is_in(a.text, value_set=pa.array(list(a.spec.values), pa.string())).to_numpy(zero_copy_only=False)
        rows = _rows(a.ok & ~member)
        if rows.size:
            text = _take(a.text, rows)
            yield _Found("attr.enum", rows, a.spec.name, text,
                         _concat("'", a.spec.name, "' = ", text, " is not one of ", ", ".join(a.spec.values)))


@_rule("attr.pattern")
def rule_attr_pattern(ctx: _Ctx) -> Iterator[_Found]:
    import pyarrow.compute as pc

    for a in _attr_states(ctx):
        if a.spec.type != "string" or a.spec.pattern is None or not a.present.any():
            continue
        match = pc.fill_null(pc.match_substring_regex(a.text, full_match_pattern(a.spec.pattern)), False)
        rows = _rows(a.ok & ~match.to_numpy(zero_copy_only=False))
        if rows.size:
            text = _take(a.text, rows)
            yield _Found("attr.pattern", rows, a.spec.name, text,
                         _concat("'", a.spec.name, "' = ", text, " does not match ", a.spec.pattern))


@_rule("attr.not-applicable")
def rule_attr_not_applicable(ctx: _Ctx) -> Iterator[_Found]:
    for a in _attr_states(ctx):
        if a.spec.classes is None:
            continue
        rows = _rows(ctx.gt_label & ~a.applies & a.valid)
        if rows.size:
            yield _Found("attr.not-applicable", rows, a.spec.name, _take(a.text, rows),
                         _concat("'", a.spec.name, "' does not apply to class '", _take(ctx.label_text, rows), "'"))


@_rule("attr.unknown")
def rule_attr_unknown(ctx: _Ctx) -> Iterator[_Found]:
    s = ctx.schema
    if s.attributes is None:
        return
    declared = {a.name for a in s.attributes}
    for name in T.attribute_columns(ctx.table):
        if name in declared or name in COMMAND_COLUMNS or name in GEOMETRY_COLUMNS:
            continue
        valid = ctx.table.column(name).is_valid().to_numpy(zero_copy_only=False) if ctx.n else np.zeros(0, bool)
        rows = _rows(ctx.gt_label & valid)
        if rows.size:
            yield _Found("attr.unknown", rows, name, _take(ctx.text(name), rows),
                         f"column '{name}' is not an attribute in the schema")


# ------------------------------------------------------------------- boxes

def _box_text(b: "np.ndarray") -> "pa.Array":
    return _concat("[", _num_text(b[:, 0]), ", ", _num_text(b[:, 1]), ", ", _num_text(b[:, 2]), ", ",
                   _num_text(b[:, 3]), "]")


@dataclass
class _BoxState:
    has_box: "np.ndarray"
    finite: "np.ndarray"
    good: "np.ndarray"           # ground-truth label rows with a finite box of positive size
    W: "np.ndarray"
    H: "np.ndarray"
    sized: "np.ndarray"          # the image size is known


def _box_state(ctx: _Ctx) -> _BoxState:
    if "boxes" not in ctx.cache:
        table = ctx.table
        has_box = table.column(T.BBOX).is_valid().to_numpy(zero_copy_only=False) if (
            ctx.n and T.BBOX in table.column_names) else np.zeros(ctx.n, bool)
        b = ctx.boxes
        finite = np.isfinite(b).all(axis=1)
        with np.errstate(all="ignore"):
            pos = finite & (b[:, 2] > 0) & (b[:, 3] > 0)
        W = T.numpy_column(table, T.WIDTH, dtype=np.float64)
        H = T.numpy_column(table, T.HEIGHT, dtype=np.float64)
        with np.errstate(all="ignore"):
            sized = np.isfinite(W) & np.isfinite(H) & (W > 0) & (H > 0)
        ctx.cache["boxes"] = _BoxState(has_box, finite, ctx.gt_label & has_box & pos, W, H, sized)
    return ctx.cache["boxes"]


def _box_limit(ctx: _Ctx, attr: str) -> "np.ndarray | None":
    """Per-row limit (NaN: none) from the default box rules and the per-class overrides."""
    s = ctx.schema
    default = getattr(s.box_rules, attr)
    per = {k: getattr(r, attr) for k, r in s.box_overrides.items()}
    if default is None and all(v is None for v in per.values()):
        return None
    per = {k: (np.nan if v is None else v) for k, v in per.items()}
    return ctx.per_label(per, np.nan if default is None else default, dtype=np.float64)


@_rule("box.missing")
def rule_box_missing(ctx: _Ctx) -> Iterator[_Found]:
    if not ctx.schema.boxes_required:
        return
    rows = _rows(ctx.gt_label & ~_box_state(ctx).has_box)
    if rows.size:
        yield _Found("box.missing", rows, T.BBOX, None, _concat("label of class '", _take(ctx.label_text, rows), "' has no box"))


@_rule("box.not-finite")
def rule_box_not_finite(ctx: _Ctx) -> Iterator[_Found]:
    st = _box_state(ctx)
    rows = _rows(ctx.gt_label & st.has_box & ~st.finite)
    if rows.size:
        yield _Found("box.not-finite", rows, T.BBOX, _box_text(ctx.boxes[rows]), "a box coordinate is NaN or infinite")


@_rule("box.non-positive")
def rule_box_non_positive(ctx: _Ctx) -> Iterator[_Found]:
    st = _box_state(ctx)
    rows = _rows(ctx.gt_label & st.has_box & st.finite & ~st.good)
    if rows.size:
        b = ctx.boxes[rows]
        yield _Found("box.non-positive", rows, T.BBOX, _box_text(b),
                     _concat("box width ", _num_text(b[:, 2]), " x height ", _num_text(b[:, 3]), " is not positive"))


@_rule("box.no-image-size")
def rule_box_no_image_size(ctx: _Ctx) -> Iterator[_Found]:
    s = ctx.schema
    relative = any(getattr(r, k) is not None for r in (s.box_rules, *s.box_overrides.values())
                   for k in ("min_relative_width", "min_relative_height"))
    if not (s.inside_image or relative):
        return
    st = _box_state(ctx)
    rows = _rows(st.good & ~st.sized)
    if rows.size:
        yield _Found("box.no-image-size", rows, T.WIDTH, None,
                     "the image width/height is unknown, so the box could not be checked against it")


@_rule("box.outside-image")
def rule_box_outside_image(ctx: _Ctx) -> Iterator[_Found]:
    s = ctx.schema
    if not s.inside_image:
        return
    st = _box_state(ctx)
    b, tol = ctx.boxes, s.tolerance
    with np.errstate(all="ignore"):
        out = (b[:, 0] < -tol) | (b[:, 1] < -tol) | (b[:, 0] + b[:, 2] > st.W + tol) | (b[:, 1] + b[:, 3] > st.H + tol)
    rows = _rows(st.good & st.sized & out)
    if rows.size:
        yield _Found("box.outside-image", rows, T.BBOX, _box_text(b[rows]),
                     _concat("box ", _box_text(b[rows]), " leaves the ", _num_text(st.W[rows]), "x",
                             _num_text(st.H[rows]), " image"))


@_rule("box.too-small")
def rule_box_too_small(ctx: _Ctx) -> Iterator[_Found]:
    st = _box_state(ctx)
    b = ctx.boxes
    w, h = b[:, 2], b[:, 3]
    small = np.zeros(ctx.n, bool)
    with np.errstate(all="ignore"):
        for attr, value, relative in (("min_width", w, None), ("min_height", h, None),
                                      ("min_relative_width", w, st.W), ("min_relative_height", h, st.H)):
            limit = _box_limit(ctx, attr)
            if limit is None:
                continue
            small |= (value < limit) if relative is None else (st.sized & (value / relative < limit))
    rows = _rows(st.good & small)
    if rows.size:
        yield _Found("box.too-small", rows, T.BBOX, _box_text(b[rows]),
                     _concat("box ", _num_text(w[rows]), "x", _num_text(h[rows]), " of class '",
                             _take(ctx.label_text, rows), "' is below the minimum size"))


@_rule("box.aspect-ratio")
def rule_box_aspect_ratio(ctx: _Ctx) -> Iterator[_Found]:
    limit = _box_limit(ctx, "max_aspect_ratio")
    if limit is None:
        return
    st = _box_state(ctx)
    w, h = ctx.boxes[:, 2], ctx.boxes[:, 3]
    with np.errstate(all="ignore"):
        ratio = np.maximum(w / h, h / w)
        over = ratio > limit
    rows = _rows(st.good & over)
    if rows.size:
        yield _Found("box.aspect-ratio", rows, T.BBOX, _num_text(ratio[rows]),
                     _concat("aspect ratio ", _num_text(ratio[rows]), " of class '", _take(ctx.label_text, rows),
                             "' is above the maximum"))


# ------------------------------------------------------------------- samples

def _first_rows(codes: "np.ndarray", mask: "np.ndarray") -> tuple["np.ndarray", "np.ndarray"]:
    """For each code that occurs on a ``mask`` row: (code, its first such row)."""
    idx = np.flatnonzero(mask)
    u, first = np.unique(codes[idx], return_index=True)
    return u, idx[first].astype(np.int64)


@_rule("sample.missing-value")
def rule_sample_missing_value(ctx: _Ctx) -> Iterator[_Found]:
    import pyarrow as pa

    if not ctx.gt.any():
        return
    table = ctx.table
    codes, _ = ctx.samples()
    for name in ctx.schema.required_columns:
        if name in table.column_names:
            col = table.column(name)
        elif name in T.CORE_COLUMNS:
            col = T.column_or_null(table, name)
        else:
            col = pa.chunked_array([pa.nulls(ctx.n)])
        valid = col.is_valid().to_numpy(zero_copy_only=False)
        _, rows = _first_rows(codes, ctx.gt & ~valid)
        if rows.size:
            what = "is absent" if name not in table.column_names else "is null"
            yield _Found("sample.missing-value", rows, name, None, f"required column '{name}' {what}")


@_rule("sample.value")
def rule_sample_value(ctx: _Ctx) -> Iterator[_Found]:
    import pyarrow as pa
    import pyarrow.compute as pc

    if not ctx.gt.any():
        return
    codes, _ = ctx.samples()
    for name, allowed in ctx.schema.allowed_values.items():
        if name not in ctx.table.column_names:
            continue
        text = ctx.text(name)
        ok = pc.fill_null(pc.is_in(text, value_set=pa.array(list(allowed), pa.string())), True)
        _, rows = _first_rows(codes, ctx.gt & ~ok.to_numpy(zero_copy_only=False))
        if rows.size:
            yield _Found("sample.value", rows, name, _take(text, rows),
                         _concat("'", name, "' = ", _take(text, rows), " is not one of ", ", ".join(allowed)))


def _labels_per_sample(ctx: _Ctx) -> tuple["np.ndarray", "np.ndarray"]:
    """(ground-truth labels, first ground-truth row) per sample that has ground-truth rows."""
    if "per_sample" not in ctx.cache:
        codes, sample_ids = ctx.samples()
        counts = np.bincount(codes[ctx.gt_label], minlength=len(sample_ids))
        u, first = _first_rows(codes, ctx.gt)
        ctx.cache["per_sample"] = (counts[u], first)
    return ctx.cache["per_sample"]


@_rule("sample.empty")
def rule_sample_empty(ctx: _Ctx) -> Iterator[_Found]:
    if ctx.schema.allow_empty or not ctx.gt.any():
        return
    c, first = _labels_per_sample(ctx)
    rows = first[c == 0]
    if rows.size:
        yield _Found("sample.empty", rows, T.LABEL, "0", "the sample has no labels")


@_rule("sample.too-few-labels")
def rule_sample_too_few(ctx: _Ctx) -> Iterator[_Found]:
    lo = ctx.schema.min_labels
    if lo is None or not ctx.gt.any():
        return
    c, first = _labels_per_sample(ctx)
    sel = (c > 0) & (c < lo)
    if sel.any():
        yield _Found("sample.too-few-labels", first[sel], T.LABEL, _num_text(c[sel]),
                     _concat(_num_text(c[sel]), " labels, fewer than ", lo))


@_rule("sample.too-many-labels")
def rule_sample_too_many(ctx: _Ctx) -> Iterator[_Found]:
    hi = ctx.schema.max_labels
    if hi is None or not ctx.gt.any():
        return
    c, first = _labels_per_sample(ctx)
    sel = c > hi
    if sel.any():
        yield _Found("sample.too-many-labels", first[sel], T.LABEL, _num_text(c[sel]),
                     _concat(_num_text(c[sel]), " labels, more than ", hi))


# ------------------------------------------------------------------- dataset

def class_counts(ctx: _Ctx, mask: "np.ndarray") -> dict[str, int]:
    counts = np.bincount(ctx.label_codes[mask], minlength=len(ctx.label_dict) + 1)
    return {name: int(cnt) for name, cnt in zip(ctx.label_dict, counts)}


def _dataset_found(rule: str, items: list[tuple[str, str]], column: str = T.LABEL) -> _Found:
    import pyarrow as pa

    return _Found(rule, np.full(len(items), -1, np.int64), column,
                  pa.array([v for v, _ in items], pa.string()), pa.array([m for _, m in items], pa.string()))


def _class_universe(ctx: _Ctx, counts: dict[str, int]) -> list[str]:
    """The classes the count rules speak about: the schema's, else those present."""
    names = ctx.schema.class_names() if ctx.schema.classes is not None else None
    return names if names is not None else sorted(k for k, v in counts.items() if v)


@_rule("dataset.min-examples")
def rule_dataset_min_examples(ctx: _Ctx) -> Iterator[_Found]:
    s = ctx.schema
    per_class = {c.name: c.min_examples for c in s.classes or () if c.min_examples is not None}
    if s.min_examples is None and not per_class:
        return
    counts = class_counts(ctx, ctx.gt_label)
    found = []
    for name in _class_universe(ctx, counts):          # a loop over classes, not rows
        need = per_class.get(name, s.min_examples)
        have = counts.get(name, 0)
        if need is not None and have < need:
            found.append((name, f"class '{name}' has {have} labels, fewer than {need}"))
    if found:
        yield _dataset_found("dataset.min-examples", found)


@_rule("dataset.min-examples-per-split")
def rule_dataset_min_examples_per_split(ctx: _Ctx) -> Iterator[_Found]:
    import pyarrow as pa
    import pyarrow.compute as pc

    need = ctx.schema.min_examples_per_split
    if need is None or T.SPLIT not in ctx.table.column_names:
        return
    L = ctx.gt_label
    universe = _class_universe(ctx, class_counts(ctx, L))
    split = ctx.text(T.SPLIT)
    splits = [x for x in pc.unique(pc.filter(split, pa.array(L))).to_pylist() if x is not None]
    found = []
    for sp in sorted(splits):
        sc = class_counts(ctx, L & pc.fill_null(pc.equal(split, sp), False).to_numpy(zero_copy_only=False))
        for name in universe:
            have = sc.get(name, 0)
            if have < need:
                found.append((f"{name}@{sp}", f"class '{name}' has {have} labels in split '{sp}', fewer than {need}"))
    if found:
        yield _dataset_found("dataset.min-examples-per-split", found)


@_rule("dataset.imbalance")
def rule_dataset_imbalance(ctx: _Ctx) -> Iterator[_Found]:
    s = ctx.schema
    if s.max_imbalance is None:
        return
    names = set(s.class_names()) if s.classes is not None else None
    counts = class_counts(ctx, ctx.gt_label)
    present = {k: v for k, v in counts.items() if v > 0 and (names is None or k in names)}
    if len(present) < 2:
        return
    most = max(present, key=present.get)
    least = min(present, key=present.get)
    ratio = present[most] / present[least]
    if ratio > s.max_imbalance:
        yield _dataset_found("dataset.imbalance", [(
            f"{ratio:.4g}", f"'{most}' ({present[most]}) outnumbers '{least}' ({present[least]}) "
                            f"{ratio:.4g}:1, more than {_fmt(s.max_imbalance)}:1")])


@_rule("dataset.duplicate-label")
def rule_dataset_duplicate_label(ctx: _Ctx) -> Iterator[_Found]:
    if ctx.schema.duplicate_iou is None:
        return
    i, j, iou = duplicate_pairs(ctx, ctx.schema.duplicate_iou)
    if j.size:
        # report each duplicate once, against the first label it repeats
        jj, first = np.unique(j, return_index=True)
        i, iou = i[first], iou[first]
        ids = T.numpy_column(ctx.table, T.LABEL_ID, dtype=np.float64)
        yield _Found("dataset.duplicate-label", jj, T.BBOX, _num_text(iou),
                     _concat("same class '", _take(ctx.label_text, jj), "' as label_id ", _num_text(ids[i]),
                             " with IoU ", _num_text(iou)))


@_rule("dataset.duplicate-label-id")
def rule_dataset_duplicate_label_id(ctx: _Ctx) -> Iterator[_Found]:
    import pyarrow.compute as pc

    if not ctx.schema.unique_label_ids or T.LABEL_ID not in ctx.table.column_names:
        return
    ids = T.numpy_column(ctx.table, T.LABEL_ID, dtype=np.float64)
    has = ctx.is_label & ~np.isnan(ids)
    if not has.any():
        return
    source = ctx.table.column(T.SOURCE).combine_chunks()
    src = pc.dictionary_encode(source).indices.to_numpy(zero_copy_only=False)
    idx = np.flatnonzero(has)
    order = idx[np.lexsort((idx, ids[idx], src[idx]))]
    same = (ids[order][1:] == ids[order][:-1]) & (src[order][1:] == src[order][:-1])
    rows = np.sort(order[1:][same]).astype(np.int64)     # every repeat after the first
    if rows.size:
        yield _Found("dataset.duplicate-label-id", rows, T.LABEL_ID, _num_text(ids[rows]),
                     _concat("label_id ", _num_text(ids[rows]), " is used more than once in source '",
                             _take(source, rows), "'"))


def duplicate_pairs(ctx: _Ctx, min_iou: float, chunk_pairs: int = 4_000_000) -> tuple["np.ndarray", "np.ndarray", "np.ndarray"]:
    """Pairs (i, j), i before j, of ground-truth labels with the same class in the same
    sample whose IoU is above ``min_iou``. Vectorised: rows are sorted by (sample, class);
    every pair within a group is generated with numpy, in chunks of ``chunk_pairs``."""
    b = ctx.boxes
    with np.errstate(all="ignore"):
        ok = ctx.gt_label & np.isfinite(b).all(axis=1) & (b[:, 2] > 0) & (b[:, 3] > 0)
    if T.ISCROWD in ctx.table.column_names:
        ok &= ~T.numpy_column(ctx.table, T.ISCROWD, fill=False, dtype=bool)
    empty = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0))
    idx = np.flatnonzero(ok)
    if idx.size < 2:
        return empty
    codes, _ = ctx.samples()
    key = codes[idx] * (len(ctx.label_dict) + 1) + ctx.label_codes[idx]
    order = idx[np.argsort(key, kind="stable")]   # by (sample, class), then row order
    sc, lc = codes[order], ctx.label_codes[order]
    m = order.size
    new = np.ones(m, bool)
    new[1:] = (sc[1:] != sc[:-1]) | (lc[1:] != lc[:-1])
    gid = np.cumsum(new) - 1
    starts = np.flatnonzero(new)
    sizes = np.diff(np.append(starts, m))
    pos_in_group = np.arange(m) - starts[gid]
    later = (sizes[gid] - 1 - pos_in_group).astype(np.int64)   # partners after each row
    if not later.any():
        return empty
    out_i, out_j, out_iou = [], [], []
    for pi, offset in pair_chunks(later, chunk_pairs):
        pj = pi + offset + 1
        a, c = b[order[pi]], b[order[pj]]
        iw = np.minimum(a[:, 0] + a[:, 2], c[:, 0] + c[:, 2]) - np.maximum(a[:, 0], c[:, 0])
        ih = np.minimum(a[:, 1] + a[:, 3], c[:, 1] + c[:, 3]) - np.maximum(a[:, 1], c[:, 1])
        with np.errstate(all="ignore"):
            inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
            union = a[:, 2] * a[:, 3] + c[:, 2] * c[:, 3] - inter
            iou = inter / union
        hit = iou > min_iou
        out_i.append(order[pi[hit]])
        out_j.append(order[pj[hit]])
        out_iou.append(iou[hit])
    i, j, iou = (np.concatenate(out_i).astype(np.int64), np.concatenate(out_j).astype(np.int64),
                 np.concatenate(out_iou))
    srt = np.lexsort((i, j))
    return i[srt], j[srt], iou[srt]


@_rule("dataset.split-overlap")
def rule_dataset_split_overlap(ctx: _Ctx) -> Iterator[_Found]:
    import pyarrow as pa
    import pyarrow.compute as pc

    s = ctx.schema
    if not s.split_overlap or T.SPLIT not in ctx.table.column_names:
        return
    split = ctx.text(T.SPLIT)
    valid = ctx.gt & split.is_valid().to_numpy(zero_copy_only=False)
    if not valid.any():
        return
    if s.split_overlap_key == "basename":
        key = pc.replace_substring_regex(ctx.table.column(T.SAMPLE_ID).combine_chunks(), r"^.*/", "")
        kcodes = pc.dictionary_encode(key).indices.to_numpy(zero_copy_only=False).astype(np.int64)
    else:
        kcodes, _ = ctx.samples()
        key = ctx.table.column(T.SAMPLE_ID).combine_chunks()
    spc = pc.dictionary_encode(split)
    scodes = np.nan_to_num(spc.indices.to_numpy(zero_copy_only=False), nan=0).astype(np.int64)
    nspl = len(spc.dictionary)
    idx = np.flatnonzero(valid)
    pair = kcodes[idx] * nspl + scodes[idx]
    upair, first = np.unique(pair, return_index=True)
    ukey = upair // nspl
    nsplits = np.bincount(ukey, minlength=int(kcodes.max()) + 1 if kcodes.size else 0)
    bad_keys = np.flatnonzero(nsplits > 1)
    if not bad_keys.size:
        return
    # one violation per key, on its first row; the value lists the splits
    sel = np.isin(ukey, bad_keys)
    rows_all = idx[first[sel]]
    keys_all = ukey[sel]
    split_text = _take(split, rows_all)
    tab = pa.table({"k": keys_all, "row": rows_all, "split": split_text})
    agg = tab.group_by("k").aggregate([("row", "min"), ("split", "list")]).sort_by("row_min")
    rows = agg.column("row_min").to_numpy().astype(np.int64)
    splits = pc.binary_join(pc.list_sort(agg.column("split_list")) if hasattr(pc, "list_sort") else agg.column("split_list"), ", ")
    splits = splits.combine_chunks() if isinstance(splits, pa.ChunkedArray) else splits
    yield _Found("dataset.split-overlap", rows, T.SPLIT, splits,
                 _concat("'", _take(key, rows), "' is in splits ", splits))


# ------------------------------------------------------------------- predictions

def _pred_scores(ctx: _Ctx) -> tuple["np.ndarray", "np.ndarray"]:
    """(score as float with NaN for null, True where the score is a NaN value, not null)."""
    score = T.numpy_column(ctx.table, T.SCORE, dtype=np.float64)
    if T.SCORE in ctx.table.column_names:
        nan_value = ctx.table.column(T.SCORE).is_valid().to_numpy(zero_copy_only=False) & np.isnan(score)
    else:
        nan_value = np.zeros(ctx.n, bool)
    return score, nan_value


@_rule("pred.score-missing")
def rule_pred_score_missing(ctx: _Ctx) -> Iterator[_Found]:
    if not ctx.schema.score_required or not ctx.pred_label.any():
        return
    score, nan_value = _pred_scores(ctx)
    rows = _rows(ctx.pred_label & np.isnan(score) & ~nan_value)
    if rows.size:
        yield _Found("pred.score-missing", rows, T.SCORE, None, "the prediction has no score")


@_rule("pred.score-range")
def rule_pred_score_range(ctx: _Ctx) -> Iterator[_Found]:
    if not ctx.pred_label.any():
        return
    score, nan_value = _pred_scores(ctx)
    with np.errstate(all="ignore"):
        bad = ~((score >= 0) & (score <= 1)) & (~np.isnan(score) | nan_value)
    rows = _rows(ctx.pred_label & bad)
    if rows.size:
        yield _Found("pred.score-range", rows, T.SCORE, _num_text(score[rows]),
                     _concat("score ", _num_text(score[rows]), " is outside [0, 1]"))


@_rule("pred.class-unknown")
def rule_pred_class_unknown(ctx: _Ctx) -> Iterator[_Found]:
    s = ctx.schema
    if s.classes is None or not s.pred_classes_known or not ctx.pred_label.any():
        return
    known = ctx.in_classes(s.class_names())
    has_label = ctx.label_codes < len(ctx.label_dict)
    rows = _rows(ctx.pred_label & has_label & ~known)
    if rows.size:
        text = _take(ctx.label_text, rows)
        yield _Found("pred.class-unknown", rows, T.LABEL, text,
                     _concat("predicted class '", text, "' is not in the schema"))


@_rule("pred.box-invalid")
def rule_pred_box_invalid(ctx: _Ctx) -> Iterator[_Found]:
    if not ctx.pred_label.any() or T.BBOX not in ctx.table.column_names:
        return
    has_box = ctx.table.column(T.BBOX).is_valid().to_numpy(zero_copy_only=False)
    b = ctx.boxes
    with np.errstate(all="ignore"):
        bad = ~(np.isfinite(b).all(axis=1) & (b[:, 2] > 0) & (b[:, 3] > 0))
    rows = _rows(ctx.pred_label & has_box & bad)
    if rows.size:
        yield _Found("pred.box-invalid", rows, T.BBOX, _box_text(b[rows]), "the predicted box is not a valid box")


assert set(RULE_FUNCS) == set(RULES), sorted(set(RULES) - set(RULE_FUNCS))


# =========================================================================== results

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
        """One row per violation (the ``--report`` table)."""
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


def check(table: "pa.Table", schema: Schema) -> CheckResult:
    """Check every row of a label table against the schema."""
    import pyarrow as pa

    ctx = _Ctx(table, schema)
    rule_ids = [r for r in RULES if schema.severity_of(r) != OFF]
    rule_index = {r: i for i, r in enumerate(rule_ids)}
    parts: list[pa.Table] = []
    mark_rows, mark_rules = [], []
    sample_codes = None
    label_id = T.column_or_null(table, T.LABEL_ID).combine_chunks()
    sample_id = table.column(T.SAMPLE_ID).combine_chunks() if table.num_rows else pa.array([], pa.string())
    source = table.column(T.SOURCE).combine_chunks() if table.num_rows else pa.array([], pa.string())
    for rule in rule_ids:                      # rules that are off are not computed
        for f in RULE_FUNCS[rule](ctx):
            rows = np.asarray(f.rows, dtype=np.int64)
            k = rows.size
            scope = RULES[f.rule][1]
            real = rows >= 0
            safe = np.where(real, rows, 0)
            null_s = pa.nulls(k, pa.string())
            sid = _take(sample_id, safe) if k and table.num_rows else null_s
            src = _take(source, safe) if k and table.num_rows else null_s
            lid = _take(label_id, safe) if k and table.num_rows else pa.nulls(k, pa.int64())
            if not real.all():
                mask = pa.array(~real)
                sid = pa.compute.if_else(mask, pa.scalar(None, pa.string()), sid)
                src = pa.compute.if_else(mask, pa.scalar(None, pa.string()), src)
                lid = pa.compute.if_else(mask, pa.scalar(None, pa.int64()), lid)
            if scope == "sample":
                lid = pa.nulls(k, pa.int64())
            parts.append(pa.table({
                "rule": pa.array(np.full(k, f.rule, dtype=object), pa.string()),
                "severity": pa.array(np.full(k, schema.severity_of(f.rule), dtype=object), pa.string()),
                "sample_id": sid,
                "label_id": lid,
                "column": pa.nulls(k, pa.string()) if f.column is None else pa.array(np.full(k, f.column, dtype=object), pa.string()),
                "value": _as_text_array(f.values, k),
                "message": _as_text_array(f.messages, k),
                "row": pa.array(rows, pa.int64()),
                "source": src,
            }))
            if scope == "label":
                mark_rows.append(rows[real])
                mark_rules.append(np.full(int(real.sum()), rule_index[f.rule], np.int64))
            elif scope == "sample":
                if sample_codes is None:
                    sample_codes, _ = ctx.samples()
                flagged = np.zeros(int(sample_codes.max()) + 1 if sample_codes.size else 0, bool)
                flagged[sample_codes[rows[real]]] = True
                hit = ctx.gt & flagged[sample_codes]
                r = _rows(hit)
                mark_rows.append(r)
                mark_rules.append(np.full(r.size, rule_index[f.rule], np.int64))
    if parts:
        violations = pa.concat_tables(parts)
    else:
        violations = pa.table({
            "rule": pa.array([], pa.string()), "severity": pa.array([], pa.string()),
            "sample_id": pa.array([], pa.string()), "label_id": pa.array([], pa.int64()),
            "column": pa.array([], pa.string()), "value": pa.array([], pa.string()),
            "message": pa.array([], pa.string()), "row": pa.array([], pa.int64()), "source": pa.array([], pa.string()),
        })
    mr = np.concatenate(mark_rows) if mark_rows else np.zeros(0, np.int64)
    mu = np.concatenate(mark_rules) if mark_rules else np.zeros(0, np.int64)
    return CheckResult(violations=violations, mark_rows=mr, mark_rules=mu, rule_ids=rule_ids, schema=schema,
                       num_rows=table.num_rows, num_labels=int(ctx.is_label.sum()))


def _as_text_array(values: Any, k: int) -> "pa.Array":
    import pyarrow as pa

    if values is None:
        return pa.nulls(k, pa.string())
    if isinstance(values, str):
        return pa.array(np.full(k, values, dtype=object), pa.string())
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    return values.cast(pa.string()) if values.type != pa.string() else values
