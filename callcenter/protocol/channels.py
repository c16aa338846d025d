"""The channel tracker: what one Asterisk node's channels and bridges are now.

Pure: typed AMI events in, a list of :class:`Change` out. One tracker belongs
to one node; Uniqueids are only unique per node, so every channel the tracker
exposes carries its ``node`` and :class:`ChannelKey` is ``(node, uniqueid)``.

The tracker never raises on what Asterisk sends. An event about a channel it
does not know (we were blind, or events came out of order) teaches it the
channel from the event's snapshot; an event about a channel that already hung
up is ignored. Both are counted in :attr:`ChannelTracker.anomaly_count` and
described in :attr:`ChannelTracker.anomalies`. After a reconnect,
:meth:`ChannelTracker.resync` replaces everything with Asterisk's own list.

A *call* is the set of live channels sharing a ``Linkedid``.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import NamedTuple

from callcenter.protocol.ami_events import (
    AgentComplete,
    AgentConnect,
    AmiEvent,
    AttendedTransfer,
    BlindTransfer,
    BridgeCreate,
    BridgeDestroy,
    BridgeEnter,
    BridgeLeave,
    BridgeListItem,
    BridgeMerge,
    ChannelSnapshot,
    ChannelState,
    ConfbridgeJoin,
    ConfbridgeLeave,
    CoreShowChannel,
    DialBegin,
    DialEnd,
    DialState,
    DTMFBegin,
    DTMFEnd,
    Hangup,
    HangupRequest,
    Hold,
    LocalBridge,
    LocalOptimizationEnd,
    MixMonitorStart,
    MixMonitorStop,
    MusicOnHoldStart,
    MusicOnHoldStop,
    NewCallerid,
    Newchannel,
    NewConnectedLine,
    Newexten,
    Newstate,
    OriginateResponse,
    QueueCallerAbandon,
    QueueCallerJoin,
    QueueCallerLeave,
    Rename,
    SoftHangupRequest,
    Unhold,
    VarSet,
)

# Uniqueids of hung-up channels remembered to refuse late events about them.
GONE_MEMORY = 4096
ANOMALY_MEMORY = 1000


class ChannelKey(NamedTuple):
    node: str
    uniqueid: str


@dataclass(frozen=True, slots=True)
class Channel:
    """One live channel. ``dialed_by`` is the Uniqueid of the leg whose Dial
    created this one; ``bridge_id`` the bridge it is in, if any."""

    node: str
    uniqueid: str
    name: str
    state: ChannelState
    caller_id_num: str
    caller_id_name: str
    connected_line_num: str
    connected_line_name: str
    linkedid: str
    context: str
    exten: str
    bridge_id: str | None = None
    dialed_by: str | None = None
    dial_status: str | None = None
    on_hold: bool = False

    @property
    def key(self) -> ChannelKey:
        return ChannelKey(self.node, self.uniqueid)

    @property
    def is_local(self) -> bool:
        return self.name.startswith("Local/")


# ------------------------------------------------------------------ changes
@dataclass(frozen=True, slots=True)
class ChannelAdded:
    channel: Channel


@dataclass(frozen=True, slots=True)
class ChannelUpdated:
    channel: Channel
    previous: Channel
    fields: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ChannelRemoved:
    """``cause`` is None when the channel vanished while we were blind."""

    channel: Channel
    cause: int | None
    cause_txt: str


@dataclass(frozen=True, slots=True)
class DialStarted:
    node: str
    caller: str | None
    dest: str


@dataclass(frozen=True, slots=True)
class DialEnded:
    node: str
    caller: str | None
    dest: str
    status: str


@dataclass(frozen=True, slots=True)
class Bridged:
    """Two channels are now talking: the bridge holds exactly ``a`` and ``b``
    (``b`` the one that entered last). ``call`` is ``b``'s Linkedid."""

    node: str
    call: str
    bridge_id: str
    a: str
    b: str


@dataclass(frozen=True, slots=True)
class Unbridged:
    node: str
    bridge_id: str
    uniqueid: str


@dataclass(frozen=True, slots=True)
class Transferred:
    """``kind`` is "blind" or "attended"; ``target`` is ``exten@context`` for
    a blind transfer, the transfer target's Uniqueid for an attended one."""

    node: str
    kind: str
    success: bool
    transferer: str
    transferee: str | None
    target: str | None


@dataclass(frozen=True, slots=True)
class LocalOptimized:
    """A Local channel pair left the path: the channels it joined now meet."""

    node: str
    local_one: str
    local_two: str


