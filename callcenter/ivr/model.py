"""The validated, immutable form of an IVR script.

The loader builds these from YAML after every check has passed, so the
interpreter can trust them: every target exists, every prompt has a text or a
file in every language, every expression parses.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal as Lit

from callcenter.ivr.calendar import Calendar
from callcenter.ivr.expressions import Expr

Scalar = str | int | float | bool | None


@dataclass(frozen=True)
class Location:
    file: str
    line: int  # 1-based
    column: int  # 1-based

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


@dataclass(frozen=True)
class Problem:
    location: Location
    message: str
    severity: Lit["error", "warning"] = "error"

    def __str__(self) -> str:
        tag = "warning: " if self.severity == "warning" else ""
        return f"{self.location}: {tag}{self.message}"


@dataclass(frozen=True)
class Prompt:
    """What to play: a prompt id with a text per language (rendered to sound
    files by the prompt build), or a recorded sound file (``{lang}`` is
    replaced by the caller's language)."""

    id: str
    texts: Mapping[str, str] = field(default_factory=dict)
    file: str | None = None


@dataclass(frozen=True)
class Node:
    id: str
    location: Location
    description: str = field(default="", kw_only=True)


@dataclass(frozen=True)
class PlayNode(Node):
    next: str
    prompt: Prompt | None = None
    say_kind: str | None = None  # number | digits | date | amount | characters
    say_value: Expr | None = None


@dataclass(frozen=True)
class MenuNode(Node):
    prompt: Prompt
    options: Mapping[str, str]  # DTMF key -> target
    on_failure: str
    timeout: float = 5.0
    retries: int = 2
    invalid_prompt: Prompt | None = None
    timeout_prompt: Prompt | None = None


@dataclass(frozen=True)
class Validation:
    regex: str | None = None
    luhn: bool = False


@dataclass(frozen=True)
class CollectNode(Node):
    prompt: Prompt
    variable: str
    next: str
    on_failure: str
    min_length: int = 1
    max_length: int = 20
    terminator: str = "#"
    timeout: float = 6.0
    retries: int = 2
    validate: Validation = field(default_factory=Validation)
    invalid_prompt: Prompt | None = None
    timeout_prompt: Prompt | None = None
    sensitive: bool = False  # masked in the context shown to agents and logs


@dataclass(frozen=True)
class Intent:
    name: str
    phrases: Mapping[str, tuple[str, ...]]  # language -> phrases
    target: str


@dataclass(frozen=True)
class SpeechNode(Node):
    prompt: Prompt
    intents: tuple[Intent, ...]
    fallback: str
    confidence: float = 0.5
    timeout: float = 5.0
    retries: int = 1
    no_match_prompt: Prompt | None = None
    grammar: bool | None = None
    """True: recognise only the node's phrases; False: the model's whole
    vocabulary; None: the ``speech.grammar`` setting."""


@dataclass(frozen=True)
class IdentifyNode(Node):
    method: str  # caller_id | account_pin
    on_error: str
    found: str | None = None  # caller_id
    not_found: str | None = None  # caller_id
    success: str | None = None  # account_pin
    locked: str | None = None  # account_pin
    on_failure: str | None = None  # account_pin: caller gave no usable input
    account_prompt: Prompt | None = None
    pin_prompt: Prompt | None = None
    invalid_prompt: Prompt | None = None
    account_min: int = 4
    account_max: int = 16
    pin_length: int = 4
    attempts: int = 3
    timeout: float = 6.0
    retries: int = 1


@dataclass(frozen=True)
class Branch:
    condition: Expr
    source: str
    target: str


@dataclass(frozen=True)
class ConditionNode(Node):
    branches: tuple[Branch, ...]
    otherwise: str
    on_error: str | None = None


@dataclass(frozen=True)
class SetNode(Node):
    next: str
    values: Mapping[str, Scalar] = field(default_factory=dict)
    computed: Mapping[str, Expr] = field(default_factory=dict)
    language: str | None = None
    skills: Mapping[str, int] = field(default_factory=dict)
    priority: int | None = None


@dataclass(frozen=True)
class HttpNode(Node):
    url: str  # ${var} placeholders, URL-encoded on substitution
    next: str
    on_error: str
    store_as: str = "http"
    method: str = "GET"
    timeout: float = 2.0
    not_found: str | None = None


@dataclass(frozen=True)
class QueueNode(Node):
    queue: str
    skills: Mapping[str, int] = field(default_factory=dict)
    priority: int = 0
    prompt: Prompt | None = None


@dataclass(frozen=True)
class VoicemailNode(Node):
    mailbox: str
    prompt: Prompt | None = None


@dataclass(frozen=True)
class CallbackNode(Node):
    prompt: Prompt
    queue: str
    accepted: str
    declined: str
    number: Expr | None = None  # defaults to the caller id
    accept_key: str = "1"
    timeout: float = 5.0
    retries: int = 1
    on_error: str | None = None


@dataclass(frozen=True)
class TransferNode(Node):
    number: str | None = None
    script: str | None = None
    prompt: Prompt | None = None


@dataclass(frozen=True)
class SurveyNode(Node):
    question: Prompt
    next: str | None = None  # None: hang up after thanking
    comment_prompt: Prompt | None = None
    thanks: Prompt | None = None
    invalid_prompt: Prompt | None = None
    comment_seconds: int = 30
    timeout: float = 6.0
    retries: int = 1


@dataclass(frozen=True)
class GotoNode(Node):
    target: str


@dataclass(frozen=True)
class SubflowNode(Node):
    flow: str
    next: str


@dataclass(frozen=True)
class ReturnNode(Node):
    pass


@dataclass(frozen=True)
class HangupNode(Node):
    reason: str = "normal"
    prompt: Prompt | None = None


AnyNode = (
    PlayNode
    | MenuNode
    | CollectNode
    | SpeechNode
    | IdentifyNode
    | ConditionNode
    | SetNode
    | HttpNode
    | QueueNode
    | VoicemailNode
    | CallbackNode
    | TransferNode
    | SurveyNode
    | GotoNode
    | SubflowNode
    | ReturnNode
    | HangupNode
)

NODE_TYPES: Mapping[str, type[Node]] = MappingProxyType(
    {
        "play": PlayNode,
        "menu": MenuNode,
        "collect": CollectNode,
        "speech": SpeechNode,
        "identify": IdentifyNode,
        "condition": ConditionNode,
        "set": SetNode,
        "http": HttpNode,
        "queue": QueueNode,
        "voicemail": VoicemailNode,
        "callback": CallbackNode,
        "transfer": TransferNode,
        "survey": SurveyNode,
        "goto": GotoNode,
        "subflow": SubflowNode,
        "return": ReturnNode,
        "hangup": HangupNode,
    }
)
TYPE_NAMES: Mapping[type[Node], str] = MappingProxyType({v: k for k, v in NODE_TYPES.items()})

# Nodes that wait for the caller; a loop through none of them never ends.
INPUT_TYPES = frozenset({MenuNode, CollectNode, SpeechNode, CallbackNode, SurveyNode})
TERMINAL_TYPES = frozenset({QueueNode, VoicemailNode, TransferNode, HangupNode})


EDGE_WORDS = ("failure", "fallback", "found", "not_found", "success", "locked", "error",
              "else", "accepted", "declined", "after")  # fmt: skip


def waits_for_input(node: Node) -> bool:
    if isinstance(node, IdentifyNode):
        return node.method == "account_pin"
    return type(node) in INPUT_TYPES


def targets(node: Node) -> list[tuple[str, str]]:
    """(label, target) of every edge leaving *node*, for checks and graphs.

    Labels are DTMF keys, «intent» names, condition texts, or one of the words
    of :data:`EDGE_WORDS` (translated by the graph)."""
    edges: list[tuple[str, str]] = []
    if isinstance(node, PlayNode | SetNode | CollectNode | HttpNode):
        edges.append(("", node.next))
    if isinstance(node, MenuNode):
        edges.extend((key, target) for key, target in node.options.items())
        edges.append(("failure", node.on_failure))
    if isinstance(node, CollectNode):
        edges.append(("failure", node.on_failure))
    if isinstance(node, SpeechNode):
        edges.extend((f"«{i.name}»", i.target) for i in node.intents)
        edges.append(("fallback", node.fallback))
    if isinstance(node, IdentifyNode):
        for label, target in (
            ("found", node.found),
            ("not_found", node.not_found),
            ("success", node.success),
            ("locked", node.locked),
            ("failure", node.on_failure),
            ("error", node.on_error),
        ):
            if target is not None:
                edges.append((label, target))
    if isinstance(node, ConditionNode):
        edges.extend((b.source, b.target) for b in node.branches)
        edges.append(("else", node.otherwise))
        if node.on_error is not None:
            edges.append(("error", node.on_error))
    if isinstance(node, HttpNode):
        edges.append(("error", node.on_error))
        if node.not_found is not None:
            edges.append(("not_found", node.not_found))
    if isinstance(node, CallbackNode):
        edges.extend((("accepted", node.accepted), ("declined", node.declined)))
        if node.on_error is not None:
            edges.append(("error", node.on_error))
    if isinstance(node, SurveyNode) and node.next is not None:
        edges.append(("", node.next))
    if isinstance(node, GotoNode):
        edges.append(("", node.target))
    if isinstance(node, SubflowNode):
        edges.append(("after", node.next))
    return edges


@dataclass(frozen=True)
class Flow:
    name: str  # "" for the main flow
    start: str
    nodes: Mapping[str, AnyNode]


@dataclass(frozen=True)
class Script:
    name: str
    path: str
    languages: tuple[str, ...]
    default_language: str
    main: Flow
    subflows: Mapping[str, Flow]
    prompts: Mapping[str, Prompt]
    calendars: Mapping[str, Calendar]
    max_steps: int = 100
    language_skill: str = "lang_{language}"
    overflow_queue: str | None = None
    description: str = ""
    warnings: tuple[Problem, ...] = ()

    def flow(self, name: str) -> Flow:
        return self.main if name == "" else self.subflows[name]
