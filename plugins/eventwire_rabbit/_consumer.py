"""One group member: the kit's shard coordinator, per-shard AMQP channels, dispatch, acks.

A group's messages are split over ``shards`` quorum queues with single active consumer
(SAC). Which member consumes which shard is decided by the kit's `ShardCoordinator` over a
`RabbitLeaseStore` (see `eventwire_rabbit._leases`): members learn of each other through
heartbeats, and a lease is a consumer on the shard's queue, on its own AMQP channel, so
giving a shard up is *closing that channel*: the broker returns the channel's unsettled
messages to the head of the queue and activates the next subscriber in the same step. A
shard that must go to another member is drained first: its messages are no longer handed to
the handler (they are held, and handed over in order if the shard is wanted again before it
is given back) and the ones handed over are settled (or ``release_timeout`` passed).

Safety does not depend on the membership view being right: SAC lets only one subscriber of
a shard receive at a time, so a member that thinks it owns a shard another one still holds
just waits behind it. A crashed member's connection drops: the broker returns its messages
at once and the shard goes to its next subscriber; the survivors subscribe to the dead
member's shards once its heartbeats stop for ``member_lease`` seconds.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from typing import Any

import aiormq
from aiormq.abc import DeliveredMessage
from eventwire.backend import MessageHandler, Origin, SubscriptionSpec, WireMessage
from eventwire.backendkit import BaseSubscription, ShardCoordinator, ShardState, SubscriptionState
from pamqp.commands import Basic

from eventwire_rabbit._leases import Membership, RabbitLeaseStore
from eventwire_rabbit._settings import RabbitSettings
from eventwire_rabbit._topology import Connection, close_channel, shard_queue
from eventwire_rabbit._wire import delivery_count, from_delivery, origin_of

__all__ = ["RabbitInbound", "RabbitSubscription"]

log = logging.getLogger("eventwire.rabbit")
#: Ack flushes in flight (a reference keeps them from being collected mid-way).
_background: set[asyncio.Future[None]] = set()


class RabbitInbound:
    """A message from a shard queue (an `eventwire.backend.Inbound`)."""

    __slots__ = ("_properties", "_shard", "_tag", "delivery_count", "message")

    def __init__(
        self,
        message: WireMessage,
        count: int,
        shard: _Shard,
        tag: int,
        properties: Basic.Properties | None = None,
    ) -> None:
        self.message = message
        self.delivery_count = count
        self._shard = shard
        self._tag = tag
        self._properties = properties

    @property
    def origin(self) -> Origin:
        """No position (a queue keeps none); the AMQP message properties and timestamp."""
        return origin_of(self._properties)

    async def ack(self) -> None:
        """Settle: the ack is sent with the next batch (a no-op once its channel is gone:
        the broker has returned the message for redelivery then)."""
        self._shard.ack(self._tag)

    def __repr__(self) -> str:
        return (
            f"<RabbitInbound {self._shard.queue} tag={self._tag} "
            f"delivery_count={self.delivery_count}>"
        )


class _Resume:
    """Hand a shard's held messages over (it is wanted again before it was given back)."""

    __slots__ = ("shard",)

    def __init__(self, shard: _Shard) -> None:
        self.shard = shard


