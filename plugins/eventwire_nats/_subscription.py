"""One group member on one channel: pull requests, deliveries, progress signals.

How a member keeps key order with several members (G05) on NATS 2.9 (which has no pinned
pull consumers):

- A channel's stream has ``shards`` subjects ``<channel>.<n>``; a key always goes to the same
  one. Each group has one durable pull consumer per shard.
- Which member reads which shard is the kit's `ShardCoordinator` over leases in a key-value
  bucket (`NatsLeaseStore`): shard ``i`` goes to the ``(i mod m)``-th of the ``m`` live
  members, and a shard changes hands only after what its owner took from it is settled.
- A member reads a shard it may read (recovering or ready) with a `ShardFetch`: pull
  requests that end before the lease can pass on, the previous owner's messages first after
  a crash, and every request ended before the shard is given back (see `eventwire_nats.
  _fetch`). The lease is given back once every delivery taken from the shard is settled.

Every unsettled delivery older than ``ack_wait / 3`` gets a ``+WPI`` (work in progress)
now and then, so a slow handler or retries in place never trigger a redelivery; a crashed
member stops sending them, and its messages come back after ``ack_wait``.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from eventwire.backend import MessageHandler, SubscriptionSpec
from eventwire.backendkit import BaseSubscription, ShardCoordinator, ShardState, wait_event

from eventwire_nats._fetch import NAK, NatsInbound, ShardFetch
from eventwire_nats._leases import NatsLeaseStore
from eventwire_nats._settings import NatsSettings
from eventwire_nats._topology import ChannelTopology, group_token

__all__ = ["NatsInbound", "NatsSubscription"]

_ACK = b"+ACK"
_WPI = b"+WPI"
#: How long `subscribe` waits for this member's first share of the shards.
SETTLE_TIMEOUT = 3.0


class NatsSubscription(BaseSubscription):
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
        super().__init__(spec, handler)
        self.topology = topology
        self.settings = settings
        self.nc, self.js = nc, js
        self.send = send
        consumer = "".join(c if c.isalnum() or c in "-_" else "-" for c in spec.member_prefix)
        self.member_id = f"{consumer[:60]}-{uuid.uuid4().hex[:8]}"
        token = group_token(topology.stream, spec.group)
        self.store = NatsLeaseStore(js, kv, nc, settings.lease_bucket, token)
        self.coordinator = ShardCoordinator(
            self.store, self.member_id, topology.shards, ttl=lease_ttl, scrub=self.settings.scrub
        )
        #: A lease is read from until this long before the coordinator stops trusting it.
        self.margin = 0.4 * lease_ttl
        self.pull_expires = min(1.0, max(0.2, 0.2 * lease_ttl))
        self._fetches: dict[int, tuple[ShardFetch, asyncio.Task[None]]] = {}
        #: Unsettled deliveries, oldest sign of life first (for the progress signals).
        self._unsettled: dict[NatsInbound, None] = {}
        self._signal_sub: Any = None

    def __repr__(self) -> str:
        return f"<NatsSubscription {self.spec.channel}/{self.spec.group} {self.member_id}>"

    @property
    def owned(self) -> list[int]:
        """The shards this member reads now (recovering or ready)."""
        reading = (ShardState.RECOVERING, ShardState.READY)
        return [s.index for s in self.coordinator.shards if s.state in reading]

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the tasks; return once this member reads its share (or after a while)."""
        self._signal_sub = await self.nc.subscribe(self.store.signal_subject, cb=self._signal)
        self.spawn(self.coordinator.run(), "leases")
        self.spawn(self._watch(), "shards")
        self.spawn(self._keep_alive(), "progress")
        await wait_event(self.coordinator.balanced, SETTLE_TIMEOUT)

    async def _signal(self, msg: Any) -> None:
        if msg.data.decode(errors="replace") != self.member_id:
            self.coordinator.wake()  # another member joined, left or gave a shard back

    async def _stop_fetching(self) -> None:
        """Leave the member set; every fetch ends once its last pull request has."""
        self.coordinator.stop()
        for fetch, _ in self._fetches.values():
            fetch.wake.set()
        tasks = [task for _, task in self._fetches.values()]
        if tasks:
            await asyncio.wait(tasks)

    async def _release(self) -> None:
        """Give back what the handler did not settle (nak: redelivered at once) and every
        lease; what a fetch held back comes back after ``ack_wait`` (see `_fetch`)."""
        try:
            for delivery in list(self._unsettled):
                if delivery.handed:
                    with contextlib.suppress(Exception):
                        await self.send(delivery.reply, NAK)
            self._unsettled.clear()
            await self.coordinator.leave()
        finally:
            if self._signal_sub is not None:
                with contextlib.suppress(Exception):
                    await self._signal_sub.unsubscribe()

    def _drop(self) -> None:
        self._unsettled.clear()

    def reset_requests(self) -> None:
        """The connection was re-established: pull requests sent before are gone."""
        for fetch, _ in self._fetches.values():
            fetch.reset()
        self.coordinator.wake()

    # -- fetching ----------------------------------------------------------------------------

    async def _watch(self) -> None:
        """Start a fetch for every shard this member may read and reads no more."""
        changed = self.coordinator.changed
        while self.running:
            changed.clear()
            for shard in self.coordinator.to_recover() + self.coordinator.readable():
                if shard.index not in self._fetches:
                    fetch = ShardFetch(self, shard)
                    task = self.spawn(self._fetch(fetch), f"shard-{shard.index}")
                    self._fetches[shard.index] = (fetch, task)
            for fetch, _ in self._fetches.values():
                fetch.wake.set()
            await wait_event(changed, self.coordinator.interval)

    async def _fetch(self, fetch: ShardFetch) -> None:
        try:
            await fetch.run()
        finally:
            if self._fetches.get(fetch.shard.index, (None,))[0] is fetch:
                del self._fetches[fetch.shard.index]
            self.coordinator.changed.set()

    def share(self) -> int:
        """How many unsettled deliveries one fetch may have: ``max_in_flight`` split."""
        return max(1, math.ceil(self.spec.max_in_flight / (len(self._fetches) or 1)))

    # -- settling ----------------------------------------------------------------------------

    def track_delivery(self, delivery: NatsInbound) -> None:
        """`delivery` was received: it counts against its shard until it is settled."""
        self._unsettled[delivery] = None
        self.coordinator.delivered(delivery.fetch.shard)

    def forget(self, delivery: NatsInbound) -> bool:
        """`delivery` is settled (acked, or given back): ``False`` if it was already."""
        if self._unsettled.pop(delivery, 0) is not None:
            return False
        fetch = delivery.fetch
        if delivery.handed:
            fetch.handed -= 1
        fetch.wake.set()
        self.coordinator.settled(fetch.shard)
        return True

    async def settle(self, delivery: NatsInbound) -> None:
        """Ack `delivery` (ignored once it is settled or the member closed)."""
        if delivery in self._unsettled and self.accepting:
            await self.send(delivery.reply, _ACK)
            self.forget(delivery)

    async def _keep_alive(self) -> None:
        """Tell the server that old unsettled deliveries are still being worked on."""
        ack_wait = self.settings.ack_wait
        while self.accepting:
            await asyncio.sleep(ack_wait / 6)
            now = time.monotonic()
            refreshed: list[NatsInbound] = []
            for delivery in self._unsettled:
                if now - delivery.since < ack_wait / 3:
                    break
                refreshed.append(delivery)
            for delivery in refreshed:
                try:
                    await self.send(delivery.reply, _WPI)
                except Exception:
                    break
                delivery.since = now
                # keep the dict ordered by the time of the last sign of life
                if self._unsettled.pop(delivery, 0) is None:
                    self._unsettled[delivery] = None
