"""Daemon configuration: a TOML file, overridden by environment variables.

Environment variables are ``CALLCENTER_<SECTION>__<KEY>`` (for example
``CALLCENTER_AMI__PORT=5039``); ``DATABASE_URL`` and ``CALLCENTER_AMI_SECRET``
are also read as the conventional names. Secrets are :class:`SecretStr`: they
never appear in logs, errors or ``check-config`` output.
"""

from __future__ import annotations

import os
from datetime import tzinfo
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from callcenter.clock import time_zone
from callcenter.crm.settings import CrmSettings
from callcenter.errors import ConfigError
from callcenter.secrets import read_secret_file

DEFAULT_CONFIG_FILE = Path("callcenter.toml")


class NodeConfig(BaseModel, extra="forbid"):
    # Identifiers from Asterisk (Uniqueid, Linkedid, channel names) are only
    # unique within one node: everything the daemon stores carries this name.
    name: str = Field(default="node1", pattern=r"^[A-Za-z0-9_-]+$")


class AmiConfig(BaseModel, extra="forbid"):
    host: str = "127.0.0.1"
    port: int = Field(default=5038, ge=1, le=65535)
    username: str = "callcenter"
    secret: SecretStr | None = None
    secret_file: Path | None = None
    ping_interval: float = Field(default=5.0, gt=0)
    ping_timeout: float = Field(default=3.0, gt=0)
    action_timeout: float = Field(default=10.0, gt=0)
    resync_timeout: float = Field(default=60.0, gt=0)
    reconnect_min: float = Field(default=0.2, gt=0)
    reconnect_max: float = Field(default=10.0, gt=0)
    event_queue_size: int = Field(default=50_000, ge=100)
    dialer_session: bool = True
    """A second AMI session, without events, for the Originates that ring
    phones (``Telephony`` ``dialer``); false: everything on one session."""

    def resolved_secret(self) -> SecretStr:
        if self.secret is not None:
            return self.secret
        if self.secret_file is None:
            raise ConfigError("ami.secret: not set (set CALLCENTER_AMI_SECRET or ami.secret_file)")
        return SecretStr(read_secret_file(self.secret_file, "ami.secret_file"))


class AgiConfig(BaseModel, extra="forbid"):
    host: str = "127.0.0.1"
    port: int = Field(default=4573, ge=0, le=65535)
    idle_timeout: float = Field(default=3600.0, gt=0)


class HttpConfig(BaseModel, extra="forbid"):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    # "required": every /api call and CTI socket needs a session (users in
    # PostgreSQL). "off": everyone is a local admin -- refused unless the
    # server listens on loopback only.
    auth: Literal["required", "off"] = "required"
    session_hours: float = Field(default=12.0, gt=0, le=24 * 30)
    # Seconds between CTI heartbeats; a page silent for three is disconnected
    # (never logged out: it resumes when it wakes).
    cti_heartbeat: float = Field(default=15.0, gt=0, le=300)

    @model_validator(mode="after")
    def _auth_off_on_loopback_only(self) -> HttpConfig:
        if self.auth == "off" and self.host not in ("127.0.0.1", "::1", "localhost"):
            raise ValueError(
                f"http.auth = off is allowed only on a loopback address, not {self.host!r}"
            )
        return self


class DatabaseConfig(BaseModel, extra="forbid"):
    url: SecretStr | None = None
    min_connections: int = Field(default=1, ge=1)
    max_connections: int = Field(default=10, ge=1)
    # The records writer (callcenter.store.interactions): rows waiting in
    # memory at most; beyond, they go to a spool file in `spool_dir`
    # (relative to the working directory), which is also where unwritten rows
    # go at stop and are replayed from at start. Rows PostgreSQL refuses go to
    # `interactions-<node>.jsonl.rejected` there (`callcenter db replay-rejected`).
    writer_max_memory_rows: int = Field(default=50_000, ge=1)
    spool_dir: Path = Path("var/spool")
    # One write (acquire + statements + commit) gives up after this long and
    # is retried; retries back off from 0.2 s to `writer_retry_max`.
    write_timeout: float = Field(default=10.0, gt=0)
    writer_retry_max: float = Field(default=5.0, gt=0)


class SiteConfig(BaseModel, extra="forbid"):
    # Queues, agents and dialled-number routes (operator data, YAML); the
    # packaged default serves the local sandbox.
    file: Path | None = None


class RecordingConfig(BaseModel, extra="forbid"):
    # Where MixMonitor writes, as Asterisk sees it (on the Asterisk host).
    asterisk_dir: str = "/var/spool/asterisk/recordings"
    # The same directory as the daemon sees it (same host, or a shared mount);
    # unset: no post-processing.
    local_dir: Path | None = None
    format: Literal["mp3", "ogg", "wav"] = "mp3"
    keep_wav: bool = True


