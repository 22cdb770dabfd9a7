"""One group member: shard ownership, per-shard AMQP channels, dispatch and batched acks.

A group's messages are split over ``shards`` quorum queues with single active consumer
(SAC). A member consumes only the shards it owns: the live members of the group, sorted by
id, own the shards round-robin. Members learn of each other through heartbeats
(`_Membership`). Each owned shard is consumed on its own AMQP channel, so giving a shard up
is *closing that channel*: the broker returns the channel's unsettled messages to the head
of the queue and activates the next subscriber in the same step, so a key never runs on two
members at once and order is kept. Before closing, the member stops handing that shard's
messages to the handler and lets the ones handed over finish (``release_timeout``).

Safety does not depend on the membership view being right: SAC lets only one subscriber of
a shard receive at a time, so a member that thinks it owns a shard another one still holds
just waits behind it. A crashed member's connection drops: the broker returns its messages
at once and the shard goes to its next subscriber; the survivors subscribe to the dead
member's shards once its heartbeats stop for ``member_lease`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
import uuid
from typing import TYPE_CHECKING, Any, cast

import aiormq
from aiormq.abc import DeliveredMessage
from eventwire.backend import MessageHandler, SubscriptionSpec, WireMessage
from pamqp.commands import Basic

from eventwire_rabbit._topology import MEMBERS_EXCHANGE, shard_queue
from eventwire_rabbit._url import RabbitSettings
from eventwire_rabbit._wire import delivery_count, from_delivery

if TYPE_CHECKING:
    from eventwire_rabbit._backend import RabbitBackend

__all__ = ["RabbitDelivery", "RabbitSubscription"]

log = logging.getLogger("eventwire.rabbit")
#: Ack flushes in flight (a reference keeps them from being collected mid-way).
_background: set[asyncio.Future[None]] = set()


class RabbitDelivery:
    """A delivery from a shard queue (an `eventwire.backend.Inbound`)."""

    __slots__ = ("_shard", "_tag", "delivery_count", "message")

    def __init__(self, message: WireMessage, count: int, shard: _Shard, tag: int) -> None:
        self.message = message
        self.delivery_count = count
        self._shard = shard
        self._tag = tag

    async def ack(self) -> None:
        """Settle: the ack is sent with the next batch (a no-op once its channel is gone:
        the broker has returned the message for redelivery then)."""
        self._shard.ack(self._tag)

    def __repr__(self) -> str:
        return (
            f"<RabbitDelivery {self._shard.queue} tag={self._tag} "
            f"delivery_count={self.delivery_count}>"
        )


async def _close_quietly(channel: aiormq.abc.AbstractChannel | None) -> None:
    if channel is None or channel.is_closed:
        return
    with contextlib.suppress(Exception):
        await asyncio.wait_for(channel.close(), 5)


class _Shard:
    """One shard queue, consumed on its own AMQP channel."""

    def __init__(self, sub: RabbitSubscription, index: int) -> None:
        self.sub = sub
        self.index = index
        self.queue = shard_queue(sub.spec.channel, sub.spec.group, index)
        self.channel: aiormq.abc.AbstractChannel | None = None
        #: new -> open -> releasing -> closed
        self.state = "new"
        #: Delivery tags in delivery order -> acked by the pipeline (ack not sent yet).
        self.pending: dict[int, bool] = {}
        #: Handed to the handler and not acked yet.
        self.forwarded = 0
        self.idle = asyncio.Event()
        self.idle.set()
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
            await _close_quietly(channel)
            raise
        channel.closing.add_done_callback(self._on_closed)

    def _on_closed(self, _: object) -> None:
        lost = self.state in ("new", "open")
        self.state = "closed"
        self.pending.clear()
        self.forwarded = 0
        self.idle.set()
        if lost:
            self.sub.shard_lost(self)

    async def _on_message(self, delivered: DeliveredMessage) -> None:
        if self.state == "closed":
            return
        tag = delivered.delivery.delivery_tag  # type: ignore[union-attr]
        assert tag is not None
        self.pending[tag] = False
        headers = delivered.header.properties.headers
        self.sub.inbox.put_nowait(
            RabbitDelivery(from_delivery(delivered), delivery_count(headers), self, tag)
        )

    def forward(self) -> None:
        self.forwarded += 1
        self.idle.clear()

    def ack(self, tag: int) -> None:
        pending = self.pending
        if pending.get(tag) is not False:
            return  # unknown (channel gone) or acked already
        pending[tag] = True
        self.forwarded -= 1
        if self.forwarded <= 0:
            self.idle.set()
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

    async def release(self, timeout: float) -> None:
        """Give the shard up: stop handing it out, let handed-out messages finish, close."""
        if self.state != "open":
            return
        self.state = "releasing"
        try:
            await asyncio.wait_for(self.idle.wait(), timeout)
        except TimeoutError:
            log.warning(
                "eventwire: %s still had %d unsettled message(s) after %.1fs; handing the "
                "shard over anyway (they will be delivered again)",
                self.queue,
                self.forwarded,
                timeout,
            )
        await self.close()

    async def close(self) -> None:
        """Send what was acked, then close the channel (the rest goes back to the queue)."""
        if self.channel is not None and not self.channel.is_closed and not self.sub.aborted:
            await self.flush()
        self.state = "closed"
        await _close_quietly(self.channel)


class _Membership:
    """Heartbeats between the members of one group; the live view of member ids."""

    def __init__(self, sub: RabbitSubscription) -> None:
        self.sub = sub
        self.routing_key = f"{sub.spec.channel}:{sub.spec.group}"
        self.seen: dict[str, float] = {}
        self.channel: aiormq.Channel | None = None
        self.view: tuple[str, ...] = (sub.member_id,)

    async def open(self, amqp: aiormq.abc.AbstractConnection) -> None:
        channel = cast(aiormq.Channel, await amqp.channel())
        self.channel = channel
        await channel.exchange_declare(MEMBERS_EXCHANGE, exchange_type="topic", durable=True)
        declared = await channel.queue_declare("", exclusive=True, auto_delete=True)
        queue = declared.queue
        assert queue is not None
        await channel.queue_bind(queue, MEMBERS_EXCHANGE, routing_key=self.routing_key)
        await channel.basic_consume(queue, self._on_message, no_ack=True)
        channel.closing.add_done_callback(self._on_closed)
        await self.send("hello")

    def _on_closed(self, _: object) -> None:
        if not self.sub.stopping:
            self.sub.wake()

    def is_open(self) -> bool:
        return self.channel is not None and not self.channel.is_closed

    async def send(self, kind: str) -> None:
        channel = self.channel
        if channel is None or channel.is_closed:
            return
        body = json.dumps({"member": self.sub.member_id, "kind": kind}).encode()
        with contextlib.suppress(Exception):
            await channel.basic_publish(
                body,
                exchange=MEMBERS_EXCHANGE,
                routing_key=self.routing_key,
                properties=Basic.Properties(delivery_mode=1, expiration="10000"),
                wait=False,
            )

    async def _on_message(self, delivered: DeliveredMessage) -> None:
        try:
            data = json.loads(delivered.body)
            member = str(data["member"])
            kind = str(data["kind"])
        except (ValueError, KeyError, TypeError):
            return
        if member == self.sub.member_id:
            return
        if kind == "bye":
            self.seen.pop(member, None)
        else:
            fresh = member not in self.seen
            self.seen[member] = time.monotonic()
            if kind == "hello":
                await self.send("beat")
            if not fresh:
                return
        self.refresh()

    def refresh(self) -> None:
        """Drop members whose lease ran out; tell the subscription when the view changed."""
        now = time.monotonic()
        lease = self.sub.settings.member_lease
        for member, seen in list(self.seen.items()):
            if now - seen > lease:
                del self.seen[member]
        view = tuple(sorted({self.sub.member_id, *self.seen}))
        if view != self.view:
            self.view = view
            self.sub.wake()

    async def close(self, farewell: bool) -> None:
        if farewell:
            await self.send("bye")
        await _close_quietly(self.channel)
        self.channel = None


class RabbitSubscription:
    """One group member on one channel."""

    def __init__(
        self,
        backend: RabbitBackend,
        settings: RabbitSettings,
        spec: SubscriptionSpec,
        handler: MessageHandler,
    ) -> None:
        self.backend = backend
        self.settings = settings
        self.spec = spec
        self.handler = handler
        self.member_id = f"{spec.member_prefix}-{uuid.uuid4().hex[:12]}"
        self.inbox: asyncio.Queue[RabbitDelivery] = asyncio.Queue()
        self.shards: dict[int, _Shard] = {}
        self.membership = _Membership(self)
        self.stopping = False
        self.aborted = False
        self._dirty = asyncio.Event()
        self._releases: set[asyncio.Task[None]] = set()
        total = settings.shards
        self.prefetch = settings.prefetch or max(16, math.ceil(2 * spec.max_in_flight / total))
        self._tasks: list[asyncio.Task[None]] = []

    def __repr__(self) -> str:
        owned = sorted(i for i, s in self.shards.items() if s.state == "open")
        return (
            f"<RabbitSubscription {self.spec.channel}/{self.spec.group} {self.member_id} "
            f"shards={owned}>"
        )

    @property
    def owned(self) -> list[int]:
        """The shards this member consumes now."""
        return sorted(i for i, s in self.shards.items() if s.state == "open")

    def start(self) -> None:
        name = f"{self.spec.channel}/{self.spec.group}"
        self._tasks = [
            asyncio.create_task(self._dispatch(), name=f"eventwire-rabbit-dispatch:{name}"),
            asyncio.create_task(self._reconcile(), name=f"eventwire-rabbit-shards:{name}"),
            asyncio.create_task(self._heartbeat(), name=f"eventwire-rabbit-members:{name}"),
        ]
        self.wake()

    def wake(self) -> None:
        self._dirty.set()

    def shard_lost(self, shard: _Shard) -> None:
        """A shard channel closed under us (connection lost, queue deleted): retry."""
        if not self.stopping and self.shards.get(shard.index) is shard:
            self.wake()

    # -- the loops -----------------------------------------------------------------------

    async def _dispatch(self) -> None:
        handler = self.handler
        inbox = self.inbox
        while True:
            delivery = await inbox.get()
            shard = delivery._shard
            if shard.state != "open" or self.stopping:
                continue  # left unsettled: goes back to the queue when the channel closes
            shard.forward()
            try:
                await handler(delivery)
            except Exception:
                log.exception(
                    "eventwire: the handler of %s/%s raised on a delivery; it stays unsettled",
                    self.spec.channel,
                    self.spec.group,
                )

    def _wanted(self) -> set[int]:
        view = self.membership.view
        me = view.index(self.member_id)
        return {s for s in range(self.settings.shards) if s % len(view) == me}

    async def _reconcile(self) -> None:
        while not self.stopping:
            await self._dirty.wait()
            self._dirty.clear()
            if self.stopping:
                return
            try:
                amqp = await self.backend.amqp()
                if not self.membership.is_open():
                    await self.membership.open(amqp)
                wanted = self._wanted()
                for index, shard in list(self.shards.items()):
                    if index not in wanted and shard.state == "open":
                        self._release(shard)
                for index in sorted(wanted):
                    current = self.shards.get(index)
                    if current is not None and current.state != "closed":
                        continue  # consuming, or still being released
                    fresh = _Shard(self, index)
                    self.shards[index] = fresh
                    await fresh.open(amqp, self.prefetch)
            except Exception as exc:
                if self.stopping:
                    return
                log.warning(
                    "eventwire: %s/%s could not take its shards (%s: %s); retrying",
                    self.spec.channel,
                    self.spec.group,
                    type(exc).__name__,
                    exc,
                )
                await asyncio.sleep(self.settings.reconnect_interval)
                self.wake()

    def _release(self, shard: _Shard) -> None:
        async def run() -> None:
            await shard.release(self.settings.release_timeout)
            self.wake()

        task = asyncio.create_task(run())
        self._releases.add(task)
        task.add_done_callback(self._releases.discard)

    async def _heartbeat(self) -> None:
        every = self.settings.member_heartbeat
        while not self.stopping:
            await self.membership.send("beat")
            await asyncio.sleep(every)
            self.membership.refresh()

    # -- shutdown --------------------------------------------------------------------------

    async def stop(self) -> None:
        """Stop handing out messages; keep the shards (held messages stay unsettled) until
        `close`, so no other member takes a key while this one finishes it."""
        if self.stopping:
            return
        self.stopping = True
        self._dirty.set()
        dispatch, reconcile, heartbeat = self._tasks or (None, None, None)
        for task in (dispatch, heartbeat):
            if task is not None:
                task.cancel()
        if reconcile is not None:
            # Let a declaration in progress finish: cancelling an RPC midway makes the
            # broker close the whole connection (and the acks still to send with it).
            _, late = await asyncio.wait({reconcile}, timeout=5)
            for task in late:
                task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.membership.close(farewell=not self.aborted)

    async def close(self) -> None:
        """Send the last acks and close every shard channel: the rest is redelivered."""
        await self.stop()
        for task in list(self._releases):
            task.cancel()
        await asyncio.gather(*self._releases, return_exceptions=True)
        await asyncio.gather(*(shard.close() for shard in self.shards.values()))

    def abort(self) -> None:
        """Crash: nothing more is acked."""
        self.aborted = True
        self.stopping = True
        for task in self._tasks:
            task.cancel()
        for task in self._releases:
            task.cancel()


def describe(sub: RabbitSubscription) -> dict[str, Any]:
    """A snapshot for diagnostics and tests."""
    return {
        "member": sub.member_id,
        "view": list(sub.membership.view),
        "owned": sub.owned,
        "prefetch": sub.prefetch,
    }
