"""``agi://…/inbound?dnis=…``: a caller waits in queue inside our FastAGI session.

The dialled number picks the queue (site routes); the caller hears music on
hold in their language and, every ``announce_every`` seconds, their position
and expected wait (Asterisk core sounds and SAY NUMBER). Pressing 1 offers a
callback when the queue allows it.

The session never connects the call itself: the call path rings an agent
(agent first) and, at the same moment, moves the caller out of FastAGI into a
holding bridge (dialplans/callpath.conf, callcenter-wait), where the agent's
Bridge() takes them. The session then sees a HANGUP although the caller is
alive; whether the caller was connected or abandoned is decided by the call
path from AMI, not here. A caller no agent took comes back in a new session
(callcenter-requeue), keeping their place.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

import structlog

from callcenter.adapters.fastagi import AgiSession
from callcenter.clock import Clock
from callcenter.protocol.agi import AgiRequest

log = structlog.get_logger("callcenter.flows.inbound")

CALLBACK_DIGIT = "1"
# Confirm the number with 1 or #; 2 to enter another one.
CONFIRM_KEYS = "12#"
# Longest WAIT FOR DIGIT while the caller hears music: nothing needs a
# quicker look, since a key ends it at once and an agent's ring takes the
# caller out of FastAGI (the session then ends). Every waiting caller costs
# Asterisk and us one AGI round trip per wait: at 300 waiting callers, 1 s
# waits were 300 round trips a second.
LONGEST_QUIET_WAIT = 5.0


class Ticket(Protocol):
    """A caller's place in the ACD, as the waiting caller sees it."""

    interaction_id: str
    queue: str

    @property
    def enqueued_wall(self) -> float: ...

    @property
    def waiting(self) -> bool:
        """True until an agent is connected or the interaction ends."""
        ...

    @property
    def finished(self) -> bool:
        """True once the interaction is over (completed, abandoned, ...)."""
        ...

    def position(self) -> int: ...

    def expected_wait(self) -> float | None: ...


class Lobby(Protocol):
    """What the inbound flow needs from the call path."""

    def arrive(
        self,
        session: AgiSession,
        dnis: str,
        resume: Resume | None = None,
        qualification: Qualification | None = None,
    ) -> tuple[Ticket, WaitSettings]: ...

    def callback_dialogue_started(self, ticket: Ticket) -> bool:
        """Offer the caller to nobody while they choose; False: an agent
        already rings for them (no dialogue)."""
        ...

    def callback_dialogue_ended(self, ticket: Ticket) -> None: ...

    async def callback_requested(self, ticket: Ticket, number: str) -> None: ...


@dataclass(frozen=True, slots=True)
class Resume:
    """A caller coming back after the daemon went away: their place."""

    interaction_id: str
    enqueued_wall: float


@dataclass(frozen=True, slots=True)
class Qualification:
    """What the IVR decided: where the call goes, and what it learnt."""

    queue: str
    skills: Mapping[str, int]
    priority: int
    language: str
    customer_id: str | None
    context: Mapping[str, object]


@dataclass(frozen=True, slots=True)
class WaitSettings:
    language: str
    music_class: str
    announce_every: float
    first_announce_after: float
    callback: bool


async def wait_in_queue(
    session: AgiSession,
    lobby: Lobby,
    clock: Clock,
    qualification: Qualification | None = None,
    resume: Resume | None = None,
) -> None:
    dnis = session.request.query.get("dnis") or session.request.extension
    while True:
        ticket, settings = lobby.arrive(session, dnis, resume, qualification)
        if await _wait(session, lobby, clock, ticket, settings):
            return
        # The interaction is over and the caller is still with us: no agent
        # took them (the agent's leg ended before Bridge() could). Never
        # left in silence: they are queued again.
        log.warning("inbound.queued_again", interaction=ticket.interaction_id)
        resume = None


