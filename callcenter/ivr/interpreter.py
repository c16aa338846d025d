"""The IVR interpreter: a generator that walks a validated script.

It performs no I/O and never reads the clock: it yields requests (see
:mod:`callcenter.ivr.messages`), receives their results through ``send()``,
and finally returns an outcome. A driver runs it through :class:`Session`::

    session = Session(script, CallInfo(ani="0612345678", now=aware_datetime))
    step = session.start()
    while not session.done:
        step = session.send(perform(step))   # perform: the live-call driver
    outcome = step                            # Route | Transfer | Voicemail | Hangup

Guard rails: every node visit counts against the script's ``max_steps``; every
waiting node has bounded retries; a failing lookup or expression follows the
node's fallback branch and is recorded in the context's ``errors``.
"""

from __future__ import annotations

import re
from collections.abc import Generator, Mapping, Sequence
from datetime import datetime
from typing import TypeVar
from urllib.parse import quote

from callcenter.errors import ScriptError, StateError
from callcenter.ivr import expressions as ex
from callcenter.ivr.messages import (
    CallbackResult,
    CallInfo,
    CollectDigits,
    DigitsResult,
    Hangup,
    IvrContext,
    Listen,
    Lookup,
    LookupKind,
    LookupResult,
    OfferCallback,
    Outcome,
    Play,
    Record,
    RecordResult,
    Request,
    Result,
    Route,
    Say,
    SpeechResult,
    Transfer,
    Voicemail,
)
from callcenter.ivr.model import (
    AnyNode,
    CallbackNode,
    CollectNode,
    ConditionNode,
    Flow,
    GotoNode,
    HangupNode,
    HttpNode,
    IdentifyNode,
    MenuNode,
    PlayNode,
    Prompt,
    QueueNode,
    ReturnNode,
    Script,
    SetNode,
    SpeechNode,
    SubflowNode,
    SurveyNode,
    TransferNode,
    VoicemailNode,
)
from callcenter.ivr.speech import match_intent

Steps = Generator[Request, Result | None, str | Outcome | None]
Run = Generator[Request, Result | None, Outcome]

_R = TypeVar("_R", bound=Result)

MAX_SUBFLOW_DEPTH = 8
MAX_FLATTEN_DEPTH = 3
MAX_TEXT = 1000
_RETURN = None  # a node handler returning None means "return from subflow"


def prompt_file(script: str, prompt_id: str, language: str) -> str:
    """Where the prompt build puts the rendered sound of a text prompt."""
    return f"ivr/{script}/{language}/{prompt_id}"


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        n = int(ch)
        if i % 2:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return len(digits) > 1 and total % 10 == 0


def _expect(result: Result | None, kind: type[_R], request: Request) -> _R:
    if not isinstance(result, kind):
        got = type(result).__name__
        raise StateError(
            f"IVR driver answered {type(request).__name__} with {got}, expected {kind.__name__}"
        )
    return result


def _mask(value: ex.Value) -> ex.Value:
    text = "" if value is None else str(value)
    return "*" * max(len(text) - 4, 0) + text[-4:] if len(text) > 4 else "****"


