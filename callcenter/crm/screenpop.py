"""The CRM part of the agent's screen-pop: contact card and last interactions.

Shaped for ``callcenter.cti.bridge.ContactLookup``: caller number ->
``{"contact": {...} | None, "history": [...]}``, or None when the CRM knows
neither the contact nor any past interaction of that number. Failures are
raised (the bridge logs them and pops without CRM data).
"""

from __future__ import annotations

from typing import Any

from callcenter.crm.model import Crm


async def screen_pop(crm: Crm, number: str, *, limit: int = 10) -> dict[str, Any] | None:
    contact = await crm.by_number(number)
    if contact is not None:
        history = await crm.history(contact_id=contact.id, limit=limit)
    else:
        history = await crm.history(number=number, limit=limit)
    if contact is None and not history:
        return None
    return {
        "contact": None if contact is None else contact.card(),
        "history": [item.as_json() for item in history],
    }
