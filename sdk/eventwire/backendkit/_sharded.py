"""`ShardedSubscription`: a group member over shard leases, with its three tasks wired.

A backend whose group members share a channel's shards through the kit's `ShardCoordinator`
runs the same three background tasks on every member: the coordinator (heartbeat and
leases), the backend's fetch loop, and an `AckBatcher` sending acks in batches. This class
owns them and the shutdown hooks they need (`BaseSubscription`'s contract): ``stop`` stops
the coordinator and the fetch loop, ``close`` sends the last acks and gives the leases back,
``abort`` forgets queued acks. A backend writes the fetch loop and how a batch of acks is
sent; its deliveries are `ShardInbound` objects, settled once. The member keeps, per shard,
the positions it handed out and has not settled (`mark_handed`, `handed`): the coordinator
counts them, and a recovery in a new epoch leaves them out. A `ShardInbound` needs only
a `ShardMember` (the spec and ``ack``), so a backend's helper objects can stand for the
member with a protocol of their own.
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import Callable, Iterable, Sequence, Set
from typing import Any, Generic, Protocol, TypeVar

from eventwire.backend import MessageHandler, SubscriptionSpec, WireMessage
from eventwire.backendkit._acks import AckBatcher
from eventwire.backendkit._aio import wait_event
from eventwire.backendkit._leases import LeaseStore
from eventwire.backendkit._outage import Outage
from eventwire.backendkit._shards import Shard, ShardCoordinator
from eventwire.backendkit._subscription import BaseSubscription, cancel_and_wait

__all__ = ["ShardInbound", "ShardMember", "ShardedSubscription"]

#: Seconds a restarted fetch loop runs without failing before its outage counts as over.
FETCH_HEALTHY = 10.0

#: How a backend names one message within its shard (a stream entry id, a row number...).
P = TypeVar("P")
P_contra = TypeVar("P_contra", contravariant=True)


class ShardMember(Protocol[P_contra]):
    """What a `ShardInbound` uses of the member it came from (a `ShardedSubscription` is
    one): the subscription's spec, and where its ack goes."""

    @property
    def spec(self) -> SubscriptionSpec: ...

    def ack(self, shard: Shard, position: P_contra) -> None:
        """Queue the ack of `position` on `shard`."""


