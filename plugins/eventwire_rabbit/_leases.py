"""Shard leases on RabbitMQ's own primitives, for the kit's `ShardCoordinator`.

- **Members**: heartbeat messages on the ``eventwire:members`` topic exchange (routing key
  ``<channel>:<group>``), each member reading them through an exclusive, server-named queue;
  a member is live while it was heard within the lease's ``ttl``. A newcomer says ``hello``
  and every member answers at once, so the view settles within one round trip.
- **Leases**: a shard's queue has single active consumer, so a lease is a consumer on that
  queue, on a channel of its own. Acquiring opens it (the member may wait in line behind the
  previous holder: RabbitMQ never lets two consume at once); renewing checks it is still
  open; releasing sends the acks taken and closes it, so RabbitMQ puts the rest back at the
  head of the queue and activates the next consumer in one step.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Mapping, Sequence
from typing import Protocol, cast

import aiormq
from aiormq.abc import DeliveredMessage
from eventwire.backend import SubscriptionSpec
from eventwire.backendkit import Grant, LeaseRequest, ShardCoordinator
from pamqp.commands import Basic

from eventwire_rabbit._channels import close_channel
from eventwire_rabbit._settings import RabbitSettings
from eventwire_rabbit._topology import MEMBERS_EXCHANGE, Connection

__all__ = ["Membership", "RabbitLeaseStore"]

log = logging.getLogger("eventwire.rabbit")


class ShardQueue(Protocol):
    """A shard queue a member consumes (`eventwire_rabbit._subscription.ShardQueue`)."""

    @property
    def state(self) -> str: ...
    async def close(self) -> None: ...


class Member(Protocol):
    """What the membership and the lease store need of their member (`RabbitSubscription`)."""

    @property
    def spec(self) -> SubscriptionSpec: ...
    @property
    def member_id(self) -> str: ...
    @property
    def settings(self) -> RabbitSettings: ...
    @property
    def coordinator(self) -> ShardCoordinator: ...
    @property
    def membership(self) -> Membership: ...
    @property
    def backend(self) -> Connection: ...
    @property
    def queues(self) -> Mapping[int, ShardQueue]: ...
    async def open_shard(self, amqp: aiormq.abc.AbstractConnection, index: int) -> None: ...


class Membership:
    """Heartbeats between the members of one group; who was heard when."""

    def __init__(self, sub: Member) -> None:
        self.sub = sub
        self.routing_key = f"{sub.spec.channel}:{sub.spec.group}"
        self.seen: dict[str, float] = {}
        self.channel: aiormq.Channel | None = None

    async def open(self, amqp: aiormq.abc.AbstractConnection) -> None:
        channel = cast(aiormq.Channel, await amqp.channel())
        self.channel = channel
        await channel.exchange_declare(MEMBERS_EXCHANGE, exchange_type="topic", durable=True)
        declared = await channel.queue_declare("", exclusive=True, auto_delete=True)
        queue = declared.queue
        assert queue is not None
        await channel.queue_bind(queue, MEMBERS_EXCHANGE, routing_key=self.routing_key)
        await channel.basic_consume(queue, self._on_message, no_ack=True)
        await self.send("hello")

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
        self.sub.coordinator.wake()  # the view changed: rebalance now

    def live(self, ttl: float) -> list[str]:
        """This member and those heard within `ttl` seconds."""
        now = time.monotonic()
        for member, seen in list(self.seen.items()):
            if now - seen > ttl:
                del self.seen[member]
        return [self.sub.member_id, *self.seen]

    async def close(self) -> None:
        """Say goodbye to the group and close the channel."""
        await self.send("bye")
        await close_channel(self.channel)
        self.channel = None


class RabbitLeaseStore:
    """The `eventwire.backendkit.LeaseStore` of one member (see the module docstring)."""

    def __init__(self, sub: Member) -> None:
        self._sub = sub
        #: Channel openings and closings under way: they finish even when a heartbeat is cancelled
        #: (cancelling an RPC midway makes the broker close the whole connection).
        self.opening: set[asyncio.Future[object]] = set()

    async def heartbeat(self, member: str, ttl: float, *, alive: bool) -> Sequence[str]:
        membership = self._sub.membership
        if not alive:
            await membership.close()
            return []
        if membership.is_open():
            await membership.send("beat")
        else:
            amqp = await self._sub.backend.amqp()
            await self._shielded(membership.open(amqp))
        return membership.live(ttl)

    async def leases(
        self, member: str, ttl: float, requests: Sequence[LeaseRequest]
    ) -> Sequence[Grant]:
        grants: list[Grant] = []
        for request in requests:
            shard = self._sub.queues.get(request.shard)
            if shard is not None and shard.state == "open":
                grants.append(Grant.RENEWED)
            elif request.take and await self._open(request.shard):
                grants.append(Grant.ACQUIRED)
            else:
                grants.append(Grant.DENIED)
        return grants

    async def _open(self, index: int) -> bool:
        sub = self._sub
        try:
            amqp = await sub.backend.amqp(sub.settings.publish_timeout)
            await self._shielded(sub.open_shard(amqp, index))
        except Exception as exc:  # denied for now: the next heartbeat tries again
            log.warning(
                "eventwire: %s/%s could not take shard %d (%s: %s); retrying",
                sub.spec.channel,
                sub.spec.group,
                index,
                type(exc).__name__,
                sub.settings.scrub(str(exc)),
            )
            return False
        return True

    async def _shielded(self, work: Awaitable[object]) -> None:
        future = asyncio.ensure_future(work)
        self.opening.add(future)
        future.add_done_callback(self.opening.discard)
        await asyncio.shield(future)

    async def release(self, member: str, shards: Sequence[int]) -> None:
        found = [s for i in shards if (s := self._sub.queues.get(i)) is not None]
        await self._shielded(asyncio.gather(*(shard.close() for shard in found)))
