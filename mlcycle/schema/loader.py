"""Reading a schema file: YAML with line numbers, loaded safely, validated whole.

``load(path)`` parses the YAML with a ``yaml.SafeLoader`` subclass that remembers the
line of every key and value, then validates the whole schema *before* any data is read:
an unknown key, a wrong type, a bad regular expression or an unknown rule id is reported
as ``file:line: <key>: <what>`` (``MlcycleError``, exit 1). The result is a plain, frozen
``Schema`` (``mlcycle.schema.model``).
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Iterable

from mlcycle import table as T
from mlcycle.errors import MlcycleError
from mlcycle.schema.model import (
    ATTR_TYPES, OFF, RULES, SEVERITIES, AttrSpec, BoxRules, ClassSpec, Schema, full_match_pattern,
)

# --------------------------------------------------------------------------- YAML with lines

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
        from mlcycle import yamlsafe

        return yamlsafe.load(text, name, _loader_class())  # a SafeLoader subclass, aliases bounded
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


# --------------------------------------------------------------------------- validation

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
        if name in T.CORE_COLUMNS or name in T.COMMAND_COLUMNS:
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