class ShardedSubscription(BaseSubscription, Generic[P]):
    """A member of ``spec.group`` reading the shards the coordinator grants it.

    :param store: the backend's `LeaseStore` for this channel and group.
    :param member_id: this member's name in the group.
    :param shards: the channel's shard count.
    :param ttl: the lease time-to-live in seconds (a crashed member's shards come back after).
    :param scrub: removes credentials from error text before it is logged.
    :param backend: the backend's name, in log lines.
    :param interval: seconds between heartbeats (the coordinator's default if ``None``).
    :param ack_patience: how long ``close`` retries the last acks.

    Implement `_send_acks` (send a batch of ``(shard, position)`` acks, raising if it failed)
    and the fetch loop: either `_recover` and `_read`, which the default `_fetch` calls, or a
    `_fetch` of its own (run while `running`; run again, after every owned shard recovers, if
    it lets an exception out; `mark_handed` what it hands out). `start` returns once this
    member holds its share of shards.
    """

    #: The broker client's errors after which the default `_fetch` backs off and reads
    #: again, every owned shard recovering first (a lost reply may have taken messages):
    #: logged once per outage, without a traceback. Any other error restarts the loop too,
    #: logged with its traceback.
    transient: tuple[type[Exception], ...] = ()

    #: Seconds `stop` lets a `_read` under way come back before it cancels the fetch loop:
    #: what that read took is then given up (`_give_up`) instead of lost in flight, counted
    #: as delivered by a broker that counts deliveries. ``0``: cancel at once.
    read_patience: float = 0.0

    #: Seconds the default `_fetch` waits after a pass that handed nothing out, unless
    #: `coordinator.changed` is set first (a shard changed hands, or `wake()`); ``None``:
    #: until it is set.
    poll_interval: float | None = 1.0

    def __init__(
        self,
        spec: SubscriptionSpec,
        handler: MessageHandler,
        *,
        store: LeaseStore,
        member_id: str,
        shards: int,
        ttl: float,
        scrub: Callable[[str], str],
        backend: str,
        interval: float | None = None,
        ack_patience: float = 0.0,
    ) -> None:
        super().__init__(spec, handler)
        self.member_id = member_id
        self.coordinator = ShardCoordinator(
            store, member_id, shards, ttl=ttl, interval=interval, scrub=scrub
        )
        self._acks: AckBatcher[tuple[Shard, P]] = AckBatcher(
            self._send_acks,
            self._sent,
            what=f"{backend} acknowledgement on {spec.channel}/{spec.group}",
            scrub=scrub,
            patience=ack_patience,
        )
        self._ttl = ttl
        #: Per shard, the positions handed out and not settled yet.
        self._handed: list[set[P]] = [set() for _ in range(shards)]
        #: How many deliveries are handed out and not settled, on every shard.
        self.in_flight = 0
        self._fetch_task: asyncio.Task[None] | None = None
        #: Whether the fetch loop waits for a `_read` now.
        self._reading = False
        self._fetch_outage = Outage(f"{backend} fetch loop of {spec.channel}/{spec.group}", scrub)
        self._read_outage = Outage(f"{backend} read of {spec.channel}/{spec.group}", scrub)

    @property
    def shards(self) -> list[int]:
        """The shards this member holds now."""
        return [s.index for s in self.coordinator.owned()]

    #: How long `start` waits for this member's share of shards (``None``: ``ttl``). A
    #: backend whose group position is set when a member subscribes may wait less.
    balance_patience: float | None = None

    async def start(self) -> None:
        """Start the coordinator, the fetch loop and the ack flusher; return once this member
        holds its share of shards, or after `balance_patience` (default ``ttl``: a departed
        member's leases have not expired yet, or another member still drains a shard: they
        come later)."""
        self.spawn(self.coordinator.run(), "coordinator")
        self._fetch_task = self.spawn(self._fetch_again(), "fetch")
        self.spawn(self._acks.run(), "acks")
        patience = self._ttl if self.balance_patience is None else self.balance_patience
        await wait_event(self.coordinator.balanced, patience)

    async def _fetch_again(self) -> None:
        """Run `_fetch`; if it lets an exception out (a client error of a class it did not
        expect, or a bug), log it (with its traceback, once per outage) and run it again after
        a back-off, every owned shard recovering first (what the failed read took may not have
        been handed over). A fetch loop that died would leave the member looking alive and
        delivering nothing. A loop that then runs `FETCH_HEALTHY` seconds without failing
        ends the outage: the recovery is logged and the back-off starts over."""
        loop = asyncio.get_running_loop()
        healthy: asyncio.TimerHandle | None = None
        try:
            while self.running:
                try:
                    await self._fetch()
                    return
                except Exception as exc:
                    if healthy is not None:
                        healthy.cancel()
                    self.coordinator.recover_again()
                    await asyncio.sleep(self._fetch_outage.failed(exc, traceback=True))
                    healthy = loop.call_later(FETCH_HEALTHY, self._fetch_outage.ok)
        finally:
            if healthy is not None:
                healthy.cancel()

    def ack(self, shard: Shard, position: P) -> None:
        """Queue the ack of `position` on `shard` (ignored once closed or aborted)."""
        if self.accepting:
            self._acks.add((shard, position))

    # -- what this member handed out -------------------------------------------------------

    def mark_handed(self, shard: Shard, positions: Iterable[P]) -> list[P]:
        """Count `positions` of `shard` as handed out (in flight for the coordinator) until
        `_sent` settles them; the ones not handed out already, in order. A position handed
        out and not settled is the handler's: handing it out again would run it twice at
        once."""
        handed = self._handed[shard.index]
        new: list[P] = []
        for position in positions:
            if position not in handed:
                handed.add(position)
                new.append(position)
        self.in_flight += len(new)
        self.coordinator.delivered(shard, len(new))
        return new

    def handed(self, shard: Shard) -> Set[P]:
        """The positions of `shard` handed out and not settled: what a recovery leaves out."""
        return self._handed[shard.index]

    async def hand_out(self, inbounds: Sequence[ShardInbound[P]]) -> int:
        """Hand `inbounds` (marked with `mark_handed`) to the handler in order while the
        member runs; how many it handed. What a stop or a cancellation leaves never reached
        the handler: it is given up (`_give_up`; the broker keeps it for the shard's next
        owner) and settled for the coordinator, so a draining shard can still be given back.
        A delivery whose handler raised is settled for the coordinator too (nothing on this
        member will ack it; the broker keeps it for the shard's next owner)."""
        done = 0
        try:
            for inbound in inbounds:
                if not self.running:
                    break
                if not await self.deliver(inbound):
                    self._sent([(inbound.shard, inbound.position)])
                done += 1
        finally:
            left = [inbound for inbound in inbounds[done:] if not inbound.settled]
            if left:
                for inbound in left:
                    inbound.settled = True
                try:
                    await self._give_up(left)
                finally:
                    self._sent([(inbound.shard, inbound.position) for inbound in left])
        return done

    def wake(self) -> None:
        """Messages came (the broker's notification): end the default `_fetch`'s wait."""
        self.coordinator.changed.set()

    # -- the fetch loop --------------------------------------------------------------------

    async def _fetch(self) -> None:
        """The fetch loop, in passes while the member runs: `_recover` each shard the
        coordinator gives this member (`to_recover()`), `_read` the `readable()` ones inside
        `coordinator.reading` and `hand_out` what it read. A pass that handed nothing out
        waits in `_idle`. A `transient` error makes every owned shard recover again; after
        `_failed` the loop waits a back-off (`Outage`) and goes on."""
        coordinator = self.coordinator
        while self.running:
            coordinator.changed.clear()
            try:
                found = await self._pass()
                self._read_outage.ok()
            except self.transient as exc:
                coordinator.recover_again()
                await self._failed(exc)
                await asyncio.sleep(self._read_outage.failed(exc))
                continue
            if not found and self.running:
                await self._idle()

    async def _pass(self) -> bool:
        """One pass of the default `_fetch`; whether it handed anything out."""
        found = False
        for shard in self.coordinator.to_recover():
            if not self.running:
                return found
            found = await self._recover_shard(shard) or found
        ready = self.coordinator.readable()
        if not ready or not self.running:
            return found
        self._reading = True
        try:
            with self.coordinator.reading(ready):
                batch = await self._read(ready)
        finally:
            self._reading = False
        return await self.hand_out(batch) > 0 or found

    async def _recover_shard(self, shard: Shard) -> bool:
        """Recover `shard`: `_recover` inside ``coordinator.reading([shard])``, `hand_out`
        what it returned, and mark the shard recovered in the epoch it started in once all
        of it was handed out; whether anything was. Override it where a recovery reads in
        pages (call `hand_out` per page and ``coordinator.mark_recovered`` after the last)."""
        epoch = shard.epoch
        with self.coordinator.reading([shard]):
            batch = await self._recover(shard)
        handed = await self.hand_out(batch)
        if handed == len(batch) and self.running:
            self.coordinator.mark_recovered(shard, epoch)
        return handed > 0

    async def _recover(self, shard: Shard) -> Sequence[ShardInbound[P]]:
        """What earlier owners of `shard` left unsettled, in order, leaving out
        `handed(shard)`: `mark_handed` it and return its deliveries (their delivery counts
        one higher than before). Default: nothing (a broker that delivers it again by
        itself)."""
        return ()

    async def _read(self, ready: list[Shard]) -> Sequence[ShardInbound[P]]:
        """Read new messages of the `ready` shards (at most `room`, where the broker reads
        ahead of the handler), `mark_handed` them and return their deliveries, in order."""
        raise NotImplementedError(f"{type(self).__name__} implements neither _read nor _fetch")

    @property
    def room(self) -> int:
        """How many more deliveries ``max_in_flight`` allows now (at least 0): the most a
        `_read` that reads ahead of the handler takes. An ack that makes room under a full
        window wakes the fetch loop."""
        return max(0, self.spec.max_in_flight - self.in_flight)

    async def _idle(self) -> None:
        """Wait after a pass that handed nothing out: `poll_interval`, or until
        `coordinator.changed` is set."""
        await wait_event(self.coordinator.changed, self.poll_interval)

    async def _failed(self, exc: Exception) -> None:
        """A read raised `exc`, one of `transient`: repair what it says (a group the
        broker lost...) before the back-off. Default: nothing."""

    # -- what the backend writes -----------------------------------------------------------

    @abc.abstractmethod
    async def _send_acks(self, batch: list[tuple[Shard, P]]) -> None:
        """Send `batch` to the broker; raise if it failed (the batcher retries)."""

    async def _give_up(self, inbounds: list[ShardInbound[P]]) -> None:
        """`inbounds` were taken from the broker and never handed to the handler (see
        `hand_out`): undo what taking them did, where the broker counted it (a delivery
        count, a row marked read). Broker trouble here is the backend's to swallow: the
        next owner delivers them either way. Default: nothing."""

    def _sent(self, batch: Iterable[tuple[Shard, P]]) -> None:
        """`batch` is settled on the broker, or given up (taken, never handed to the
        handler: the broker keeps it for the shard's next owner): what of it was marked
        handed is settled for the coordinator. Room made under a full ``max_in_flight``
        wakes the fetch loop (`coordinator.changed`)."""
        full = self.in_flight >= self.spec.max_in_flight
        for shard, position in batch:
            handed = self._handed[shard.index]
            if position in handed:
                handed.discard(position)
                self.in_flight -= 1
                self.coordinator.settled(shard)
        if full and self.in_flight < self.spec.max_in_flight:
            self.coordinator.changed.set()

    # -- the shutdown hooks ----------------------------------------------------------------

    async def _stop_fetching(self) -> None:
        self.coordinator.stop()
        task = self._fetch_task
        if task is None:
            return
        if self._reading and self.read_patience > 0:
            # the read's messages then reach `hand_out`, which gives them up (not running)
            await asyncio.wait([task], timeout=self.read_patience)
        await cancel_and_wait([task])

    async def _flush(self) -> None:
        """Send the acks taken so far (also the last ones, on close)."""
        await self._acks.flush()

    async def _release(self) -> None:
        """Give every lease back and leave the member set."""
        await self.coordinator.leave()

    def _drop(self) -> None:
        self._acks.drop()