@dataclass(frozen=True, slots=True)
class OriginateResult:
    node: str
    action_id: str | None
    uniqueid: str | None
    success: bool
    reason: int


@dataclass(frozen=True, slots=True)
class CallEnded:
    """No live channel has this Linkedid any more. ``merged_into`` is set when
    the last channel did not hang up but joined another call (a transfer)."""

    node: str
    call: str
    merged_into: str | None = None


Change = (
    ChannelAdded
    | ChannelUpdated
    | ChannelRemoved
    | DialStarted
    | DialEnded
    | Bridged
    | Unbridged
    | Transferred
    | LocalOptimized
    | OriginateResult
    | CallEnded
)


@dataclass(frozen=True, slots=True)
class Anomaly:
    kind: str
    event: str
    uniqueid: str | None
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Bridge:
    bridge_id: str
    type: str
    technology: str
    members: tuple[str, ...]


_SNAPSHOT_FIELDS = (
    "name",
    "state",
    "caller_id_num",
    "caller_id_name",
    "connected_line_num",
    "connected_line_name",
    "linkedid",
    "context",
    "exten",
)


def _local_base(name: str) -> tuple[str, int] | None:
    """``Local/100@agents-00000001;2`` -> (``Local/100@agents-00000001``, 2)."""
    if name.startswith("Local/") and len(name) > 2 and name[-2] == ";" and name[-1] in "12":
        return name[:-2], int(name[-1])
    return None


