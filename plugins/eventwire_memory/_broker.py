"""The in-process broker: partitioned retained logs and each group's position in them.

- A *channel* is a retained log split into partitions: a message goes to partition
  ``shard_of(key, partitions)``, a message without a key round-robin. Every message also
  gets a channel-wide sequence number, so `MemoryBroker.browse` lists it in publish order.
- A *group* keeps a `Cursor` per partition: the next offset never delivered, the low
  watermark (every offset below it is acked), the acked offsets above it and the pending
  (delivered, unacked) ones with their delivery counts. A new group starts at the end of the
  log, or at offset 0 with ``from_beginning``; it keeps its position while no member runs.
- Which member reads which partition is not the broker's business: the members share them
  with the kit's `ShardCoordinator`, over the group's `GroupLeases`.

Retention is unbounded: every published message stays in memory for the life of the
broker (the process, or until `reset_brokers`). A broker is used from one event loop at a
time; it is not thread-safe.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence, Set
from types import MappingProxyType

from eventwire.backend import WireMessage
from eventwire.backendkit import MemoryLeaseStore, ShardCoordinator, shard_of
from eventwire.idempotency import MemoryIdempotencyStore

__all__ = [
    "DEFAULT_BROKER",
    "DEFAULT_PARTITIONS",
    "Cursor",
    "Group",
    "GroupLeases",
    "GroupState",
    "MemoryBroker",
    "get_broker",
    "reset_brokers",
]

DEFAULT_BROKER = "default"
DEFAULT_PARTITIONS = 8


class Cursor:
    """One partition of a channel's log, as one group sees it."""

    __slots__ = ("acked", "low", "next", "pending")

    def __init__(self, start: int) -> None:
        self.next = start
        self.low = start
        self.acked: set[int] = set()
        #: Delivered, unacked offsets and how often each was delivered.
        self.pending: dict[int, int] = {}

    def take(self, end: int) -> int | None:
        """The next offset never delivered (now pending), or ``None`` at `end`."""
        offset = self.next
        if offset >= end:
            return None
        self.next = offset + 1
        self.pending[offset] = 1
        return offset

    def again(self, skip: Set[int] = frozenset()) -> list[int]:
        """Every pending offset but those in `skip`, lowest first, each counted delivered
        once more."""
        offsets = sorted(offset for offset in self.pending if offset not in skip)
        for offset in offsets:
            self.pending[offset] += 1
        return offsets

    def settle(self, offset: int) -> None:
        """Ack `offset` (ignored unless pending)."""
        if self.pending.pop(offset, None) is not None:
            self.acked.add(offset)
            self._advance()

    def skip_to(self, end: int) -> None:
        """Count every offset not delivered yet, up to `end`, as acked (a purge)."""
        self.acked.update(range(self.next, end))
        self.next = max(self.next, end)
        self._advance()

    def _advance(self) -> None:
        while self.low in self.acked:
            self.acked.remove(self.low)
            self.low += 1


class GroupLeases(MemoryLeaseStore):
    """A group's shard leases and its members' coordinators, in this process. A member
    joining or leaving, or a lease given back, wakes the other members' coordinators at once:
    no heartbeat to wait for. A member can also be dropped at once (`drop`): a crash here is
    seen as it happens."""

    def __init__(self) -> None:
        super().__init__()
        #: member id → its coordinator
        self.coordinators: dict[str, ShardCoordinator] = {}

    async def heartbeat(self, member: str, ttl: float, *, alive: bool) -> Sequence[str]:
        before = set(self.members)
        live = await super().heartbeat(member, ttl, alive=alive)
        if set(live) != before:
            self._wake_others(member)
        return live

    async def release(self, member: str, shards: Sequence[int]) -> None:
        await super().release(member, shards)
        self._wake_others(member)

    def join(self, member: str, coordinator: ShardCoordinator) -> None:
        """Wake `coordinator` when the group changes or a message arrives."""
        self.coordinators[member] = coordinator

    def drop(self, member: str) -> None:
        """Forget `member` and its leases now."""
        self.members.pop(member, None)
        self.coordinators.pop(member, None)
        for shard, (holder, _) in list(self.holders.items()):
            if holder == member:
                del self.holders[shard]
        self._wake_others(member)

    def wake_fetchers(self) -> None:
        """Messages arrived: every member's fetch loop (waiting on `changed`) reads again."""
        for coordinator in self.coordinators.values():
            coordinator.changed.set()

    def _wake_others(self, member: str) -> None:
        for name, coordinator in list(self.coordinators.items()):
            if name != member:
                coordinator.wake()


