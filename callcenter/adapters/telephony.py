"""Call control on one Asterisk node: the AMI actions the call path uses.

Thin and typed: each method is one AMI action with the options we rely on
(see docs/asterisk-notes.md for what was measured). Nothing here decides
anything; the call path (callcenter/callpath) does.

Channels are named by Uniqueid wherever Asterisk accepts it (Hangup,
MixMonitor, Redirect, ChanSpy with ``u`` all look channels up by name *or*
Uniqueid): Uniqueids are stable, names change on masquerade.
"""

from __future__ import annotations

from collections.abc import Coroutine
from dataclasses import dataclass
from enum import StrEnum
from pathlib import PurePosixPath
from typing import Any

from callcenter.adapters.ami import AmiClient, HeaderValue
from callcenter.errors import AsteriskError

__all__ = ["SpyMode", "Telephony", "TelephonyConfig"]

# dialplans/callpath.conf: the agent's leg bridges with the caller there
# (Bridge with F() to callcenter-after-agent when the agent hangs up first).
CONNECT_CONTEXT = "callcenter-connect"
# Where an agent's leg goes for a callback: dials the customer on the trunk.
CALLBACK_CONTEXT = "callcenter-callback"
CONFERENCE_CONTEXT = "callcenter-conference"
# Where a caller goes when the agent hangs up first (the queue's survey, if any).
AFTER_AGENT_CONTEXT = "callcenter-after-agent"
# Where a caller waits, out of FastAGI, while an agent's phone rings for them:
# a holding bridge, so that the agent's Bridge() never needs a masquerade.
WAIT_CONTEXT = "callcenter-wait"
# Back to FastAGI in queue (position, expected wait, callback) from there.
REQUEUE_CONTEXT = "callcenter-requeue"
# On hold (and during a consultation): the caller hears music in a holding
# bridge; on hold, the agent's leg waits alone in HELD_CONTEXT.
HOLD_CONTEXT = "callcenter-hold"
HELD_CONTEXT = "callcenter-held"
# Attended transfer: the agent's leg dials the consulted number there (its
# extension), then bridges the caller back unless the transfer completed.
CONSULT_CONTEXT = "callcenter-consult"


class SpyMode(StrEnum):
    """Supervisor coaching modes (ChanSpy options)."""

    LISTEN = "listen"  # hear both sides, silent
    WHISPER = "whisper"  # the agent hears the supervisor, the caller does not
    BARGE = "barge"  # everyone hears everyone

    @property
    def chanspy_option(self) -> str:
        return {"listen": "", "whisper": "w", "barge": "B"}[self.value]

    @property
    def switch_digit(self) -> str:
        """The key ChanSpy's ``d`` option switches to this mode with."""
        return {"listen": "4", "whisper": "5", "barge": "6"}[self.value]


@dataclass(frozen=True, slots=True)
class TelephonyConfig:
    technology: str = "PJSIP"
    recordings_dir: str = "/var/spool/asterisk/recordings"
    """The recordings directory as Asterisk sees it (MixMonitor writes there)."""


