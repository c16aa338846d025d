"""Tier 1: script validation, with exact file:line:column and suggestions."""

from __future__ import annotations

from pathlib import Path

import pytest

from callcenter.errors import ScriptError
from callcenter.ivr.loader import check_file, check_text, load_script, load_text
from callcenter.ivr.model import MenuNode, Problem

HERE = Path(__file__).parent
BROKEN = HERE / "broken"
SCRIPTS = HERE.parents[2] / "ivr_scripts"


def problems(name: str) -> list[Problem]:
    script, found = check_file(BROKEN / name)
    if any(p.severity == "error" for p in found):
        assert script is None
    return found


def where(problem: Problem) -> tuple[int, int]:
    return problem.location.line, problem.location.column


@pytest.mark.parametrize("path", sorted(SCRIPTS.glob("*.yaml")), ids=lambda p: p.name)
def test_sample_scripts_are_clean(path: Path) -> None:
    script, found = check_file(path)
    assert found == []
    assert script is not None


@pytest.mark.parametrize(
    ("name", "line", "column", "fragments"),
    [
        ("unknown_target.yaml", 10, 10, ["no node named 'file_technque'",
                                         "did you mean 'file_technique'?"]),
        ("unknown_key.yaml", 6, 5, ["unknown key 'nxt'", "did you mean 'next'?",
                                    "expected one of: type, description, next"]),
        ("unknown_type.yaml", 4, 11, ["unknown type 'manu'", "did you mean 'menu'?"]),
        ("unknown_prompt.yaml", 7, 13, ["unknown prompt 'bienvenu'",
                                        "did you mean 'bienvenue'?"]),
        ("missing_language.yaml", 5, 5, ["missing the English ('en') text"]),
        ("bad_expression.yaml", 6, 30, ["bad expression", "expected a value, found 'and'"]),
        ("silent_loop.yaml", 3, 3, ["loop without caller input: a -> b -> c -> a"]),
        ("yaml_syntax.yaml", 5, 4, ["YAML syntax error", "indentation"]),
        ("duplicate_key.yaml", 5, 3, ["duplicate key 'fin' (first given on line 3)"]),
    ],
)  # fmt: skip
def test_single_error_files(name: str, line: int, column: int, fragments: list[str]) -> None:
    found = problems(name)
    assert len(found) == 1, found
    problem = found[0]
    assert problem.severity == "error"
    assert where(problem) == (line, column)
    assert str(problem).startswith(f"{BROKEN / name}:{line}:{column}: ")
    for fragment in fragments:
        assert fragment in problem.message


def test_several_problems_in_one_file_are_all_reported() -> None:
    found = problems("wrong_values.yaml")
    assert [(where(p), p.message.split(": ", 1)[1]) for p in found] == [
        ((7, 14), "'retries' must be a whole number, found text"),
        ((8, 14), "'timeout' must be between 1 and 60, found 500"),
        ((9, 17), "min_length (10) is greater than max_length (4)"),
    ]


def test_calendar_problems() -> None:
    found = problems("calendar_problems.yaml")
    assert [where(p) for p in found] == [(4, 15), (6, 16), (7, 7), (12, 13)]
    assert "did you mean 'Europe/Paris'?" in found[0].message
    assert "expected HH:MM-HH:MM" in found[1].message
    assert "bad day 'weekend'" in found[2].message
    assert "unknown calendar 'burreau'" in found[3].message


def test_warnings_do_not_block_loading() -> None:
    script, found = check_file(BROKEN / "warnings_only.yaml")
    assert script is not None
    assert [(p.severity, where(p)) for p in found] == [("warning", (6, 13)), ("warning", (9, 3))]
    assert "did you mean 'customer.vip'?" in found[0].message
    assert "'oublie' can never be reached" in found[1].message
    assert script.warnings == tuple(found)


def test_load_script_raises_one_script_error_listing_all_errors() -> None:
    with pytest.raises(ScriptError) as info:
        load_script(BROKEN / "wrong_values.yaml")
    lines = str(info.value).splitlines()
    assert len(lines) == 3
    assert all(line.startswith(f"{BROKEN / 'wrong_values.yaml'}:") for line in lines)


def test_unreadable_file() -> None:
    script, found = check_file(BROKEN / "does_not_exist.yaml")
    assert script is None
    assert "cannot read the script" in found[0].message


MINIMAL = """\
start: a
nodes:
  a:
    type: hangup
"""


def errors_of(text: str) -> list[str]:
    _script, found = check_text(text, "t.yaml")
    return [f"{p.location.line}:{p.location.column} {p.message}" for p in found
            if p.severity == "error"]  # fmt: skip


