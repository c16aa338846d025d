"""The CRM's model: contacts, PIN checks, interaction summaries, the ``Crm`` protocol.

Pure: no I/O, no clock (``now`` is always passed in). Phone numbers are kept
as digits only, in national form for the home country (``+33 6 12 34 56 78``,
``0033612345678`` and ``06.12.34.56.78`` are all ``0612345678``; a foreign
``+44 20 7946 0958`` is ``00442079460958``), which is what the ``contacts``
table's ``phones`` column holds and what an ANI lookup compares.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

DEFAULT_COUNTRY_CODE = "33"
_SEPARATORS = re.compile(r"[\s.\-/()]")


def normalize_number(raw: str, country_code: str = DEFAULT_COUNTRY_CODE) -> str | None:
    """A phone number as digits only, national form; None when it is not one.

    Accepts spaces, dots, dashes, slashes and parentheses as separators, a
    leading ``+`` or ``00`` international prefix, and the ``(0)`` that some
    people write after the country code. 2 to 20 digits, as we dial them.
    """
    value = raw.strip().replace("(0)", "")
    value = _SEPARATORS.sub("", value)
    if value.startswith("+"):
        if len(value) < 4:
            return None  # "+", "+3": no number after the international prefix
        value = "00" + value[1:]
    if not value.isascii() or not value.isdigit():
        return None
    home = "00" + country_code
    if country_code and value.startswith(home) and len(value) > len(home):
        value = "0" + value[len(home) :]
    if not 2 <= len(value) <= 20:
        return None
    return value


def number_variants(number: str, country_code: str = DEFAULT_COUNTRY_CODE) -> list[str]:
    """The spellings of a normalised number a caller id may have been stored
    under (``0612345678``, ``+33612345678``, ``0033612345678``, ``33612345678``)."""
    variants = [number]
    if country_code and number.startswith("0") and not number.startswith("00"):
        rest = number[1:]
        variants += [f"+{country_code}{rest}", f"00{country_code}{rest}", f"{country_code}{rest}"]
    elif number.startswith("00"):
        variants.append("+" + number[2:])
    return variants


@dataclass(frozen=True, slots=True)
class Contact:
    """A customer as the IVR and the agent's screen see them (no secrets:
    the PIN hash and the lockout state stay in the store)."""

    id: str
    name: str
    company: str | None = None
    phones: tuple[str, ...] = ()
    email: str | None = None
    language: str | None = None
    vip: bool = False
    account: str | None = None
    notes: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)
    """Free-form extra fields (segment, contract...), JSON values."""

    def card(self) -> dict[str, Any]:
        """The contact as JSON for the screen-pop."""
        return {
            "id": self.id,
            "name": self.name,
            "company": self.company,
            "phones": list(self.phones),
            "email": self.email,
            "language": self.language,
            "vip": self.vip,
            "account": self.account,
            "notes": self.notes,
            "data": dict(self.data),
        }


class PinStatus(StrEnum):
    OK = "ok"
    WRONG = "wrong"
    LOCKED = "locked"
    UNKNOWN = "unknown"  # no such account, or no PIN set for it


@dataclass(frozen=True, slots=True)
class PinResult:
    status: PinStatus
    contact: Contact | None = None
    failures: int = 0
    locked_until: datetime | None = None

    @property
    def ok(self) -> bool:
        return self.status is PinStatus.OK


@dataclass(frozen=True, slots=True)
class PinState:
    """What the store keeps about an account's PIN attempts."""

    failures: int = 0
    locked_until: datetime | None = None


@dataclass(frozen=True, slots=True)
class PinPolicy:
    max_failures: int = 3
    lockout: timedelta = timedelta(minutes=30)


def pin_attempt(
    state: PinState, verified: bool | None, now: datetime, policy: PinPolicy
) -> tuple[PinStatus, PinState]:
    """Decide one PIN attempt; return the answer and the state to store.

    ``verified`` is None when the PIN was not even checked (the caller checks
    only when :func:`pin_locked` is false). A lock that has expired is
    forgotten (failures start again from 0). The attempt that reaches
    ``max_failures`` locks the account until ``now + lockout`` and answers
    LOCKED; a right PIN clears the failures.
    """
    if pin_locked(state, now):
        return PinStatus.LOCKED, state
    if verified:
        return PinStatus.OK, PinState()
    failures = (0 if state.locked_until is not None else state.failures) + 1
    if failures >= policy.max_failures:
        return PinStatus.LOCKED, PinState(failures, now + policy.lockout)
    return PinStatus.WRONG, PinState(failures, None)


def pin_locked(state: PinState, now: datetime) -> bool:
    return state.locked_until is not None and state.locked_until > now


@dataclass(frozen=True, slots=True)
class InteractionSummary:
    """One past interaction, as the agent's history panel lists it."""

    interaction_id: str
    channel: str
    direction: str
    queue: str | None
    caller_number: str | None
    agent_id: str | None
    outcome: str | None
    started_at: datetime
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    disposition: str | None = None
    notes: str | None = None

    def as_json(self) -> dict[str, Any]:
        def iso(value: datetime | None) -> str | None:
            return None if value is None else value.isoformat()

        return {
            "interaction_id": self.interaction_id,
            "channel": self.channel,
            "direction": self.direction,
            "queue": self.queue,
            "caller_number": self.caller_number,
            "agent_id": self.agent_id,
            "outcome": self.outcome,
            "started_at": iso(self.started_at),
            "answered_at": iso(self.answered_at),
            "ended_at": iso(self.ended_at),
            "disposition": self.disposition,
            "notes": self.notes,
        }


class Crm(Protocol):
    """What the IVR and the screen-pop ask of a CRM.

    Lookups answer None for "not found"; a CRM that cannot answer raises a
    :class:`callcenter.errors.CallCenterError` (``StoreError`` when it is
    unreachable or failed, ``ProtocolError`` when its answer makes no sense).
    """

    async def by_number(self, number: str) -> Contact | None:
        """The one contact with this phone number (None when unknown or shared
        by several contacts: the caller is then asked for an account)."""
        ...

    async def by_account(self, account: str) -> Contact | None: ...

    async def check_pin(self, account: str, pin: str, now: datetime) -> PinResult:
        """Check a PIN, counting failures: the limit locks the account."""
        ...

    async def lock(self, account: str, now: datetime) -> bool:
        """Lock an account now (the IVR gave up on it); False when unknown."""
        ...

    async def history(
        self, *, contact_id: str | None = None, number: str | None = None, limit: int = 10
    ) -> list[InteractionSummary]:
        """The most recent interactions of a contact (by id and any of its
        numbers) or of a phone number, newest first."""
        ...
