"""One group member on one channel, on the kit's `ShardedSubscription` over a
`RedisLeaseStore`: what the kit's fetch loop calls, and how acks are sent.

The fetch loop first recovers a newly leased shard (``XAUTOCLAIM`` of every entry an earlier
owner left pending, in id order, delivery counts from ``XPENDING``), then reads new entries
of all its ready shards with one ``XREADGROUP ... BLOCK`` and hands them to the pipeline one
by one (a full pipeline blocks the loop: backpressure). Acks go out as one pipelined
``XACK`` per shard. A shard is read only by its lease holder, and only after what an earlier
owner left unsettled was delivered again: events of one key are handled in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

from eventwire.backend import MessageHandler, Origin, SubscriptionSpec
from eventwire.backendkit import (
    Shard,
    ShardedSubscription,
    ShardInbound,
    ShardState,
    wait_event,
)
from redis.exceptions import ResponseError

from eventwire_redis._connection import RETRYABLE
from eventwire_redis._group import Claimed, StreamGroup
from eventwire_redis._leases import RedisLeaseStore, Scripts
from eventwire_redis._settings import RedisSettings
from eventwire_redis._topology import ChannelKeys, decode_entry

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["RedisInbound", "RedisSubscription"]

log = logging.getLogger("eventwire.redis")


class Host(Protocol):
    """What a member uses of its backend (`RedisBackend`): the connection, the scripts, the
    settings, and the count of trimmed entries it adds to."""

    settings: RedisSettings
    trimmed_entries: int

    @property
    def client(self) -> Redis: ...

    @property
    def scripts(self) -> Scripts: ...


class RedisInbound(ShardInbound[bytes]):
    """A stream entry delivered to this member (an `eventwire.backend.Inbound`); ``ack()``
    queues it for the next pipelined XACK (sent at once, retried until the server has it; a
    crash before then delivers the entry again)."""

    __slots__ = ()

    @property
    def origin(self) -> Origin:
        """``<stream>/<entry id>``; the time is the entry id's milliseconds."""
        entry = self.position.decode()
        millis, _, _ = entry.partition("-")
        stamp = datetime.fromtimestamp(int(millis) / 1000, tz=UTC) if millis.isdigit() else None
        subscription = self.subscription
        assert isinstance(subscription, RedisSubscription)
        stream = subscription.streams[self.shard.index]
        return Origin(position=f"{stream}/{entry}", timestamp=stamp)


