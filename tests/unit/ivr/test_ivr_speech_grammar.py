"""Tier 1: the per-node phrase grammar of speech nodes (``grammar: true|false``,
left out: the ``speech.grammar`` setting decides), from the loader to the
interpreter's Listen request."""

from __future__ import annotations

import pytest
from ivr_helpers import OPEN

from callcenter.ivr.interpreter import Session
from callcenter.ivr.loader import check_text, load_text
from callcenter.ivr.messages import CallInfo, Listen
from callcenter.ivr.model import SpeechNode

SCRIPT = """\
languages: [fr, en]
start: motif
nodes:
  motif:
    type: speech
    prompt: {fr: "Que voulez-vous ?", en: "What do you want?"}
GRAMMAR
    intents:
      facture:
        phrases: {fr: [ma facture], en: [my bill]}
        next: fin
    fallback: fin
  fin:
    type: hangup
"""


def script_with(line: str) -> str:
    return SCRIPT.replace("GRAMMAR\n", f"    {line}\n" if line else "")


def first_listen(text: str) -> Listen:
    session = Session(load_text(text), CallInfo("0612345678", OPEN))
    step = session.start()
    assert isinstance(step, Listen)
    return step


@pytest.mark.parametrize(
    ("line", "expected"),
    [("", None), ("grammar: true", True), ("grammar: false", False), ("grammar: no", False)],
)
def test_the_node_choice_reaches_the_listen_request(line: str, expected: bool | None) -> None:
    text = script_with(line)
    node = load_text(text).main.nodes["motif"]
    assert isinstance(node, SpeechNode)
    assert node.grammar is expected
    listen = first_listen(text)
    assert listen.use_grammar is expected
    assert listen.grammar == ("ma facture",)  # the phrases are given either way


@pytest.mark.parametrize(
    ("line", "found"),
    [
        ('grammar: "true"', "text"),
        ("grammar: 1", "a number"),
        ("grammar: [ma facture]", "a list"),
        ("grammar: {fr: true}", "a mapping"),
    ],
)
def test_a_grammar_that_is_not_true_or_false_is_a_clear_error(line: str, found: str) -> None:
    script, problems = check_text(script_with(line), "t.yaml")
    assert script is None
    [problem] = [p for p in problems if p.severity == "error"]
    assert (problem.location.line, problem.location.column) == (7, 14)
    assert problem.message == (
        "speech node 'motif': 'grammar' must be true (recognise only this node's phrases) "
        f"or false (the model's whole vocabulary), found {found}; "
        "leave it out to follow the speech.grammar setting"
    )


def test_a_misspelled_grammar_key_suggests_the_right_one() -> None:
    script, problems = check_text(script_with("gramar: false"), "t.yaml")
    assert script is None
    [problem] = problems
    assert (problem.location.line, problem.location.column) == (7, 5)
    assert "unknown key 'gramar' (did you mean 'grammar'?)" in problem.message
