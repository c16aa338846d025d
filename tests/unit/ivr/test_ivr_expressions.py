"""Tier 1: the safe expression language (no eval, ScriptError on any failure)."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callcenter.errors import ScriptError
from callcenter.ivr.expressions import (
    MAX_NESTING,
    SyntaxProblem,
    evaluate_text,
    names,
    parse,
    try_parse,
)

VARS = {"customer.vip": True, "customer.segment": "or", "score": 7, "ani": "0612345678"}


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("1 + 2 * 3", 7),
        ("(1 + 2) * 3", 9),
        ("-score + 10", 3),
        ("7 % 4", 3),
        ("9 / 2", 4.5),
        ("customer.vip", True),
        ("customer.vip == true and score >= 7", True),
        ("not customer.vip or score < 3", False),
        ("customer.segment in ['or', 'platine']", True),
        ("customer.segment not in ['or']", False),
        ("'06' in ani", True),
        ("startswith(ani, '06')", True),
        ("len(ani) == 10", True),
        ("upper('abc') + lower('DEF')", "ABCdef"),
        ("int('42') + 1", 43),
        ("str(12) + 'x'", "12x"),
        ("unknown.variable == null", True),
        ("true == 1", False),
        ('"l\\"apostrophe"', 'l"apostrophe'),
        ("[]", ()),
    ],
)
def test_evaluates(source: str, expected: object) -> None:
    assert evaluate_text(source, VARS) == expected


def test_names_lists_variables_read() -> None:
    assert names(parse("customer.vip and score > len(ani)")) == {"customer.vip", "score", "ani"}


@pytest.mark.parametrize(
    ("source", "offset", "fragment"),
    [
        ("customer.vip ==", 15, "expected a value"),
        ("1 +* 2", 3, "expected a value"),
        ("(1 + 2", 6, "expected ')'"),
        ("a $ b", 2, "unexpected character"),
        ("open('x')", 0, "unknown function 'open'"),
        ("len(1, 2)", 0, "takes 1 argument"),
        ("1 2", 2, "unexpected '2'"),
    ],
)
def test_syntax_errors_point_at_the_offending_character(
    source: str, offset: int, fragment: str
) -> None:
    problem = try_parse(source)
    assert isinstance(problem, SyntaxProblem)
    assert problem.offset == offset
    assert fragment in problem.message
    with pytest.raises(ScriptError, match="character"):
        parse(source)


@pytest.mark.parametrize(
    "source",
    [
        "x.__class__",
        "__import__('os')",
        "().__class__.__bases__",
        "customer.__dict__",
        "ani.upper()",
        "eval('1')",
        "lambda: 1",
        "[x for x in y]",
        "a[0]",
        "a if b else c",
        "2 ** 8",
        "1" * 17,
        "(" * (MAX_NESTING + 1) + "1" + ")" * (MAX_NESTING + 1),
        "-" * 400 + "1",
        "not " * 100 + "true",
        "+".join(["1"] * 200),
        "1" + " " * 600,
        "'unterminated",
    ],
)
def test_hostile_sources_are_script_errors(source: str) -> None:
    with pytest.raises(ScriptError):
        evaluate_text(source, VARS)


@pytest.mark.parametrize(
    ("source", "fragment"),
    [
        ("999999999999999 * 999999999999999", "out of range"),
        ("'a' < 1", "cannot compare"),
        ("'a' - 1", "cannot compute"),
        ("1 / 0", "division by zero"),
        ("1 in 2", "'in' needs"),
        ("-ani", "cannot negate"),
        ("int('x')", "cannot convert"),
        ("len(3)", "needs text or a list"),
        ("is_open('bureau')", "not available"),
    ],
)
def test_runtime_errors_are_script_errors(source: str, fragment: str) -> None:
    with pytest.raises(ScriptError, match=fragment):
        evaluate_text(source, VARS)


def test_repeated_concatenation_is_bounded() -> None:
    variables = {"s": "x" * 600}
    with pytest.raises(ScriptError, match="longer than"):
        evaluate_text("s + s", variables)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=120))
def test_any_text_parses_or_fails_as_script_error(source: str) -> None:
    with contextlib.suppress(ScriptError):
        evaluate_text(source, VARS)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            ["1", "'a'", "score", "customer.vip", "(", ")", "+", "-", "*", "/", "%", "==",
             "<", "and", "or", "not", "in", "[", "]", ",", "len(", "null", "true"]
        ),
        max_size=40,
    )
)  # fmt: skip
def test_token_soup_never_raises_anything_else(tokens: list[str]) -> None:
    with contextlib.suppress(ScriptError):
        evaluate_text(" ".join(tokens), VARS)
