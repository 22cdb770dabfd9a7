"""The in-process broker: partitioned retained logs, consumer groups, per-message acks.

Model (Kafka's, with per-message acknowledgements instead of offset commits):

- A *channel* is a retained log split into partitions. A message goes to partition
  ``crc32(key) % partitions``; a message without a key goes round-robin. Every message also
  gets a channel-wide sequence number, so `MemoryBroker.browse` can list the channel in
  publish order.
- A *group* keeps, per partition: the low watermark (every offset below it is acked), the
  acked offsets above it, the pending (delivered, unacked) offsets with the member holding
  each, how often each unacked offset was delivered, and the offsets waiting to be delivered
  again. A new group starts at the end of the log, or at offset 0 with ``from_beginning``;
  a group that exists keeps its position while it has no member (durable).
- *Members* join and leave a group; partitions are assigned round-robin over the members
  sorted by name and join order, and reassigned on every join, stop and leave. A member that
  receives a partition does not fetch from it while another member still holds pending
  deliveries there (cooperative revoke), so same-key messages never run on two members.
- When a member leaves, its pending deliveries become deliverable again and go before later
  offsets of their partition.

Retention is unbounded: every published message stays in memory for the life of the
broker (the process, or until `reset_brokers`). A broker is used from one event loop at a
time; it is not thread-safe.
"""

from __future__ import annotations

import asyncio
import dataclasses
import heapq
import itertools
import zlib
from collections.abc import Iterable, Sequence
from types import MappingProxyType

from eventwire.backend import Origin, WireMessage
from eventwire.idempotency import MemoryIdempotencyStore

__all__ = [
    "DEFAULT_BROKER",
    "DEFAULT_PARTITIONS",
    "GroupState",
    "Member",
    "MemoryBroker",
    "MemoryInbound",
    "get_broker",
    "reset_brokers",
]

DEFAULT_BROKER = "default"
DEFAULT_PARTITIONS = 8

_member_ids = itertools.count(1)


class _Partition:
    """One partition of a channel's log, as one group sees it."""

    __slots__ = (
        "acked",
        "counts",
        "holders",
        "index",
        "log",
        "low",
        "next",
        "owner",
        "pending",
        "redeliver",
    )

    def __init__(self, index: int, log: list[int], start: int) -> None:
        self.index = index
        #: Channel-wide sequence number of each offset (shared with the channel).
        self.log = log
        #: Next offset never delivered to this group.
        self.next = start
        #: Every offset below ``low`` is acked (or was before the group started).
        self.low = start
        #: Acked offsets at or above ``low``.
        self.acked: set[int] = set()
        #: Delivered, unacked offsets and the member holding each.
        self.pending: dict[int, Member] = {}
        #: How many pending offsets each member holds here.
        self.holders: dict[Member, int] = {}
        #: Deliveries so far of unacked offsets delivered more than once or released.
        self.counts: dict[int, int] = {}
        #: Released offsets to deliver again, lowest first (a heap).
        self.redeliver: list[int] = []
        #: The member this partition is assigned to.
        self.owner: Member | None = None


class _Channel:
    __slots__ = ("groups", "logs", "messages", "name", "partitions", "purged", "round_robin")

    def __init__(self, name: str, partitions: int) -> None:
        self.name = name
        self.partitions = partitions
        #: Every message in publish order; the index is its sequence number.
        self.messages: list[WireMessage] = []
        #: Per partition, the sequence number at each offset.
        self.logs: list[list[int]] = [[] for _ in range(partitions)]
        self.groups: dict[str, _Group] = {}
        self.round_robin = 0
        #: Messages below this sequence number were purged (no longer browsed or delivered).
        self.purged = 0

    def notify(self) -> None:
        for group in self.groups.values():
            for member in group.members:
                if member.waiting:
                    member.event.set()


class _Group:
    __slots__ = ("channel", "members", "name", "parts")

    def __init__(self, channel: _Channel, name: str, from_beginning: bool) -> None:
        self.channel = channel
        self.name = name
        self.parts = [
            _Partition(p, log, 0 if from_beginning else len(log))
            for p, log in enumerate(channel.logs)
        ]
        #: Members that joined and have not left (active or stopped), in join order.
        self.members: list[Member] = []

    def rebalance(self) -> None:
        active = sorted((m for m in self.members if m.active), key=lambda m: m.sort_key)
        for member in self.members:
            member.assigned = []
        for part in self.parts:
            owner = active[part.index % len(active)] if active else None
            part.owner = owner
            if owner is not None:
                owner.assigned.append(part)
        for member in active:
            member.round_robin = 0
            member.wake()


