"""`MemoryBackend`: the `eventwire.backend.Backend` protocol over the in-process broker,
built on `eventwire.backendkit`: settings, lifecycle and checks (`BaseBackend`), and group
members that share a channel's partitions through the kit's shard leases
(`ShardedSubscription`)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Mapping, Sequence
from typing import Any

from eventwire.backend import Inbound, MessageHandler, Origin, SubscriptionSpec, WireMessage
from eventwire.backendkit import BaseBackend, Shard, ShardedSubscription, ShardInbound
from eventwire.idempotency import IdempotencyStore

from eventwire_memory._broker import Group, MemoryBroker, get_broker, reset_brokers
from eventwire_memory._info import CAPABILITIES
from eventwire_memory._settings import MemorySettings

__all__ = ["MemoryBackend", "MemoryInbound", "MemorySubscription"]

#: A fetch loop (and a publisher) yields to the event loop after this many messages in a row.
_YIELD_EVERY = 64
#: Lease lifetime. Nothing here waits for one to expire: a member that leaves, aborts or
#: whose event loop ends is dropped from the group's leases at once (`GroupLeases.drop`).
_LEASE_TTL = 60.0

_member_ids = itertools.count(1)


class MemoryInbound(ShardInbound[int]):
    """A delivery from the in-memory broker (an `eventwire.backend.Inbound`); its position
    is the offset in its partition."""

    __slots__ = ()

    @property
    def partition(self) -> int:
        return self.shard.index

    @property
    def offset(self) -> int:
        return self.position

    @property
    def origin(self) -> Origin:
        """``<channel>/<index>``: the message's place in the channel's log."""
        subscription = self.subscription
        assert isinstance(subscription, MemorySubscription)
        seq, _ = subscription.group.message(self.shard.index, self.position)
        return Origin(position=f"{subscription.spec.channel}/{seq}")


class MemorySubscription(ShardedSubscription[int]):
    """One group member: first delivers again, in order, what earlier owners of a newly
    leased partition left unsettled (delivery count + 1), then new messages of its ready
    partitions, one partition after the other, at most ``max_in_flight`` unsettled.

    Shutdown follows `eventwire.backendkit.BaseSubscription`. An ack settles at once (the
    broker is in this process: nothing to batch). ``abort`` — or the event loop ending
    under a running member — drops the member from the group's leases at once, as a broker
    that sees a connection close would.
    """

    #: The group's position is set when the member subscribes: `start` need not wait for
    #: this member's share of partitions.
    balance_patience = 0.0
    #: Nothing to poll: a message, a shard change or room for more sets `changed`.
    poll_interval = None

    def __init__(self, spec: SubscriptionSpec, handler: MessageHandler, group: Group) -> None:
        super().__init__(
            spec,
            handler,
            store=group.leases,
            member_id=f"{spec.member_prefix}-{next(_member_ids)}",
            shards=len(group.cursors),
            ttl=_LEASE_TTL,
            scrub=str,
            backend="memory",
        )
        self.group = group
        self._turn = 0
        self._streak = 0
        # The fetch loop waits on `changed`: shards changed, a message came, an ack made room.
        group.leases.join(self.member_id, self.coordinator)

    async def _fetch(self) -> None:
        try:
            await super()._fetch()
        except asyncio.CancelledError:
            if self.running:  # cancelled from outside (e.g. the event loop ended): a crash
                self.abort_now()
            raise

    async def _recover(self, shard: Shard) -> list[MemoryInbound]:
        cursor = self.group.cursors[shard.index]
        offsets = self.mark_handed(shard, cursor.again(skip=self.handed(shard)))
        return [self._inbound(shard, offset, cursor.pending[offset]) for offset in offsets]

    async def _read(self, ready: list[Shard]) -> list[MemoryInbound]:
        """New messages while there is room, one from each ready partition in turn (going
        on from where the last read stopped)."""
        cursors, logs = self.group.cursors, self.group.channel.logs
        room = self.room
        batch: list[MemoryInbound] = []
        dry = 0  # partitions in a row with nothing new
        while len(batch) < room and dry < len(ready):
            shard = ready[self._turn % len(ready)]
            self._turn += 1
            offset = cursors[shard.index].take(len(logs[shard.index]))
            if offset is None:
                dry += 1
                continue
            dry = 0
            self.mark_handed(shard, (offset,))
            batch.append(self._inbound(shard, offset, 1))
        return batch

    def _inbound(self, shard: Shard, offset: int, deliveries: int) -> MemoryInbound:
        message = self.group.message(shard.index, offset)[1]
        return MemoryInbound(self, shard, offset, message, deliveries)

    async def deliver(self, inbound: Inbound) -> bool:
        assert isinstance(inbound, MemoryInbound)
        if inbound.position not in self.group.cursors[inbound.shard.index].pending:
            # Settled while the ones before it were handed: a late ack of a member that
            # held it before (its lease lost while its handler still ran).
            self._sent([(inbound.shard, inbound.position)])
            return True
        handed = await super().deliver(inbound)
        self._streak += 1
        if self._streak >= _YIELD_EVERY:
            self._streak = 0
            await asyncio.sleep(0)  # a broker round trip would let other tasks run
        return handed

    async def _give_up(self, inbounds: list[ShardInbound[int]]) -> None:
        """Taken, never handed out: count them as never delivered."""
        for inbound in inbounds:
            pending = self.group.cursors[inbound.shard.index].pending
            if inbound.position in pending:
                pending[inbound.position] -= 1

    # -- acknowledgements: settled at once ---------------------------------------------------

    def ack(self, shard: Shard, position: int) -> None:
        """Settled at once rather than queued for the batcher: the broker is in this process."""
        if self.accepting:
            batch = [(shard, position)]
            self._settle(batch)
            self._sent(batch)

    async def _send_acks(self, batch: list[tuple[Shard, int]]) -> None:
        self._settle(batch)

    def _settle(self, batch: list[tuple[Shard, int]]) -> None:
        for shard, offset in batch:
            self.group.cursors[shard.index].settle(offset)

    # -- shutdown --------------------------------------------------------------------------

    async def _release(self) -> None:
        await super()._release()
        self._forget()

    def _drop(self) -> None:
        super()._drop()
        self._forget()

    def _forget(self) -> None:
        self.group.leases.drop(self.member_id)


class MemoryBackend(BaseBackend[MemorySettings]):
    """A connection to a named in-process broker: ``memory://`` or ``memory://name``.

    Backends created with the same URL in one process share one broker, so two of them
    subscribed with the same group are two members of that group.
    """

    name = "memory"
    binding = "kafka"
    messaging_system = "eventwire"
    capabilities = CAPABILITIES

    def __init__(self, url: str = "memory://", options: Mapping[str, Any] | None = None) -> None:
        super().__init__(MemorySettings.parse(url, options))
        self.partitions = self.settings.partitions
        self.broker_name = self.settings.broker
        self._broker: MemoryBroker | None = None
        self._unyielded = 0

    @property
    def broker(self) -> MemoryBroker:
        """The broker this backend is connected to."""
        self.check_connected()
        assert self._broker is not None
        return self._broker

    async def _connect(self) -> None:
        self._broker = get_broker(self.broker_name)

    def shared_idempotency_store(self) -> IdempotencyStore:
        """The broker's store: every bus on this broker (in this process) shares it."""
        return get_broker(self.broker_name).idempotency

    async def publish(self, channel: str, messages: Sequence[WireMessage]) -> None:
        self.check_publish(channel, messages)
        self.broker.publish(channel, messages, self.partitions)
        self._unyielded += len(messages)
        if self._unyielded >= _YIELD_EVERY:
            self._unyielded = 0
            await asyncio.sleep(0)

    async def subscribe(
        self, spec: SubscriptionSpec, handler: MessageHandler
    ) -> MemorySubscription:
        self.check_subscribe(spec)
        group = self.broker.group(
            spec.channel,
            spec.group,
            from_beginning=spec.from_beginning,
            partitions=self.partitions,
        )
        return await self.started(MemorySubscription(spec, handler, group))

    async def browse(self, channel: str, limit: int = 1000) -> list[WireMessage]:
        self.check_channel(channel)
        return self.broker.browse(channel, limit)

    async def delete_group(self, channel: str, group: str) -> None:
        """Forget `group` on `channel` (its positions); members still joined keep theirs."""
        self.check_channel(channel)
        self.broker.delete_group(channel, group)

    async def lag(self, channel: str, group: str) -> int | None:
        """Messages of `channel` that `group` has not acked yet, delivered or not
        (`eventwire.backend.LagReporter`); ``None`` if the group never joined."""
        self.check_connected()
        self.check_channel(channel)
        state = self.broker.group_state(channel, group)
        return None if state is None else state.lag

    def reset_broker(self) -> None:
        """Forget this URL's broker (`eventwire.backend.BrokerReset`)."""
        reset_brokers([self.broker_name])

    async def delete_channel(self, channel: str) -> bool:
        """Forget `channel`, its messages and its groups (`eventwire.backend.ChannelDeleter`)."""
        self.check_channel(channel)
        return self.broker.delete_channel(channel)

    async def purge_channel(self, channel: str) -> int:
        """Remove the channel's retained messages (`eventwire.backend.ChannelPurger`)."""
        self.check_channel(channel)
        return self.broker.purge_channel(channel)
