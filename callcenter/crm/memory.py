"""An in-process CRM: same rules as the PostgreSQL one, contacts in a dict.

For tests, the offline IVR simulator and a daemon without a database. PINs
are hashed like in the store (pass a cheap :class:`PinHasher` in tests).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from callcenter.crm.model import (
    DEFAULT_COUNTRY_CODE,
    Contact,
    InteractionSummary,
    PinPolicy,
    PinResult,
    PinState,
    PinStatus,
    normalize_number,
    pin_attempt,
    pin_locked,
)
from callcenter.crm.pins import PinHasher
from callcenter.crm.store import LOCKED_FOR_GOOD, NewContact


class MemoryCrm:
    def __init__(
        self,
        contacts: Iterable[NewContact] = (),
        *,
        hasher: PinHasher | None = None,
        policy: PinPolicy | None = None,
        country_code: str = DEFAULT_COUNTRY_CODE,
    ) -> None:
        self.hasher = hasher or PinHasher()
        self.policy = policy or PinPolicy()
        self.country_code = country_code
        self.contacts: dict[str, Contact] = {}
        self.pins: dict[str, str] = {}
        self.states: dict[str, PinState] = {}
        self.interactions: list[InteractionSummary] = []
        self.customer_of: dict[str, str] = {}  # interaction id -> contact id
        for item in contacts:
            self.put(item)

    def put(self, item: NewContact) -> None:
        contact = item.contact
        self.contacts[contact.id] = contact
        if item.pin is not None:
            self.pins[contact.id] = self.hasher.hash(item.pin)
            self.states[contact.id] = PinState()
        if item.locked:
            self.states[contact.id] = PinState(self.policy.max_failures, LOCKED_FOR_GOOD)

    def _one(self, matches: list[Contact]) -> Contact | None:
        return matches[0] if len(matches) == 1 else None

    async def by_number(self, number: str) -> Contact | None:
        normalised = normalize_number(number, self.country_code)
        if normalised is None:
            return None
        return self._one([c for c in self.contacts.values() if normalised in c.phones])

    async def by_account(self, account: str) -> Contact | None:
        if not account:
            return None
        return self._one([c for c in self.contacts.values() if c.account == account])

    async def check_pin(self, account: str, pin: str, now: datetime) -> PinResult:
        contact = await self.by_account(account)
        if contact is None or contact.id not in self.pins:
            return PinResult(PinStatus.UNKNOWN)
        state = self.states.get(contact.id, PinState())
        verified = None
        if not pin_locked(state, now):
            verified = self.hasher.verify(self.pins[contact.id], pin)
        status, new = pin_attempt(state, verified, now, self.policy)
        self.states[contact.id] = new
        return PinResult(
            status, contact if status is PinStatus.OK else None, new.failures, new.locked_until
        )

    async def lock(self, account: str, now: datetime) -> bool:
        contact = await self.by_account(account)
        if contact is None:
            return False
        state = self.states.get(contact.id, PinState())
        until = now + self.policy.lockout
        if state.locked_until is not None and state.locked_until > until:
            until = state.locked_until
        self.states[contact.id] = PinState(max(state.failures, self.policy.max_failures), until)
        return True

    async def history(
        self, *, contact_id: str | None = None, number: str | None = None, limit: int = 10
    ) -> list[InteractionSummary]:
        numbers: set[str] = set()
        if number is not None and (normalised := normalize_number(number, self.country_code)):
            numbers.add(normalised)
        if contact_id is not None and contact_id in self.contacts:
            numbers.update(self.contacts[contact_id].phones)
        found = [
            i
            for i in self.interactions
            if (contact_id is not None and self.customer_of.get(i.interaction_id) == contact_id)
            or normalize_number(i.caller_number or "", self.country_code) in numbers
        ]
        found.sort(key=lambda i: i.started_at, reverse=True)
        return found[: max(1, limit)]