class Member:
    """One member of a consumer group, as the broker sees it.

    `take` hands out the next delivery from the member's partitions (round-robin over them)
    or ``None`` when there is nothing it may fetch now; ``event`` is set when that may have
    changed (a publish, an ack, a rebalance).
    """

    __slots__ = (
        "active",
        "assigned",
        "event",
        "gone",
        "group",
        "id",
        "in_flight",
        "max_in_flight",
        "round_robin",
        "sort_key",
        "waiting",
    )

    def __init__(self, group: _Group, member_prefix: str, max_in_flight: int) -> None:
        number = next(_member_ids)
        self.id = f"{member_prefix}-{number}"
        self.sort_key = (member_prefix, number)
        self.group = group
        self.max_in_flight = max_in_flight
        self.in_flight = 0
        self.assigned: list[_Partition] = []
        self.round_robin = 0
        #: Fetching: part of the assignment. False once stopped or gone.
        self.active = True
        #: Left the group: its acks are ignored.
        self.gone = False
        self.waiting = False
        self.event = asyncio.Event()

    def __repr__(self) -> str:
        return f"<Member {self.id} of {self.group.channel.name}/{self.group.name}>"

    @property
    def partitions(self) -> list[int]:
        """The partitions assigned to this member now."""
        return [part.index for part in self.assigned]

    def wake(self) -> None:
        if self.waiting:
            self.event.set()

    def take(self) -> MemoryInbound | None:
        """The next delivery for this member, or ``None`` if it may fetch nothing now."""
        if self.in_flight >= self.max_in_flight:
            return None
        parts = self.assigned
        count = len(parts)
        start = self.round_robin
        for step in range(count):
            index = start + step
            if index >= count:
                index -= count
            part = parts[index]
            holders = part.holders
            if holders and (len(holders) > 1 or self not in holders):
                continue  # another member still holds deliveries here (revoke under way)
            if part.redeliver:
                offset = heapq.heappop(part.redeliver)
                deliveries = part.counts[offset] + 1
                part.counts[offset] = deliveries
            else:
                offset = part.next
                if offset >= len(part.log):
                    continue
                part.next = offset + 1
                deliveries = 1
            part.pending[offset] = self
            holders[self] = holders.get(self, 0) + 1
            self.in_flight += 1
            self.round_robin = index + 1
            message = self.group.channel.messages[part.log[offset]]
            return MemoryInbound(message, deliveries, self, part, offset)
        return None

    def settle(self, part: _Partition, offset: int) -> None:
        """Ack `offset`; ignored unless this member holds it (it left, or acked already)."""
        pending = part.pending
        if pending.get(offset) is not self:
            return
        del pending[offset]
        holders = part.holders
        held = holders[self] - 1
        if held:
            holders[self] = held
        else:
            del holders[self]
            owner = part.owner
            if owner is not None and owner is not self:
                owner.wake()  # the partition's new owner may start on it now
        if part.counts:
            part.counts.pop(offset, None)
        if offset == part.low:
            low = offset + 1
            acked = part.acked
            if acked:
                while low in acked:
                    acked.remove(low)
                    low += 1
            part.low = low
        else:
            part.acked.add(offset)
        self.in_flight -= 1
        if self.in_flight == self.max_in_flight - 1:
            self.wake()

    def stop(self) -> None:
        """Stop fetching: give up the assignment, keep pending deliveries (they can be acked)."""
        if not self.active:
            return
        self.active = False
        self.group.rebalance()
        self.event.set()

    def leave(self) -> None:
        """Leave the group: pending deliveries become deliverable again to other members."""
        if self.gone:
            return
        self.active = False
        self.gone = True
        self.assigned = []
        group = self.group
        group.members.remove(self)
        for part in group.parts:
            if part.holders.pop(self, None) is None:
                continue
            released = [offset for offset, member in part.pending.items() if member is self]
            for offset in released:
                del part.pending[offset]
                part.counts.setdefault(offset, 1)
                heapq.heappush(part.redeliver, offset)
        self.in_flight = 0
        group.rebalance()
        self.event.set()


class MemoryInbound:
    """A delivery from the in-memory broker (an `eventwire.backend.Inbound`)."""

    __slots__ = ("_member", "_part", "delivery_count", "message", "offset")

    def __init__(
        self,
        message: WireMessage,
        delivery_count: int,
        member: Member,
        part: _Partition,
        offset: int,
    ) -> None:
        self.message = message
        self.delivery_count = delivery_count
        self.offset = offset
        self._member = member
        self._part = part

    @property
    def partition(self) -> int:
        return self._part.index

    @property
    def member(self) -> str:
        """The id of the member this was delivered to."""
        return self._member.id

    @property
    def origin(self) -> Origin:
        """``<channel>/<index>``: the message's place in the channel's log."""
        channel = self._member.group.channel
        return Origin(position=f"{channel.name}/{self._part.log[self.offset]}")

    async def ack(self) -> None:
        """Settle this delivery; idempotent, and ignored once its member has left."""
        self._member.settle(self._part, self.offset)

    def __repr__(self) -> str:
        return (
            f"<MemoryInbound partition={self.partition} offset={self.offset} "
            f"delivery_count={self.delivery_count} member={self.member}>"
        )


@dataclasses.dataclass(frozen=True, slots=True)
class GroupState:
    """A snapshot of one consumer group on one channel."""

    channel: str
    group: str
    members: tuple[str, ...]
    #: Deliveries handed out and not settled yet.
    pending: int
    #: Messages not acked yet, delivered or not.
    lag: int