def test_minimal_script_loads_with_defaults() -> None:
    script = load_text(MINIMAL)
    assert script.languages == ("fr", "en")
    assert script.default_language == "fr"
    assert script.max_steps == 100


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("- a\n- b\n", "1:1 a script must be a mapping"),
        (MINIMAL.replace("start: a", "start: b"), "1:8 start: no node named 'b'"),
        (MINIMAL + "  b:\n    type: return\n", "6:5 return node 'b': 'return' only makes sense"),
        (MINIMAL.replace("type: hangup", "type: hangup\n    reason: [x]"),
         "5:13 hangup node 'a': 'reason' must be text, found a list"),
        ("languages: [fr, eng]\n" + MINIMAL, "1:17 unknown language 'eng' (did you mean 'en'?)"),
        (MINIMAL + "  m:\n    type: menu\n    prompt: {fr: x, en: y}\n    options: {'12': a}\n"
         "    on_failure: a\n", "8:15 menu node 'm': option '12' is not a phone key"),
        (MINIMAL + "  s:\n    type: set\n    values: {language: en}\n    next: a\n",
         "7:14 set node 's': set 'language' with its own key"),
        (MINIMAL + "  s:\n    type: set\n    language: de\n    next: a\n",
         "7:15 set node 's': language 'de' is not one of the script's languages"),
        (MINIMAL + "  t:\n    type: transfer\n    number: '0145'\n    script: autre\n",
         "6:5 transfer node 't' needs exactly one of 'number' or 'script'"),
        (MINIMAL + "  p:\n    type: play\n    next: a\n",
         "6:5 play node 'p' needs exactly one of 'prompt', 'file' or 'say', found nothing to play"),
        (MINIMAL + "  p:\n    type: play\n    say: amout\n    value: x\n    next: a\n",
         "7:10 play node 'p': 'say' must be one of number, digits, date, amount, characters, "
         "found 'amout' (did you mean 'amount'?)"),
        (MINIMAL + "  c:\n    type: collect\n    prompt: {fr: x, en: y}\n    variable: n\n"
         "    validate: {regex: '[0-9'}\n    next: a\n    on_failure: a\n",
         "9:23 collect node 'c': bad regex"),
        (MINIMAL + "  i:\n    type: identify\n    method: caller\n",
         "7:13 identify node 'i': 'method' must be caller_id or account_pin, found 'caller' "
         "(did you mean 'caller_id'?)"),
        (MINIMAL + "  g:\n    type: subflow\n    flow: verif\n    next: a\n",
         "7:11 unknown subflow 'verif'"),
        (MINIMAL + "  h:\n    type: http\n    url: ftp://x\n    next: a\n    on_error: a\n",
         "7:10 http node 'h': 'url': 'ftp://x' is not valid; expected an http://"),
        (MINIMAL + "  h:\n    type: http\n    url: 'https://x/${a b}'\n"
         "    next: a\n    on_error: a\n",
         "7:21 bad placeholder ${a b}"),
    ],
)  # fmt: skip
def test_inline_errors(text: str, expected: str) -> None:
    found = errors_of(text)
    assert any(e.startswith(expected) for e in found), found


def test_hours_must_be_quoted_when_yaml_reads_them_as_numbers() -> None:
    text = "calendars:\n  b:\n    timezone: Europe/Paris\n    hours:\n      mon: 9:30\n" + MINIMAL
    assert errors_of(text) == [
        "5:12 calendar 'b': hours 'mon': write times in quotes, e.g. \"09:00-12:00\""
    ]


def test_subflows_have_their_own_names_and_return() -> None:
    text = """\
start: a
nodes:
  a:
    type: subflow
    flow: verif
    next: fin
  fin:
    type: hangup
subflows:
  verif:
    start: q
    nodes:
      q:
        type: menu
        prompt: {fr: "Tapez 1.", en: "Press 1."}
        options: {1: ok}
        on_failure: okk
      ok:
        type: return
"""
    assert errors_of(text) == [
        "17:21 on_failure: no node named 'okk' in subflow 'verif' (did you mean 'ok'?)"
    ]
    fixed = load_text(text.replace("on_failure: okk", "on_failure: ok"))
    assert set(fixed.subflows["verif"].nodes) == {"q", "ok"}


def test_menu_keys_accept_numbers_and_quoted_star() -> None:
    script = load_script(SCRIPTS / "banque_entrante.yaml")
    menu = script.main.nodes["menu_principal"]
    assert isinstance(menu, MenuNode)
    assert set(menu.options) == {"1", "2", "3", "*"}


def test_transfer_to_a_missing_script_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "a.yaml"
    path.write_text("start: t\nnodes:\n  t:\n    type: transfer\n    script: enquete\n")
    (tmp_path / "enquetes.yaml").write_text(MINIMAL)
    _script, found = check_file(path)
    assert [str(p) for p in found] == [
        f"{path}:5:13: transfer: no script enquete.yaml next to this one (did you mean 'enquetes'?)"
    ]
