"""What the interpreter asks of its driver, and what the driver answers.

The interpreter is sans-I/O: it yields a *request* (play this, collect digits,
look this up), the driver performs it on the live channel (FastAGI), in the
offline simulator or in a test, and sends back the matching *result*. The last
thing the interpreter produces is an *outcome* (route, transfer, voicemail,
hang-up) carrying the IVR context shown on the agent's screen-pop.

Request -> expected result:

=================  ===============================================
Play, Say          None (or anything: the result is ignored)
CollectDigits      DigitsResult
Listen             SpeechResult
Lookup             LookupResult
Record             RecordResult
OfferCallback      CallbackResult
=================  ===============================================
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from callcenter.ivr.expressions import Value

LookupKind = Literal["crm_ani", "account_pin", "account_lock", "http"]


@dataclass(frozen=True)
class IvrContext:
    """Everything the IVR learnt about the call, for routing and screen-pop.

    Values the script marked sensitive (PIN, card numbers) are masked here.
    """

    script: str
    path: tuple[str, ...]
    language: str
    intent: str | None
    customer_id: str | None
    vip: bool
    variables: Mapping[str, Value]
    skills: Mapping[str, int]
    priority: int
    errors: tuple[str, ...] = ()


# --- requests -------------------------------------------------------------------


@dataclass(frozen=True)
class Play:
    """Play a prompt: ``file`` is the sound to stream (no extension, Asterisk
    style); ``text`` is what it says, for the prompt build and for logs."""

    prompt_id: str
    language: str
    file: str
    text: str | None = None


@dataclass(frozen=True)
class Say:
    kind: str  # number | digits | date | amount | characters
    value: str
    language: str


@dataclass(frozen=True)
class CollectDigits:
    """Play *prompt* (interruptible by the first key) then read up to
    *max_digits* keys; *terminator* ends the input early ("" for none)."""

    max_digits: int
    timeout: float
    terminator: str
    prompt: Play | None
    language: str
    min_digits: int = 1


@dataclass(frozen=True)
class Listen:
    """Play *prompt*, then recognise one utterance. *grammar* lists the phrases
    the script expects, so a recogniser can restrict its vocabulary;
    *use_grammar* is the node's choice (True: only those phrases, False: the
    whole vocabulary, None: the recogniser's setting)."""

    grammar: tuple[str, ...]
    language: str
    timeout: float
    prompt: Play | None = None
    use_grammar: bool | None = None


@dataclass(frozen=True)
class Lookup:
    """Ask the CRM or a web service. ``crm_ani``: {ani}; ``account_pin``:
    {account, pin}; ``account_lock``: {account} after too many wrong PINs;
    ``http``: {url, method}."""

    kind: LookupKind
    params: Mapping[str, str]
    timeout: float = 2.0


@dataclass(frozen=True)
class Record:
    max_seconds: int
    language: str
    prompt: Play | None = None
    beep: bool = True


@dataclass(frozen=True)
class OfferCallback:
    """The caller accepted a callback: register it with the ACD."""

    queue: str
    number: str
    language: str
    skills: Mapping[str, int]
    priority: int
    context: IvrContext


Request = Play | Say | CollectDigits | Listen | Lookup | Record | OfferCallback


# --- outcomes (the end of the IVR) ------------------------------------------------


@dataclass(frozen=True)
class Route:
    queue: str
    skills: Mapping[str, int]
    priority: int
    language: str
    context: IvrContext


@dataclass(frozen=True)
class Transfer:
    number: str | None
    script: str | None
    language: str
    context: IvrContext


@dataclass(frozen=True)
class Voicemail:
    mailbox: str
    language: str
    context: IvrContext


@dataclass(frozen=True)
class Hangup:
    reason: str
    context: IvrContext


Outcome = Route | Transfer | Voicemail | Hangup


# --- results --------------------------------------------------------------------


@dataclass(frozen=True)
class DigitsResult:
    digits: str
    timed_out: bool = False


@dataclass(frozen=True)
class SpeechResult:
    text: str
    confidence: float = 1.0


@dataclass(frozen=True)
class LookupResult:
    """``data`` None and no ``error``: nothing found (unknown number, wrong PIN)."""

    data: Mapping[str, object] | None = None
    error: str | None = None


@dataclass(frozen=True)
class RecordResult:
    file: str | None
    duration: float = 0.0


@dataclass(frozen=True)
class CallbackResult:
    scheduled: bool
    error: str | None = None


Result = DigitsResult | SpeechResult | LookupResult | RecordResult | CallbackResult


@dataclass(frozen=True)
class CallInfo:
    """What the driver knows when the call enters the IVR. ``now`` must be
    timezone-aware: opening hours are decided from it."""

    ani: str
    now: datetime
    dnis: str = ""
    language: str | None = None
    variables: Mapping[str, Value] = field(default_factory=dict)