class _Shard:
    """One shard queue, consumed on its own AMQP channel."""

    def __init__(self, sub: RabbitSubscription, index: int) -> None:
        self.sub = sub
        self.index = index
        self.lease = sub.coordinator.shards[index]
        self.queue = shard_queue(sub.spec.channel, sub.spec.group, index)
        self.channel: aiormq.abc.AbstractChannel | None = None
        #: new -> open -> closed
        self.state = "new"
        #: Delivery tags in delivery order -> acked by the pipeline (ack not sent yet).
        self.pending: dict[int, bool] = {}
        #: Handed to the handler and not acked yet.
        self.forwarded = 0
        #: Received while draining, in order: handed over if the shard is wanted again.
        self.held: list[RabbitInbound] = []
        self._flush_scheduled = False
        self._send_lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"<_Shard {self.queue} {self.state}>"

    async def open(self, amqp: aiormq.abc.AbstractConnection, prefetch: int) -> None:
        channel = await amqp.channel()
        self.channel = channel
        try:
            await channel.basic_qos(prefetch_count=prefetch)
            # Open before consuming: deliveries may run before basic_consume returns.
            self.state = "open"
            await channel.basic_consume(self.queue, self._on_message)
        except BaseException:
            self.state = "closed"
            await close_channel(channel)
            raise
        channel.closing.add_done_callback(self._on_closed)

    def _on_closed(self, _: object) -> None:
        lost = self.state in ("new", "open")
        self.state = "closed"
        self.pending.clear()
        self.held.clear()
        # What was handed over can no longer be acked here: the broker has it back.
        self.sub.coordinator.settled(self.lease, self.forwarded)
        self.forwarded = 0
        if lost and self.sub.running:
            self.sub.coordinator.wake()  # connection lost, queue deleted: take it again

    async def _on_message(self, delivered: DeliveredMessage) -> None:
        if self.state == "closed":
            return
        tag = delivered.delivery.delivery_tag  # type: ignore[union-attr]
        assert tag is not None
        self.pending[tag] = False
        properties = delivered.header.properties
        self.sub.inbox.put_nowait(
            RabbitInbound(
                from_delivery(delivered),
                delivery_count(properties.headers),
                self,
                tag,
                properties,
            )
        )

    def ack(self, tag: int) -> None:
        pending = self.pending
        if pending.get(tag) is not False:
            return  # unknown (channel gone) or acked already
        pending[tag] = True
        self.forwarded -= 1
        self.sub.coordinator.settled(self.lease)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._start_flush)

    def _start_flush(self) -> None:
        self._flush_scheduled = False
        if self.pending:
            task = asyncio.ensure_future(self.flush())
            _background.add(task)
            task.add_done_callback(_background.discard)

    async def flush(self) -> None:
        """Send the acks the pipeline made: one ``multiple`` ack for the settled prefix,
        single acks for the rest (in order, one sender at a time)."""
        async with self._send_lock:
            channel = self.channel
            pending = self.pending
            if channel is None or channel.is_closed or self.sub.aborted:
                return
            prefix: list[int] = []
            for tag, done in pending.items():
                if not done:
                    break
                prefix.append(tag)
            for tag in prefix:
                del pending[tag]
            singles = [tag for tag, done in pending.items() if done]
            for tag in singles:
                del pending[tag]
            try:
                if prefix:
                    await channel.basic_ack(prefix[-1], multiple=len(prefix) > 1, wait=False)
                for tag in singles:
                    await channel.basic_ack(tag, wait=False)
            except Exception as exc:  # the channel is gone: the broker requeued them
                log.debug("eventwire: acks on %s not sent (%s)", self.queue, exc)

    async def close(self) -> None:
        """Send what was acked, then close the channel (the rest goes back to the queue)."""
        if self.channel is not None and not self.channel.is_closed and not self.sub.aborted:
            await self.flush()
        self.state = "closed"
        await close_channel(self.channel)


