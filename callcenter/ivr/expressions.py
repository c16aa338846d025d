"""A small, safe expression language for IVR conditions and computed variables.

Scripts are written by call-flow designers, not programmers, and run on every
call: ``eval`` is out of the question. This module tokenises and parses a tiny
grammar into an immutable tree and evaluates it against a variable mapping.
Every failure (syntax, unknown function, type mismatch, oversized number,
nesting too deep) is a :class:`~callcenter.errors.ScriptError`; nothing else
escapes.

Grammar (lowest precedence first)::

    expr   := and ("or" and)*
    and    := not ("and" not)*
    not    := "not" not | cmp
    cmp    := sum (("==" | "!=" | "<" | "<=" | ">" | ">=" | "in" | "not in") sum)?
    sum    := term (("+" | "-") term)*
    term   := unary (("*" | "/" | "%") unary)*
    unary  := "-" unary | atom
    atom   := NUMBER | STRING | true | false | null | NAME | NAME "(" args ")"
            | "(" expr ")" | "[" args "]"

Names may be dotted (``customer.vip``); a dot is part of the name, not an
attribute access, so ``x.__class__`` is simply a syntax error.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from callcenter.errors import ScriptError

Value = str | int | float | bool | None | tuple["Value", ...]

MAX_SOURCE = 500
MAX_NESTING = 16
MAX_HEIGHT = 64
MAX_ABS = 10**15
MAX_STRING = 1000
MAX_LIST = 100

Function = Callable[[Sequence[Value]], Value]


@dataclass(frozen=True)
class Literal:
    value: Value


@dataclass(frozen=True)
class Name:
    name: str


@dataclass(frozen=True)
class ListExpr:
    items: tuple[Expr, ...]


@dataclass(frozen=True)
class Unary:
    op: str
    operand: Expr


@dataclass(frozen=True)
class Binary:
    op: str
    left: Expr
    right: Expr


@dataclass(frozen=True)
class Call:
    function: str
    args: tuple[Expr, ...]


Expr = Literal | Name | ListExpr | Unary | Binary | Call

# name -> (min args, max args). Calendar functions are bound per call by the
# interpreter because they need the injected time.
BUILTIN_ARITY: dict[str, tuple[int, int]] = {
    "len": (1, 1),
    "lower": (1, 1),
    "upper": (1, 1),
    "int": (1, 1),
    "str": (1, 1),
    "startswith": (2, 2),
    "is_open": (1, 1),
    "is_holiday": (1, 1),
}
CALENDAR_FUNCTIONS = frozenset({"is_open", "is_holiday"})

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<number>\d+(?:\.\d+)?)
  | (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
  | (?P<name>[A-Za-z][A-Za-z0-9_]*(?:\.[A-Za-z][A-Za-z0-9_]*)*)
  | (?P<op>==|!=|<=|>=|[<>+\-*/%()\[\],])
    """,
    re.VERBOSE,
)
_KEYWORDS = frozenset({"and", "or", "not", "in", "true", "false", "null"})


@dataclass(frozen=True)
class _Token:
    kind: str  # number, string, name, op, keyword, end
    text: str
    offset: int