class RedisSubscription(ShardedSubscription[bytes]):
    """One member of ``spec.group`` on ``spec.channel``; started by `RedisBackend.subscribe`."""

    def __init__(
        self,
        spec: SubscriptionSpec,
        handler: MessageHandler,
        *,
        backend: Host,
        keys: ChannelKeys,
    ) -> None:
        member_id = f"{spec.member_prefix}-{uuid.uuid4().hex[:8]}"
        client, scripts, settings = backend.client, backend.scripts, backend.settings
        self._store = RedisLeaseStore(scripts, keys, spec.group)
        super().__init__(
            spec,
            handler,
            store=self._store,
            member_id=member_id,
            shards=len(keys.streams),
            ttl=settings.lease_ttl,
            scrub=settings.scrub,
            backend="redis",
            interval=settings.lease_ttl / 3,
            ack_patience=settings.reconnect_timeout,
        )
        self.streams = keys.streams
        self._settings = settings
        self._server = StreamGroup(client, scripts, keys.streams, spec.group, member_id)
        self._backend = backend
        #: Shards to check for trimming with the next read: the last read was a full batch
        #: (the member is behind), or the shard was just taken.
        self._behind: set[int] = set()
        self._count = max(1, min(settings.fetch_count, spec.max_in_flight))
        self.transient = (*RETRYABLE, ResponseError)
        self.read_patience = settings.block + 1.0
        #: ``claim_min_idle`` in ms: how idle a pending entry must be to be claimed.
        self._min_idle_ms = int(settings.claim_min_idle * 1000)

    async def start(self) -> None:
        """Create the group on every shard, join, take a fair share of the shards.

        Returns once the group exists everywhere (so every event published afterwards is
        delivered to it) and this member holds its share of shards, or after ``lease_ttl``
        if a departed member's leases have not expired yet (they are taken over later).
        """
        await self._server.create("0" if self.spec.from_beginning else "$")
        await self.coordinator.tick()
        await super().start()

    async def _release(self) -> None:
        """Give every lease back, leave, and remove this member's consumers."""
        async with asyncio.timeout(self._settings.socket_timeout):
            await self.coordinator.leave()
            await self._server.leave()

    # -- acknowledgements -----------------------------------------------------------------

    async def _send_acks(self, batch: list[tuple[Shard, bytes]]) -> None:
        await self._server.ack([(shard.index, entry_id) for shard, entry_id in batch])

    async def _give_up(self, inbounds: list[ShardInbound[bytes]]) -> None:
        """Entries read and never handed to the handler: their delivery counts go back to
        what they were before this member read them, and the next owner claims them at once
        (an over-count would dead-letter them an attempt early)."""
        given = [(i.shard.index, i.position, i.delivery_count - 1) for i in inbounds]
        with contextlib.suppress(*RETRYABLE, ResponseError):
            await self._server.give_back(given, self._min_idle_ms)

    # -- fetching -------------------------------------------------------------------------

    async def _failed(self, exc: Exception) -> None:
        """A read failed: a lost reply left what the server handed us pending under our name
        (the kit recovers every shard again). A vanished group is created again."""
        if not isinstance(exc, ResponseError):
            return
        if "NOGROUP" not in str(exc):
            log.error(
                "eventwire: redis refused a read on %s/%s: %s",
                self.spec.channel,
                self.spec.group,
                self._settings.scrub(str(exc)),
            )
            return
        log.warning(
            "eventwire: the consumer group %s of %s vanished on the server; "
            "creating it again from the oldest retained entry",
            self.spec.group,
            self.spec.channel,
        )
        with contextlib.suppress(*RETRYABLE, ResponseError):
            await self._server.create("0")

    async def _idle(self) -> None:
        if self.coordinator.readable():
            return  # the read itself waited on the server (BLOCK)
        await wait_event(self.coordinator.changed, self._settings.block)
        if await self._server.client.get(self._store.gen_key) != self._store.gen:
            self.coordinator.wake()

    async def _read(self, ready: list[Shard]) -> list[RedisInbound]:
        gen, trimmed, entries = await self._server.read(
            [s.index for s in ready],
            self._count,
            self._settings.block,
            [s.index for s in ready if s.index in self._behind],
            self._store.gen_key,
        )
        batch: list[RedisInbound] = []
        for shard in ready:
            got = entries.get(shard.index, [])
            self._behind.discard(shard.index)
            if len(got) >= self._count:  # behind: check for trimming with the next read
                self._behind.add(shard.index)
            batch += self._take(shard, [(i, f, 1) for i, f in got])
        if gen != self._store.gen:
            self.coordinator.wake()  # members joined or left, or a shard was given back
        for index, lost in trimmed.items():
            self._report_lost(self.coordinator.shards[index], lost, "never read")
        return batch

    def _take(self, shard: Shard, entries: list[Claimed]) -> list[RedisInbound]:
        """Deliveries of `entries` (id, fields, delivery count), marked handed until settled."""
        new = self.mark_handed(shard, [entry_id for entry_id, _, _ in entries])
        if len(new) < len(entries):  # the recovery's claim leaves out what is handed out
            kept = set(new)
            entries = [entry for entry in entries if entry[0] in kept]
        return [RedisInbound(self, shard, i, decode_entry(f), n) for i, f, n in entries]

    # -- recovery -------------------------------------------------------------------------

    def _recovering(self, shard: Shard, epoch: int) -> bool:
        return shard.state is ShardState.RECOVERING and shard.epoch == epoch and self.running

    async def _recover_shard(self, shard: Shard) -> bool:
        """Deliver again, in id order, every entry of `shard` pending for the group (left by
        a member that crashed, stopped or lost the shard), then mark it recovered."""
        epoch, stream = shard.epoch, self.streams[shard.index]
        handed = self.handed(shard)
        min_idle = self._min_idle_ms
        self._behind.add(shard.index)  # the next read checks for trimmed unread entries
        cursor: bytes | str = "0-0"
        found = False
        while self._recovering(shard, epoch):
            while min_idle and self._recovering(shard, epoch):
                wait = await self._server.idle_wait(stream, min_idle, handed)
                if not wait:
                    break
                await asyncio.sleep(wait)
            with self.coordinator.reading([shard]):
                cursor, claimed, deleted = await self._server.claim(
                    stream, cursor, min_idle, handed
                )
                batch = self._take(shard, claimed)
            self._report_lost(shard, deleted, "pending (delivered, not settled)")
            if batch:
                log.info(
                    "eventwire: delivering again %d unsettled event(s) of %s for group %s",
                    len(batch),
                    stream,
                    self.spec.group,
                )
            found = await self.hand_out(batch) > 0 or found
            if cursor in (b"0-0", "0-0"):
                if self.coordinator.mark_recovered(shard, epoch):
                    await self._server.clean_consumers(stream, 2000 * self._settings.lease_ttl)
                break
        return found

    # -- trimming -------------------------------------------------------------------------

    def _report_lost(self, shard: Shard, count: int, what: str) -> None:
        if not count:
            return
        log.error(
            "eventwire: %d %s event(s) of %s for group %s were trimmed by the stream's "
            "retention before they were settled; they cannot be delivered. Raise the "
            "redis backend's maxlen/retention or add consumers",
            count,
            what,
            self.streams[shard.index],
            self.spec.group,
        )
        self._backend.trimmed_entries += count