class IvrConfig(BaseModel, extra="forbid"):
    # IVR scripts (YAML) named by the site's routes and queues; the built-in
    # CRM answers the scripts' lookups from a JSON fixture until the CRM lands.
    scripts_dir: Path = Path("ivr_scripts")
    crm_fixture: Path | None = Path("ivr_scripts/fixtures/crm.json")
    # Text prompts rendered by `callcenter prompts build` (espeak-ng): where the
    # build writes them as this host sees the directory (unset: the local
    # sandbox's sounds directory), and the same directory as Asterisk sees it.
    prompts_dir: Path | None = None
    prompts_asterisk_dir: str = "/usr/share/asterisk/sounds/callcenter"


class SpeechConfig(BaseModel, extra="forbid"):
    # Vosk model directory per script language, e.g.
    # {fr = "/opt/vosk/vosk-model-small-fr-0.22", en = "/opt/vosk/vosk-model-small-en-us-0.15"}.
    # A script with a speech node in a language without a model stops the
    # daemon at start-up (never a failure in the middle of a call).
    models: dict[str, Path] = Field(default_factory=dict)
    # AudioSocket server the IVR's listen steps connect calls to; `advertise`
    # is the host:port Asterisk dials (default: host:port as bound).
    host: str = "127.0.0.1"
    port: int = Field(default=4574, ge=0, le=65535)
    advertise: str | None = None
    # Restrict the recogniser to the node's phrases (Vosk grammar mode).
    grammar: bool = True
    # Trailing silence that ends an utterance, and the longest utterance heard.
    end_silence: float = Field(default=0.6, gt=0, le=5)
    max_utterance: float = Field(default=15.0, gt=0, le=120)
    # Threads that run the recogniser off the event loop.
    workers: int = Field(default=2, ge=1, le=64)


class LogConfig(BaseModel, extra="forbid"):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["json", "console"] = "json"


class SchedulingConfig(BaseModel, extra="forbid"):
    # The event loop's thread under SCHED_RR at Asterisk's own priority
    # (highpriority: 10), so that neither preempts the other
    # (callcenter/scheduling.py). Needs root or CAP_SYS_NICE.
    realtime: bool = True
    priority: int = Field(default=10, ge=1, le=99)


class IntervalRefreshConfig(BaseModel, extra="forbid"):
    # The running daemon recomputes the 15-minute interval table (what
    # `callcenter report recompute` does) every `interval` seconds, for the
    # current local day in `tz` and the `days - 1` days before it.
    enabled: bool = True
    interval: float = Field(default=300.0, gt=0)
    days: int = Field(default=2, ge=1, le=31)
    tz: str = "UTC"

    @model_validator(mode="after")
    def _known_time_zone(self) -> IntervalRefreshConfig:
        self.zone()
        return self

    def zone(self) -> tzinfo:
        try:
            return time_zone(self.tz, "interval_refresh.tz")
        except ConfigError as exc:
            raise ValueError(str(exc)) from None


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CALLCENTER_",
        env_nested_delimiter="__",
        extra="forbid",
    )

    node: NodeConfig = NodeConfig()
    ami: AmiConfig = AmiConfig()
    agi: AgiConfig = AgiConfig()
    http: HttpConfig = HttpConfig()
    database: DatabaseConfig = DatabaseConfig()
    site: SiteConfig = SiteConfig()
    recording: RecordingConfig = RecordingConfig()
    ivr: IvrConfig = IvrConfig()
    speech: SpeechConfig = SpeechConfig()
    log: LogConfig = LogConfig()
    crm: CrmSettings = CrmSettings()
    interval_refresh: IntervalRefreshConfig = IntervalRefreshConfig()
    scheduling: SchedulingConfig = SchedulingConfig()

    @model_validator(mode="before")
    @classmethod
    def _conventional_env(cls, data: Any) -> Any:
        if isinstance(data, dict):
            if url := os.environ.get("DATABASE_URL"):
                data.setdefault("database", {})
                if isinstance(data["database"], dict):
                    data["database"].setdefault("url", url)
            if secret := os.environ.get("CALLCENTER_AMI_SECRET"):
                data.setdefault("ami", {})
                if isinstance(data["ami"], dict):
                    data["ami"].setdefault("secret", secret)
        return data

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_file = os.environ.get("CALLCENTER_CONFIG_FILE", str(DEFAULT_CONFIG_FILE))
        return (
            init_settings,
            env_settings,
            TomlConfigSettingsSource(settings_cls, toml_file=toml_file),
        )


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Load and validate; every problem is reported as a ConfigError naming the key."""
    if config_file is not None:
        if not config_file.exists():
            raise ConfigError(f"config file {config_file} does not exist")
        os.environ["CALLCENTER_CONFIG_FILE"] = str(config_file)
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            key = ".".join(str(part) for part in error["loc"])
            # Never echo the input: it may be a secret.
            problems.append(f"{key}: {error['msg']}")
        raise ConfigError("invalid configuration: " + "; ".join(problems)) from None
    except ValueError as exc:  # TOML syntax errors surface as ValueError subclasses
        raise ConfigError(f"invalid configuration file: {exc}") from None


def redacted(settings: Settings) -> dict[str, Any]:
    """The effective configuration, safe to print: secrets shown as '**********'."""
    dumped: dict[str, Any] = settings.model_dump(mode="json")
    return dumped
