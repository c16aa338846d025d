"""Load and validate IVR scripts from YAML.

The YAML is *composed* (not constructed) so that every value keeps its
position: each problem is reported as ``file:line:column: what is wrong,
what was expected`` and a misspelled name suggests the closest known one.
All problems of a file are collected before failing, so a designer fixes them
in one pass. A script with errors never gets to the interpreter.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from types import MappingProxyType
from zoneinfo import available_timezones

import yaml
from yaml.constructor import ConstructorError, SafeConstructor

from callcenter.errors import ScriptError
from callcenter.ivr import expressions as ex
from callcenter.ivr.calendar import HOLIDAY_SETS, Calendar, Interval, parse_days, parse_intervals
from callcenter.ivr.calendar import zone as check_zone
from callcenter.ivr.model import (
    NODE_TYPES,
    AnyNode,
    Branch,
    CallbackNode,
    CollectNode,
    ConditionNode,
    Flow,
    GotoNode,
    HangupNode,
    HttpNode,
    IdentifyNode,
    Intent,
    Location,
    MenuNode,
    PlayNode,
    Problem,
    Prompt,
    QueueNode,
    ReturnNode,
    Scalar,
    Script,
    SetNode,
    SpeechNode,
    SubflowNode,
    SurveyNode,
    TransferNode,
    Validation,
    VoicemailNode,
    targets,
    waits_for_input,
)

NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
VAR_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)*$")
TEMPLATE_RE = re.compile(r"\$\{([^}]*)\}")
LANGUAGES = {"fr": "French", "en": "English", "de": "German", "es": "Spanish",
             "it": "Italian", "nl": "Dutch", "pt": "Portuguese", "ar": "Arabic",
             "ko": "Korean"}  # fmt: skip
DTMF_KEYS = "0123456789*#"
SAY_KINDS = ("number", "digits", "date", "amount", "characters")
BUILTIN_VARIABLES = frozenset({"ani", "dnis", "language", "priority", "intent"})
# Variables filled by node types under a prefix (identify -> customer.*, ...).
BUILTIN_NAMESPACES = frozenset({"customer", "survey"})

_TAG = "tag:yaml.org,2002:"


def suggest_name(name: str, candidates: Iterable[str]) -> str | None:
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return close[0] if close else None


def suggest(name: str, candidates: Iterable[str]) -> str:
    close = suggest_name(name, candidates)
    return f" (did you mean {close!r}?)" if close else ""


@dataclass
class _Ref:
    flow: str
    name: str
    node: yaml.Node
    what: str  # the key holding the reference, for the message


@dataclass
class _ExprUse:
    expr: ex.Expr
    node: yaml.Node


class _Context:
    def __init__(self, file: str) -> None:
        self.file = file
        self.problems: list[Problem] = []
        self.languages: tuple[str, ...] = ("fr", "en")
        self.prompts: dict[str, Prompt] = {}
        self.broken_prompts: set[str] = set()  # declared but invalid: already reported
        self.calendars: dict[str, Calendar] = {}
        self.refs: list[_Ref] = []
        self.subflow_refs: list[tuple[str, yaml.Node]] = []
        self.script_refs: list[tuple[str, yaml.Node]] = []
        self.exprs: list[_ExprUse] = []
        self.templates: list[tuple[str, yaml.Node]] = []
        self.assigned: set[str] = set(BUILTIN_VARIABLES)
        self.namespaces: set[str] = set(BUILTIN_NAMESPACES)
        self._constructor = SafeConstructor()

    def location(self, node: yaml.Node, offset: int | None = None) -> Location:
        mark = node.start_mark
        column = mark.column
        if offset is not None and node.start_mark.line == node.end_mark.line:
            style = getattr(node, "style", None)
            column += offset + (1 if style in ("'", '"') else 0)
        return Location(self.file, mark.line + 1, column + 1)

    def error(self, node: yaml.Node, message: str, offset: int | None = None) -> None:
        self.problems.append(Problem(self.location(node, offset), message))

    def warn(self, node: yaml.Node, message: str) -> None:
        self.problems.append(Problem(self.location(node), message, "warning"))

    def value(self, node: yaml.Node) -> Scalar | date | list[object] | dict[object, object]:
        try:
            return self._constructor.construct_object(node, deep=True)  # type: ignore[no-any-return]
        except ConstructorError as exc:
            self.error(node, f"unreadable value: {exc.problem}")
            return None


def _kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    tag = node.tag.removeprefix(_TAG)
    return {"str": "text", "int": "a number", "float": "a number", "bool": "yes/no",
            "null": "nothing", "timestamp": "a date"}.get(tag, tag)  # fmt: skip


class _Fields:
    """Typed access to the keys of one YAML mapping; remembers which keys were
    asked for so that :meth:`finish` can report unknown (misspelled) keys."""

    def __init__(self, ctx: _Context, node: yaml.MappingNode, what: str) -> None:
        self.ctx = ctx
        self.node = node
        self.what = what
        self.entries: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        self.allowed: list[str] = []
        self.missing: list[str] = []
        for key, value in node.value:
            if not isinstance(key, yaml.ScalarNode) or key.tag == _TAG + "null":
                ctx.error(key, f"in {what}: keys must be names, found {_kind(key)}")
                continue
            name = str(key.value)
            if name in self.entries:
                first = self.entries[name][0].start_mark.line + 1
                ctx.error(key, f"in {what}: duplicate key {name!r} (first given on line {first})")
                continue
            self.entries[name] = (key, value)

    def _get(self, key: str, required: bool) -> yaml.Node | None:
        if key not in self.allowed:
            self.allowed.append(key)
        entry = self.entries.get(key)
        if entry is None:
            if required and key not in self.missing:
                self.missing.append(key)
            return None
        return entry[1]

    def has(self, key: str) -> bool:
        return key in self.entries

    def key_node(self, key: str) -> yaml.Node:
        return self.entries[key][0]

    def raw(self, key: str, required: bool = False) -> yaml.Node | None:
        return self._get(key, required)

    def mapping(self, key: str, required: bool = False) -> yaml.MappingNode | None:
        node = self._get(key, required)
        if node is None:
            return None
        if not isinstance(node, yaml.MappingNode):
            self.ctx.error(node, f"{self.what}: {key!r} must be a mapping, found {_kind(node)}")
            return None
        return node

    def text(
        self,
        key: str,
        required: bool = False,
        pattern: re.Pattern[str] | None = None,
        expected: str = "",
    ) -> str | None:
        node = self._get(key, required)
        if node is None:
            return None
        return _text(self.ctx, node, f"{self.what}: {key!r}", pattern, expected)

    def number(
        self, key: str, default: float, low: float, high: float, integer: bool = True
    ) -> float:
        node = self._get(key, False)
        if node is None:
            return default
        value = self.ctx.value(node) if isinstance(node, yaml.ScalarNode) else None
        ok_type = isinstance(value, int) if integer else isinstance(value, int | float)
        if isinstance(value, bool) or not ok_type:
            kind = "a whole number" if integer else "a number"
            self.ctx.error(node, f"{self.what}: {key!r} must be {kind}, found {_kind(node)}")
            return default
        assert isinstance(value, int | float)
        if not low <= value <= high:
            self.ctx.error(
                node, f"{self.what}: {key!r} must be between {low:g} and {high:g}, found {value:g}"
            )
            return default
        return value

    def integer(self, key: str, default: int, low: int, high: int) -> int:
        return int(self.number(key, default, low, high, integer=True))

    def boolean(self, key: str, default: bool) -> bool:
        node = self._get(key, False)
        if node is None:
            return default
        if node.tag != _TAG + "bool":
            self.ctx.error(node, f"{self.what}: {key!r} must be true or false, found {_kind(node)}")
            return default
        return bool(self.ctx.value(node))

    def target(self, key: str, flow: str, required: bool = True) -> str | None:
        name = self.text(key, required)
        if name is not None:
            self.ctx.refs.append(_Ref(flow, name, self.entries[key][1], key))
        return name

    def prompt(self, key: str, default_id: str, required: bool = False) -> Prompt | None:
        node = self._get(key, required)
        if node is None:
            return None
        return _prompt(self.ctx, node, default_id, f"{self.what}: {key!r}")

    def expr(self, key: str, required: bool = False) -> ex.Expr | None:
        node = self._get(key, required)
        if node is None:
            return None
        return _expr(self.ctx, node, f"{self.what}: {key!r}")

    def finish(self) -> None:
        # A misspelled required key is one mistake, not two: report the
        # unknown key with its suggestion and not the missing one.
        unknown = [name for name in self.entries if name not in self.allowed]
        guessed = {suggest_name(name, self.allowed) for name in unknown}
        for missing in self.missing:
            if missing not in guessed:
                self.ctx.error(self.node, f"{self.what} is missing {missing!r}")
        for name, (key, _value) in self.entries.items():
            if name not in self.allowed:
                hint = suggest(name, self.allowed)
                expected = ", ".join(self.allowed)
                self.ctx.error(
                    key, f"{self.what}: unknown key {name!r}{hint}; expected one of: {expected}"
                )


def _text(
    ctx: _Context,
    node: yaml.Node,
    what: str,
    pattern: re.Pattern[str] | None = None,
    expected: str = "",
) -> str | None:
    if isinstance(node, yaml.ScalarNode) and node.tag == _TAG + "int" and ":" in node.value:
        # YAML 1.1 reads 9:30 as the base-60 number 570.
        ctx.error(node, f'{what}: write times in quotes, e.g. "09:00-12:00"')
        return None
    if not isinstance(node, yaml.ScalarNode) or node.tag not in (_TAG + "str", _TAG + "int"):
        ctx.error(node, f"{what} must be text, found {_kind(node)}")
        return None
    text = str(node.value)
    if pattern is not None and not pattern.match(text):
        ctx.error(node, f"{what}: {text!r} is not valid; expected {expected}")
        return None
    return text


def _expr(ctx: _Context, node: yaml.Node, what: str) -> ex.Expr | None:
    if isinstance(node, yaml.ScalarNode) and node.tag in (_TAG + "bool", _TAG + "int"):
        source = str(node.value).lower()
        source = {"yes": "true", "no": "false", "on": "true", "off": "false"}.get(source, source)
    elif isinstance(node, yaml.ScalarNode) and node.tag == _TAG + "str":
        source = str(node.value)
    else:
        ctx.error(node, f"{what}: expected an expression (text), found {_kind(node)}")
        return None
    result = ex.try_parse(source)
    if isinstance(result, ex.SyntaxProblem):
        ctx.error(node, f"{what}: bad expression: {result.message}", result.offset)
        return None
    ctx.exprs.append(_ExprUse(result, node))
    return result


def _prompt(ctx: _Context, node: yaml.Node, default_id: str, what: str) -> Prompt | None:
    if isinstance(node, yaml.ScalarNode):
        name = _text(ctx, node, what)
        if name is None:
            return None
        prompt = ctx.prompts.get(name)
        if prompt is None and name not in ctx.broken_prompts:
            hint = suggest(name, ctx.prompts)
            ctx.error(
                node,
                f"{what}: unknown prompt {name!r}{hint}; define it under 'prompts:' "
                "or give the texts inline as {fr: ..., en: ...}",
            )
        return prompt
    if not isinstance(node, yaml.MappingNode):
        ctx.error(
            node,
            f"{what}: expected a prompt id, {{fr: ..., en: ...}} or {{file: ...}}, "
            f"found {_kind(node)}",
        )
        return None
    fields = _Fields(ctx, node, what)
    if fields.has("file"):
        file = fields.text("file", True)
        fields.finish()
        return Prompt(default_id, {}, file) if file else None
    texts: dict[str, str] = {}
    for language in ctx.languages:
        value = fields.text(language)
        if value is not None:
            if not value.strip():
                ctx.error(fields.raw(language) or node, f"{what}: the {language!r} text is empty")
            texts[language] = value
    fields.allowed.append("file")
    fields.finish()
    missing = [lang for lang in ctx.languages if not fields.has(lang)]
    if missing:
        names = " and ".join(f"{LANGUAGES.get(m, m)} ({m!r})" for m in missing)
        ctx.error(
            node,
            f"{what}: missing the {names} text; every prompt needs one per language "
            f"({', '.join(ctx.languages)})",
        )
    complete = len(texts) == len(ctx.languages)
    return Prompt(default_id, MappingProxyType(texts)) if complete else None


def _skills(ctx: _Context, fields: _Fields) -> Mapping[str, int]:
    node = fields.mapping("skills")
    if node is None:
        return MappingProxyType({})
    skills: dict[str, int] = {}
    inner = _Fields(ctx, node, f"{fields.what}: skills")
    for name in list(inner.entries):
        if not NAME_RE.match(name):
            ctx.error(inner.key_node(name), f"skill name {name!r} must be letters, digits or _")
        skills[name] = inner.integer(name, 1, 1, 100)
    inner.finish()
    return MappingProxyType(skills)


# --- node parsers -------------------------------------------------------------


def _play(f: _Fields, nid: str, loc: Location, flow: str) -> AnyNode | None:
    given = [k for k in ("prompt", "file", "say") if f.has(k)]
    nxt = f.target("next", flow)
    prompt = f.prompt("prompt", nid)
    file = f.text("file")
    say = f.text("say")
    value = f.expr("value", required=say is not None)
    if len(given) != 1:
        what = "both " + " and ".join(repr(g) for g in given) if given else "nothing to play"
        f.ctx.error(
            f.node, f"{f.what} needs exactly one of 'prompt', 'file' or 'say', found {what}"
        )
    if say is not None and say not in SAY_KINDS:
        f.ctx.error(
            f.raw("say") or f.node,
            f"{f.what}: 'say' must be one of "
            f"{', '.join(SAY_KINDS)}, found {say!r}{suggest(say, SAY_KINDS)}",
        )
        return None
    if file is not None:
        prompt = Prompt(nid, {}, file)
    if nxt is None or len(given) != 1 or (prompt is None and say is None):
        return None
    return PlayNode(nid, loc, nxt, prompt, say, value)


def _retry_fields(f: _Fields) -> tuple[float, int]:
    return f.number("timeout", 5.0, 1, 60, integer=False), f.integer("retries", 2, 0, 5)


def _menu(f: _Fields, nid: str, loc: Location, flow: str) -> AnyNode | None:
    prompt = f.prompt("prompt", nid, required=True)
    on_failure = f.target("on_failure", flow)
    timeout, retries = _retry_fields(f)
    invalid = f.prompt("invalid_prompt", f"{nid}.invalid")
    timeout_prompt = f.prompt("timeout_prompt", f"{nid}.timeout")
    node = f.mapping("options", required=True)
    options: dict[str, str] = {}
    if node is not None:
        if not node.value:
            f.ctx.error(
                node, f"{f.what}: 'options' is empty; give at least one key, e.g. \"1\": next_node"
            )
        for key, value in node.value:
            text = str(key.value) if isinstance(key, yaml.ScalarNode) else ""
            if len(text) != 1 or text not in DTMF_KEYS:
                f.ctx.error(
                    key,
                    f"{f.what}: option {text!r} is not a phone key; expected one of "
                    '0-9, "*" or "#" (quote * and #)',
                )
                continue
            if text in options:
                f.ctx.error(key, f"{f.what}: key {text!r} is given twice")
                continue
            target = _text(f.ctx, value, f"{f.what}: option {text!r}")
            if target is not None:
                f.ctx.refs.append(_Ref(flow, target, value, f"option {text!r}"))
                options[text] = target
    if prompt is None or on_failure is None or not options:
        return None
    return MenuNode(
        nid,
        loc,
        prompt,
        MappingProxyType(options),
        on_failure,
        timeout,
        retries,
        invalid,
        timeout_prompt,
    )


def _collect(f: _Fields, nid: str, loc: Location, flow: str) -> AnyNode | None:
    prompt = f.prompt("prompt", nid, required=True)
    variable = f.text("variable", True, VAR_RE, "a variable name such as contract_number")
    nxt = f.target("next", flow)
    on_failure = f.target("on_failure", flow)
    low = f.integer("min_length", 1, 1, 32)
    high = f.integer("max_length", 20, 1, 32)
    terminator = f.text("terminator") or "#"
    timeout, retries = _retry_fields(f)
    if terminator not in ("#", "*", "none"):
        f.ctx.error(
            f.raw("terminator") or f.node,
            f'{f.what}: \'terminator\' must be "#", "*" or none, found {terminator!r}',
        )
    if low > high:
        f.ctx.error(
            f.raw("min_length") or f.node,
            f"{f.what}: min_length ({low}) is greater than max_length ({high})",
        )
    validation = _validation(f)
    invalid = f.prompt("invalid_prompt", f"{nid}.invalid")
    timeout_prompt = f.prompt("timeout_prompt", f"{nid}.timeout")
    sensitive = f.boolean("sensitive", False)
    if variable is not None:
        f.ctx.assigned.add(variable)
    if prompt is None or variable is None or nxt is None or on_failure is None:
        return None
    return CollectNode(
        nid,
        loc,
        prompt,
        variable,
        nxt,
        on_failure,
        low,
        high,
        "" if terminator == "none" else terminator,
        timeout,
        retries,
        validation,
        invalid,
        timeout_prompt,
        sensitive,
    )


def _validation(f: _Fields) -> Validation:
    node = f.raw("validate")
    if node is None:
        return Validation()
    if isinstance(node, yaml.ScalarNode) and node.value == "luhn":
        return Validation(luhn=True)
    if not isinstance(node, yaml.MappingNode):
        f.ctx.error(node, f"{f.what}: 'validate' must be luhn or {{regex: ..., luhn: true}}")
        return Validation()
    inner = _Fields(f.ctx, node, f"{f.what}: validate")
    regex = inner.text("regex")
    luhn = inner.boolean("luhn", False)
    inner.finish()
    if regex is not None:
        try:
            re.compile(regex)
        except re.error as exc:
            f.ctx.error(inner.raw("regex") or node, f"{f.what}: bad regex: {exc}")
            regex = None
    return Validation(regex, luhn)


def _speech(f: _Fields, nid: str, loc: Location, flow: str) -> AnyNode | None:
    prompt = f.prompt("prompt", nid, required=True)
    fallback = f.target("fallback", flow)
    confidence = f.number("confidence", 0.5, 0.0, 1.0, integer=False)
    timeout = f.number("timeout", 5.0, 1, 60, integer=False)
    retries = f.integer("retries", 1, 0, 5)
    no_match = f.prompt("no_match_prompt", f"{nid}.no_match")
    grammar: bool | None = None  # None: the speech.grammar setting decides
    grammar_node = f.raw("grammar")
    if grammar_node is not None:
        if grammar_node.tag == _TAG + "bool":
            grammar = bool(f.ctx.value(grammar_node))
        else:
            f.ctx.error(
                grammar_node,
                f"{f.what}: 'grammar' must be true (recognise only this node's phrases) "
                f"or false (the model's whole vocabulary), found {_kind(grammar_node)}; "
                "leave it out to follow the speech.grammar setting",
            )
    node = f.mapping("intents", required=True)
    intents: list[Intent] = []
    if node is not None:
        outer = _Fields(f.ctx, node, f"{f.what}: intents")
        for name in list(outer.entries):
            body = outer.mapping(name)
            if body is None:
                continue
            inner = _Fields(f.ctx, body, f"intent {name!r}")
            target = inner.target("next", flow)
            phrases_node = inner.mapping("phrases", required=True)
            inner.finish()
            phrases: dict[str, tuple[str, ...]] = {}
            if phrases_node is not None:
                per_lang = _Fields(f.ctx, phrases_node, f"intent {name!r}: phrases")
                for language in f.ctx.languages:
                    items = per_lang.raw(language, required=True)
                    if items is None:
                        continue
                    if not isinstance(items, yaml.SequenceNode) or not items.value:
                        f.ctx.error(
                            items,
                            f"intent {name!r}: phrases for {language!r} must be a "
                            "non-empty list, e.g. [ma facture, facturation]",
                        )
                        continue
                    texts = [_text(f.ctx, item, f"intent {name!r} phrase") for item in items.value]
                    phrases[language] = tuple(t for t in texts if t)
                per_lang.finish()
            if target is not None and len(phrases) == len(f.ctx.languages):
                intents.append(Intent(name, MappingProxyType(phrases), target))
        if not outer.entries:
            f.ctx.error(node, f"{f.what}: 'intents' is empty")
    f.ctx.assigned.add("intent")
    if prompt is None or fallback is None or not intents:
        return None
    return SpeechNode(
        nid, loc, prompt, tuple(intents), fallback, confidence, timeout, retries, no_match, grammar
    )


def _identify(f: _Fields, nid: str, loc: Location, flow: str) -> AnyNode | None:
    method = f.text("method", True)
    if method == "caller_id":
        found = f.target("found", flow)
        not_found = f.target("not_found", flow)
        on_error = f.target("on_error", flow, required=False) or not_found
        if found is None or not_found is None or on_error is None:
            return None
        return IdentifyNode(nid, loc, method, on_error, found=found, not_found=not_found)
    if method == "account_pin":
        success = f.target("success", flow)
        locked = f.target("locked", flow)
        on_failure = f.target("on_failure", flow)
        on_error = f.target("on_error", flow, required=False) or on_failure
        account_prompt = f.prompt("account_prompt", f"{nid}.account", required=True)
        pin_prompt = f.prompt("pin_prompt", f"{nid}.pin", required=True)
        invalid = f.prompt("invalid_prompt", f"{nid}.invalid")
        account_min = f.integer("account_min", 4, 1, 32)
        account_max = f.integer("account_max", 16, 1, 32)
        pin_length = f.integer("pin_length", 4, 3, 12)
        attempts = f.integer("attempts", 3, 1, 5)
        timeout = f.number("timeout", 6.0, 1, 60, integer=False)
        retries = f.integer("retries", 1, 0, 5)
        if account_min > account_max:
            f.ctx.error(
                f.raw("account_min") or f.node,
                f"{f.what}: account_min ({account_min}) is greater than account_max",
            )
        if None in (success, locked, on_failure, on_error, account_prompt, pin_prompt):
            return None
        return IdentifyNode(
            nid,
            loc,
            method,
            on_error or "",
            success=success,
            locked=locked,
            on_failure=on_failure,
            account_prompt=account_prompt,
            pin_prompt=pin_prompt,
            invalid_prompt=invalid,
            account_min=account_min,
            account_max=account_max,
            pin_length=pin_length,
            attempts=attempts,
            timeout=timeout,
            retries=retries,
        )
    if method is not None:
        f.ctx.error(
            f.raw("method") or f.node,
            f"{f.what}: 'method' must be caller_id or "
            f"account_pin, found {method!r}{suggest(method, ('caller_id', 'account_pin'))}",
        )
    # Accept the keys of both methods so the only error shown is the method's.
    for key in (
        "found",
        "not_found",
        "success",
        "locked",
        "on_failure",
        "on_error",
        "account_prompt",
        "pin_prompt",
        "invalid_prompt",
        "account_min",
        "account_max",
        "pin_length",
        "attempts",
        "timeout",
        "retries",
    ):
        f.raw(key)
    return None


def _condition(f: _Fields, nid: str, loc: Location, flow: str) -> AnyNode | None:
    otherwise = f.target("else", flow)
    on_error = f.target("on_error", flow, required=False)
    node = f.raw("branches", required=True)
    branches: list[Branch] = []
    if node is not None:
        if not isinstance(node, yaml.SequenceNode) or not node.value:
            f.ctx.error(
                node,
                f"{f.what}: 'branches' must be a non-empty list of "
                "{if: <expression>, then: <node>}",
            )
        else:
            for item in node.value:
                if not isinstance(item, yaml.MappingNode):
                    f.ctx.error(item, f"{f.what}: each branch must be {{if: ..., then: ...}}")
                    continue
                inner = _Fields(f.ctx, item, f"{f.what}: branch")
                expr = inner.expr("if", required=True)
                target = inner.target("then", flow)
                source = str(inner.raw("if").value) if inner.has("if") else ""  # type: ignore[union-attr]
                inner.finish()
                if expr is not None and target is not None:
                    branches.append(Branch(expr, source, target))
    if otherwise is None or not branches:
        return None
    return ConditionNode(nid, loc, tuple(branches), otherwise, on_error)


def _set(f: _Fields, nid: str, loc: Location, flow: str) -> AnyNode | None:
    nxt = f.target("next", flow)
    values: dict[str, Scalar] = {}
    computed: dict[str, ex.Expr] = {}
    for key in ("values", "compute"):
        node = f.mapping(key)
        if node is None:
            continue
        inner = _Fields(f.ctx, node, f"{f.what}: {key}")
        for name in list(inner.entries):
            raw = inner.raw(name)
            assert raw is not None
            if not VAR_RE.match(name):
                f.ctx.error(inner.key_node(name), f"{f.what}: {name!r} is not a variable name")
                continue
            if name in ("language", "priority"):
                f.ctx.error(
                    inner.key_node(name),
                    f"{f.what}: set {name!r} with its own key ('{name}:'), not under {key!r}",
                )
                continue
            f.ctx.assigned.add(name)
            if key == "compute":
                expr = _expr(f.ctx, raw, f"{f.what}: compute {name!r}")
                if expr is not None:
                    computed[name] = expr
            elif isinstance(raw, yaml.ScalarNode) and raw.tag != _TAG + "timestamp":
                values[name] = f.ctx.value(raw)  # type: ignore[assignment]
            else:
                f.ctx.error(raw, f"{f.what}: value of {name!r} must be text, a number or yes/no")
        inner.finish()
    language = f.text("language")
    if language is not None and language not in f.ctx.languages:
        f.ctx.error(
            f.raw("language") or f.node,
            f"{f.what}: language {language!r} is not one of "
            f"the script's languages ({', '.join(f.ctx.languages)})"
            f"{suggest(language, f.ctx.languages)}",
        )
        language = None
    skills = _skills(f.ctx, f)
    priority = f.integer("priority", 0, -100, 100) if f.has("priority") else None
    if nxt is None:
        return None
    return SetNode(
        nid,
        loc,
        nxt,
        MappingProxyType(values),
        MappingProxyType(computed),
        language,
        skills,
        priority,
    )


def _http(f: _Fields, nid: str, loc: Location, flow: str) -> AnyNode | None:
    url = f.text("url", True, re.compile(r"^https?://"), "an http:// or https:// address")
    nxt = f.target("next", flow)
    on_error = f.target("on_error", flow)
    not_found = f.target("not_found", flow, required=False)
    store_as = f.text("store_as", False, NAME_RE, "a name such as contract") or "http"
    method = (f.text("method") or "GET").upper()
    timeout = f.number("timeout", 2.0, 0.1, 10, integer=False)
    if method not in ("GET", "POST"):
        f.ctx.error(f.raw("method") or f.node, f"{f.what}: 'method' must be GET or POST")
    if url is not None:
        f.ctx.templates.append((url, f.raw("url") or f.node))
    f.ctx.namespaces.add(store_as)
    if url is None or nxt is None or on_error is None:
        return None
    return HttpNode(nid, loc, url, nxt, on_error, store_as, method, timeout, not_found)


def _queue(f: _Fields, nid: str, loc: Location, flow: str) -> AnyNode | None:
    queue = f.text("queue", True, NAME_RE, "a queue name (letters, digits, _)")
    skills = _skills(f.ctx, f)
    priority = f.integer("priority", 0, -100, 100)
    prompt = f.prompt("prompt", nid)
    return QueueNode(nid, loc, queue, skills, priority, prompt) if queue else None


def _voicemail(f: _Fields, nid: str, loc: Location, flow: str) -> AnyNode | None:
    mailbox = f.text("mailbox", True, re.compile(r"^[\w.-]+(@[\w.-]+)?$"), "box@context")
    prompt = f.prompt("prompt", nid)
    return VoicemailNode(nid, loc, mailbox, prompt) if mailbox else None


def _callback(f: _Fields, nid: str, loc: Location, flow: str) -> AnyNode | None:
    prompt = f.prompt("prompt", nid, required=True)
    queue = f.text("queue", True, NAME_RE, "a queue name")
    accepted = f.target("accepted", flow)
    declined = f.target("declined", flow)
    on_error = f.target("on_error", flow, required=False)
    number = f.expr("number")
    key = f.text("accept_key") or "1"
    timeout, retries = f.number("timeout", 5.0, 1, 60, integer=False), f.integer("retries", 1, 0, 5)
    if len(key) != 1 or key not in DTMF_KEYS:
        f.ctx.error(f.raw("accept_key") or f.node, f"{f.what}: 'accept_key' must be one phone key")
    if None in (prompt, queue, accepted, declined):
        return None
    assert prompt is not None
    assert queue is not None
    assert accepted is not None
    assert declined is not None
    return CallbackNode(
        nid, loc, prompt, queue, accepted, declined, number, key, timeout, retries, on_error
    )


def _transfer(f: _Fields, nid: str, loc: Location, flow: str) -> AnyNode | None:
    number = f.text("number", False, re.compile(r"^\+?[0-9*#]{2,20}$"), "a phone number")
    script = f.text("script", False, NAME_RE, "a script name (file name without .yaml)")
    prompt = f.prompt("prompt", nid)
    if f.has("number") == f.has("script"):
        f.ctx.error(f.node, f"{f.what} needs exactly one of 'number' or 'script'")
        return None
    if script is not None:
        f.ctx.script_refs.append((script, f.raw("script") or f.node))
    if number is None and script is None:
        return None
    return TransferNode(nid, loc, number, script, prompt)


def _survey(f: _Fields, nid: str, loc: Location, flow: str) -> AnyNode | None:
    question = f.prompt("question", f"{nid}.question", required=True)
    nxt = f.target("next", flow, required=False)
    comment = f.prompt("comment_prompt", f"{nid}.comment")
    thanks = f.prompt("thanks", f"{nid}.thanks")
    invalid = f.prompt("invalid_prompt", f"{nid}.invalid")
    seconds = f.integer("comment_seconds", 30, 5, 180)
    timeout = f.number("timeout", 6.0, 1, 60, integer=False)
    retries = f.integer("retries", 1, 0, 5)
    if question is None:
        return None
    return SurveyNode(nid, loc, question, nxt, comment, thanks, invalid, seconds, timeout, retries)


def _goto(f: _Fields, nid: str, loc: Location, flow: str) -> AnyNode | None:
    target = f.target("target", flow)
    return GotoNode(nid, loc, target) if target else None


def _subflow(f: _Fields, nid: str, loc: Location, flow: str) -> AnyNode | None:
    name = f.text("flow", True)
    nxt = f.target("next", flow)
    if name is not None:
        f.ctx.subflow_refs.append((name, f.raw("flow") or f.node))
    return SubflowNode(nid, loc, name, nxt) if name and nxt else None


def _return(f: _Fields, nid: str, loc: Location, flow: str) -> AnyNode | None:
    if flow == "":
        f.ctx.error(f.node, f"{f.what}: 'return' only makes sense inside a subflow")
        return None
    return ReturnNode(nid, loc)


def _hangup(f: _Fields, nid: str, loc: Location, flow: str) -> AnyNode | None:
    reason = f.text("reason") or "normal"
    return HangupNode(nid, loc, reason, f.prompt("prompt", nid))


_PARSERS = {
    "play": _play, "menu": _menu, "collect": _collect, "speech": _speech,
    "identify": _identify, "condition": _condition, "set": _set, "http": _http,
    "queue": _queue, "voicemail": _voicemail, "callback": _callback, "transfer": _transfer,
    "survey": _survey, "goto": _goto, "subflow": _subflow, "return": _return,
    "hangup": _hangup,
}  # fmt: skip
assert set(_PARSERS) == set(NODE_TYPES)


# --- sections -------------------------------------------------------------------


def _nodes(ctx: _Context, section: yaml.MappingNode, flow: str) -> dict[str, AnyNode]:
    nodes: dict[str, AnyNode] = {}
    outer = _Fields(ctx, section, "nodes")
    for nid, (key, body) in outer.entries.items():
        outer.allowed.append(nid)
        if not NAME_RE.match(nid):
            ctx.error(
                key,
                f"node name {nid!r} must start with a letter and use only letters, digits and _",
            )
            continue
        if not isinstance(body, yaml.MappingNode):
            ctx.error(body, f"node {nid!r} must be a mapping with a 'type', found {_kind(body)}")
            continue
        f = _Fields(ctx, body, f"node {nid!r}")
        kind = f.text("type", True)
        description = f.text("description") or ""
        if kind is None:
            continue
        parser = _PARSERS.get(kind)
        if parser is None:
            hint = suggest(kind, _PARSERS)
            ctx.error(
                f.raw("type") or body,
                f"node {nid!r}: unknown type {kind!r}{hint}; expected "
                f"one of: {', '.join(_PARSERS)}",
            )
            continue
        f.what = f"{kind} node {nid!r}"
        node = parser(
            f, nid, Location(ctx.file, key.start_mark.line + 1, key.start_mark.column + 1), flow
        )
        f.finish()
        if node is not None:
            nodes[nid] = replace(node, description=description) if description else node
    return nodes


def _prompts(ctx: _Context, section: yaml.MappingNode) -> None:
    fields = _Fields(ctx, section, "prompts")
    for pid in list(fields.entries):
        node = fields.raw(pid)
        assert node is not None
        if not re.match(r"^[A-Za-z][\w.]*$", pid):
            ctx.error(fields.key_node(pid), f"prompt id {pid!r} must be letters, digits, _ or .")
            continue
        if isinstance(node, yaml.ScalarNode):
            ctx.error(
                node,
                f"prompt {pid!r}: expected {{fr: ..., en: ...}} or {{file: ...}}, "
                f"found {_kind(node)}",
            )
            continue
        prompt = _prompt(ctx, node, pid, f"prompt {pid!r}")
        if prompt is not None:
            ctx.prompts[pid] = prompt
        else:
            ctx.broken_prompts.add(pid)


def _calendars(ctx: _Context, section: yaml.MappingNode) -> None:
    outer = _Fields(ctx, section, "calendars")
    for name in list(outer.entries):
        body = outer.mapping(name)
        if body is None:
            continue
        f = _Fields(ctx, body, f"calendar {name!r}")
        tz = f.text("timezone", True)
        if tz is not None:
            try:
                check_zone(tz)
            except ScriptError as exc:
                hint = suggest(tz, available_timezones())
                ctx.error(f.raw("timezone") or body, f"calendar {name!r}: {exc}{hint}")
                tz = None
        sets_node = f.raw("holidays")
        sets: list[str] = []
        if sets_node is not None:
            items = sets_node.value if isinstance(sets_node, yaml.SequenceNode) else [sets_node]
            for item in items:
                value = _text(ctx, item, f"calendar {name!r}: holidays")
                if value is not None and value not in HOLIDAY_SETS and value != "none":
                    ctx.error(
                        item,
                        f"calendar {name!r}: unknown holiday set {value!r}"
                        f"{suggest(value, HOLIDAY_SETS)}; expected {', '.join(HOLIDAY_SETS)}"
                        " or none",
                    )
                elif value is not None and value != "none":
                    sets.append(value)
        closed: set[date] = set()
        closed_node = f.raw("closed_dates")
        if closed_node is not None:
            items = closed_node.value if isinstance(closed_node, yaml.SequenceNode) else []
            if not isinstance(closed_node, yaml.SequenceNode):
                ctx.error(closed_node, f"calendar {name!r}: 'closed_dates' must be a list of dates")
            for item in items:
                day = ctx.value(item)
                if isinstance(day, date):
                    closed.add(day)
                else:
                    ctx.error(item, f"calendar {name!r}: expected a date like 2026-12-24")
        week: list[tuple[Interval, ...]] = [()] * 7
        hours = f.mapping("hours", required=True)
        if hours is not None:
            hf = _Fields(ctx, hours, f"calendar {name!r}: hours")
            for days_text in list(hf.entries):
                key = hf.key_node(days_text)
                value_node = hf.raw(days_text)
                assert value_node is not None
                try:
                    days = parse_days(days_text)
                except ScriptError as exc:
                    ctx.error(key, f"calendar {name!r}: {exc}")
                    continue
                ranges = _text(ctx, value_node, f"calendar {name!r}: hours {days_text!r}")
                if ranges is None:
                    continue
                try:
                    intervals = parse_intervals(ranges)
                except ScriptError as exc:
                    ctx.error(value_node, f"calendar {name!r}: {exc}")
                    continue
                for day in days:
                    if week[day]:
                        ctx.error(
                            key,
                            f"calendar {name!r}: a day is given twice in 'hours' ({days_text!r})",
                        )
                    week[day] = intervals
        f.finish()
        if tz is not None and hours is not None:
            holiday_sets = tuple(sets) if sets_node is not None else ("fr",)
            ctx.calendars[name] = Calendar(name, tz, tuple(week), holiday_sets, frozenset(closed))


def _flow(ctx: _Context, body: yaml.MappingNode, name: str, what: str) -> Flow | None:
    f = _Fields(ctx, body, what)
    start = f.text("start", True)
    section = f.mapping("nodes", required=True)
    f.finish()
    if section is None or start is None:
        return None
    nodes = _nodes(ctx, section, name)
    ctx.refs.append(_Ref(name, start, f.raw("start") or body, "start"))
    return Flow(name, start, MappingProxyType(nodes))


# --- whole-script checks ---------------------------------------------------------


def _check_refs(ctx: _Context, flows: Mapping[str, Flow], declared: Mapping[str, set[str]]) -> None:
    for ref in ctx.refs:
        names = declared.get(ref.flow, set())
        if ref.name not in names:
            where = f"subflow {ref.flow!r}" if ref.flow else "this script"
            ctx.error(
                ref.node,
                f"{ref.what}: no node named {ref.name!r} in {where}{suggest(ref.name, names)}",
            )
    for name, node in ctx.subflow_refs:
        if name not in flows or name == "":
            ctx.error(
                node,
                f"unknown subflow {name!r}{suggest(name, [n for n in flows if n])}; "
                "define it under 'subflows:'",
            )


def _check_scripts(ctx: _Context, path: Path | None) -> None:
    if path is None:
        return
    for name, node in ctx.script_refs:
        if not (path.parent / f"{name}.yaml").exists():
            siblings = [p.stem for p in path.parent.glob("*.yaml")]
            ctx.error(
                node, f"transfer: no script {name}.yaml next to this one{suggest(name, siblings)}"
            )


def _check_expressions(ctx: _Context) -> None:
    for use in ctx.exprs:
        for call in ex.calls(use.expr):
            if call.function not in ex.CALENDAR_FUNCTIONS:
                continue
            arg = call.args[0]
            if not (isinstance(arg, ex.Literal) and isinstance(arg.value, str)):
                ctx.error(
                    use.node,
                    f"{call.function}() needs a calendar name in quotes, "
                    f"e.g. {call.function}('office')",
                )
            elif arg.value not in ctx.calendars:
                ctx.error(
                    use.node,
                    f"{call.function}(): unknown calendar {arg.value!r}"
                    f"{suggest(arg.value, ctx.calendars)}; define it under 'calendars:'",
                )
        for name in sorted(ex.names(use.expr)):
            _check_variable(ctx, name, use.node)
    for template, node in ctx.templates:
        for match in TEMPLATE_RE.finditer(template):
            name = match.group(1)
            if not VAR_RE.match(name):
                ctx.error(
                    node, f"bad placeholder ${{{name}}}: expected ${{variable_name}}", match.start()
                )
            else:
                _check_variable(ctx, name, node)


def _check_variable(ctx: _Context, name: str, node: yaml.Node) -> None:
    if name in ctx.assigned or name.split(".")[0] in ctx.namespaces:
        return
    known = sorted(ctx.assigned) + [f"{ns}.{name.partition('.')[2]}" for ns in ctx.namespaces]
    ctx.warn(
        node,
        f"variable {name!r} is never set in this script, it will read as null"
        f"{suggest(name, known)}",
    )


def _reachable(flow: Flow) -> set[str]:
    seen: set[str] = set()
    todo = [flow.start]
    while todo:
        nid = todo.pop()
        if nid in seen or nid not in flow.nodes:
            continue
        seen.add(nid)
        todo.extend(t for _label, t in targets(flow.nodes[nid]))
    return seen


def _check_graph(
    ctx: _Context, script_flows: Mapping[str, Flow], keys: dict[str, yaml.Node]
) -> None:
    input_flows = {
        name
        for name, flow in script_flows.items()
        if any(waits_for_input(n) for n in flow.nodes.values())
    }
    used = {
        n.flow
        for f in script_flows.values()
        for n in f.nodes.values()
        if isinstance(n, SubflowNode)
    }
    for name, flow in script_flows.items():
        if name and name not in used:
            ctx.warn(keys[name], f"subflow {name!r} is never used")
        reachable = _reachable(flow)
        for nid in flow.nodes:
            if nid not in reachable:
                node_key = keys[f"{name}/{nid}"]
                ctx.warn(node_key, f"node {nid!r} can never be reached from {flow.start!r}")

        def silent(node: AnyNode) -> bool:
            if isinstance(node, SubflowNode):
                return node.flow not in input_flows
            return not waits_for_input(node)

        for cycle in _silent_cycles(flow, silent):
            path = " -> ".join([*cycle, cycle[0]])
            ctx.error(
                keys[f"{name}/{cycle[0]}"],
                f"loop without caller input: {path}; the call would go round forever. "
                "Put a menu, collect or speech node in the loop, or end it",
            )


def _silent_cycles(flow: Flow, silent: object) -> list[list[str]]:
    assert callable(silent)
    order = list(flow.nodes)
    color: dict[str, int] = {}
    cycles: list[list[str]] = []
    reported: set[frozenset[str]] = set()
    for root in order:
        if color.get(root) or not silent(flow.nodes[root]):
            continue
        stack: list[tuple[str, list[str]]] = [(root, _silent_next(flow, root, silent))]
        path = [root]
        color[root] = 1
        while stack:
            nid, pending = stack[-1]
            if not pending:
                color[nid] = 2
                stack.pop()
                path.pop()
                continue
            nxt = pending.pop(0)
            state = color.get(nxt, 0)
            if state == 1:
                cycle = path[path.index(nxt) :]
                if frozenset(cycle) not in reported:
                    reported.add(frozenset(cycle))
                    cycles.append(cycle)
            elif state == 0:
                color[nxt] = 1
                path.append(nxt)
                stack.append((nxt, _silent_next(flow, nxt, silent)))
    return cycles


def _silent_next(flow: Flow, nid: str, silent: object) -> list[str]:
    assert callable(silent)
    out: list[str] = []
    for _label, target in targets(flow.nodes[nid]):
        node = flow.nodes.get(target)
        if node is not None and silent(node) and target not in out:
            out.append(target)
    return out


# --- entry points -------------------------------------------------------------------


def check_text(
    text: str, file: str = "<script>", path: Path | None = None
) -> tuple[Script | None, list[Problem]]:
    """Validate *text*; returns the script (None if any error) and every problem."""
    ctx = _Context(file)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        what = exc.problem or "invalid YAML"
        if exc.context:
            what = f"{exc.context}, {what}"
        hint = "; check the indentation and quote values containing ':' or '#'"
        return None, [Problem(Location(file, line, col), f"YAML syntax error: {what}{hint}")]
    except yaml.YAMLError as exc:
        return None, [Problem(Location(file, 1, 1), f"YAML error: {exc}")]
    if not isinstance(root, yaml.MappingNode):
        at = Location(file, 1, 1) if root is None else ctx.location(root)
        return None, [Problem(at, "a script must be a mapping with at least 'start' and 'nodes'")]

    top = _Fields(ctx, root, "script")
    default_name = path.stem if path is not None else "script"
    name = top.text("script", False, NAME_RE, "letters, digits and _") or default_name
    description = top.text("description") or ""
    langs_node = top.raw("languages")
    if langs_node is not None:
        if not isinstance(langs_node, yaml.SequenceNode) or not langs_node.value:
            ctx.error(langs_node, "'languages' must be a list such as [fr, en]")
        else:
            langs = [_text(ctx, n, "languages") for n in langs_node.value]
            for lang, lnode in zip(langs, langs_node.value, strict=True):
                if lang is not None and lang not in LANGUAGES:
                    ctx.error(
                        lnode,
                        f"unknown language {lang!r}{suggest(lang, LANGUAGES)}; "
                        f"expected a code such as {', '.join(LANGUAGES)}",
                    )
            ctx.languages = tuple(lang for lang in langs if lang in LANGUAGES)
    default_language = top.text("default_language") or ctx.languages[0]
    if default_language not in ctx.languages:
        ctx.error(
            top.raw("default_language") or root,
            f"default_language {default_language!r} is not in languages",
        )
    max_steps = top.integer("max_steps", 100, 10, 1000)
    inputs = top.raw("inputs")
    if inputs is not None:
        if not isinstance(inputs, yaml.SequenceNode):
            ctx.error(inputs, "'inputs' must be a list of variable names given by the caller")
        else:
            for item in inputs.value:
                var = _text(ctx, item, "inputs", VAR_RE, "a variable name")
                if var is not None:
                    ctx.assigned.add(var)
    language_skill = top.text("language_skill")
    if language_skill is None:
        language_skill = "lang_{language}"
    overflow = top.text("overflow_queue", False, NAME_RE, "a queue name")
    prompts = top.mapping("prompts")
    if prompts is not None:
        _prompts(ctx, prompts)
    calendars = top.mapping("calendars")
    if calendars is not None:
        _calendars(ctx, calendars)

    keys: dict[str, yaml.Node] = {}
    flows: dict[str, Flow] = {}
    main: Flow | None = None
    start_text = top.text("start", True)
    nodes_section = top.mapping("nodes", required=True)
    if nodes_section is not None and start_text is not None:
        ctx.refs.append(_Ref("", start_text, top.raw("start") or root, "start"))
        main = Flow("", start_text, MappingProxyType(_nodes(ctx, nodes_section, "")))
    declared: dict[str, set[str]] = {}
    if nodes_section is not None:
        declared[""] = {str(k.value) for k, _ in nodes_section.value}
        keys.update({f"/{k.value}": k for k, _ in nodes_section.value})
    subs = top.mapping("subflows")
    if subs is not None:
        sf = _Fields(ctx, subs, "subflows")
        for sub_name in list(sf.entries):
            body = sf.mapping(sub_name)
            keys[sub_name] = sf.key_node(sub_name)
            if not NAME_RE.match(sub_name):
                ctx.error(sf.key_node(sub_name), f"subflow name {sub_name!r} is not a valid name")
                continue
            if body is None:
                continue
            flow = _flow(ctx, body, sub_name, f"subflow {sub_name!r}")
            inner = dict(body.value and [(str(k.value), v) for k, v in body.value])
            section = inner.get("nodes")
            if isinstance(section, yaml.MappingNode):
                declared[sub_name] = {str(k.value) for k, _ in section.value}
                keys.update({f"{sub_name}/{k.value}": k for k, _ in section.value})
            if flow is not None:
                flows[sub_name] = flow
    top.finish()

    if main is not None:
        flows[""] = main
    _check_refs(ctx, flows, declared)
    _check_scripts(ctx, path)
    _check_expressions(ctx)
    errors = [p for p in ctx.problems if p.severity == "error"]
    if not errors and main is not None:
        _check_graph(ctx, flows, keys)
    problems = sorted(ctx.problems, key=lambda p: (p.location.line, p.location.column))
    if any(p.severity == "error" for p in problems) or main is None:
        return None, problems
    script = Script(
        name=name,
        path=file,
        languages=ctx.languages,
        default_language=default_language,
        main=main,
        subflows=MappingProxyType({k: v for k, v in flows.items() if k}),
        prompts=MappingProxyType(dict(ctx.prompts)),
        calendars=MappingProxyType(dict(ctx.calendars)),
        max_steps=max_steps,
        language_skill=language_skill,
        overflow_queue=overflow,
        description=description,
        warnings=tuple(problems),
    )
    return script, problems


def check_file(path: str | Path) -> tuple[Script | None, list[Problem]]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return None, [Problem(Location(str(path), 1, 1), f"cannot read the script: {exc}")]
    return check_text(text, str(path), path)


def _raise(problems: list[Problem]) -> None:
    errors = [p for p in problems if p.severity == "error"]
    raise ScriptError("\n".join(str(p) for p in errors))


def load_text(text: str, file: str = "<script>") -> Script:
    script, problems = check_text(text, file)
    if script is None:
        _raise(problems)
    assert script is not None
    return script


def load_script(path: str | Path) -> Script:
    """Load and validate one script; raises ScriptError listing every error."""
    script, problems = check_file(path)
    if script is None:
        _raise(problems)
    assert script is not None
    return script
