"""One group member: the kit's `ShardedSubscription` over per-shard AMQP channels.

A group's messages are split over ``shards`` quorum queues with single active consumer
(SAC); the kit's `ShardCoordinator` decides which member consumes which, over a
`RabbitLeaseStore` whose lease is a consumer on the shard's own channel (see
`eventwire_rabbit._leases`). A shard that must go to another member is drained first: its
messages are no longer handed to the handler (they are held, and handed over in order if
the shard is wanted again before it is given back) and the ones handed over are settled (or
``release_timeout`` passed); then its channel is closed and the broker returns what is left.

Safety does not depend on the membership view being right: SAC lets only one subscriber of
a shard receive at a time, so a member that thinks it owns a shard another one still holds
just waits behind it. A crashed member's connection drops: the broker returns its messages
at once and the shard goes to its next subscriber.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import time
import uuid

import aiormq
from aiormq.abc import DeliveredMessage
from eventwire.backend import MessageHandler, Origin, SubscriptionSpec
from eventwire.backendkit import Shard, ShardedSubscription, ShardInbound, ShardState

from eventwire_rabbit._channels import close_channel
from eventwire_rabbit._leases import Membership, RabbitLeaseStore
from eventwire_rabbit._topology import Connection, shard_queue
from eventwire_rabbit._wire import delivery_count, from_delivery, origin_of

__all__ = ["RabbitInbound", "RabbitSubscription"]

log = logging.getLogger("eventwire.rabbit")

#: Where a delivery is acked: the shard channel it came on and its delivery tag there.
Tag = tuple["ShardQueue", int]


class RabbitInbound(ShardInbound[Tag]):
    """A message from a shard queue (an `eventwire.backend.Inbound`); ``ack()`` queues it
    for the next batch (ignored once its channel is gone: the broker has it back then)."""

    __slots__ = ("properties",)

    def __init__(self, queue: ShardQueue, delivered: DeliveredMessage) -> None:
        tag = delivered.delivery.delivery_tag  # type: ignore[union-attr]
        assert tag is not None
        self.properties = delivered.header.properties
        count = delivery_count(self.properties.headers)
        super().__init__(queue.sub, queue.lease, (queue, tag), from_delivery(delivered), count)

    @property
    def origin(self) -> Origin:
        """No position (a queue keeps none); the AMQP message properties and timestamp."""
        return origin_of(self.properties)


class ShardQueue:
    """One shard queue, consumed on its own AMQP channel (the lease: see `_leases`)."""

    def __init__(self, sub: RabbitSubscription, index: int) -> None:
        self.sub = sub
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
        self._send_lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"<ShardQueue {self.queue} {self.state}>"

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
        inbound = RabbitInbound(self, delivered)
        self.pending[inbound.position[1]] = False
        self.sub.inbox.put_nowait(inbound)

    async def ack(self, tags: list[int]) -> None:
        """Settle `tags` and send their acks: one ``multiple`` ack for the settled prefix,
        single acks for the rest (in order, one sender at a time). Tags this channel no
        longer has are skipped: it closed, and the broker took them back."""
        pending = self.pending
        taken = [tag for tag in tags if pending.get(tag) is False]
        for tag in taken:
            pending[tag] = True
        self.forwarded -= len(taken)
        self.sub.coordinator.settled(self.lease, len(taken))
        async with self._send_lock:  # a release waits for this: the acks go out first
            channel = self.channel
            if channel is None or channel.is_closed:
                return
            done = [tag for tag, acked in pending.items() if acked]
            prefix = list(itertools.takewhile(lambda tag: pending[tag], pending))
            for tag in done:
                del pending[tag]
            try:
                if prefix:
                    await channel.basic_ack(prefix[-1], multiple=len(prefix) > 1, wait=False)
                for tag in done[len(prefix) :]:
                    await channel.basic_ack(tag, wait=False)
            except Exception as exc:  # the channel is gone: the broker requeued them
                log.debug("eventwire: acks on %s not sent (%s)", self.queue, exc)

    async def close(self) -> None:
        """Close the channel after the acks being sent: the rest goes back to the queue."""
        async with self._send_lock:
            self.state = "closed"
            await close_channel(self.channel)


class RabbitSubscription(ShardedSubscription[Tag]):
    """One group member on one channel."""

    def __init__(
        self, backend: Connection, spec: SubscriptionSpec, handler: MessageHandler
    ) -> None:
        self.backend = backend
        self.settings = settings = backend.settings
        self.store = RabbitLeaseStore(self)
        super().__init__(
            spec,
            handler,
            store=self.store,
            member_id=f"{spec.member_prefix}-{uuid.uuid4().hex[:12]}",
            shards=settings.shards,
            ttl=settings.lease_ttl,
            interval=settings.member_heartbeat,
            scrub=settings.scrub,
            backend="rabbit",
        )
        self.membership = Membership(self)
        self.inbox: asyncio.Queue[RabbitInbound | ShardQueue] = asyncio.Queue()
        self.queues: dict[int, ShardQueue] = {}
        total = settings.shards
        self.prefetch = settings.prefetch or max(16, math.ceil(2 * spec.max_in_flight / total))

    def __repr__(self) -> str:
        return (
            f"<RabbitSubscription {self.spec.channel}/{self.spec.group} {self.member_id} "
            f"shards={self.shards}>"
        )

    async def start(self) -> None:
        self.spawn(self._watch_drains(), "drains")
        await super().start()

    async def open_shard(self, amqp: aiormq.abc.AbstractConnection, index: int) -> None:
        """Consume shard `index` on a channel of its own (the lease store's acquire)."""
        queue = ShardQueue(self, index)
        self.queues[index] = queue
        await queue.open(amqp, self.prefetch)

    # -- the loops -------------------------------------------------------------------------

    async def _fetch(self) -> None:
        """Hand what the shard channels received to the handler, in order; a `ShardQueue`
        in the inbox asks for its held messages (the shard is wanted again)."""
        inbox, coordinator = self.inbox, self.coordinator
        while True:
            item = await inbox.get()
            if isinstance(item, ShardQueue):
                while item.held and item.lease.state is ShardState.READY and self.running:
                    await self._forward(item.held.pop(0))
                continue
            queue = item.position[0]
            if queue.state != "open" or not self.running:
                continue  # left unsettled: goes back to the queue when the channel closes
            lease = queue.lease
            if lease.state is ShardState.RECOVERING:  # the broker redelivers by itself
                coordinator.mark_recovered(lease, lease.epoch)
            if queue.held or lease.state is not ShardState.READY:
                queue.held.append(item)  # draining: handed over only if wanted again
                continue
            await self._forward(item)

    async def _forward(self, inbound: RabbitInbound) -> None:
        queue = inbound.position[0]
        if queue.state != "open":
            return
        queue.forwarded += 1
        self.coordinator.delivered(queue.lease)
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
            for index, queue in list(self.queues.items()):
                lease = queue.lease
                if lease.state is ShardState.RECOVERING:  # the broker redelivers by itself
                    self.coordinator.mark_recovered(lease, lease.epoch)
                if lease.state is not ShardState.DRAINING:
                    since.pop(index, None)
                    if queue.held and lease.state is ShardState.READY:
                        self.inbox.put_nowait(queue)
                    continue
                started = since.setdefault(index, now)
                if lease.in_flight and now - started > timeout:
                    log.warning(
                        "eventwire: %s still had %d unsettled message(s) after %.1fs; handing "
                        "the shard over anyway (they will be delivered again)",
                        queue.queue,
                        lease.in_flight,
                        timeout,
                    )
                    self.coordinator.settled(lease, lease.in_flight)

    # -- acks and shutdown -----------------------------------------------------------------

    async def _send_acks(self, batch: list[tuple[Shard, Tag]]) -> None:
        # `ShardQueue.ack` settles what it sends for the coordinator, a closed channel what
        # it had: nothing is marked handed (`mark_handed`) for the kit's `_sent` to settle.
        by_queue: dict[ShardQueue, list[int]] = {}
        for _, (queue, tag) in batch:
            by_queue.setdefault(queue, []).append(tag)
        await asyncio.gather(*(queue.ack(tags) for queue, tags in by_queue.items()))

    async def _release(self) -> None:
        """Give the leases back and close every shard channel: what is unsettled goes back
        to the queue at once."""
        await asyncio.gather(*self.store.opening, return_exceptions=True)
        await super()._release()
        await asyncio.gather(*(queue.close() for queue in self.queues.values()))