class _Call:
    """Mutable state of one call inside the interpreter."""

    def __init__(self, script: Script, call: CallInfo) -> None:
        if call.now.tzinfo is None or call.now.utcoffset() is None:
            raise StateError("the IVR needs a timezone-aware 'now' for opening hours")
        self.script = script
        self.now: datetime = call.now
        language = call.language if call.language in script.languages else None
        self.language: str = language or script.default_language
        self.variables: dict[str, ex.Value] = dict(call.variables)
        self.variables.update(
            {"ani": call.ani, "dnis": call.dnis, "language": self.language, "priority": 0}
        )
        self.skills: dict[str, int] = {}
        self.priority = 0
        self.path: list[str] = []
        self.errors: list[str] = []
        self.sensitive: set[str] = set()
        self.steps = 0

    def set_language(self, language: str) -> None:
        self.language = language
        self.variables["language"] = language

    def context(self) -> IvrContext:
        shown = {
            k: (_mask(v) if k in self.sensitive else v) for k, v in sorted(self.variables.items())
        }
        customer = self.variables.get("customer.id")
        intent = self.variables.get("intent")
        return IvrContext(
            script=self.script.name,
            path=tuple(self.path),
            language=self.language,
            intent=intent if isinstance(intent, str) else None,
            customer_id=None if customer is None else str(customer),
            vip=ex.truthy(self.variables.get("customer.vip")),
            variables=shown,
            skills=dict(self.skills),
            priority=self.priority,
            errors=tuple(self.errors),
        )

    def functions(self) -> Mapping[str, ex.Function]:
        def calendar(args: Sequence[ex.Value], holiday: bool) -> ex.Value:
            name = args[0]
            cal = self.script.calendars.get(name) if isinstance(name, str) else None
            if cal is None:
                raise ScriptError(f"unknown calendar {name!r}")
            return cal.holiday(self.now) is not None if holiday else cal.is_open(self.now)

        return {
            "is_open": lambda args: calendar(args, holiday=False),
            "is_holiday": lambda args: calendar(args, holiday=True),
        }

    def evaluate(self, expr: ex.Expr) -> ex.Value:
        return ex.evaluate(expr, self.variables, self.functions())

    def store(self, prefix: str, data: Mapping[str, object], depth: int = 0) -> None:
        """Copy scalar values of a lookup answer into ``prefix.key`` variables."""
        for key, value in list(data.items())[:200]:
            if not isinstance(key, str) or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", key):
                continue
            name = f"{prefix}.{key}"
            if isinstance(value, Mapping) and depth < MAX_FLATTEN_DEPTH:
                self.store(name, value, depth + 1)
            elif isinstance(value, bool | int | float) or value is None:
                self.variables[name] = value
            elif isinstance(value, str):
                self.variables[name] = value[:MAX_TEXT]


