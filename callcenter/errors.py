"""The one exception tree of the project.

Every error raised by callcenter code derives from :class:`CallCenterError`.
Foreign errors (OSError, asyncpg, panoramisk, yaml, pydantic...) are caught at
the adapter boundary and re-raised as one of these, with the original chained
(``raise X(...) from exc``), so callers only ever handle this tree.

    CallCenterError
    ├── ConfigError            bad configuration: names the key and what is wrong
    ├── ProtocolError          bytes from a peer that do not follow the protocol
    │   ├── AMIProtocolError
    │   ├── AGIProtocolError
    │   ├── AudioSocketProtocolError  an AudioSocket frame we cannot accept
    │   └── CTIProtocolError   a desktop sent a WebSocket message we cannot accept
    ├── AsteriskError          Asterisk said no, or could not be reached
    │   ├── AMIActionError     an AMI action answered Error
    │   ├── AMIDisconnected    the AMI link dropped; pending actions fail with this
    │   ├── AMITimeout         an AMI action got no answer in time
    │   ├── OriginateUnconfirmed  an Originate sent, its answer lost: the channel may exist
    │   ├── AGIHangup          the channel hung up during an AGI session
    │   ├── AGICommandFailed   an AGI command failed on a live channel (missing sound)
    │   └── AGITimeout         Asterisk stopped answering an AGI session
    ├── StateError             a core was asked to do something its state forbids
    │   ├── IllegalTransition  a state machine got an event its table does not allow
    │   └── RoutingError       an ACD request that names unknown agents, calls, queues
    ├── ScriptError            an IVR script is invalid (file, line, column, reason)
    ├── SpeechError            speech recognition failed during a call (the IVR falls back)
    ├── PromptBuildError       text prompts could not be rendered (espeak-ng or sox failing)
    ├── StoreError             the database failed or refused a write
    │   └── StoreUnavailable   the database cannot be reached now; try again
    ├── AuthError              who is calling, and may they?
    │   ├── NotAuthenticated   no credentials, wrong password, expired or revoked token
    │   └── Forbidden          authenticated, but the role or the target forbids it
    └── SandboxError           the local Asterisk/PostgreSQL sandbox could not start
"""

from __future__ import annotations


class CallCenterError(Exception):
    """Base of every error raised by callcenter."""


class ConfigError(CallCenterError):
    """Invalid configuration; the message names the key."""


class ProtocolError(CallCenterError):
    """A peer sent bytes that do not follow the protocol."""


class AMIProtocolError(ProtocolError):
    """Malformed AMI traffic."""


class CTIProtocolError(ProtocolError):
    """A CTI WebSocket message is malformed, too large, or of an unknown type."""


class AGIProtocolError(ProtocolError):
    """Malformed AGI traffic."""


class AudioSocketProtocolError(ProtocolError):
    """Malformed AudioSocket traffic (unknown frame kind, bad UUID or DTMF payload)."""


class AsteriskError(CallCenterError):
    """Asterisk refused an operation or could not be reached."""


class AMIActionError(AsteriskError):
    """An AMI action was answered with ``Response: Error``."""

    def __init__(self, action: str, message: str) -> None:
        super().__init__(f"AMI action {action} failed: {message}")
        self.action = action
        self.message = message


class AMIDisconnected(AsteriskError):
    """The AMI connection was lost; the action may or may not have run."""


class AMITimeout(AsteriskError):
    """An AMI action received no response in time."""


class OriginateUnconfirmed(AsteriskError):
    """An Originate may have reached Asterisk but its answer never came back
    (the link dropped after sending and stayed down, or no answer in time).

    Unlike a refusal (:class:`AMIActionError`) the channel ``channel_id`` may
    exist and ring: only Asterisk's channel list, once the link is back, tells.
    """

    def __init__(self, channel_id: str, reason: str) -> None:
        super().__init__(f"Originate of {channel_id} unconfirmed: {reason}")
        self.channel_id = channel_id
        self.reason = reason


class AGIHangup(AsteriskError):
    """The channel hung up while an AGI command was pending."""


class AGICommandFailed(AsteriskError):
    """An AGI command failed although the channel is alive (e.g. a missing sound)."""


class AGITimeout(AsteriskError):
    """Asterisk did not answer an AGI command in time; the session is closed."""


class StateError(CallCenterError):
    """A pure core refused an event because of its current state."""


class IllegalTransition(StateError):
    """A state machine received an event that its transition table forbids.

    The machine's state is unchanged when this is raised.
    """

    def __init__(self, machine: str, state: str, event: str) -> None:
        super().__init__(f"{machine}: event {event!r} is not allowed in state {state!r}")
        self.machine = machine
        self.state = state
        self.event = event


class RoutingError(StateError):
    """The ACD was given an unknown or inconsistent agent, call or queue."""


class ScriptError(CallCenterError):
    """An IVR script is invalid: the message gives file, line, column, reason."""


class SpeechError(CallCenterError):
    """Recognition failed on a live call (recogniser error, AudioSocket never
    connected). A missing model is a :class:`ConfigError` at start-up instead."""


class PromptBuildError(CallCenterError):
    """``callcenter prompts build`` could not render a prompt (espeak-ng or sox
    missing or failing, prompts directory not writable)."""


class StoreError(CallCenterError):
    """A database operation failed."""


class StoreUnavailable(StoreError):
    """The database cannot be reached or cannot answer now (connection lost,
    busy, failing over): the same request may succeed later."""


class AuthError(CallCenterError):
    """Authentication or authorisation failed; the message never holds a secret."""


class NotAuthenticated(AuthError):
    """No credentials, a wrong password, or an expired or revoked token."""


class Forbidden(AuthError):
    """The caller is known, but their role or the target forbids the action."""


class SandboxError(CallCenterError):
    """The local Asterisk or PostgreSQL sandbox could not be started or reached."""