class MemoryBroker:
    """A named broker living in this process. Get one with `get_broker`."""

    def __init__(self, name: str = DEFAULT_BROKER) -> None:
        self.name = name
        self._channels: dict[str, _Channel] = {}
        #: The idempotency store of every bus on this broker (`MemoryBackend`'s default).
        self.idempotency = MemoryIdempotencyStore()

    def __repr__(self) -> str:
        return f"<MemoryBroker {self.name!r} channels={len(self._channels)}>"

    def channel_names(self) -> list[str]:
        return sorted(self._channels)

    def _channel(self, name: str, partitions: int) -> _Channel:
        channel = self._channels.get(name)
        if channel is None:
            channel = self._channels[name] = _Channel(name, partitions)
        return channel

    def delete_channel(self, name: str) -> bool:
        """Forget `name`, its retained messages and its groups; ``False`` if it did not exist.

        Members still subscribed keep waiting on a channel that no longer receives messages.
        """
        return self._channels.pop(name, None) is not None

    def purge_channel(self, name: str) -> int:
        """Remove the retained messages of `name`, keeping the channel; returns how many.

        Groups skip the purged messages they had not received yet (as if acked); deliveries
        already made can still be acked.
        """
        found = self._channels.get(name)
        if found is None:
            return 0
        count = len(found.messages) - found.purged
        if not found.groups:
            del self._channels[name]  # recreated with the same partitions on next publish
            return count
        found.purged = len(found.messages)
        for group in found.groups.values():
            for part in group.parts:
                end = len(part.log)
                part.acked.update(range(part.next, end))
                part.next = end
                low = part.low
                while low in part.acked:
                    part.acked.remove(low)
                    low += 1
                part.low = low
        return count

    def delete_group(self, channel: str, group: str) -> bool:
        """Forget `group` on `channel` and its positions; ``False`` if it did not exist."""
        found = self._channels.get(channel)
        return found is not None and found.groups.pop(group, None) is not None

    def partitions(self, channel: str) -> int | None:
        """The partition count of `channel`, or ``None`` if it does not exist yet."""
        found = self._channels.get(channel)
        return None if found is None else found.partitions

    def publish(
        self, channel: str, messages: Iterable[WireMessage], partitions: int = DEFAULT_PARTITIONS
    ) -> None:
        """Append `messages` to `channel` (created with `partitions` if new) and wake members.

        Headers are copied into a read-only mapping, so the stored message cannot change.
        """
        target = self._channel(channel, partitions)
        log = target.messages
        logs = target.logs
        count = target.partitions
        crc32 = zlib.crc32
        for message in messages:
            key = message.key
            if key is None:
                partition = target.round_robin
                target.round_robin = (partition + 1) % count
            else:
                partition = crc32(key.encode()) % count
            body = message.body
            stored = WireMessage(
                body if type(body) is bytes else bytes(body),
                MappingProxyType(dict(message.headers)),
                key,
            )
            logs[partition].append(len(log))
            log.append(stored)
        target.notify()

    def browse(self, channel: str, limit: int = 1000) -> list[WireMessage]:
        """Up to `limit` retained messages of `channel`, oldest first, without consuming."""
        found = self._channels.get(channel)
        if found is None or limit <= 0:
            return []
        return found.messages[found.purged : found.purged + limit]

    def join(
        self,
        channel: str,
        group: str,
        *,
        member_prefix: str = "member",
        max_in_flight: int = 256,
        from_beginning: bool = False,
        partitions: int = DEFAULT_PARTITIONS,
    ) -> Member:
        """Add a member to `group` on `channel`, creating either if needed, and rebalance.

        ``from_beginning`` only matters when the group is new: an existing group keeps its
        position.
        """
        target = self._channel(channel, partitions)
        found = target.groups.get(group)
        if found is None:
            found = target.groups[group] = _Group(target, group, from_beginning)
        member = Member(found, member_prefix, max_in_flight)
        found.members.append(member)
        found.rebalance()
        return member

    def group_state(self, channel: str, group: str) -> GroupState | None:
        """A snapshot of `group` on `channel`, or ``None`` if it does not exist."""
        found = self._channels.get(channel)
        state = found.groups.get(group) if found is not None else None
        if state is None:
            return None
        parts = state.parts
        return GroupState(
            channel=channel,
            group=group,
            members=tuple(m.id for m in state.members),
            pending=sum(len(p.pending) for p in parts),
            lag=sum(len(p.log) - p.low - len(p.acked) for p in parts),
        )


_BROKERS: dict[str, MemoryBroker] = {}


def get_broker(name: str = DEFAULT_BROKER) -> MemoryBroker:
    """The process-wide broker called `name`, created on first use."""
    broker = _BROKERS.get(name)
    if broker is None:
        broker = _BROKERS[name] = MemoryBroker(name)
    return broker


def reset_brokers(names: Sequence[str] | None = None) -> None:
    """Forget the brokers called `names` (default: all), with everything they retained.

    The next `get_broker` creates an empty broker. Backends already connected keep the
    broker they had.
    """
    if names is None:
        _BROKERS.clear()
    else:
        for name in names:
            _BROKERS.pop(name, None)