class Telephony:
    def __init__(
        self,
        ami: AmiClient,
        config: TelephonyConfig | None = None,
        *,
        dialer: AmiClient | None = None,
    ) -> None:
        """``dialer``: an action-only AMI session (``AmiClient(events=False)``)
        for the Originates that ring phones, so that they never wait behind
        the event stream in Asterisk's thread of the main session; the main
        session serves them while the dialer's is down."""
        self.ami = ami
        self.config = config or TelephonyConfig()
        self._dialer = dialer

    @property
    def dialer(self) -> AmiClient:
        """The session an Originate goes out on now."""
        dialer = self._dialer
        return dialer if dialer is not None and dialer.connected else self.ami

    def new_channel_id(self) -> str:
        return self.ami.new_channel_id()

    def ring_agent(
        self,
        endpoint: str,
        caller: str,
        *,
        channel_id: str,
        ring_timeout: float,
        caller_id: str | None = None,
        variables: dict[str, str] | None = None,
        record_as: str | None = None,
        separate_legs: bool = False,
    ) -> Coroutine[Any, Any, str]:
        """Agent first: ring ``endpoint``; when answered, bridge it with ``caller``.

        The Originate is written before this returns; await the result for
        Asterisk's acceptance (:meth:`AmiClient.originate`).

        ``record_as``: the dialplan starts MixMonitor on the agent's leg the
        moment it answers, before the bridge (see :meth:`recording`): no
        AMI round trip, so nothing of the conversation is lost under load.

        ``caller`` is the waiting caller's channel (name or Uniqueid). The
        outcome arrives later as OriginateResponse (Reason 4 = answered).
        The leg runs the ``callcenter-connect`` dialplan (a PBX, so it can be
        redirected later); when the agent hangs up first, Bridge option F
        sends the caller to the after-agent dialplan, not back after AGI().
        """
        _check_token(endpoint, "endpoint")
        _check_token(caller, "caller channel")
        recording: dict[str, str] = {}
        if record_as is not None:
            path, options = self.recording(record_as, separate_legs=separate_legs)
            recording = {"CC_RECORD_FILE": path, "CC_RECORD_OPTIONS": options}
        return self.dialer.originate(
            f"{self.config.technology}/{endpoint}",
            channel_id=channel_id,
            context=CONNECT_CONTEXT,
            exten="s",
            timeout_ms=int(ring_timeout * 1000),
            caller_id=caller_id,
            variables={**(variables or {}), "CC_CALLER": caller, **recording},
        )

    def ring_agent_for_callback(
        self,
        endpoint: str,
        number: str,
        *,
        channel_id: str,
        ring_timeout: float,
        dial_timeout: float,
        caller_id: str | None = None,
        variables: dict[str, str] | None = None,
    ) -> Coroutine[Any, Any, str]:
        """Callback, agent first: ring ``endpoint``; once answered, the
        dialplan (``callcenter-callback``) dials ``number`` on the trunk.
        Written at once, like :meth:`ring_agent`."""
        _check_token(endpoint, "endpoint")
        if not is_phone_number(number):
            raise AsteriskError(f"refusing callback number {number!r}: digits only")
        return self.dialer.originate(
            f"{self.config.technology}/{endpoint}",
            channel_id=channel_id,
            context=CALLBACK_CONTEXT,
            exten="s",
            timeout_ms=int(ring_timeout * 1000),
            caller_id=caller_id,
            variables={
                **(variables or {}),
                "CC_NUMBER": number,
                "CC_DIAL_TIMEOUT": str(max(1, round(dial_timeout))),
            },
        )

    async def switch_spy(self, spy_leg: str, mode: SpyMode) -> None:
        """Change the mode of a running ChanSpy as if the supervisor had
        pressed its key (PlayDTMF with Receive: heard by ChanSpy, not sent
        to the phone)."""
        _check_token(spy_leg, "spy leg")
        await self.ami.send(
            "PlayDTMF", {"Channel": spy_leg, "Digit": mode.switch_digit, "Receive": "true"}
        )

    async def channel_exists(self, uniqueid: str) -> bool:
        """Whether Asterisk has this channel now (its own list, not our tracker)."""
        return await self.ami.channel_exists(uniqueid)

    async def hangup(self, channel: str, cause: int = 16) -> None:
        _check_token(channel, "channel")
        await self.ami.send("Hangup", {"Channel": channel, "Cause": str(cause)})

    def recording(self, name: str, *, separate_legs: bool = False) -> tuple[str, str]:
        """(file Asterisk writes, MixMonitor options) for a recording named ``name``.

        ``name`` is ours (an interaction id), never caller input: it is
        checked to be a plain file name.
        """
        _check_file_name(name)
        base = PurePosixPath(self.config.recordings_dir) / name
        # b: only while bridged; r()/t(): each direction in a file of its own too.
        options = f"br({base}-in.wav)t({base}-out.wav)" if separate_legs else "b"
        return f"{base}.wav", options

    async def record(self, channel: str, name: str, *, separate_legs: bool = False) -> str:
        """Start MixMonitor on ``channel`` now; return the file path Asterisk writes."""
        path, options = self.recording(name, separate_legs=separate_legs)
        headers: dict[str, HeaderValue] = {"Channel": channel, "File": path, "Options": options}
        await self.ami.send("MixMonitor", headers)
        return path

    async def stop_recording(self, channel: str) -> None:
        await self.ami.send("StopMixMonitor", {"Channel": channel})

    async def blind_transfer(self, channel: str, context: str, exten: str) -> None:
        """Send the party bridged with ``channel`` to ``exten@context``."""
        for value, what in ((context, "context"), (exten, "extension")):
            _check_token(value, what)
        await self.ami.send(
            "BlindTransfer", {"Channel": channel, "Context": context, "Exten": exten}
        )

    async def transfer_with_context(
        self, channel: str, context: str, exten: str, variables: dict[str, str]
    ) -> None:
        """Blind transfer of the party bridged with ``channel``; ``variables``
        are set on that party first (e.g. which interaction it comes from)."""
        peer = await self.bridged_peer(channel)
        for name, value in variables.items():
            _check_token(value, name)
            await self._setvar(peer, name, value)
        await self.blind_transfer(channel, context, exten)

    async def variable(self, channel: str, name: str) -> str:
        """A channel variable ("" when unset)."""
        frames = await self.ami.send("Getvar", {"Channel": channel, "Variable": name})
        return (frames[0].get("Value") or "") if frames else ""

    async def bridged_peer(self, channel: str) -> str:
        """The channel bridged with ``channel`` (BRIDGEPEER)."""
        frames = await self.ami.send("Getvar", {"Channel": channel, "Variable": "BRIDGEPEER"})
        peer = frames[0].get("Value") if frames else None
        if not peer:
            raise AsteriskError(f"{channel} is not bridged with anyone")
        return peer

    async def into_conference(self, room: str, channel: str, other: str, *, party: str) -> None:
        """Move two bridged channels into ConfBridge ``room`` together.
        ``party`` (the third one's number or agent) is kept on ``channel`` as
        ``CC_CONFERENCE_WITH``, for a daemon that takes the call over."""
        _check_token(room, "conference room")
        _check_token(party, "conference party")
        await self._setvar(channel, "CC_CONFERENCE_WITH", party)
        await self.ami.send(
            "Redirect",
            {
                "Channel": channel,
                "ExtraChannel": other,
                "Context": CONFERENCE_CONTEXT,
                "ExtraContext": CONFERENCE_CONTEXT,
                "Exten": room,
                "ExtraExten": room,
                "Priority": "1",
                "ExtraPriority": "1",
            },
        )

    async def ring_into_conference(
        self,
        room: str,
        destination: str,
        *,
        channel_id: str,
        ring_timeout: float,
        caller_id: str | None = None,
    ) -> str:
        """Ring ``destination`` (an endpoint, or ``number@trunk``) into ``room``."""
        _check_token(room, "conference room")
        _check_token(destination.replace("@", ""), "destination")
        return await self.dialer.originate(
            f"{self.config.technology}/{destination}",
            channel_id=channel_id,
            application="ConfBridge",
            data=f"{room},callcenter_bridge,callcenter_user",
            timeout_ms=int(ring_timeout * 1000),
            caller_id=caller_id,
        )

    async def consult(
        self, agent_leg: str, caller: str, number: str, *, dial_timeout: float
    ) -> None:
        """Attended transfer, step 1: the caller on hold, the agent's leg
        dials ``number`` (dialplans/callpath.conf, callcenter-consult)."""
        if not is_phone_number(number):
            raise AsteriskError(f"refusing consult number {number!r}: digits only")
        await self._setvar(agent_leg, "CC_DIAL_TIMEOUT", str(max(1, round(dial_timeout))))
        await self._setvar(agent_leg, "CC_XFER_DONE", "0")
        await self.ami.send(
            "Redirect",
            {
                "Channel": agent_leg,
                "Context": CONSULT_CONTEXT,
                "Exten": number,
                "Priority": "1",
                "ExtraChannel": caller,
                "ExtraContext": HOLD_CONTEXT,
                "ExtraExten": "s",
                "ExtraPriority": "1",
            },
        )

    async def hold(self, agent_leg: str, caller: str) -> None:
        """The caller to music on hold (callcenter-hold), the agent's leg to
        callcenter-held, both at once: neither is left alone in the bridge."""
        await self.ami.send(
            "Redirect",
            {
                "Channel": agent_leg,
                "Context": HELD_CONTEXT,
                "Exten": "s",
                "Priority": "1",
                "ExtraChannel": caller,
                "ExtraContext": HOLD_CONTEXT,
                "ExtraExten": "s",
                "ExtraPriority": "1",
            },
        )

    async def hold_for_agent(self, caller: str) -> None:
        """Take the caller out of FastAGI into its holding bridge
        (callcenter-wait) while an agent's phone rings: the agent's Bridge()
        then moves it from bridge to bridge. Pulled straight out of an
        application instead, Asterisk 22 may leave a Surrogate/ channel
        behind (docs/asterisk-notes.md)."""
        await self.redirect(caller, WAIT_CONTEXT, "s")

    async def back_to_queue(self, caller: str) -> None:
        """From the holding bridge back to FastAGI in queue (callcenter-requeue)."""
        await self.redirect(caller, REQUEUE_CONTEXT, "s")

    async def resume(self, agent_leg: str) -> None:
        """The agent's leg bridges the held caller again (callcenter-connect)."""
        await self.redirect(agent_leg, "callcenter-connect", "s")

    async def complete_transfer(self, agent_leg: str, caller: str, target: str) -> None:
        """Attended transfer, step 2: the caller meets the consulted party;
        the agent's leg ends (CC_XFER_DONE keeps it from taking the caller back)."""
        _check_token(target, "target channel")
        await self._setvar(agent_leg, "CC_XFER_DONE", "1")
        await self._setvar(caller, "CC_TARGET", target)
        await self.redirect(caller, "callcenter-xfer-complete", "s")

    async def _setvar(self, channel: str, name: str, value: str) -> None:
        await self.ami.send("Setvar", {"Channel": channel, "Variable": name, "Value": value})

    async def redirect(self, channel: str, context: str, exten: str, priority: int = 1) -> None:
        for value, what in ((context, "context"), (exten, "extension")):
            _check_token(value, what)
        await self.ami.send(
            "Redirect",
            {"Channel": channel, "Context": context, "Exten": exten, "Priority": str(priority)},
        )

    async def spy(
        self,
        supervisor_endpoint: str,
        agent_channel: str,
        mode: SpyMode,
        *,
        channel_id: str | None = None,
        ring_timeout: float = 30.0,
    ) -> str:
        """Ring the supervisor's phone into ChanSpy on the agent's channel.

        Options: ``u`` (the target is a Uniqueid or exact name, not a
        prefix), ``q`` (no beep, no channel name spoken), ``E`` (end with the
        spied call), ``d`` (the supervisor switches mode from the phone:
        4 listen, 5 whisper, 6 barge) and the mode's own option.
        """
        _check_token(supervisor_endpoint, "supervisor endpoint")
        _check_token(agent_channel, "agent channel")
        options = "uqEd" + mode.chanspy_option
        return await self.dialer.originate(
            f"{self.config.technology}/{supervisor_endpoint}",
            channel_id=channel_id,
            application="ChanSpy",
            data=f"{agent_channel},{options}",
            timeout_ms=int(ring_timeout * 1000),
            caller_id=f'"Coaching" <{mode.value}>',
        )


# Local channel names carry ";" (Local/x@ctx-0001;1): allowed.
_FORBIDDEN = frozenset(",|()^\"'\\\r\n\t &$`")


def is_phone_number(value: str) -> bool:
    """Digits only, 2 to 20 of them: what we dial on the trunk (never raw input)."""
    return value.isdigit() and 2 <= len(value) <= 20


def _check_token(value: str, what: str) -> None:
    # These values end up inside application data (comma-separated options):
    # a comma or parenthesis would inject options.
    if not value or any(ch in _FORBIDDEN for ch in value):
        raise AsteriskError(f"refusing {what} {value!r}: empty or with separators")


def _check_file_name(name: str) -> None:
    if not name or "/" in name or name.startswith(".") or any(ch in _FORBIDDEN for ch in name):
        raise AsteriskError(f"refusing recording name {name!r}")
