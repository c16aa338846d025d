"""Answer the IVR's ``Lookup`` requests from a :class:`Crm`.

The answers have the shapes the JSON fixture gives today
(``callcenter.ivr.simulate.fixture_lookup``), so scripts see no difference:

* ``crm_ani`` {ani}: the contact's public fields, or ``data=None`` (unknown);
* ``account_pin`` {account, pin}: the contact's public fields when the PIN is
  right, ``{"locked": True}`` when the account is locked (now, or by this very
  attempt reaching the limit), ``data=None`` for a wrong PIN or an unknown
  account;
* ``account_lock`` {account}: ``{"locked": True}``, or ``data=None`` when the
  account is unknown;
* ``http`` is not the CRM's: it goes to *other* (today the fixture's answers).

A CRM that fails or does not answer within the request's timeout gives
``LookupResult(None, error)``: the script takes its ``on_error`` exit.

Public fields are those the fixture has: ``id``, ``name``, ``vip``,
``account``, plus ``company`` and ``language`` when set and the contact's extra
``data`` (``segment``...). Phones, e-mail and notes are not given to the IVR:
its variables end up in the interaction's stored context.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import structlog

from callcenter.crm.model import Contact, Crm, PinStatus
from callcenter.errors import CallCenterError
from callcenter.ivr.messages import Lookup, LookupResult

log = structlog.get_logger("callcenter.crm")

OtherLookup = Callable[[Lookup], Awaitable[LookupResult]]
LOCKED: dict[str, object] = {"locked": True}


def ivr_data(contact: Contact) -> dict[str, object]:
    """What the IVR stores under ``customer.*`` for a found contact."""
    data: dict[str, Any] = {k: v for k, v in contact.data.items() if isinstance(k, str)}
    data.update({"id": contact.id, "name": contact.name, "vip": contact.vip})
    for key, value in (
        ("account", contact.account),
        ("company", contact.company),
        ("language", contact.language),
    ):
        if value:
            data[key] = value
        else:
            data.pop(key, None)
    return data


async def crm_lookup(
    crm: Crm, request: Lookup, *, now: datetime, other: OtherLookup | None = None
) -> LookupResult:
    """One IVR lookup; never raises a CRM failure (it becomes ``error``)."""
    if request.kind == "http":
        if other is None:
            return LookupResult(None, "no web-service lookups configured")
        return await other(request)
    try:
        async with asyncio.timeout(request.timeout):
            return await _answer(crm, request, now)
    except TimeoutError:
        log.warning("crm.lookup_timeout", kind=request.kind, timeout=request.timeout)
        return LookupResult(None, f"CRM did not answer within {request.timeout:g} s")
    except CallCenterError as exc:
        log.warning("crm.lookup_failed", kind=request.kind, error=str(exc))
        return LookupResult(None, f"CRM unavailable: {exc}")


async def _answer(crm: Crm, request: Lookup, now: datetime) -> LookupResult:
    params = request.params
    account = params.get("account", "")
    if request.kind == "crm_ani":
        contact = await crm.by_number(params.get("ani", ""))
        return LookupResult(None if contact is None else ivr_data(contact))
    if request.kind == "account_lock":
        return LookupResult(dict(LOCKED) if await crm.lock(account, now) else None)
    result = await crm.check_pin(account, params.get("pin", ""), now)
    if result.status is PinStatus.LOCKED:
        log.info("crm.account_locked", account=account, failures=result.failures)
        return LookupResult(dict(LOCKED))
    if result.status is PinStatus.OK and result.contact is not None:
        return LookupResult(ivr_data(result.contact))
    return LookupResult(None)
