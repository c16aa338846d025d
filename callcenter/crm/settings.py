"""CRM configuration: the ``[crm]`` section (wired into ``callcenter.config.Settings``).

Example (TOML)::

    [crm]
    backend = "http"                 # "builtin" (PostgreSQL contacts) or "http"
    country_code = "33"
    pin_max_failures = 3
    pin_lockout_seconds = 1800

    [crm.http]
    by_number_url = "https://crm.example/api/contacts?phone={number}"
    by_account_url = "https://crm.example/api/contacts?account={account}"
    timeout = 1.5
    token_file = "/etc/callcenter/crm.token"   # sent as "Authorization: Bearer ..."
    results_path = "results"
    [crm.http.field_map]
    id = "uid"
    name = "display_name"
    phones = "phones"
    vip = "flags.vip"

    [[crm.webhooks.endpoints]]
    url = "https://hooks.example/callcenter"
    secret_file = "/etc/callcenter/webhook.secret"
    events = ["call.ended", "call.disposition"]
"""

from __future__ import annotations

import string
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator

from callcenter.errors import ConfigError
from callcenter.secrets import read_secret_file

WebhookEvent = Literal["call.started", "call.answered", "call.ended", "call.disposition"]
WEBHOOK_EVENTS: tuple[WebhookEvent, ...] = (
    "call.started",
    "call.answered",
    "call.ended",
    "call.disposition",
)

CONTACT_FIELDS = (
    "id",
    "name",
    "company",
    "phones",
    "email",
    "language",
    "vip",
    "account",
    "notes",
    "data",
)


def check_url_template(template: str, allowed: set[str]) -> str:
    """An http(s) URL whose only ``{placeholders}`` are in *allowed*, with no
    format spec, conversion or attribute access (``{number.__class__}``)."""
    if not template.startswith(("http://", "https://")):
        raise ValueError("must be an http:// or https:// URL")
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"bad template: {exc}") from None
    for _text, name, spec, conversion in parsed:
        if name is None:
            continue
        if name not in allowed or spec or conversion:
            raise ValueError(
                f"placeholder {{{name}}} not allowed (use {', '.join(sorted(allowed))})"
            )
    return template


class HttpCrmSettings(BaseModel, extra="forbid"):
    by_number_url: str
    by_account_url: str | None = None
    timeout: float = Field(default=1.5, gt=0, le=30)
    token: SecretStr | None = None
    token_file: Path | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    # Where the contact is in the answer: "" the document itself, or a dotted
    # path ("data.results"); a list there means search results (first one wins,
    # none is "not found").
    results_path: str = ""
    # Contact field -> dotted path in the CRM's JSON (fields left out are looked
    # up under their own name). "data" collects extra fields: {"data.segment": "tier"}.
    field_map: dict[str, str] = Field(default_factory=dict)
    cache_ttl: float = Field(default=60.0, ge=0)
    cache_negative_ttl: float = Field(default=10.0, ge=0)
    cache_size: int = Field(default=10_000, ge=0)
    # An external "not found" is an answer; with this, the built-in CRM is asked too.
    fallback_on_not_found: bool = False

    @field_validator("by_number_url")
    @classmethod
    def _number_template(cls, value: str) -> str:
        return check_url_template(value, {"number"})

    @field_validator("by_account_url")
    @classmethod
    def _account_template(cls, value: str | None) -> str | None:
        return None if value is None else check_url_template(value, {"account"})

    @field_validator("field_map")
    @classmethod
    def _known_fields(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            base = key.split(".", 1)[0]
            if base not in CONTACT_FIELDS or (base != "data" and "." in key):
                raise ValueError(f"unknown contact field {key!r}")
        return value

    def resolved_token(self) -> SecretStr | None:
        if self.token is not None:
            return self.token
        if self.token_file is not None:
            return SecretStr(read_secret_file(self.token_file, "crm.http.token_file"))
        return None


class WebhookEndpoint(BaseModel, extra="forbid"):
    url: str
    secret: SecretStr | None = None
    secret_file: Path | None = None
    events: list[WebhookEvent] = Field(default_factory=lambda: list(WEBHOOK_EVENTS))

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value

    @model_validator(mode="after")
    def _one_secret(self) -> WebhookEndpoint:
        if (self.secret is None) == (self.secret_file is None):
            raise ValueError("set exactly one of secret and secret_file")
        return self

    def resolved_secret(self) -> bytes:
        if self.secret is not None:
            value = self.secret.get_secret_value()
        else:
            assert self.secret_file is not None
            value = read_secret_file(self.secret_file, "crm.webhooks.endpoints.secret_file")
        if len(value) < 16:
            raise ConfigError("crm.webhooks.endpoints: the secret needs at least 16 characters")
        return value.encode()


class WebhookSettings(BaseModel, extra="forbid"):
    endpoints: list[WebhookEndpoint] = Field(default_factory=list)
    queue_size: int = Field(default=10_000, ge=1)
    workers: int = Field(default=2, ge=1, le=32)
    timeout: float = Field(default=5.0, gt=0)
    max_attempts: int = Field(default=6, ge=1)
    backoff_min: float = Field(default=1.0, gt=0)
    backoff_max: float = Field(default=60.0, gt=0)


class PinHashSettings(BaseModel, extra="forbid"):
    # argon2id parameters (argon2-cffi's defaults: 3 passes, 64 MiB, 4 lanes).
    time_cost: int = Field(default=3, ge=1)
    memory_cost_kib: int = Field(default=65536, ge=8)
    parallelism: int = Field(default=4, ge=1)
    # A server-side secret mixed into every PIN before hashing: a stolen
    # database alone then does not give the 10,000 possible PINs away.
    # Changing it invalidates every stored PIN.
    pepper: SecretStr | None = None
    pepper_file: Path | None = None

    def resolved_pepper(self) -> bytes | None:
        if self.pepper is not None:
            return self.pepper.get_secret_value().encode()
        if self.pepper_file is not None:
            return read_secret_file(self.pepper_file, "crm.pin_hash.pepper_file").encode()
        return None


class CrmSettings(BaseModel, extra="forbid"):
    backend: Literal["builtin", "http"] = "builtin"
    country_code: str = Field(default="33", pattern=r"^[1-9][0-9]{0,2}$")
    pin_max_failures: int = Field(default=3, ge=1, le=100)
    pin_lockout_seconds: float = Field(default=1800.0, gt=0)
    pin_hash: PinHashSettings = PinHashSettings()
    http: HttpCrmSettings | None = None
    webhooks: WebhookSettings = WebhookSettings()
    history_limit: int = Field(default=10, ge=1, le=200)

    @model_validator(mode="after")
    def _http_needs_its_section(self) -> CrmSettings:
        if self.backend == "http" and self.http is None:
            raise ValueError("backend 'http' needs a [crm.http] section")
        return self