def _tokenize(source: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    while pos < len(source):
        match = _TOKEN.match(source, pos)
        if match is None:
            raise _fail(f"unexpected character {source[pos]!r}", pos)
        kind = match.lastgroup or ""
        text = match.group()
        if kind == "name" and text in _KEYWORDS:
            kind = "keyword"
        elif kind == "name" and re.search(r"(?:^|\.)[A-Za-z0-9]*_{2}", text):
            # Double underscores are how Python reaches its internals; no
            # designer needs them, so refuse them outright.
            raise _fail(f"names may not contain '__': {text!r}", pos)
        if kind != "ws":
            tokens.append(_Token(kind, text, pos))
        pos = match.end()
    tokens.append(_Token("end", "", len(source)))
    return tokens


@dataclass(frozen=True)
class SyntaxProblem:
    """Why *source* does not parse, and where (0-based character offset)."""

    message: str
    offset: int


class _Stop(Exception):
    """Unwinds the recursive-descent parser; never leaves this module."""

    def __init__(self, problem: SyntaxProblem) -> None:
        super().__init__(problem.message)
        self.problem = problem


def _fail(message: str, offset: int) -> _Stop:
    return _Stop(SyntaxProblem(message, offset))


def _height(expr: Expr) -> int:
    if isinstance(expr, Literal | Name):
        return 1
    if isinstance(expr, Unary):
        return 1 + _height(expr.operand)
    if isinstance(expr, Binary):
        return 1 + max(_height(expr.left), _height(expr.right))
    children = expr.items if isinstance(expr, ListExpr) else expr.args
    return 1 + max((_height(c) for c in children), default=0)


class _Parser:
    def __init__(self, source: str) -> None:
        self.tokens = _tokenize(source)
        self.pos = 0
        self.nesting = 0

    @property
    def tok(self) -> _Token:
        return self.tokens[self.pos]

    def advance(self) -> _Token:
        tok = self.tokens[self.pos]
        self.pos += 1
        return tok

    def accept(self, kind: str, text: str) -> bool:
        if self.tok.kind == kind and self.tok.text == text:
            self.pos += 1
            return True
        return False

    def expect(self, text: str) -> None:
        if not (self.tok.kind == "op" and self.tok.text == text):
            raise _fail(f"expected {text!r}, found {self._describe()}", self.tok.offset)
        self.pos += 1

    def _describe(self) -> str:
        return "end of expression" if self.tok.kind == "end" else repr(self.tok.text)

    def enter(self) -> None:
        self.nesting += 1
        if self.nesting > MAX_NESTING:
            raise _fail(f"expression nested deeper than {MAX_NESTING} levels", self.tok.offset)

    def parse(self) -> Expr:
        expr = self.or_()
        if self.tok.kind != "end":
            raise _fail(f"unexpected {self._describe()}", self.tok.offset)
        return expr

    def binary(self, op: str, left: Expr, right: Expr, offset: int) -> Binary:
        node = Binary(op, left, right)
        # Long flat chains (1+1+1+...) are not nested but still build a deep
        # tree; bound it so evaluation can never exhaust the stack.
        if max(_height(left), _height(right)) + 1 > MAX_HEIGHT:
            raise _fail("expression too long or too deeply nested", offset)
        return node

    def or_(self) -> Expr:
        left = self.and_()
        while self.tok.kind == "keyword" and self.tok.text == "or":
            offset = self.advance().offset
            left = self.binary("or", left, self.and_(), offset)
        return left

    def and_(self) -> Expr:
        left = self.not_()
        while self.tok.kind == "keyword" and self.tok.text == "and":
            offset = self.advance().offset
            left = self.binary("and", left, self.not_(), offset)
        return left

    def not_(self) -> Expr:
        if self.accept("keyword", "not"):
            self.enter()
            operand = self.not_()
            self.nesting -= 1
            return Unary("not", operand)
        return self.cmp()

    def cmp(self) -> Expr:
        left = self.sum()
        tok = self.tok
        if tok.kind == "op" and tok.text in ("==", "!=", "<", "<=", ">", ">="):
            self.advance()
            return self.binary(tok.text, left, self.sum(), tok.offset)
        if tok.kind == "keyword" and tok.text == "in":
            self.advance()
            return self.binary("in", left, self.sum(), tok.offset)
        if tok.kind == "keyword" and tok.text == "not":
            nxt = self.tokens[self.pos + 1]
            if nxt.kind == "keyword" and nxt.text == "in":
                self.pos += 2
                return self.binary("not in", left, self.sum(), tok.offset)
        return left

    def sum(self) -> Expr:
        left = self.term()
        while self.tok.kind == "op" and self.tok.text in ("+", "-"):
            tok = self.advance()
            left = self.binary(tok.text, left, self.term(), tok.offset)
        return left

    def term(self) -> Expr:
        left = self.unary()
        while self.tok.kind == "op" and self.tok.text in ("*", "/", "%"):
            tok = self.advance()
            left = self.binary(tok.text, left, self.unary(), tok.offset)
        return left

    def unary(self) -> Expr:
        if self.accept("op", "-"):
            self.enter()
            operand = self.unary()
            self.nesting -= 1
            return Unary("-", operand)
        return self.atom()

    def atom(self) -> Expr:
        tok = self.advance()
        if tok.kind == "number":
            return Literal(_number(tok))
        if tok.kind == "string":
            return Literal(_unquote(tok.text))
        if tok.kind == "keyword" and tok.text in ("true", "false", "null"):
            return Literal({"true": True, "false": False, "null": None}[tok.text])
        if tok.kind == "name":
            if self.tok.kind == "op" and self.tok.text == "(":
                return self.call(tok)
            return Name(tok.text)
        if tok.kind == "op" and tok.text == "(":
            self.enter()
            inner = self.or_()
            self.expect(")")
            self.nesting -= 1
            return inner
        if tok.kind == "op" and tok.text == "[":
            self.enter()
            items = self.args("]")
            self.nesting -= 1
            if len(items) > MAX_LIST:
                raise _fail(f"a list may hold at most {MAX_LIST} items", tok.offset)
            return ListExpr(items)
        what = "end of expression" if tok.kind == "end" else repr(tok.text)
        raise _fail(f"expected a value, found {what}", tok.offset)

    def args(self, closing: str) -> tuple[Expr, ...]:
        items: list[Expr] = []
        if self.accept("op", closing):
            return ()
        while True:
            items.append(self.or_())
            if self.accept("op", closing):
                return tuple(items)
            self.expect(",")

    def call(self, name: _Token) -> Call:
        if name.text not in BUILTIN_ARITY:
            known = ", ".join(sorted(BUILTIN_ARITY))
            raise _fail(f"unknown function {name.text!r} (known: {known})", name.offset)
        self.advance()
        self.enter()
        args = self.args(")")
        self.nesting -= 1
        low, high = BUILTIN_ARITY[name.text]
        if not low <= len(args) <= high:
            raise _fail(f"{name.text}() takes {low} argument(s), got {len(args)}", name.offset)
        return Call(name.text, args)


def _number(tok: _Token) -> int | float:
    if len(tok.text) > 16:
        raise _fail(f"number too large: {tok.text[:20]}...", tok.offset)
    return float(tok.text) if "." in tok.text else int(tok.text)


def _unquote(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text[1:-1])


def try_parse(source: str) -> Expr | SyntaxProblem:
    """Parse *source*, or say why not and where (the loader turns the offset
    into a line and column of the script)."""
    if len(source) > MAX_SOURCE:
        return SyntaxProblem(f"expression longer than {MAX_SOURCE} characters", 0)
    try:
        return _Parser(source).parse()
    except _Stop as stop:
        return stop.problem


def parse(source: str) -> Expr:
    """Parse *source*; any problem is a ScriptError."""
    if not isinstance(source, str):
        raise ScriptError(f"an expression must be text, not {type(source).__name__}")
    result = try_parse(source)
    if isinstance(result, SyntaxProblem):
        raise ScriptError(f"{result.message} (character {result.offset + 1} of {source!r:.60})")
    return result


def names(expr: Expr) -> set[str]:
    """Variable names read by *expr* (to warn about typos at load time)."""
    if isinstance(expr, Name):
        return {expr.name}
    if isinstance(expr, Unary):
        return names(expr.operand)
    if isinstance(expr, Binary):
        return names(expr.left) | names(expr.right)
    if isinstance(expr, ListExpr | Call):
        children = expr.items if isinstance(expr, ListExpr) else expr.args
        return set().union(*(names(c) for c in children)) if children else set()
    return set()


def calls(expr: Expr) -> list[Call]:
    """Every function call in *expr*, outermost first."""
    if isinstance(expr, Call):
        return [expr, *(c for a in expr.args for c in calls(a))]
    if isinstance(expr, Unary):
        return calls(expr.operand)
    if isinstance(expr, Binary):
        return calls(expr.left) + calls(expr.right)
    if isinstance(expr, ListExpr):
        return [c for item in expr.items for c in calls(item)]
    return []


# --- evaluation ---------------------------------------------------------------


def truthy(value: Value) -> bool:
    return bool(value)


def _type_name(value: Value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "text"
    return "list"


def _is_number(value: Value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _checked(value: int | float) -> int | float:
    if isinstance(value, float) and not math.isfinite(value):
        raise ScriptError("arithmetic result is not a finite number")
    if abs(value) > MAX_ABS:
        raise ScriptError(f"number out of range (more than {MAX_ABS:.0e})")
    return value


def _checked_str(value: str) -> str:
    if len(value) > MAX_STRING:
        raise ScriptError(f"text longer than {MAX_STRING} characters")
    return value


def _builtin(name: str, args: Sequence[Value]) -> Value:
    arg = args[0]
    if name == "len":
        if isinstance(arg, str | tuple):
            return len(arg)
        raise ScriptError(f"len() needs text or a list, not {_type_name(arg)}")
    if name in ("lower", "upper"):
        if not isinstance(arg, str):
            raise ScriptError(f"{name}() needs text, not {_type_name(arg)}")
        return arg.lower() if name == "lower" else arg.upper()
    if name == "int":
        if _is_number(arg):
            return _checked(int(arg))  # type: ignore[arg-type]
        if isinstance(arg, str) and re.fullmatch(r"\s*-?\d{1,16}\s*", arg):
            return _checked(int(arg))
        raise ScriptError(f"int() cannot convert {_type_name(arg)} {arg!r}")
    if name == "str":
        if isinstance(arg, bool):
            return "true" if arg else "false"
        return "" if arg is None else _checked_str(str(arg))
    if name == "startswith":
        prefix = args[1]
        if isinstance(arg, str) and isinstance(prefix, str):
            return arg.startswith(prefix)
        raise ScriptError("startswith() needs two texts")
    raise ScriptError(f"function {name}() is not available here")


def _compare(op: str, left: Value, right: Value) -> bool:
    if op == "==":
        return _equal(left, right)
    if op == "!=":
        return not _equal(left, right)
    if op in ("in", "not in"):
        if isinstance(right, tuple):
            found = any(_equal(left, item) for item in right)
        elif isinstance(right, str) and isinstance(left, str):
            found = left in right
        else:
            raise ScriptError(f"'in' needs a list or text on the right, not {_type_name(right)}")
        return found if op == "in" else not found
    both_numbers = _is_number(left) and _is_number(right)
    if not (both_numbers or (isinstance(left, str) and isinstance(right, str))):
        raise ScriptError(f"cannot compare {_type_name(left)} {op} {_type_name(right)}")
    assert isinstance(left, int | float | str)
    assert isinstance(right, int | float | str)
    if op == "<":
        return left < right  # type: ignore[operator]
    if op == "<=":
        return left <= right  # type: ignore[operator]
    if op == ">":
        return left > right  # type: ignore[operator]
    return left >= right  # type: ignore[operator]


def _equal(left: Value, right: Value) -> bool:
    # Booleans are not numbers here: `true == 1` is false, as a designer expects.
    if isinstance(left, bool) != isinstance(right, bool):
        return False
    return left == right


def _arith(op: str, left: Value, right: Value) -> Value:
    if op == "+" and isinstance(left, str) and isinstance(right, str):
        return _checked_str(left + right)
    if not (_is_number(left) and _is_number(right)):
        raise ScriptError(f"cannot compute {_type_name(left)} {op} {_type_name(right)}")
    a, b = left, right
    assert isinstance(a, int | float)
    assert isinstance(b, int | float)
    if op == "+":
        return _checked(a + b)
    if op == "-":
        return _checked(a - b)
    if op == "*":
        # Operands are bounded by MAX_ABS, so a product never grows huge.
        return _checked(a * b)
    if b == 0:
        raise ScriptError("division by zero")
    if op == "/":
        return _checked(a / b)
    return _checked(a % b)


def evaluate(
    expr: Expr,
    variables: Mapping[str, Value],
    functions: Mapping[str, Function] | None = None,
) -> Value:
    """Evaluate *expr*; undefined variables read as ``null``."""
    if isinstance(expr, Literal):
        return expr.value
    if isinstance(expr, Name):
        return variables.get(expr.name)
    if isinstance(expr, ListExpr):
        return tuple(evaluate(item, variables, functions) for item in expr.items)
    if isinstance(expr, Unary):
        value = evaluate(expr.operand, variables, functions)
        if expr.op == "not":
            return not truthy(value)
        if not _is_number(value):
            raise ScriptError(f"cannot negate {_type_name(value)}")
        assert isinstance(value, int | float)
        return -value
    if isinstance(expr, Call):
        args = [evaluate(a, variables, functions) for a in expr.args]
        bound = (functions or {}).get(expr.function)
        if bound is not None:
            return bound(args)
        return _builtin(expr.function, args)
    left = evaluate(expr.left, variables, functions)
    if expr.op == "and":
        return truthy(left) and truthy(evaluate(expr.right, variables, functions))
    if expr.op == "or":
        return truthy(left) or truthy(evaluate(expr.right, variables, functions))
    right = evaluate(expr.right, variables, functions)
    if expr.op in ("==", "!=", "<", "<=", ">", ">=", "in", "not in"):
        return _compare(expr.op, left, right)
    return _arith(expr.op, left, right)


def evaluate_text(
    source: str,
    variables: Mapping[str, Value],
    functions: Mapping[str, Function] | None = None,
) -> Value:
    """Parse and evaluate in one go (tests, the simulator)."""
    return evaluate(parse(source), variables, functions)
