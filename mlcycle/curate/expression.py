"""The filter expression language: small, safe (never Python ``eval``), compiled to
``pyarrow.compute``.

Grammar (keywords are case-insensitive)::

    expr       := or
    or         := and ( "or" and )*
    and        := not ( "and" not )*
    not        := "not" not | comparison
    comparison := operand [ op operand
                          | ["not"] "in" "[" literal ("," literal)* "]"
                          | "is" ["not"] "null" ]
    op         := "==" | "=" | "!=" | "<" | "<=" | ">" | ">="
    operand    := column | literal | "(" expr ")"
    column     := NAME | `any name`          NAME: letters, digits, _ . -  (not first: digit . -)
                  bbox.x  bbox.y  bbox.w  bbox.h   (parts of the box)
    literal    := 'text' | "text" | number | true | false | null

A comparison with a null value is null, and a row whose condition is null does not pass
(SQL's rule); ``is null`` tests for missing values. A boolean column may stand alone
(``difficult``, ``not occluded``). Errors name the character where the problem is, and
suggest the nearest column name.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Sequence

from mlcycle import table as T
from mlcycle.errors import OptionError

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa

BBOX_PARTS = {"x": 0, "y": 1, "w": 2, "h": 3}
_OPS = {"==": "equal", "=": "equal", "!=": "not_equal", "<": "less", "<=": "less_equal",
        ">": "greater", ">=": "greater_equal"}
_KEYWORDS = {"and", "or", "not", "in", "is", "null", "true", "false"}
_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<num>[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?)
  | (?P<str>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
  | (?P<quoted>`[^`]*`)
  | (?P<name>[A-Za-z_][A-Za-z0-9_.\-]*)
  | (?P<op>==|!=|<=|>=|=|<|>)
  | (?P<punct>[()\[\],])
""", re.VERBOSE)


@dataclass(frozen=True)
class Token:
    kind: str  # num str name op punct kw end
    text: str
    value: Any
    pos: int  # 1-based character


# --------------------------------------------------------------------------- AST

@dataclass(frozen=True)
class Column:
    name: str
    part: int | None  # bbox component
    pos: int


@dataclass(frozen=True)
class Literal:
    value: Any
    pos: int


@dataclass(frozen=True)
class Compare:
    op: str
    left: Any
    right: Any
    pos: int


@dataclass(frozen=True)
class InList:
    operand: Any
    values: tuple
    negated: bool
    pos: int


@dataclass(frozen=True)
class IsNull:
    operand: Any
    negated: bool
    pos: int


@dataclass(frozen=True)
class BoolOp:
    op: str  # and / or
    left: Any
    right: Any


@dataclass(frozen=True)
class Not:
    operand: Any


class ExpressionError(OptionError):
    """A syntax or type error in an expression; ``position`` is the 1-based character."""

    def __init__(self, option: str | None, message: str, position: int | None, hint: str | None = None):
        where = f" at character {position}" if position is not None else ""
        super().__init__(option, message + where, hint)
        self.position = position


def _unescape(text: str) -> str:
    body = text[1:-1]
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m.group(1), m.group(1)), body)


def tokenize(text: str, option: str | None = "where") -> list[Token]:
    out: list[Token] = []
    i = 0
    while i < len(text):
        m = _TOKEN.match(text, i)
        if m is None:
            ch = text[i]
            if ch in "'\"":
                raise ExpressionError(option, "unterminated string", i + 1, hint="close the quote")
            raise ExpressionError(option, f"unexpected character {ch!r}", i + 1)
        kind = m.lastgroup
        tok = m.group()
        if kind == "ws":
            pass
        elif kind == "num":
            value = float(tok) if any(c in tok for c in ".eE") else int(tok)
            out.append(Token("num", tok, value, i + 1))
        elif kind == "str":
            out.append(Token("str", tok, _unescape(tok), i + 1))
        elif kind == "quoted":
            out.append(Token("name", tok, tok[1:-1], i + 1))
        elif kind == "name":
            low = tok.lower()
            if low in _KEYWORDS:
                out.append(Token("kw", tok, low, i + 1))
            else:
                out.append(Token("name", tok, tok, i + 1))
        else:
            out.append(Token(kind, tok, tok, i + 1))
        i = m.end()
    out.append(Token("end", "", None, len(text) + 1))
    return out