class ChannelTracker:
    def __init__(self, node: str) -> None:
        self.node = node
        self._channels: dict[str, Channel] = {}
        self._bridges: dict[str, Bridge] = {}
        self._calls: dict[str, set[str]] = {}
        self._local_pairs: dict[str, dict[int, str]] = {}
        self._local_peer: dict[str, str] = {}
        self._gone: OrderedDict[str, None] = OrderedDict()
        self.anomalies: deque[Anomaly] = deque(maxlen=ANOMALY_MEMORY)
        self.anomaly_count = 0
        self.events = 0
        handlers: dict[type[AmiEvent], Callable[[ChannelTracker, AmiEvent, list[Change]], None]]
        handlers = {
            Newchannel: ChannelTracker._on_newchannel,  # type: ignore[dict-item]
            Hangup: ChannelTracker._on_hangup,  # type: ignore[dict-item]
            DialBegin: ChannelTracker._on_dial_begin,  # type: ignore[dict-item]
            DialEnd: ChannelTracker._on_dial_end,  # type: ignore[dict-item]
            DialState: ChannelTracker._on_dial_state,  # type: ignore[dict-item]
            BridgeCreate: ChannelTracker._on_bridge_create,  # type: ignore[dict-item]
            BridgeEnter: ChannelTracker._on_bridge_enter,  # type: ignore[dict-item]
            BridgeLeave: ChannelTracker._on_bridge_leave,  # type: ignore[dict-item]
            BridgeDestroy: ChannelTracker._on_bridge_destroy,  # type: ignore[dict-item]
            BridgeMerge: ChannelTracker._on_bridge_merge,  # type: ignore[dict-item]
            BlindTransfer: ChannelTracker._on_blind_transfer,  # type: ignore[dict-item]
            AttendedTransfer: ChannelTracker._on_attended_transfer,  # type: ignore[dict-item]
            LocalBridge: ChannelTracker._on_local_bridge,  # type: ignore[dict-item]
            LocalOptimizationEnd: ChannelTracker._on_local_optimization_end,  # type: ignore[dict-item]
            Rename: ChannelTracker._on_rename,  # type: ignore[dict-item]
            OriginateResponse: ChannelTracker._on_originate_response,  # type: ignore[dict-item]
            Hold: ChannelTracker._on_hold,  # type: ignore[dict-item]
            Unhold: ChannelTracker._on_unhold,  # type: ignore[dict-item]
        }
        # Events that only refresh what the snapshot says about the channel.
        for touch_only in (
            Newstate,
            NewCallerid,
            NewConnectedLine,
            HangupRequest,
            SoftHangupRequest,
            VarSet,
            Newexten,
            DTMFBegin,
            DTMFEnd,
            MusicOnHoldStart,
            MusicOnHoldStop,
            MixMonitorStart,
            MixMonitorStop,
            ConfbridgeJoin,
            ConfbridgeLeave,
            QueueCallerJoin,
            QueueCallerLeave,
            QueueCallerAbandon,
            AgentConnect,
            AgentComplete,
        ):
            handlers[touch_only] = ChannelTracker._on_snapshot
        self._handlers = handlers

    # ------------------------------------------------------------ queries
    def channel(self, uniqueid: str) -> Channel | None:
        return self._channels.get(uniqueid)

    def channels(self) -> list[Channel]:
        return list(self._channels.values())

    def call(self, linkedid: str) -> list[Channel]:
        """Every live leg of a call, in the order they appeared."""
        members = self._calls.get(linkedid)
        if not members:
            return []
        return [c for c in self._channels.values() if c.uniqueid in members]

    def calls(self) -> list[str]:
        return list(self._calls)

    def bridge(self, bridge_id: str) -> Bridge | None:
        return self._bridges.get(bridge_id)

    def bridges(self) -> list[Bridge]:
        return list(self._bridges.values())

    def local_peer(self, uniqueid: str) -> str | None:
        """The other half of a Local channel pair (``;1`` <-> ``;2``)."""
        return self._local_peer.get(uniqueid)

    def peer_of(self, uniqueid: str, *, through_local: bool = True) -> Channel | None:
        """The channel bridged one-to-one with ``uniqueid``.

        With ``through_local``, a Local channel pair in the path is crossed:
        the caller bridged with ``Local/...;1`` has as peer whoever
        ``Local/...;2`` is bridged with. If the far half is not bridged yet,
        the nearest Local channel is the answer.
        """
        peer = self._bridge_peer(uniqueid)
        seen = {uniqueid}
        while through_local and peer is not None and peer.is_local and peer.uniqueid not in seen:
            seen.add(peer.uniqueid)
            other = self._local_peer.get(peer.uniqueid)
            if other is None or other in seen:
                break
            seen.add(other)
            further = self._bridge_peer(other)
            if further is None:
                break
            peer = further
        return peer

    def _bridge_peer(self, uniqueid: str) -> Channel | None:
        channel = self._channels.get(uniqueid)
        if channel is None or channel.bridge_id is None:
            return None
        bridge = self._bridges.get(channel.bridge_id)
        if bridge is None:
            return None
        others = [m for m in bridge.members if m != uniqueid]
        if len(others) != 1:
            return None
        return self._channels.get(others[0])

    # ------------------------------------------------------------ events
    def apply(self, event: AmiEvent) -> list[Change]:
        """Apply one event; return what changed (often nothing)."""
        handler = self._handlers.get(type(event))
        if handler is None:
            return []
        self.events += 1
        changes: list[Change] = []
        handler(self, event, changes)
        return changes

    def _anomaly(self, kind: str, event: AmiEvent, uniqueid: str | None, detail: str = "") -> None:
        self.anomaly_count += 1
        self.anomalies.append(Anomaly(kind, event.name, uniqueid, detail))

    def _new_channel(self, snap: ChannelSnapshot) -> Channel:
        return Channel(
            self.node,
            snap.uniqueid,
            snap.channel,
            snap.state,
            snap.caller_id_num,
            snap.caller_id_name,
            snap.connected_line_num,
            snap.connected_line_name,
            snap.linkedid,
            snap.context,
            snap.exten,
        )

    def _add(self, channel: Channel, changes: list[Change]) -> None:
        self._channels[channel.uniqueid] = channel
        self._calls.setdefault(channel.linkedid, set()).add(channel.uniqueid)
        self._pair_local(channel)
        changes.append(ChannelAdded(channel))

    def _replace(self, new: Channel, old: Channel, changes: list[Change]) -> None:
        fields = tuple(
            f.name
            for f in dataclasses.fields(Channel)
            if getattr(new, f.name) != getattr(old, f.name)
        )
        if not fields:
            return
        self._channels[new.uniqueid] = new
        if new.linkedid != old.linkedid:
            self._calls.setdefault(new.linkedid, set()).add(new.uniqueid)
            self._leave_call(old.linkedid, old.uniqueid, changes, merged_into=new.linkedid)
        if new.name != old.name:
            self._unpair_local(old)
            self._pair_local(new)
        changes.append(ChannelUpdated(new, old, fields))

    def _leave_call(
        self, linkedid: str, uniqueid: str, changes: list[Change], merged_into: str | None = None
    ) -> None:
        members = self._calls.get(linkedid)
        if members is None:
            return
        members.discard(uniqueid)
        if not members:
            del self._calls[linkedid]
            changes.append(CallEnded(self.node, linkedid, merged_into))

    def _pair_local(self, channel: Channel) -> None:
        parsed = _local_base(channel.name)
        if parsed is None:
            return
        base, half = parsed
        pair = self._local_pairs.setdefault(base, {})
        pair[half] = channel.uniqueid
        if 1 in pair and 2 in pair:
            self._local_peer[pair[1]] = pair[2]
            self._local_peer[pair[2]] = pair[1]

    def _unpair_local(self, channel: Channel) -> None:
        parsed = _local_base(channel.name)
        if parsed is not None:
            base, half = parsed
            pair = self._local_pairs.get(base)
            if pair is not None and pair.get(half) == channel.uniqueid:
                del pair[half]
                if not pair:
                    del self._local_pairs[base]
        other = self._local_peer.pop(channel.uniqueid, None)
        if other is not None and self._local_peer.get(other) == channel.uniqueid:
            del self._local_peer[other]

    def _touch(
        self, snap: ChannelSnapshot, event: AmiEvent, changes: list[Change]
    ) -> Channel | None:
        """Bring the channel in line with an event's snapshot of it.

        Returns None for a channel that has hung up (late event).
        """
        uniqueid = snap.uniqueid
        old = self._channels.get(uniqueid)
        if old is None:
            if uniqueid in self._gone:
                self._anomaly("event after hangup", event, uniqueid)
                return None
            self._anomaly("unknown channel", event, uniqueid, snap.channel)
            channel = self._new_channel(snap)
            self._add(channel, changes)
            return channel
        if (
            old.name == snap.channel
            and old.state == snap.state
            and old.linkedid == snap.linkedid
            and old.caller_id_num == snap.caller_id_num
            and old.caller_id_name == snap.caller_id_name
            and old.connected_line_num == snap.connected_line_num
            and old.connected_line_name == snap.connected_line_name
            and old.context == snap.context
            and old.exten == snap.exten
        ):
            return old
        new = dataclasses.replace(
            old,
            name=snap.channel,
            state=snap.state,
            caller_id_num=snap.caller_id_num,
            caller_id_name=snap.caller_id_name,
            connected_line_num=snap.connected_line_num,
            connected_line_name=snap.connected_line_name,
            linkedid=snap.linkedid,
            context=snap.context,
            exten=snap.exten,
        )
        self._replace(new, old, changes)
        return new

    def _set(self, uniqueid: str, changes: list[Change], **values: object) -> Channel | None:
        old = self._channels.get(uniqueid)
        if old is None:
            return None
        new = dataclasses.replace(old, **values)  # type: ignore[arg-type]
        self._replace(new, old, changes)
        return new

    # ------------------------------------------------------- event handlers
    def _on_snapshot(self, event: AmiEvent, changes: list[Change]) -> None:
        snap: ChannelSnapshot = event.snapshot  # type: ignore[attr-defined]
        self._touch(snap, event, changes)

    def _on_newchannel(self, event: Newchannel, changes: list[Change]) -> None:
        snap = event.snapshot
        if snap.uniqueid in self._gone:
            self._anomaly("event after hangup", event, snap.uniqueid)
            return
        if snap.uniqueid in self._channels:
            self._anomaly("duplicate Newchannel", event, snap.uniqueid, snap.channel)
            self._touch(snap, event, changes)
            return
        self._add(self._new_channel(snap), changes)

    def _on_hangup(self, event: Hangup, changes: list[Change]) -> None:
        uniqueid = event.uniqueid
        channel = self._channels.pop(uniqueid, None)
        if channel is None:
            if uniqueid in self._gone:
                self._anomaly("duplicate Hangup", event, uniqueid)
            else:
                self._anomaly("Hangup of unknown channel", event, uniqueid, event.channel)
                self._remember_gone(uniqueid)
            return
        self._remember_gone(uniqueid)
        if channel.bridge_id is not None:
            self._drop_member(channel.bridge_id, uniqueid)
        self._unpair_local(channel)
        changes.append(ChannelRemoved(channel, event.cause, event.cause_txt))
        self._leave_call(channel.linkedid, uniqueid, changes)

    def _remember_gone(self, uniqueid: str) -> None:
        self._gone[uniqueid] = None
        if len(self._gone) > GONE_MEMORY:
            self._gone.popitem(last=False)

    def _on_dial_begin(self, event: DialBegin, changes: list[Change]) -> None:
        caller = self._touch(event.caller, event, changes) if event.caller is not None else None
        dest = self._touch(event.dest, event, changes)
        if dest is None:
            return
        if caller is not None:
            self._set(dest.uniqueid, changes, dialed_by=caller.uniqueid)
        changes.append(DialStarted(self.node, caller.uniqueid if caller else None, dest.uniqueid))

    def _on_dial_state(self, event: DialState, changes: list[Change]) -> None:
        if event.caller is not None:
            self._touch(event.caller, event, changes)
        self._touch(event.dest, event, changes)

    def _on_dial_end(self, event: DialEnd, changes: list[Change]) -> None:
        caller = self._touch(event.caller, event, changes) if event.caller is not None else None
        dest = self._touch(event.dest, event, changes)
        if dest is None:
            return
        self._set(dest.uniqueid, changes, dial_status=event.dial_status)
        changes.append(
            DialEnded(
                self.node,
                caller.uniqueid if caller else event.caller_uniqueid,
                dest.uniqueid,
                event.dial_status,
            )
        )

    def _on_bridge_create(self, event: BridgeCreate, changes: list[Change]) -> None:
        snap = event.bridge
        if snap.uniqueid in self._bridges:
            self._anomaly("duplicate BridgeCreate", event, None, snap.uniqueid)
            return
        self._bridges[snap.uniqueid] = Bridge(snap.uniqueid, snap.type, snap.technology, ())

    def _on_bridge_enter(self, event: BridgeEnter, changes: list[Change]) -> None:
        channel = self._touch(event.snapshot, event, changes)
        if channel is None:
            return
        self._enter(event.bridge.uniqueid, channel, event, changes)

    def _enter(
        self, bridge_id: str, channel: Channel, event: AmiEvent, changes: list[Change]
    ) -> None:
        bridge = self._bridges.get(bridge_id)
        if bridge is None:
            self._anomaly("unknown bridge", event, channel.uniqueid, bridge_id)
            bridge = Bridge(bridge_id, "", "", ())
        if channel.bridge_id is not None and channel.bridge_id != bridge_id:
            self._anomaly("entered a bridge without leaving", event, channel.uniqueid, bridge_id)
            self._drop_member(channel.bridge_id, channel.uniqueid)
        if channel.uniqueid not in bridge.members:
            bridge = dataclasses.replace(bridge, members=(*bridge.members, channel.uniqueid))
        self._bridges[bridge_id] = bridge
        self._set(channel.uniqueid, changes, bridge_id=bridge_id)
        if len(bridge.members) == 2:
            self._bridged(bridge, changes)

    def _bridged(self, bridge: Bridge, changes: list[Change]) -> None:
        a, b = bridge.members
        latest = self._channels.get(b)
        call = latest.linkedid if latest is not None else b
        changes.append(Bridged(self.node, call, bridge.bridge_id, a, b))

    def _drop_member(
        self, bridge_id: str, uniqueid: str, changes: list[Change] | None = None
    ) -> None:
        bridge = self._bridges.get(bridge_id)
        if bridge is not None and uniqueid in bridge.members:
            members = tuple(m for m in bridge.members if m != uniqueid)
            bridge = dataclasses.replace(bridge, members=members)
            self._bridges[bridge_id] = bridge
            # Down from three to two (a Local pair optimised away, a swap in
            # a transfer): the two left are now talking.
            if changes is not None and len(members) == 2:
                self._bridged(bridge, changes)

    def _on_bridge_leave(self, event: BridgeLeave, changes: list[Change]) -> None:
        channel = self._touch(event.snapshot, event, changes)
        if channel is None:
            return
        bridge_id = event.bridge.uniqueid
        if channel.bridge_id != bridge_id:
            self._anomaly("left a bridge it was not in", event, channel.uniqueid, bridge_id)
        if channel.bridge_id == bridge_id:
            self._set(channel.uniqueid, changes, bridge_id=None)
        changes.append(Unbridged(self.node, bridge_id, channel.uniqueid))
        self._drop_member(bridge_id, channel.uniqueid, changes)

    def _on_bridge_destroy(self, event: BridgeDestroy, changes: list[Change]) -> None:
        bridge = self._bridges.pop(event.bridge.uniqueid, None)
        if bridge is None:
            self._anomaly("unknown bridge", event, None, event.bridge.uniqueid)
            return
        for member in bridge.members:
            self._anomaly("bridge destroyed with a member", event, member, bridge.bridge_id)
            channel = self._channels.get(member)
            if channel is not None and channel.bridge_id == bridge.bridge_id:
                self._set(member, changes, bridge_id=None)

    def _on_bridge_merge(self, event: BridgeMerge, changes: list[Change]) -> None:
        # Asterisk also reports each move as BridgeLeave/BridgeEnter; moving
        # whoever is still listed in the source keeps this idempotent.
        source = self._bridges.get(event.from_bridge.uniqueid)
        if source is None:
            return
        for member in source.members:
            channel = self._channels.get(member)
            if channel is not None:
                self._enter(event.to_bridge.uniqueid, channel, event, changes)

    def _on_blind_transfer(self, event: BlindTransfer, changes: list[Change]) -> None:
        target = f"{event.extension}@{event.context}" if event.extension else None
        changes.append(
            Transferred(
                self.node,
                "blind",
                event.success,
                event.transferer.uniqueid,
                event.transferee.uniqueid if event.transferee else None,
                target,
            )
        )

    def _on_attended_transfer(self, event: AttendedTransfer, changes: list[Change]) -> None:
        changes.append(
            Transferred(
                self.node,
                "attended",
                event.success,
                event.orig_transferer.uniqueid,
                event.transferee.uniqueid if event.transferee else None,
                event.transfer_target.uniqueid if event.transfer_target else None,
            )
        )

    def _on_local_bridge(self, event: LocalBridge, changes: list[Change]) -> None:
        one, two = event.local_one.uniqueid, event.local_two.uniqueid
        if one in self._channels and two in self._channels:
            self._local_peer[one] = two
            self._local_peer[two] = one
        else:
            self._anomaly("LocalBridge of unknown channels", event, one)

    def _on_local_optimization_end(
        self, event: LocalOptimizationEnd, changes: list[Change]
    ) -> None:
        if event.success:
            changes.append(
                LocalOptimized(self.node, event.local_one.uniqueid, event.local_two.uniqueid)
            )

    def _on_rename(self, event: Rename, changes: list[Change]) -> None:
        if event.uniqueid not in self._channels:
            self._anomaly("Rename of unknown channel", event, event.uniqueid, event.new_name)
            return
        self._set(event.uniqueid, changes, name=event.new_name)

    def _on_originate_response(self, event: OriginateResponse, changes: list[Change]) -> None:
        changes.append(
            OriginateResult(self.node, event.action_id, event.uniqueid, event.success, event.reason)
        )

    def _on_hold(self, event: Hold, changes: list[Change]) -> None:
        channel = self._touch(event.snapshot, event, changes)
        if channel is not None:
            self._set(channel.uniqueid, changes, on_hold=True)

    def _on_unhold(self, event: Unhold, changes: list[Change]) -> None:
        channel = self._touch(event.snapshot, event, changes)
        if channel is not None:
            self._set(channel.uniqueid, changes, on_hold=False)

    # -------------------------------------------------------------- resync
    def resync(
        self, channels: Iterable[CoreShowChannel], bridges: Iterable[BridgeListItem]
    ) -> list[Change]:
        """Replace the state with Asterisk's list after a reconnect.

        Reports what happened while we were blind: channels that vanished
        are removed (cause None), new ones added, changed ones updated, and
        calls with no live leg left ended.
        """
        changes: list[Change] = []
        truth = {c.uniqueid: c for c in channels}
        for uniqueid in [u for u in self._channels if u not in truth]:
            channel = self._channels.pop(uniqueid)
            self._remember_gone(uniqueid)
            self._unpair_local(channel)
            changes.append(ChannelRemoved(channel, None, "gone while the AMI link was down"))
            self._leave_call(channel.linkedid, uniqueid, changes)
        self._bridges = {
            b.bridge.uniqueid: Bridge(b.bridge.uniqueid, b.bridge.type, b.bridge.technology, ())
            for b in bridges
        }
        for uniqueid, item in truth.items():
            snap = item.snapshot
            old = self._channels.get(uniqueid)
            fresh = self._new_channel(snap)
            if old is None:
                self._gone.pop(uniqueid, None)
                fresh = dataclasses.replace(fresh, bridge_id=item.bridge_id)
                self._add(fresh, changes)
            else:
                fresh = dataclasses.replace(
                    fresh,
                    bridge_id=item.bridge_id,
                    dialed_by=old.dialed_by,
                    dial_status=old.dial_status,
                    on_hold=old.on_hold,
                )
                self._replace(fresh, old, changes)
            if item.bridge_id is not None:
                bridge = self._bridges.get(item.bridge_id) or Bridge(item.bridge_id, "", "", ())
                self._bridges[item.bridge_id] = dataclasses.replace(
                    bridge, members=(*bridge.members, uniqueid)
                )
        return changes
