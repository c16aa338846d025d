"""An external CRM over HTTP: URL templates, timeout, TTL cache, fallback.

``by_number`` (and ``by_account`` when ``by_account_url`` is set) GET the
CRM's URL with the value URL-quoted into the template, map the JSON answer
to a :class:`Contact` through the configured field map, and cache the answer
(found or not found) for a short time. When the CRM times out, fails or
answers nonsense, the *fallback* CRM (the built-in one) answers instead and
the failure is counted and logged; without a fallback the failure is raised
(``StoreError`` for transport, timeout and HTTP status errors,
``ProtocolError`` for an answer that cannot be read). PIN checks, locks and
history always go to the fallback: the external CRM only identifies.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

import aiohttp
import structlog
from yarl import URL

from callcenter.clock import Clock, SystemClock
from callcenter.crm.model import (
    DEFAULT_COUNTRY_CODE,
    Contact,
    Crm,
    InteractionSummary,
    PinResult,
    normalize_number,
)
from callcenter.crm.settings import HttpCrmSettings, check_url_template
from callcenter.errors import CallCenterError, ConfigError, ProtocolError, StoreError

log = structlog.get_logger("callcenter.crm.http")

MAX_BODY = 1 << 20  # a contact is a few kilobytes; a megabyte is a broken CRM


def render_url(template: str, **values: str) -> str:
    """Fill a URL template; every value is percent-quoted (``/``, ``?``, ``#``,
    ``&``, ``%`` and spaces included), so a value can never change the path,
    add a query parameter or a fragment."""
    try:
        check_url_template(template, set(values))
    except ValueError as exc:
        raise ConfigError(f"crm.http: URL template {template!r}: {exc}") from None
    return template.format(**{k: quote(v, safe="") for k, v in values.items()})


_MISSING = object()


def _get(document: Any, path: str) -> Any:
    """The value at a dotted path (dict keys; list indexes as digits)."""
    value = document
    for part in path.split(".") if path else ():
        if isinstance(value, Mapping):
            value = value.get(part, _MISSING)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return _MISSING
        if value is _MISSING:
            return _MISSING
    return value


def _text(value: Any, field: str, limit: int = 2000) -> str | None:
    if value is _MISSING or value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ProtocolError(f"CRM answer: {field} is not text ({type(value).__name__})")
    return str(value)[:limit]


def _flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value != 0
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "y", "oui", "o", "vip")
    return False


def _phones(value: Any, country_code: str) -> tuple[str, ...]:
    if value is _MISSING or value is None:
        return ()
    items = value if isinstance(value, list) else str(value).replace(",", ";").split(";")
    found: list[str] = []
    for item in items:
        if isinstance(item, Mapping):
            item = item.get("number", item.get("value"))
        if isinstance(item, str | int) and not isinstance(item, bool):
            number = normalize_number(str(item), country_code)
            if number is not None and number not in found:
                found.append(number)
    return tuple(found)


def map_contact(
    document: Any,
    field_map: Mapping[str, str],
    *,
    results_path: str = "",
    country_code: str = DEFAULT_COUNTRY_CODE,
) -> Contact | None:
    """The CRM's JSON answer as a Contact; None when it holds no contact.

    *field_map* maps a contact field to a dotted path in the answer (fields
    not mapped are read under their own name; ``data.<key>`` entries fill the
    free-form ``data``). Raises ProtocolError when the answer is not usable
    (no id or name, a field of the wrong type).
    """
    found = _get(document, results_path)
    if found is _MISSING or found is None:
        return None
    if isinstance(found, list):
        if not found:
            return None
        found = found[0]
    if not isinstance(found, Mapping):
        raise ProtocolError(f"CRM answer: expected an object, got {type(found).__name__}")

    def pick(field: str) -> Any:
        return _get(found, field_map.get(field, field))

    contact_id = _text(pick("id"), "id", 64)
    name = _text(pick("name"), "name", 200)
    if contact_id is None or name is None:
        raise ProtocolError("CRM answer: a contact needs an id and a name")
    extra: dict[str, Any] = {}
    for key, path in field_map.items():
        if key.startswith("data."):
            value = _get(found, path)
            if value is not _MISSING:
                extra[key[5:]] = value
    language = _text(pick("language"), "language", 8)
    return Contact(
        id=contact_id,
        name=name,
        company=_text(pick("company"), "company", 200),
        phones=_phones(pick("phones"), country_code),
        email=_text(pick("email"), "email", 320),
        language=language.lower() if language else None,
        vip=_flag(pick("vip")),
        account=_text(pick("account"), "account", 64),
        notes=_text(pick("notes"), "notes"),
        data=extra,
    )


class TtlCache:
    """A small LRU cache whose entries expire (clock seconds)."""

    def __init__(self, size: int, clock: Clock) -> None:
        self.size = size
        self.clock = clock
        self._items: OrderedDict[tuple[str, str], tuple[float, Contact | None]] = OrderedDict()

    def get(self, key: tuple[str, str]) -> tuple[bool, Contact | None]:
        item = self._items.get(key)
        if item is None:
            return False, None
        expires, value = item
        if expires <= self.clock.now():
            del self._items[key]
            return False, None
        self._items.move_to_end(key)
        return True, value

    def put(self, key: tuple[str, str], value: Contact | None, ttl: float) -> None:
        if self.size <= 0 or ttl <= 0:
            return
        self._items[key] = (self.clock.now() + ttl, value)
        self._items.move_to_end(key)
        while len(self._items) > self.size:
            self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


@dataclass
class HttpCrmStats:
    requests: int = 0
    cache_hits: int = 0
    errors: int = 0
    fallbacks: int = 0


class HttpCrm:
    """:class:`callcenter.crm.model.Crm` over an external CRM's HTTP API.

    The session is the caller's (one ``aiohttp.ClientSession`` for the daemon).
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        settings: HttpCrmSettings,
        *,
        fallback: Crm | None = None,
        clock: Clock | None = None,
        country_code: str = DEFAULT_COUNTRY_CODE,
    ) -> None:
        self.session = session
        self.settings = settings
        self.fallback = fallback
        self.country_code = country_code
        self.cache = TtlCache(settings.cache_size, clock or SystemClock())
        self.stats = HttpCrmStats()
        headers = {"Accept": "application/json", **settings.headers}
        token = settings.resolved_token()
        if token is not None:
            headers["Authorization"] = f"Bearer {token.get_secret_value()}"
        self._headers = headers

    async def by_number(self, number: str) -> Contact | None:
        normalised = normalize_number(number, self.country_code)
        if normalised is None:
            return None
        url = render_url(self.settings.by_number_url, number=normalised)
        return await self._lookup(("number", normalised), url, lambda crm: crm.by_number(number))

    async def by_account(self, account: str) -> Contact | None:
        if not account:
            return None
        if self.settings.by_account_url is None:
            return await self._fallback().by_account(account)
        url = render_url(self.settings.by_account_url, account=account)
        return await self._lookup(("account", account), url, lambda crm: crm.by_account(account))

    async def check_pin(self, account: str, pin: str, now: datetime) -> PinResult:
        return await self._fallback().check_pin(account, pin, now)

    async def lock(self, account: str, now: datetime) -> bool:
        return await self._fallback().lock(account, now)

    async def history(
        self, *, contact_id: str | None = None, number: str | None = None, limit: int = 10
    ) -> list[InteractionSummary]:
        return await self._fallback().history(contact_id=contact_id, number=number, limit=limit)

    def _fallback(self) -> Crm:
        if self.fallback is None:
            raise StoreError("crm.http: PINs, locks and history need the built-in CRM (fallback)")
        return self.fallback

    async def _lookup(
        self,
        key: tuple[str, str],
        url: str,
        ask_fallback: Callable[[Crm], Awaitable[Contact | None]],
    ) -> Contact | None:
        hit, cached = self.cache.get(key)
        if hit:
            self.stats.cache_hits += 1
            return cached
        try:
            contact = await self._fetch(url)
        except CallCenterError as exc:
            self.stats.errors += 1
            if self.fallback is None:
                raise
            self.stats.fallbacks += 1
            log.warning("crm.http_fallback", kind=key[0], error=str(exc))
            return await ask_fallback(self.fallback)
        ttl = self.settings.cache_ttl if contact else self.settings.cache_negative_ttl
        self.cache.put(key, contact, ttl)
        if contact is None and self.settings.fallback_on_not_found and self.fallback is not None:
            return await ask_fallback(self.fallback)
        return contact

    async def _fetch(self, url: str) -> Contact | None:
        self.stats.requests += 1
        timeout = aiohttp.ClientTimeout(total=self.settings.timeout)
        where = URL(url, encoded=True)
        try:
            async with self.session.get(
                where, headers=self._headers, timeout=timeout, allow_redirects=False
            ) as response:
                if response.status == 404:
                    return None
                if response.status != 200:
                    raise StoreError(f"crm.http: {where.host} answered HTTP {response.status}")
                body = await response.content.read(MAX_BODY + 1)
        except TimeoutError as exc:
            raise StoreError(
                f"crm.http: {where.host} did not answer within {self.settings.timeout:g} s"
            ) from exc
        except aiohttp.ClientError as exc:
            raise StoreError(f"crm.http: {where.host}: {type(exc).__name__}: {exc}") from exc
        if len(body) > MAX_BODY:
            raise ProtocolError(f"crm.http: {where.host} answered more than {MAX_BODY} bytes")
        try:
            document = json.loads(body)
        except ValueError as exc:
            raise ProtocolError(f"crm.http: {where.host} answered invalid JSON: {exc}") from exc
        return map_contact(
            document,
            self.settings.field_map,
            results_path=self.settings.results_path,
            country_code=self.country_code,
        )