class _Parser:
    def __init__(self, text: str, option: str | None) -> None:
        self.option = option
        self.tokens = tokenize(text, option)
        self.i = 0

    def peek(self) -> Token:
        return self.tokens[self.i]

    def next(self) -> Token:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def error(self, message: str, tok: Token, hint: str | None = None):
        return ExpressionError(self.option, message, tok.pos, hint)

    def is_kw(self, *words: str) -> bool:
        tok = self.peek()
        return tok.kind == "kw" and tok.value in words

    def parse(self):
        if self.peek().kind == "end":
            raise self.error("empty expression", self.peek(), hint="e.g. \"label == 'cat' and score >= 0.5\"")
        node = self.parse_or()
        tok = self.peek()
        if tok.kind != "end":
            raise self.error(f"unexpected {tok.text!r}", tok, hint="join conditions with 'and' / 'or'")
        return node

    def parse_or(self):
        node = self.parse_and()
        while self.is_kw("or"):
            self.next()
            node = BoolOp("or", node, self.parse_and())
        return node

    def parse_and(self):
        node = self.parse_not()
        while self.is_kw("and"):
            self.next()
            node = BoolOp("and", node, self.parse_not())
        return node

    def parse_not(self):
        if self.is_kw("not"):
            self.next()
            return Not(self.parse_not())
        return self.parse_comparison()

    def parse_comparison(self):
        left = self.parse_operand()
        tok = self.peek()
        if tok.kind == "op":
            self.next()
            right = self.parse_operand()
            return Compare(_OPS[tok.text], left, right, tok.pos)
        if self.is_kw("in") or (self.is_kw("not") and self.tokens[self.i + 1].kind == "kw"
                                and self.tokens[self.i + 1].value == "in"):
            negated = self.is_kw("not")
            if negated:
                self.next()
            self.next()
            return InList(left, self.parse_list(), negated, tok.pos)
        if self.is_kw("is"):
            self.next()
            negated = False
            if self.is_kw("not"):
                self.next()
                negated = True
            if not self.is_kw("null"):
                raise self.error("expected 'null' after 'is'", self.peek())
            self.next()
            return IsNull(left, negated, tok.pos)
        return left

    def parse_list(self) -> tuple:
        tok = self.next()
        if tok.kind != "punct" or tok.text != "[":
            raise self.error("expected '[' after 'in'", tok, hint="e.g. label in ['cat', 'dog']")
        values = []
        if self.peek().text == "]":
            self.next()
            return ()
        while True:
            item = self.parse_operand()
            if not isinstance(item, Literal):
                raise self.error("a list holds literal values only", self.tokens[self.i - 1])
            values.append(item.value)
            tok = self.next()
            if tok.kind == "punct" and tok.text == "]":
                return tuple(values)
            if not (tok.kind == "punct" and tok.text == ","):
                raise self.error("expected ',' or ']' in the list", tok)

    def parse_operand(self):
        tok = self.next()
        if tok.kind == "punct" and tok.text == "(":
            node = self.parse_or()
            close = self.next()
            if not (close.kind == "punct" and close.text == ")"):
                raise self.error("expected ')'", close, hint=f"the '(' at character {tok.pos} is not closed")
            return node
        if tok.kind in ("num", "str"):
            return Literal(tok.value, tok.pos)
        if tok.kind == "kw" and tok.value in ("true", "false"):
            return Literal(tok.value == "true", tok.pos)
        if tok.kind == "kw" and tok.value == "null":
            return Literal(None, tok.pos)
        if tok.kind == "name":
            name, part = tok.value, None
            if tok.text[0] != "`" and name.startswith(T.BBOX + ".") and name[len(T.BBOX) + 1:] in BBOX_PARTS:
                name, part = T.BBOX, BBOX_PARTS[name[len(T.BBOX) + 1:]]
            return Column(name, part, tok.pos)
        if tok.kind == "end":
            raise self.error("the expression ends too early", tok)
        raise self.error(f"unexpected {tok.text!r}", tok)


def parse(text: str, option: str | None = "where"):
    """The syntax tree of ``text`` (raises ``ExpressionError`` naming the character)."""
    return _Parser(text, option).parse()