class RabbitSubscription(BaseSubscription):
    """One group member on one channel."""

    def __init__(
        self,
        backend: Connection,
        settings: RabbitSettings,
        spec: SubscriptionSpec,
        handler: MessageHandler,
    ) -> None:
        super().__init__(spec, handler)
        self.backend = backend
        self.settings = settings
        self.member_id = f"{spec.member_prefix}-{uuid.uuid4().hex[:12]}"
        self.inbox: asyncio.Queue[RabbitInbound | _Resume] = asyncio.Queue()
        self.shards: dict[int, _Shard] = {}
        self.membership = Membership(self)
        self.store = RabbitLeaseStore(self)
        self.coordinator: ShardCoordinator = ShardCoordinator(
            self.store,
            self.member_id,
            settings.shards,
            ttl=settings.member_lease,
            interval=settings.member_heartbeat,
            scrub=settings.scrub,
        )
        total = settings.shards
        self.prefetch = settings.prefetch or max(16, math.ceil(2 * spec.max_in_flight / total))
        self._dispatcher: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return (
            f"<RabbitSubscription {self.spec.channel}/{self.spec.group} {self.member_id} "
            f"shards={self.owned}>"
        )

    @property
    def aborted(self) -> bool:
        return self.state is SubscriptionState.ABORTED

    @property
    def owned(self) -> list[int]:
        """The shards this member consumes now."""
        return sorted(i for i, s in self.shards.items() if s.state == "open")

    def start(self) -> None:
        self._dispatcher = self.spawn(self._dispatch(), "dispatch")
        self.spawn(self.coordinator.run(), "shards")
        self.spawn(self._watch_drains(), "drains")

    async def open_shard(self, amqp: aiormq.abc.AbstractConnection, index: int) -> None:
        """Consume shard `index` on a channel of its own (the lease store's acquire)."""
        shard = _Shard(self, index)
        self.shards[index] = shard
        await shard.open(amqp, self.prefetch)

    # -- the loops -------------------------------------------------------------------------

    async def _dispatch(self) -> None:
        inbox, coordinator = self.inbox, self.coordinator
        while True:
            item = await inbox.get()
            if isinstance(item, _Resume):
                shard = item.shard
                while shard.held and shard.lease.state is ShardState.READY and self.running:
                    await self._forward(shard.held.pop(0))
                continue
            shard = item._shard
            if shard.state != "open" or not self.running:
                continue  # left unsettled: goes back to the queue when the channel closes
            lease = shard.lease
            if lease.state is ShardState.RECOVERING:  # the broker redelivers by itself
                coordinator.mark_recovered(lease, lease.epoch)
            if shard.held or lease.state is not ShardState.READY:
                shard.held.append(item)  # draining: handed over only if wanted again
                continue
            await self._forward(item)

    async def _forward(self, inbound: RabbitInbound) -> None:
        shard = inbound._shard
        if shard.state != "open":
            return
        shard.forwarded += 1
        self.coordinator.delivered(shard.lease)
        await self.deliver(inbound)

    async def _watch_drains(self) -> None:
        """Hand held messages over once their shard is wanted again, and give a draining
        shard up after ``release_timeout`` even if handlers still run (they will be
        delivered again elsewhere)."""
        since: dict[int, float] = {}
        timeout = self.settings.release_timeout
        while True:
            await asyncio.sleep(min(self.settings.member_heartbeat, timeout / 4))
            now = time.monotonic()
            for index, shard in list(self.shards.items()):
                lease = shard.lease
                if lease.state is ShardState.RECOVERING:  # the broker redelivers by itself
                    self.coordinator.mark_recovered(lease, lease.epoch)
                if lease.state is not ShardState.DRAINING:
                    since.pop(index, None)
                    if shard.held and lease.state is ShardState.READY:
                        self.inbox.put_nowait(_Resume(shard))
                    continue
                started = since.setdefault(index, now)
                if lease.in_flight and now - started > timeout:
                    log.warning(
                        "eventwire: %s still had %d unsettled message(s) after %.1fs; handing "
                        "the shard over anyway (they will be delivered again)",
                        shard.queue,
                        lease.in_flight,
                        timeout,
                    )
                    self.coordinator.settled(lease, lease.in_flight)

    # -- the kit's shutdown contract -------------------------------------------------------

    async def _stop_fetching(self) -> None:
        """Stop handing out messages and leave the membership at the next heartbeat: the
        shards are given back as what was handed out is settled."""
        self.coordinator.stop()
        if self._dispatcher is not None:
            self._dispatcher.cancel()
            await asyncio.gather(self._dispatcher, return_exceptions=True)

    async def _flush(self) -> None:
        await asyncio.gather(*(shard.flush() for shard in self.shards.values()))

    async def _release(self) -> None:
        """Close every shard channel: what is unsettled goes back to the queue at once."""
        await asyncio.gather(*self.store.opening, return_exceptions=True)
        await self.coordinator.leave()
        await asyncio.gather(*(shard.close() for shard in self.shards.values()))


def describe(sub: RabbitSubscription) -> dict[str, Any]:
    """A snapshot for diagnostics and tests."""
    return {
        "member": sub.member_id,
        "view": list(sub.coordinator.members),
        "owned": sub.owned,
        "prefetch": sub.prefetch,
    }