class Interpreter:
    """Runs one call through one script; use :meth:`run` or :class:`Session`."""

    def __init__(self, script: Script, call: CallInfo) -> None:
        self.script = script
        self.call = _Call(script, call)

    # --- helpers ------------------------------------------------------------

    def play(self, prompt: Prompt) -> Play:
        language = self.call.language
        if prompt.file is not None:
            return Play(prompt.id, language, prompt.file.replace("{lang}", language))
        return Play(
            prompt.id,
            language,
            prompt_file(self.script.name, prompt.id, language),
            prompt.texts.get(language),
        )

    def _maybe_play(self, prompt: Prompt | None) -> Generator[Request, Result | None, None]:
        if prompt is not None:
            yield self.play(prompt)

    def _digits(
        self,
        prompt: Prompt,
        *,
        max_digits: int,
        min_digits: int,
        timeout: float,
        terminator: str,
    ) -> Generator[Request, Result | None, DigitsResult]:
        request = CollectDigits(
            max_digits, timeout, terminator, self.play(prompt), self.call.language, min_digits
        )
        result = _expect((yield request), DigitsResult, request)
        digits = result.digits
        if terminator and digits.endswith(terminator):
            digits = digits[: -len(terminator)]
        return DigitsResult(digits, result.timed_out and not digits)

    def _lookup(
        self, kind: LookupKind, params: Mapping[str, str], timeout: float = 2.0
    ) -> Generator[Request, Result | None, LookupResult]:
        request = Lookup(kind, dict(params), timeout)
        return _expect((yield request), LookupResult, request)

    def _route(self, queue: str, skills: Mapping[str, int], priority: int) -> Route:
        wanted = dict(self.call.skills)
        for name, level in skills.items():
            wanted[name] = max(level, wanted.get(name, 0))
        if self.script.language_skill:
            skill = self.script.language_skill.replace("{language}", self.call.language)
            wanted.setdefault(skill, 1)
        self.call.skills = wanted
        self.call.priority += priority
        return Route(
            queue, dict(wanted), self.call.priority, self.call.language, self.call.context()
        )

    def _overflow(self, why: str) -> Outcome:
        self.call.errors.append(why)
        if self.script.overflow_queue:
            return self._route(self.script.overflow_queue, {}, 0)
        return Hangup(why, self.call.context())

    # --- main loop ------------------------------------------------------------

    def run(self) -> Run:
        stack: list[tuple[Flow, str]] = []
        flow = self.script.main
        node_id = flow.start
        while True:
            if self.call.steps >= self.script.max_steps:
                return self._overflow(f"max_steps: more than {self.script.max_steps} steps")
            self.call.steps += 1
            node = flow.nodes[node_id]
            self.call.path.append(f"{flow.name}/{node_id}" if flow.name else node_id)
            if isinstance(node, SubflowNode):
                if len(stack) >= MAX_SUBFLOW_DEPTH:
                    return self._overflow(f"subflows nested deeper than {MAX_SUBFLOW_DEPTH}")
                stack.append((flow, node.next))
                flow = self.script.subflows[node.flow]
                node_id = flow.start
                continue
            step = yield from self._node(node)
            if step is _RETURN:
                if not stack:
                    return self._overflow("return outside a subflow")
                flow, node_id = stack.pop()
            elif isinstance(step, str):
                node_id = step
            else:
                return step

    def _node(self, node: AnyNode) -> Steps:
        handler = getattr(self, f"_node_{type(node).__name__}")
        step: str | Outcome | None = yield from handler(node)
        return step

    # --- node handlers (return a node id, an outcome, or None to return) --------

    def _node_PlayNode(self, node: PlayNode) -> Steps:
        if node.prompt is not None:
            yield self.play(node.prompt)
        elif node.say_kind is not None and node.say_value is not None:
            try:
                value = self.call.evaluate(node.say_value)
            except ScriptError as exc:
                self.call.errors.append(f"{node.id}: {exc}")
                return node.next
            if value is not None:
                yield Say(node.say_kind, str(value)[:MAX_TEXT], self.call.language)
        return node.next

    def _node_MenuNode(self, node: MenuNode) -> Steps:
        width = max(len(k) for k in node.options)
        for attempt in range(node.retries + 1):
            result = yield from self._digits(
                node.prompt, max_digits=width, min_digits=1, timeout=node.timeout, terminator=""
            )
            if result.digits in node.options:
                return node.options[result.digits]
            last = attempt == node.retries
            retry_prompt = node.timeout_prompt if not result.digits else node.invalid_prompt
            if not last:
                yield from self._maybe_play(retry_prompt)
        return node.on_failure

    def _node_CollectNode(self, node: CollectNode) -> Steps:
        for attempt in range(node.retries + 1):
            result = yield from self._digits(
                node.prompt,
                max_digits=node.max_length,
                min_digits=node.min_length,
                timeout=node.timeout,
                terminator=node.terminator,
            )
            digits = result.digits
            if digits and self._valid(node, digits):
                self.call.variables[node.variable] = digits
                if node.sensitive:
                    self.call.sensitive.add(node.variable)
                return node.next
            if attempt < node.retries:
                yield from self._maybe_play(node.invalid_prompt if digits else node.timeout_prompt)
        return node.on_failure

    @staticmethod
    def _valid(node: CollectNode, digits: str) -> bool:
        if not digits.isdigit() or not node.min_length <= len(digits) <= node.max_length:
            return False
        if node.validate.regex is not None and not re.fullmatch(node.validate.regex, digits):
            return False
        return not node.validate.luhn or luhn_ok(digits)

    def _node_SpeechNode(self, node: SpeechNode) -> Steps:
        language = self.call.language
        phrases = {i.name: i.phrases.get(language, ()) for i in node.intents}
        grammar = tuple(p for ps in phrases.values() for p in ps)
        for attempt in range(node.retries + 1):
            request = Listen(grammar, language, node.timeout, self.play(node.prompt), node.grammar)
            result = _expect((yield request), SpeechResult, request)
            self.call.variables["speech.text"] = result.text[:MAX_TEXT]
            intent = None
            if result.confidence >= node.confidence:
                intent = match_intent(result.text[:MAX_TEXT], phrases)
            if intent is not None:
                self.call.variables["intent"] = intent
                return next(i.target for i in node.intents if i.name == intent)
            if attempt < node.retries:
                yield from self._maybe_play(node.no_match_prompt)
        return node.fallback

    def _node_IdentifyNode(self, node: IdentifyNode) -> Steps:
        if node.method == "caller_id":
            ani = str(self.call.variables.get("ani") or "")
            if not ani:
                return node.not_found
            result = yield from self._lookup("crm_ani", {"ani": ani})
            if result.error is not None:
                self.call.errors.append(f"{node.id}: {result.error}")
                return node.on_error
            if not result.data:
                return node.not_found
            self.call.store("customer", result.data)
            return node.found
        return (yield from self._account_pin(node))

    def _account_pin(self, node: IdentifyNode) -> Steps:
        assert node.account_prompt is not None
        assert node.pin_prompt is not None
        account = ""
        for attempt in range(node.attempts):
            account = yield from self._ask(
                node, node.account_prompt, node.account_min, node.account_max
            )
            if not account:
                return node.on_failure
            pin = yield from self._ask(node, node.pin_prompt, node.pin_length, node.pin_length)
            if not pin:
                return node.on_failure
            result = yield from self._lookup("account_pin", {"account": account, "pin": pin})
            if result.error is not None:
                self.call.errors.append(f"{node.id}: {result.error}")
                return node.on_error
            if result.data and result.data.get("locked"):
                self.call.variables["customer.locked"] = True
                return node.locked
            if result.data:
                self.call.store("customer", result.data)
                self.call.variables.setdefault("customer.account", account)
                return node.success
            self.call.variables["identify.failures"] = attempt + 1
            if attempt + 1 < node.attempts:
                yield from self._maybe_play(node.invalid_prompt)
        # The CRM keeps the lock across calls; its answer changes nothing here.
        yield from self._lookup("account_lock", {"account": account})
        self.call.variables["customer.locked"] = True
        return node.locked

    def _ask(
        self, node: IdentifyNode, prompt: Prompt, low: int, high: int
    ) -> Generator[Request, Result | None, str]:
        for _ in range(node.retries + 1):
            result = yield from self._digits(
                prompt, max_digits=high, min_digits=low, timeout=node.timeout, terminator="#"
            )
            if result.digits.isdigit() and low <= len(result.digits) <= high:
                return result.digits
        return ""

    def _node_ConditionNode(self, node: ConditionNode) -> Steps:
        for branch in node.branches:
            try:
                matched = ex.truthy(self.call.evaluate(branch.condition))
            except ScriptError as exc:
                self.call.errors.append(f"{node.id}: {exc}")
                return node.on_error or node.otherwise
            if matched:
                return branch.target
        return node.otherwise
        yield  # a generator like every handler, though it never waits

    def _node_SetNode(self, node: SetNode) -> Steps:
        self.call.variables.update(node.values)
        for name, expr in node.computed.items():
            try:
                self.call.variables[name] = self.call.evaluate(expr)
            except ScriptError as exc:
                self.call.errors.append(f"{node.id}: {name}: {exc}")
                self.call.variables[name] = None
        if node.language is not None:
            self.call.set_language(node.language)
        for skill, level in node.skills.items():
            self.call.skills[skill] = level
        if node.priority is not None:
            self.call.priority = node.priority
            self.call.variables["priority"] = node.priority
        return node.next
        yield

    def _node_HttpNode(self, node: HttpNode) -> Steps:
        def fill(match: re.Match[str]) -> str:
            value = self.call.variables.get(match.group(1))
            return quote("" if value is None else str(value), safe="")

        url = re.sub(r"\$\{([^}]*)\}", fill, node.url)
        result = yield from self._lookup("http", {"url": url, "method": node.method}, node.timeout)
        if result.error is not None:
            self.call.errors.append(f"{node.id}: {result.error}")
            return node.on_error
        if result.data is None:
            return node.not_found or node.on_error
        self.call.store(node.store_as, result.data)
        return node.next

    def _node_QueueNode(self, node: QueueNode) -> Steps:
        yield from self._maybe_play(node.prompt)
        return self._route(node.queue, node.skills, node.priority)

    def _node_VoicemailNode(self, node: VoicemailNode) -> Steps:
        yield from self._maybe_play(node.prompt)
        return Voicemail(node.mailbox, self.call.language, self.call.context())

    def _node_TransferNode(self, node: TransferNode) -> Steps:
        yield from self._maybe_play(node.prompt)
        return Transfer(node.number, node.script, self.call.language, self.call.context())

    def _node_HangupNode(self, node: HangupNode) -> Steps:
        yield from self._maybe_play(node.prompt)
        return Hangup(node.reason, self.call.context())

    def _node_GotoNode(self, node: GotoNode) -> Steps:
        return node.target
        yield

    def _node_ReturnNode(self, node: ReturnNode) -> Steps:
        return _RETURN
        yield

    def _node_CallbackNode(self, node: CallbackNode) -> Steps:
        accepted = False
        for attempt in range(node.retries + 1):
            result = yield from self._digits(
                node.prompt, max_digits=1, min_digits=1, timeout=node.timeout, terminator=""
            )
            if result.digits:
                accepted = result.digits == node.accept_key
                break
            if attempt == node.retries:
                break
        if not accepted:
            self.call.variables["callback.accepted"] = False
            return node.declined
        number: ex.Value = self.call.variables.get("ani")
        if node.number is not None:
            try:
                number = self.call.evaluate(node.number)
            except ScriptError as exc:
                self.call.errors.append(f"{node.id}: {exc}")
                number = None
        if not number:
            self.call.errors.append(f"{node.id}: no number to call back")
            return node.on_error or node.declined
        self.call.variables["callback.accepted"] = True
        self.call.variables["callback.number"] = str(number)
        request = OfferCallback(
            node.queue,
            str(number),
            self.call.language,
            dict(self.call.skills),
            self.call.priority,
            self.call.context(),
        )
        answer = _expect((yield request), CallbackResult, request)
        if not answer.scheduled:
            self.call.errors.append(f"{node.id}: callback not scheduled: {answer.error}")
            return node.on_error or node.declined
        return node.accepted

    def _node_SurveyNode(self, node: SurveyNode) -> Steps:
        score: int | None = None
        for attempt in range(node.retries + 1):
            result = yield from self._digits(
                node.question, max_digits=1, min_digits=1, timeout=node.timeout, terminator=""
            )
            if result.digits in ("1", "2", "3", "4", "5"):
                score = int(result.digits)
                break
            if attempt < node.retries:
                yield from self._maybe_play(node.invalid_prompt)
        self.call.variables["survey.score"] = score
        if score is not None and node.comment_prompt is not None:
            request = Record(
                node.comment_seconds, self.call.language, self.play(node.comment_prompt)
            )
            recorded = _expect((yield request), RecordResult, request)
            self.call.variables["survey.comment"] = recorded.file
        yield from self._maybe_play(node.thanks)
        if node.next is not None:
            return node.next
        return Hangup("survey_done", self.call.context())


def interpret(script: Script, call: CallInfo) -> Run:
    """The raw generator: yields requests, returns the outcome."""
    return Interpreter(script, call).run()


class Session:
    """Convenience wrapper so a driver never handles StopIteration."""

    def __init__(self, script: Script, call: CallInfo) -> None:
        self._gen = interpret(script, call)
        self.outcome: Outcome | None = None
        self.requests = 0

    @property
    def done(self) -> bool:
        return self.outcome is not None

    def start(self) -> Request | Outcome:
        return self._advance(None, first=True)

    def send(self, result: Result | None) -> Request | Outcome:
        if self.outcome is not None:
            raise StateError("the IVR session is over")
        return self._advance(result, first=False)

    def _advance(self, result: Result | None, first: bool) -> Request | Outcome:
        try:
            request = next(self._gen) if first else self._gen.send(result)
        except StopIteration as stop:
            self.outcome = stop.value
            assert self.outcome is not None
            return self.outcome
        self.requests += 1
        return request
