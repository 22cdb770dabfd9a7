"""One group member on one channel, on the kit's `ShardedSubscription`.

Key order with several members on NATS 2.9 (no pinned pull consumers): a stream subject
and a durable pull consumer per shard; the kit's `ShardCoordinator` over `NatsLeaseStore`
says which member reads which shard; a `ShardFetch` per shard this member may read; acks
through the kit's `AckBatcher` as core messages to each delivery's reply subject. An
unsettled delivery older than ``ack_wait / 3`` gets a ``+WPI`` now and then, so a slow
handler is never redelivered; a crashed member's messages come back after ``ack_wait``.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from eventwire.backend import MessageHandler, SubscriptionSpec
from eventwire.backendkit import Shard, ShardedSubscription, wait_event

from eventwire_nats._fetch import NatsInbound, ShardFetch
from eventwire_nats._leases import NatsLeaseStore
from eventwire_nats._settings import NatsSettings
from eventwire_nats._topology import ChannelTopology, group_token

__all__ = ["NatsInbound", "NatsSubscription"]

_ACK = b"+ACK"
_NAK = b"-NAK"
_WPI = b"+WPI"


class NatsSubscription(ShardedSubscription[str]):
    """One member of ``spec.group`` on ``spec.channel`` (see the module docstring)."""

    def __init__(
        self,
        spec: SubscriptionSpec,
        handler: MessageHandler,
        topology: ChannelTopology,
        kv: Any,
        *,
        settings: NatsSettings,
        nc: Any,
        js: Any,
        send: Callable[[str, bytes], Awaitable[None]],
        lease_ttl: float,
    ) -> None:
        consumer = "".join(c if c.isalnum() or c in "-_" else "-" for c in spec.member_prefix)
        token = group_token(topology.stream, spec.group)
        self.store = NatsLeaseStore(js, kv, nc, settings.lease_bucket, token)
        super().__init__(
            spec,
            handler,
            store=self.store,
            member_id=f"{consumer[:60]}-{uuid.uuid4().hex[:8]}",
            shards=topology.shards,
            ttl=lease_ttl,
            scrub=settings.scrub,
            backend="nats",
        )
        self.topology = topology
        self.settings = settings
        self.nc, self.js = nc, js
        self.send = send
        #: A lease is read from until this long before the coordinator stops trusting it.
        self.margin = 0.4 * lease_ttl
        self.pull_expires = min(1.0, max(0.2, 0.2 * lease_ttl))
        self._fetches: dict[int, tuple[ShardFetch, asyncio.Task[None]]] = {}
        #: Unsettled deliveries by ack subject, oldest sign of life first.
        self._unsettled: dict[str, NatsInbound] = {}
        self._signal_sub: Any = None

    def __repr__(self) -> str:
        return f"<NatsSubscription {self.spec.channel}/{self.spec.group} {self.member_id}>"

    async def start(self) -> None:
        self._signal_sub = await self.nc.subscribe(self.store.signal_subject, cb=self._signal)
        self.spawn(self._keep_alive(), "progress")
        await super().start()

    async def _signal(self, msg: Any) -> None:
        if msg.data.decode(errors="replace") != self.member_id:
            self.coordinator.wake()  # another member joined, left or gave a shard back

    def reset_requests(self) -> None:
        """The connection was re-established: pull requests sent before are gone."""
        for fetch, _ in self._fetches.values():
            fetch.reset()
        self.coordinator.wake()

    # -- the shutdown hooks ----------------------------------------------------------------

    async def _stop_fetching(self) -> None:
        """Leave the member set; every fetch ends once its last pull request has."""
        self.coordinator.stop()
        for fetch, _ in self._fetches.values():
            fetch.wake.set()
        if self._fetches:
            await asyncio.wait([task for _, task in self._fetches.values()])
        await super()._stop_fetching()

    async def _release(self) -> None:
        """Give back what the handler did not settle (nak: redelivered at once) and every
        lease; what a fetch held back comes back after ``ack_wait`` (see `_fetch`)."""
        try:
            for reply, inbound in list(self._unsettled.items()):
                if inbound.handed:
                    with contextlib.suppress(Exception):
                        await self.send(reply, _NAK)
            self._unsettled.clear()
            await super()._release()
        finally:
            if self._signal_sub is not None:
                with contextlib.suppress(Exception):
                    await self._signal_sub.unsubscribe()

    def _drop(self) -> None:
        super()._drop()
        self._unsettled.clear()

    # -- fetching ------------------------------------------------------------------------

    async def _fetch(self) -> None:
        """Start a fetch for every shard this member may read and reads no more."""
        coordinator = self.coordinator
        while self.running:
            coordinator.changed.clear()
            for shard in coordinator.to_recover() + coordinator.readable():
                if shard.index not in self._fetches:
                    fetch = ShardFetch(self, shard)
                    task = self.spawn(self._run_fetch(fetch), f"shard-{shard.index}")
                    self._fetches[shard.index] = (fetch, task)
            for fetch, _ in self._fetches.values():
                fetch.wake.set()
            await wait_event(coordinator.changed, coordinator.interval)

    async def _run_fetch(self, fetch: ShardFetch) -> None:
        try:
            await fetch.run()
        finally:
            if self._fetches.get(fetch.shard.index, (None,))[0] is fetch:
                del self._fetches[fetch.shard.index]
            self.coordinator.changed.set()

    def share(self) -> int:
        """How many unsettled deliveries one fetch may have: ``max_in_flight`` split."""
        return max(1, math.ceil(self.spec.max_in_flight / (len(self._fetches) or 1)))

    # -- settling ------------------------------------------------------------------------

    def track(self, inbound: NatsInbound) -> None:
        """`inbound` was received: it counts against its shard until it is settled."""
        self._unsettled[inbound.position] = inbound
        self.coordinator.delivered(inbound.shard)

    def forget(self, inbound: NatsInbound) -> None:
        """`inbound` is settled (acked, or given back without a nak)."""
        inbound.settled = True
        if self._unsettled.pop(inbound.position, None) is None:
            return
        fetch = inbound.fetch
        if inbound.handed:
            fetch.handed -= 1
        fetch.wake.set()
        self.coordinator.settled(inbound.shard)

    async def _send_acks(self, batch: list[tuple[Shard, str]]) -> None:
        for _, reply in batch:
            if reply in self._unsettled:
                await self.send(reply, _ACK)

    def _sent(self, batch: Iterable[tuple[Shard, str]]) -> None:
        for _, reply in batch:
            inbound = self._unsettled.get(reply)
            if inbound is not None:
                self.forget(inbound)

    async def _keep_alive(self) -> None:
        """Tell the server that old unsettled deliveries are still being worked on."""
        ack_wait = self.settings.ack_wait
        while self.accepting:
            await asyncio.sleep(ack_wait / 6)
            now = time.monotonic()
            for inbound in list(self._unsettled.values()):  # oldest sign of life first
                if now - inbound.since < ack_wait / 3:
                    break
                try:
                    await self.send(inbound.position, _WPI)
                except Exception:
                    break
                inbound.since = now
                # keep the dict ordered by the time of the last sign of life
                if self._unsettled.pop(inbound.position, None) is not None:
                    self._unsettled[inbound.position] = inbound