class Group:
    """A consumer group on a channel: its cursors and its leases."""

    def __init__(self, channel: _Channel, name: str, from_beginning: bool) -> None:
        self.channel = channel
        self.name = name
        self.cursors = [Cursor(0 if from_beginning else len(log)) for log in channel.logs]
        self.leases = GroupLeases()

    def message(self, partition: int, offset: int) -> tuple[int, WireMessage]:
        """The sequence number and message at `offset` of `partition`."""
        seq = self.channel.logs[partition][offset]
        return seq, self.channel.messages[seq]


class _Channel:
    __slots__ = ("groups", "logs", "messages", "name", "partitions", "purged", "round_robin")

    def __init__(self, name: str, partitions: int) -> None:
        self.name = name
        self.partitions = partitions
        #: Every message in publish order; the index is its sequence number.
        self.messages: list[WireMessage] = []
        #: Per partition, the sequence number at each offset.
        self.logs: list[list[int]] = [[] for _ in range(partitions)]
        self.groups: dict[str, Group] = {}
        self.round_robin = 0
        #: Messages below this sequence number were purged (no longer browsed or delivered).
        self.purged = 0


@dataclasses.dataclass(frozen=True, slots=True)
class GroupState:
    """A snapshot of one consumer group on one channel."""

    channel: str
    group: str
    #: The live members, sorted.
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
            for cursor, log in zip(group.cursors, found.logs, strict=True):
                cursor.skip_to(len(log))
        return count

    def delete_group(self, channel: str, group: str) -> bool:
        """Forget `group` on `channel` and its positions; ``False`` if it did not exist."""
        found = self._channels.get(channel)
        return found is not None and found.groups.pop(group, None) is not None

    def publish(
        self, channel: str, messages: Iterable[WireMessage], partitions: int = DEFAULT_PARTITIONS
    ) -> None:
        """Append `messages` to `channel` (created with `partitions` if new) and wake members.

        Headers are copied into a read-only mapping, so the stored message cannot change.
        """
        target = self._channel(channel, partitions)
        log = target.messages
        count = target.partitions
        for message in messages:
            key = message.key
            if key is None:
                partition = target.round_robin
                target.round_robin = (partition + 1) % count
            else:
                partition = shard_of(key, count)
            body = message.body
            stored = WireMessage(
                body if type(body) is bytes else bytes(body),
                MappingProxyType(dict(message.headers)),
                key,
            )
            target.logs[partition].append(len(log))
            log.append(stored)
        for group in target.groups.values():
            group.leases.wake_fetchers()

    def browse(self, channel: str, limit: int = 1000) -> list[WireMessage]:
        """Up to `limit` retained messages of `channel`, oldest first, without consuming."""
        found = self._channels.get(channel)
        if found is None or limit <= 0:
            return []
        return found.messages[found.purged : found.purged + limit]

    def group(
        self,
        channel: str,
        group: str,
        *,
        from_beginning: bool = False,
        partitions: int = DEFAULT_PARTITIONS,
    ) -> Group:
        """`group` on `channel`, creating either if needed. ``from_beginning`` only matters
        when the group is new: an existing group keeps its position."""
        target = self._channel(channel, partitions)
        found = target.groups.get(group)
        if found is None:
            found = target.groups[group] = Group(target, group, from_beginning)
        return found

    def group_state(self, channel: str, group: str) -> GroupState | None:
        """A snapshot of `group` on `channel`, or ``None`` if it does not exist."""
        found = self._channels.get(channel)
        state = found.groups.get(group) if found is not None else None
        if state is None:
            return None
        cursors = zip(state.cursors, state.channel.logs, strict=True)
        return GroupState(
            channel=channel,
            group=group,
            members=tuple(sorted(state.leases.members)),
            pending=sum(len(c.pending) for c in state.cursors),
            lag=sum(len(log) - c.low - len(c.acked) for c, log in cursors),
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