async def _wait(
    session: AgiSession, lobby: Lobby, clock: Clock, ticket: Ticket, settings: WaitSettings
) -> bool:
    """Hold the caller for ``ticket``; False if its interaction ended while
    the caller is still in this session (never taken), True otherwise."""
    # The caller's place, on the channel itself, first: if we go away, the
    # dialplan brings them back with it (dialplans/inbound.conf, and
    # callcenter-requeue with the queue and the music of the holding bridge).
    await session.set_variables(
        {
            "CC_INTERACTION": ticket.interaction_id,
            "CC_ENQUEUED": f"{ticket.enqueued_wall:.3f}",
            "CC_QUEUE": ticket.queue,
            "CC_MOH": settings.music_class,
        }
    )
    await session.answer()
    await session.set_variable("CHANNEL(language)", settings.language)
    await session.set_music(True, settings.music_class)
    next_announce = clock.now() + settings.first_announce_after
    while ticket.waiting:
        # MOH keeps playing while we wait for a key, until the next announcement.
        quiet = min(max(next_announce - clock.now(), 0.2), LONGEST_QUIET_WAIT)
        digit = await session.wait_for_digit(round(quiet * 1000))
        if not ticket.waiting:
            break
        if digit == CALLBACK_DIGIT and settings.callback:
            if await _offer_callback(session, lobby, ticket, settings):
                return True
            next_announce = clock.now() + settings.announce_every
        elif clock.now() >= next_announce:
            pressed = await _announce(session, ticket, settings)
            next_announce = clock.now() + settings.announce_every
            if pressed == CALLBACK_DIGIT and await _offer_callback(
                session, lobby, ticket, settings
            ):
                return True
    # Taken by an agent (or ended): stay until Asterisk moves the caller,
    # so that closing our socket does not send them back to the dialplan.
    # Each WAIT FOR DIGIT is also a probe: it fails once Bridge() has taken
    # the channel. One that succeeds after the interaction ended means the
    # caller was never taken.
    ended = False
    while not session.hung_up:
        if ended and ticket.finished:
            return False
        ended = ticket.finished
        await session.wait_for_digit(1000)
    return True


def resume_of(request: AgiRequest) -> Resume | None:
    """Where this caller was, when the dialplan brings them back to us.

    The dialplan passes the channel's CC_INTERACTION and CC_ENQUEUED in the
    request (empty on a first arrival): two GET VARIABLE round trips less
    before the caller can be offered to an agent."""
    query = request.query
    if query.get("from"):
        return None  # a transfer starts a new interaction (its origin is "from")
    interaction, enqueued = query.get("interaction"), query.get("enqueued")
    if not interaction or not enqueued:
        return None
    try:
        return Resume(interaction, float(enqueued))
    except ValueError:
        return None


async def _announce(session: AgiSession, ticket: Ticket, settings: WaitSettings) -> str:
    """Say position and expected wait; return the callback digit if pressed."""
    position = ticket.position()
    pressed = ""
    await session.set_music(False)
    try:
        if position <= 1:
            await session.stream_file("queue-youarenext")
        else:
            await session.stream_file("queue-thereare")
            await session.say_number(position - 1)
            await session.stream_file("queue-callswaiting")
        wait = ticket.expected_wait()
        if wait is not None and wait >= 60 and ticket.waiting:
            # "The estimated hold time is currently <n> minutes"
            await session.stream_file("queue-holdtime")
            await session.say_number(round(wait / 60))
            await session.stream_file("queue-minutes")
        if settings.callback and ticket.waiting:
            # "Press 1 to call back" from core sounds, in the caller's language.
            pressed = (
                await session.stream_file("vm-press", CALLBACK_DIGIT)
                or await session.say_digits(CALLBACK_DIGIT, CALLBACK_DIGIT)
                or await session.stream_file("vm-tocallback", CALLBACK_DIGIT)
            )
    finally:
        if not session.hung_up:
            await session.set_music(True, settings.music_class)
    return pressed


async def _offer_callback(
    session: AgiSession, lobby: Lobby, ticket: Ticket, settings: WaitSettings
) -> bool:
    """Confirm the number (1) or enter another; register; say goodbye.

    No agent's ring interrupts the dialogue (the caller is set aside, in
    their place); a caller who changes their mind is offered again at once."""
    if not lobby.callback_dialogue_started(ticket):
        return False
    number = session.request.callerid
    try:
        await session.set_music(False)
        if number.isdigit():
            # "I have <number>; press 1 (to confirm)": the key is taken at
            # any moment of the prompt, not only after it; # confirms too.
            answer = (
                await session.stream_file("vm-num-i-have", CONFIRM_KEYS)
                or await session.say_digits(number, CONFIRM_KEYS)
                or await session.stream_file("vm-press", CONFIRM_KEYS)
                or await session.say_digits("1", CONFIRM_KEYS)
                or await session.wait_for_digit(5000)
            )
            if answer not in ("1", "#"):
                number = ""
        if not number:
            number = await session.get_data("vm-enter-num-to-call", timeout_ms=8000, max_digits=15)
        if not number.isdigit() or not ticket.waiting:
            return False
        await lobby.callback_requested(ticket, number)
        await session.stream_file("vm-goodbye")
        await session.hangup()
        return True
    finally:
        try:
            if not session.hung_up and ticket.waiting:
                await session.set_music(True, settings.music_class)
        finally:
            # After the music: an agent free now takes the caller at once.
            lobby.callback_dialogue_ended(ticket)