class ShardInbound(Generic[P]):
    """A delivery read from a shard (an `eventwire.backend.Inbound`), settled at most once.

    ``ack()`` calls ``subscription.ack(shard, position)`` the first time and does nothing
    after; `subscription` is any `ShardMember` (a `ShardedSubscription` queues the ack on its
    batcher). A backend subclass adds its `origin` (where the broker keeps it).
    """

    __slots__ = ("delivery_count", "message", "position", "settled", "shard", "subscription")

    def __init__(
        self,
        subscription: ShardMember[P],
        shard: Shard,
        position: P,
        message: WireMessage,
        delivery_count: int,
    ) -> None:
        self.message = message
        self.delivery_count = delivery_count
        self.position = position
        self.shard = shard
        self.subscription = subscription
        #: Acked, or given up (the member stopped before handing it to the handler).
        self.settled = False

    async def ack(self) -> None:
        """Settle it; idempotent, ignored once the member closed or aborted."""
        if not self.settled:
            self.settled = True
            self.subscription.ack(self.shard, self.position)

    @staticmethod
    async def ack_many(inbounds: Sequence[ShardInbound[Any]]) -> None:
        """`ack` each of `inbounds` in one step (`eventwire.backend.BulkAck`): the pipeline
        settles a handled batch without a task per delivery."""
        for inbound in inbounds:
            if not inbound.settled:
                inbound.settled = True
                inbound.subscription.ack(inbound.shard, inbound.position)

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} shard={self.shard.index} position={self.position!r} "
            f"delivery_count={self.delivery_count}>"
        )