def columns(node) -> set[str]:
    """Column names an expression reads."""
    if isinstance(node, Column):
        return {node.name}
    if isinstance(node, Literal):
        return set()
    if isinstance(node, Compare):
        return columns(node.left) | columns(node.right)
    if isinstance(node, (InList, IsNull, Not)):
        return columns(node.operand)
    return columns(node.left) | columns(node.right)


# --------------------------------------------------------------------------- types

def _kind(t: "pa.DataType") -> str:
    import pyarrow as pa

    if pa.types.is_dictionary(t):
        t = t.value_type
    if pa.types.is_boolean(t):
        return "bool"
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
        return "number"
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "string"
    if pa.types.is_null(t):
        return "null"
    if pa.types.is_timestamp(t) or pa.types.is_date(t):
        return "time"
    return "nested"


def _literal_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    return "string"


class Compiled:
    """An expression checked against a schema; ``evaluate`` gives a boolean array."""

    def __init__(self, text: str, node, schema: "pa.Schema", option: str | None) -> None:
        self.text = text
        self.node = node
        self.schema = schema
        self.option = option
        self.columns = columns(node)
        self._check(node)

    # ---- checking
    def _unknown(self, col: Column):
        names = list(self.schema.names)
        close = difflib.get_close_matches(col.name, names, n=1, cutoff=0.6)
        hint = None if close else "columns: " + ", ".join(names[:30])
        msg = f"unknown column '{col.name}'"
        err = ExpressionError(self.option, msg, col.pos, hint)
        if close:
            err.message += f" (did you mean '{close[0]}'?)"
        return err

    def kind_of(self, node) -> str:
        if isinstance(node, Literal):
            return _literal_kind(node.value)
        if isinstance(node, Column):
            if node.name not in self.schema.names:
                raise self._unknown(node)
            if node.part is not None:
                return "number"
            return _kind(self.schema.field(node.name).type)
        return "bool"

    def _check(self, node) -> None:
        if isinstance(node, (BoolOp,)):
            self._check(node.left)
            self._check(node.right)
            return
        if isinstance(node, Not):
            self._check(node.operand)
            self._check_bool(node.operand)
            return
        if isinstance(node, Compare):
            for side in (node.left, node.right):
                if not isinstance(side, (Column, Literal)):
                    self._check(side)
            lk, rk = self.kind_of(node.left), self.kind_of(node.right)
            if "null" in (lk, rk) and (isinstance(node.left, Literal) and node.left.value is None
                                       or isinstance(node.right, Literal) and node.right.value is None):
                raise ExpressionError(self.option, "comparing with null is never true", node.pos,
                                      hint="write 'COLUMN is null' or 'COLUMN is not null'")
            if "nested" in (lk, rk):
                raise ExpressionError(self.option, f"cannot compare {self._describe(node.left if lk == 'nested' else node.right)}"
                                      " (a list or nested value)", node.pos,
                                      hint="compare a part, e.g. bbox.w > 10" if T.BBOX in columns(node) else None)
            if lk != rk and "null" not in (lk, rk) and not {lk, rk} <= {"number", "time"}:
                raise ExpressionError(
                    self.option, f"cannot compare {self._describe(node.left)} ({lk}) with {self._describe(node.right)} ({rk})",
                    node.pos, hint="quote text values: label == 'cat'" if "string" in (lk, rk) and not (
                        isinstance(node.left, Literal) and lk == "string" or isinstance(node.right, Literal) and rk == "string") else None)
            if lk == "bool" and node.op not in ("equal", "not_equal"):
                raise ExpressionError(self.option, "true/false values can only be compared with == or !=", node.pos)
            return
        if isinstance(node, InList):
            k = self.kind_of(node.operand)
            if k == "nested":
                raise ExpressionError(self.option, f"cannot test {self._describe(node.operand)} (a list or nested value) with 'in'", node.pos)
            for v in node.values:
                vk = _literal_kind(v)
                if vk != k and vk != "null" and k != "null":
                    raise ExpressionError(self.option, f"list value {v!r} ({vk}) does not match {self._describe(node.operand)} ({k})",
                                          node.pos)
            return
        if isinstance(node, IsNull):
            self.kind_of(node.operand)
            return
        if isinstance(node, Column):
            self._check_bool(node)
            return
        if isinstance(node, Literal):
            self._check_bool(node)
            return

    def _check_bool(self, node) -> None:
        if isinstance(node, (Column, Literal)):
            k = self.kind_of(node)
            if k not in ("bool", "null"):
                pos = node.pos
                raise ExpressionError(self.option, f"{self._describe(node)} is {k}, not true/false: compare it", pos,
                                      hint=f"e.g. {self._describe(node, bare=True)} == ...")

    @staticmethod
    def _describe(node, bare: bool = False) -> str:
        if isinstance(node, Column):
            name = node.name if node.part is None else f"{node.name}.{'xywh'[node.part]}"
            return name if bare else f"column '{name}'"
        if isinstance(node, Literal):
            return repr(node.value)
        return "a condition"

    # ---- compiling
    def to_expression(self) -> "Any":
        """The expression as a ``pyarrow.compute.Expression`` (e.g. for dataset pushdown)."""
        import pyarrow.compute as pc

        return self._build(self.node, lambda c: pc.field(c.name), lambda v: pc.scalar(v), None)

    def evaluate(self, table: "pa.Table", unknown: Sequence[str] = ()) -> "pa.ChunkedArray | pa.Array":
        """A boolean array over ``table``'s rows (null where the condition is unknown).
        Comparisons that read a column in ``unknown`` are null (Kleene logic)."""
        import pyarrow as pa

        return self._build(self.node, lambda c: table.column(c.name), lambda v: pa.scalar(v),
                           set(unknown), n=table.num_rows)

    def _build(self, node, leaf: Callable, scalar: Callable, unknown: set | None, n: int | None = None):
        import pyarrow as pa
        import pyarrow.compute as pc

        def null_bool():
            return pa.nulls(n, pa.bool_()) if n is not None else pc.scalar(pa.scalar(None, pa.bool_()))

        def operand(x):
            if isinstance(x, Literal):
                return scalar(x.value)
            if isinstance(x, Column):
                v = leaf(x)
                if x.part is not None:
                    v = pc.list_element(v, x.part)
                return v
            return self._build(x, leaf, scalar, unknown, n)

        def reads_unknown(x) -> bool:
            return bool(unknown) and bool(columns(x) & unknown)

        if isinstance(node, BoolOp):
            left = self._build(node.left, leaf, scalar, unknown, n)
            right = self._build(node.right, leaf, scalar, unknown, n)
            return pc.and_kleene(left, right) if node.op == "and" else pc.or_kleene(left, right)
        if isinstance(node, Not):
            return pc.invert(self._build(node.operand, leaf, scalar, unknown, n))
        if reads_unknown(node):
            return null_bool()
        if isinstance(node, Compare):
            left, right = operand(node.left), operand(node.right)
            return getattr(pc, node.op)(left, right)
        if isinstance(node, InList):
            typ = None
            if isinstance(node.operand, Column) and node.operand.part is None:
                typ = self.schema.field(node.operand.name).type
                if pa.types.is_dictionary(typ):
                    typ = typ.value_type
            values = pa.array(list(node.values), type=typ) if typ is not None and _kind(typ) != "null" else pa.array(list(node.values))
            out = pc.is_in(operand(node.operand), value_set=values, skip_nulls=True)
            if n is not None:
                # a null operand gives null (not false), as a comparison would
                out = pc.if_else(pc.is_null(operand(node.operand)), pa.scalar(None, pa.bool_()), out)
            return pc.invert(out) if node.negated else out
        if isinstance(node, IsNull):
            v = operand(node.operand)
            return pc.is_valid(v) if node.negated else pc.is_null(v)
        if isinstance(node, Column):
            return operand(node)
        if isinstance(node, Literal):
            if n is not None:
                return pa.array([node.value] * n, pa.bool_()) if n else pa.array([], pa.bool_())
            return pc.scalar(node.value)
        raise TypeError(node)  # pragma: no cover


def compile_expression(text: str, schema: "pa.Schema", option: str | None = "where") -> Compiled:
    """Parse ``text`` and check it against ``schema`` (unknown columns, type mismatches)."""
    return Compiled(text, parse(text, option), schema, option)
