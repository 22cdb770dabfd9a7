"""One group member on one channel: shard leases, recovery of pending entries, the fetch
loop and batched acknowledgements.

Three tasks per member:

- the *coordinator* heartbeats the member into the group's member set, computes the shards
  this member should own (shard ``i`` belongs to the ``i % n``-th live member, by sorted
  id), renews its leases, acquires free shards it should own and gives back the others once
  every entry it read from them is settled;
- the *fetch loop* first recovers a newly acquired shard (``XAUTOCLAIM`` of every entry a
  previous owner left pending, in id order, delivery counts from ``XPENDING``), then reads
  new entries of all its ready shards with one ``XREADGROUP ... BLOCK``, and hands them to
  the pipeline one by one (a full pipeline blocks the loop: backpressure);
- the *ack flusher* sends the acknowledgements collected meanwhile as one pipelined
  ``XACK`` per shard, and retries them while the server is unreachable.

A shard is only read by the member holding its lease, and only after the entries an
earlier owner left unsettled were delivered again, so events of one key are handled in
order by one member at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from eventwire.backend import MessageHandler, SubscriptionSpec, WireMessage
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from eventwire_redis._topology import (
    CLEAN_CONSUMER,
    CREATE_GROUP,
    HEARTBEAT,
    LEASES,
    RELEASE,
    ChannelKeys,
    decode_entry,
)

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.commands.core import AsyncScript

    from eventwire_redis._settings import RedisSettings

__all__ = [
    "RETRYABLE",
    "Outage",
    "RedisDelivery",
    "RedisSubscription",
    "Scripts",
    "finish",
    "wait_event",
]

log = logging.getLogger("eventwire.redis")

#: Errors that mean "the server is not reachable right now": retried, never fatal.
RETRYABLE: tuple[type[BaseException], ...] = (
    RedisConnectionError,
    RedisTimeoutError,
    OSError,
    TimeoutError,
)
#: Entries claimed per XAUTOCLAIM page while recovering a shard.
RECOVER_PAGE = 200


async def wait_event(event: asyncio.Event, timeout: float) -> bool:
    """Wait until `event` is set or `timeout` passes; True if it was set.

    ``asyncio.timeout`` rather than ``asyncio.wait_for``: on Python 3.11 the latter can
    swallow a cancellation that arrives as the event is set, and a loop around it would
    then never stop."""
    try:
        async with asyncio.timeout(timeout):
            await event.wait()
    except TimeoutError:
        return False
    return True


async def finish(tasks: list[asyncio.Task[None]], patience: float = 5.0) -> None:
    """Cancel `tasks` and wait for them to end, at most `patience` seconds. Cancelling
    again when one survives a cancellation (redis-py can swallow one mid-reply)."""
    deadline = time.monotonic() + patience
    pending = {t for t in tasks if not t.done()}
    while pending:
        for task in pending:
            task.cancel()
        left = deadline - time.monotonic()
        if left <= 0:
            log.debug("eventwire: %d redis task(s) did not stop", len(pending))
            return
        _, pending = await asyncio.wait(pending, timeout=min(left, 0.2))


class Scripts:
    """The Lua scripts, registered once per client."""

    def __init__(self, client: Redis) -> None:
        self.create_group: AsyncScript = client.register_script(CREATE_GROUP)
        self.heartbeat: AsyncScript = client.register_script(HEARTBEAT)
        self.leases: AsyncScript = client.register_script(LEASES)
        self.release: AsyncScript = client.register_script(RELEASE)
        self.clean_consumer: AsyncScript = client.register_script(CLEAN_CONSUMER)


class Outage:
    """Logs the first failure of a loop as a warning, later ones at debug level, and the
    recovery once; gives the back-off before the next try."""

    def __init__(self, what: str, scrub: Callable[[str], str]) -> None:
        self.what = what
        self.scrub = scrub
        self.since: float | None = None
        self.failures = 0

    def failed(self, exc: BaseException) -> float:
        text = self.scrub(f"{type(exc).__name__}: {exc}")
        if self.since is None:
            self.since = time.monotonic()
            log.warning("eventwire: redis %s failed (%s); retrying", self.what, text)
        else:
            log.debug("eventwire: redis %s still failing (%s)", self.what, text)
        self.failures += 1
        return float(min(2.0, 0.05 * 2 ** min(self.failures, 6)))

    def ok(self) -> None:
        if self.since is not None:
            log.info(
                "eventwire: redis %s works again after %.1fs",
                self.what,
                time.monotonic() - self.since,
            )
            self.since = None
            self.failures = 0


def _as_bytes(value: object) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()


class _Shard:
    __slots__ = (
        "draining",
        "expires",
        "full",
        "index",
        "owned",
        "reading",
        "ready",
        "stream",
        "tracked",
    )

    def __init__(self, index: int, stream: str) -> None:
        self.index = index
        self.stream = stream
        #: We hold the lease.
        self.owned = False
        #: When the lease expires at the latest (monotonic clock): not read after that until
        #: a heartbeat renewed it (the event loop may have been blocked meanwhile).
        self.expires = 0.0
        #: Entries left pending by earlier owners were delivered again: read new ones.
        self.ready = False
        #: Another member should own it: read nothing more, give it back once settled.
        self.draining = False
        #: A read or claim on it is under way (its result is not tracked yet).
        self.reading = False
        #: The last read returned a full batch (the member is behind): check for trimming.
        self.full = False
        #: Ids read from it and not settled (acked and flushed) yet.
        self.tracked: set[bytes] = set()


class RedisDelivery:
    """A stream entry delivered to this member (an `eventwire.backend.Inbound`)."""

    __slots__ = ("_settled", "_shard", "_sub", "delivery_count", "entry_id", "message")

    def __init__(
        self,
        message: WireMessage,
        delivery_count: int,
        entry_id: bytes,
        shard: _Shard,
        sub: RedisSubscription,
    ) -> None:
        self.message = message
        self.delivery_count = delivery_count
        self.entry_id = entry_id
        self._shard = shard
        self._sub = sub
        self._settled = False

    @property
    def stream(self) -> str:
        return self._shard.stream

    async def ack(self) -> None:
        """Settle: queued for the next pipelined XACK (sent at once, retried until the
        server has it; a crash before then delivers the entry again)."""
        if not self._settled:
            self._settled = True
            self._sub._ack(self._shard, self.entry_id)

    def __repr__(self) -> str:
        return (
            f"<RedisDelivery {self.stream} {self.entry_id.decode()} "
            f"delivery_count={self.delivery_count}>"
        )


class RedisSubscription:
    """One member of ``spec.group`` on ``spec.channel``."""

    def __init__(
        self,
        *,
        client: Redis,
        scripts: Scripts,
        settings: RedisSettings,
        keys: ChannelKeys,
        spec: SubscriptionSpec,
        handler: MessageHandler,
        report_trimmed: Callable[[int], None],
    ) -> None:
        self.spec = spec
        self.member_id = f"{spec.consumer}-{uuid.uuid4().hex[:8]}"
        self._client = client
        self._scripts = scripts
        self._settings = settings
        self._keys = keys
        self._group = spec.group
        self._handler = handler
        self._report_trimmed = report_trimmed
        self._shards = [_Shard(i, stream) for i, stream in enumerate(keys.streams)]
        self._by_stream = {s.stream.encode(): s for s in self._shards}
        self._members_key = keys.members(spec.group)
        self._gen_key = keys.gen(spec.group)
        self._lease_keys = [keys.lease(spec.group, s.index) for s in self._shards]
        self._ttl_ms = int(settings.lease_ttl * 1000)
        self._count = max(1, min(settings.fetch_count, spec.max_in_flight))
        self._gen: bytes | None = None
        self._acks: dict[int, list[bytes]] = {}
        self._ack_event = asyncio.Event()
        self._wake = asyncio.Event()
        self._changed = asyncio.Event()
        self._share = asyncio.Event()
        self._stopped = False
        self._closed = False
        #: Acks are taken until `close` has sent the last ones, or `abort`.
        self._accepting = True
        self._tasks: list[asyncio.Task[None]] = []
        self._fetch_task: asyncio.Task[None] | None = None
        self._scrub = settings.scrub

    def __repr__(self) -> str:
        owned = [s.index for s in self._shards if s.owned]
        return f"<RedisSubscription {self.spec.channel}/{self._group} {self.member_id} {owned}>"

    @property
    def shards(self) -> list[int]:
        """The shards this member holds now."""
        return [s.index for s in self._shards if s.owned]

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Create the group on every shard, join, take a fair share of the shards.

        Returns once the group exists everywhere (so every event published afterwards is
        delivered to it) and this member holds its share of shards, or after ``lease_ttl``
        if a departed member's leases have not expired yet (they are taken over later).
        """
        start = "0" if self.spec.from_beginning else "$"
        pipe = self._client.pipeline(transaction=False)
        for shard in self._shards:
            await self._scripts.create_group(
                keys=[shard.stream], args=[self._group, start], client=pipe
            )
        await pipe.execute()
        await self._tick()
        name = f"eventwire-redis:{self.spec.channel}/{self._group}"
        self._fetch_task = asyncio.create_task(self._fetch(), name=name + ":fetch")
        self._tasks = [
            self._fetch_task,
            asyncio.create_task(self._coordinate(), name=name + ":coordinator"),
            asyncio.create_task(self._flush_acks(), name=name + ":acks"),
        ]
        await wait_event(self._share, self._settings.lease_ttl)

    async def stop(self) -> None:
        """Stop fetching and leave the member set. Deliveries handed out can still be acked
        until `close`; a shard is given back as soon as its deliveries are settled."""
        if self._stopped:
            return
        self._stopped = True
        if self._fetch_task is not None:
            self._changed.set()
            await finish([self._fetch_task])
        with contextlib.suppress(*RETRYABLE, ResponseError):
            pipe = self._client.pipeline(transaction=False)
            pipe.zrem(self._members_key, self.member_id)
            pipe.incr(self._gen_key)
            async with asyncio.timeout(self._settings.socket_timeout):
                await pipe.execute()
        self._wake.set()

    async def close(self) -> None:
        """Stop, send the last acknowledgements, give every shard back."""
        if self._closed:
            return
        await self.stop()
        self._closed = True
        await finish(self._tasks)  # a batch of acks being sent goes back to the buffer
        deadline = time.monotonic() + self._settings.reconnect_timeout
        outage = Outage("final acknowledgement", self._scrub)
        while self._acks and time.monotonic() < deadline:
            try:
                await self._send_acks()
                outage.ok()
            except RETRYABLE as exc:
                await asyncio.sleep(outage.failed(exc))
        self._accepting = False
        if self._acks:
            log.warning(
                "eventwire: %d acknowledgement(s) of %s/%s could not be sent; those events "
                "will be delivered again",
                sum(map(len, self._acks.values())),
                self.spec.channel,
                self._group,
            )
        with contextlib.suppress(*RETRYABLE, ResponseError):
            async with asyncio.timeout(self._settings.socket_timeout):
                await self._leave()

    async def _leave(self) -> None:
        owned = [s for s in self._shards if s.owned]
        pipe = self._client.pipeline(transaction=False)
        if owned:
            await self._scripts.release(
                keys=[self._gen_key, *(self._lease_keys[s.index] for s in owned)],
                args=[self.member_id],
                client=pipe,
            )
        for shard in self._shards:
            await self._scripts.clean_consumer(
                keys=[shard.stream], args=[self._group, self.member_id], client=pipe
            )
        await pipe.execute()
        for shard in owned:
            shard.owned = False

    def abort(self) -> list[asyncio.Task[None]]:
        """Crash: stop everything at once; send nothing more (no acks, no lease release)."""
        self._stopped = self._closed = True
        self._accepting = False
        self._acks.clear()
        for task in self._tasks:
            task.cancel()
        return self._tasks

    # -- acknowledgements -----------------------------------------------------------------

    def _ack(self, shard: _Shard, entry_id: bytes) -> None:
        if not self._accepting:
            return
        ids = self._acks.get(shard.index)
        if ids is None:
            self._acks[shard.index] = [entry_id]
        else:
            ids.append(entry_id)
        self._ack_event.set()

    async def _send_acks(self) -> None:
        batch, self._acks = self._acks, {}
        try:
            pipe = self._client.pipeline(transaction=False)
            for index, ids in batch.items():
                pipe.xack(self._shards[index].stream, self._group, *ids)
            await pipe.execute()
        except BaseException:
            for index, ids in batch.items():  # keep them, in order, for the next try
                later = self._acks.get(index)
                self._acks[index] = ids + later if later else ids
            raise
        release = False
        for index, ids in batch.items():
            shard = self._shards[index]
            shard.tracked.difference_update(ids)
            if shard.draining and not shard.tracked:
                release = True
        if release:
            self._wake.set()

    async def _flush_acks(self) -> None:
        outage = Outage(f"acknowledgement on {self.spec.channel}/{self._group}", self._scrub)
        while not self._closed:
            await self._ack_event.wait()
            self._ack_event.clear()
            while self._acks:
                try:
                    await self._send_acks()
                    outage.ok()
                except RETRYABLE as exc:
                    await asyncio.sleep(outage.failed(exc))
                except ResponseError as exc:
                    log.error(
                        "eventwire: redis refused an acknowledgement on %s/%s: %s",
                        self.spec.channel,
                        self._group,
                        self._scrub(str(exc)),
                    )
                    await asyncio.sleep(outage.failed(exc))

    # -- membership and shard leases ------------------------------------------------------

    async def _coordinate(self) -> None:
        outage = Outage(f"heartbeat of {self.spec.channel}/{self._group}", self._scrub)
        interval = self._settings.lease_ttl / 3
        while not self._closed:
            await wait_event(self._wake, interval)
            self._wake.clear()
            try:
                await self._tick()
                outage.ok()
            except RETRYABLE as exc:
                await asyncio.sleep(min(outage.failed(exc), interval))
            except ResponseError as exc:
                await asyncio.sleep(min(outage.failed(exc), interval))

    async def _tick(self) -> None:
        """One heartbeat: register, renew and acquire leases, give back what is not ours."""
        reply = await self._scripts.heartbeat(
            keys=[self._members_key, self._gen_key],
            args=[self.member_id, self._ttl_ms, "0" if self._stopped else "1"],
        )
        self._gen = reply[0]
        members = sorted(m.decode() for m in reply[1:])
        mine: set[int] = set()
        if not self._stopped and self.member_id in members:
            position, count = members.index(self.member_id), len(members)
            mine = {s.index for s in self._shards if s.index % count == position}
        changed = False
        # Shards we should own are acquired, or taken back when our lease expired
        # meanwhile and nobody else took it; the others are only renewed until given back.
        asks = [
            (shard, "a" if shard.index in mine else "r")
            for shard in self._shards
            if shard.owned or shard.index in mine
        ]
        if asks:
            sent = time.monotonic()
            held = await self._scripts.leases(
                keys=[self._lease_keys[s.index] for s, _ in asks],
                args=[self.member_id, self._ttl_ms, *(mode for _, mode in asks)],
            )
            expires = sent + self._settings.lease_ttl
            for (shard, _), ok in zip(asks, held, strict=True):
                if ok:
                    shard.expires = expires
                if shard.owned and ok != 1:
                    # Heartbeats were late: the lease expired. Someone may have taken the
                    # shard (and our pending entries) meanwhile, so even when we got it back
                    # it is recovered like a newly taken one; entries still in our pipeline
                    # stay tracked (they are acked when settled, and not delivered twice).
                    log.warning(
                        "eventwire: %s lost its lease on %s for group %s (heartbeats were "
                        "late by more than lease_ttl=%ss); %s",
                        self.member_id,
                        shard.stream,
                        self._group,
                        self._settings.lease_ttl,
                        "took it back" if ok else "another member takes it over",
                    )
                    shard.owned = shard.ready = shard.draining = False
                    changed = True
                if ok and not shard.owned:
                    shard.owned, shard.ready, shard.draining = True, False, False
                    changed = True
        give_back: list[_Shard] = []
        for shard in self._shards:
            if not shard.owned:
                continue
            if shard.index in mine:
                if shard.draining:
                    shard.draining = False
                    changed = True
                continue
            if not shard.draining:
                shard.draining = True
                changed = True
            if not shard.tracked and not shard.reading and shard.index not in self._acks:
                give_back.append(shard)
        if give_back:
            await self._scripts.release(
                keys=[self._gen_key, *(self._lease_keys[s.index] for s in give_back)],
                args=[self.member_id],
            )
            for shard in give_back:
                shard.owned = shard.ready = shard.draining = False
            changed = True
        if changed:
            self._changed.set()
        if all(self._shards[i].owned for i in mine):
            self._share.set()

    # -- fetching -------------------------------------------------------------------------

    async def _fetch(self) -> None:
        outage = Outage(f"read of {self.spec.channel}/{self._group}", self._scrub)
        # The flag, not only the cancellation, ends the loop: redis-py can swallow a
        # cancellation that arrives while it reads a reply.
        while not self._stopped:
            try:
                await self._fetch_once()
                outage.ok()
            except asyncio.CancelledError:
                raise
            except RETRYABLE as exc:
                # A reply may have been lost: what the server handed us is pending under
                # our name. Recover every shard before reading new entries again.
                for shard in self._shards:
                    shard.ready = False
                await asyncio.sleep(outage.failed(exc))
            except ResponseError as exc:
                if "NOGROUP" in str(exc):
                    await self._recreate_groups()
                else:
                    log.error(
                        "eventwire: redis refused a read on %s/%s: %s",
                        self.spec.channel,
                        self._group,
                        self._scrub(str(exc)),
                    )
                await asyncio.sleep(outage.failed(exc))

    async def _recreate_groups(self) -> None:
        """The group (or the stream) vanished on the server, e.g. after a restart that
        kept no data: create it again from the oldest retained entry."""
        log.warning(
            "eventwire: the consumer group %s of %s vanished on the server; creating it "
            "again from the oldest retained entry",
            self._group,
            self.spec.channel,
        )
        pipe = self._client.pipeline(transaction=False)
        for shard in self._shards:
            await self._scripts.create_group(
                keys=[shard.stream], args=[self._group, "0"], client=pipe
            )
            shard.ready = False
        await pipe.execute()

    async def _fetch_once(self) -> None:
        shards = self._shards
        for shard in shards:
            if shard.owned and not shard.ready and not shard.draining and not self._stopped:
                await self._recover(shard)
        if self._stopped:
            return
        now = time.monotonic()
        ready = [s for s in shards if s.owned and s.ready and not s.draining]
        if any(s.expires <= now for s in ready):  # no read on a lease that may be gone
            ready = [s for s in ready if s.expires > now]
            self._wake.set()
        if not ready:
            self._changed.clear()
            await wait_event(self._changed, self._settings.block)
            gen = await self._client.get(self._gen_key)
            if gen != self._gen:
                self._wake.set()
            return
        checks = [s for s in ready if s.full]
        pipe = self._client.pipeline(transaction=False)
        pipe.get(self._gen_key)
        for shard in checks:
            pipe.xlen(shard.stream)
            pipe.xinfo_groups(shard.stream)
        pipe.xreadgroup(
            self._group,
            self.member_id,
            {s.stream: ">" for s in ready},
            count=self._count,
            block=max(1, int(self._settings.block * 1000)),
        )
        for shard in ready:
            shard.reading = True
        try:
            replies = await pipe.execute()
            batch = self._track(replies[-1], ready)
        finally:
            for shard in ready:
                shard.reading = False
        if replies[0] != self._gen or any(s.draining for s in shards):
            self._wake.set()
        for n, shard in enumerate(checks):
            self._check_trimmed(shard, replies[1 + 2 * n], replies[2 + 2 * n])
        await self._deliver(batch)

    def _track(self, reply: Any, ready: list[_Shard]) -> list[RedisDelivery]:
        batch: list[RedisDelivery] = []
        for shard in ready:
            shard.full = False
        if not reply:
            return batch
        by_stream = self._by_stream
        for stream, entries in reply:
            shard = by_stream[stream]
            tracked = shard.tracked
            shard.full = len(entries) >= self._count
            for entry_id, fields in entries:
                if fields is None:  # deleted meanwhile
                    continue
                tracked.add(entry_id)
                batch.append(RedisDelivery(decode_entry(fields), 1, entry_id, shard, self))
        return batch

    async def _deliver(self, batch: list[RedisDelivery]) -> None:
        handler = self._handler
        done = 0
        try:
            for delivery in batch:
                if self._stopped:
                    break
                try:
                    await handler(delivery)
                except Exception:
                    log.exception(
                        "eventwire: the handler of %s/%s raised on a delivery; it stays unsettled",
                        self.spec.channel,
                        self._group,
                    )
                done += 1
        finally:
            # Stopped (cancelled) mid-batch: what was not handed over stays pending on the
            # server for the shard's next owner; forget it here.
            for delivery in batch[done:]:
                if not delivery._settled:
                    delivery._settled = True
                    delivery._shard.tracked.discard(delivery.entry_id)

    # -- recovery -------------------------------------------------------------------------

    async def _recover(self, shard: _Shard) -> None:
        """Deliver again, in id order, every entry of `shard` pending for the group (left by
        a member that crashed, stopped or lost the shard), then mark it ready."""
        client = self._client
        min_idle = int(self._settings.claim_min_idle * 1000)
        shard.reading = True
        try:
            pipe = client.pipeline(transaction=False)
            pipe.xlen(shard.stream)
            pipe.xinfo_groups(shard.stream)
            length, groups = await pipe.execute()
        finally:
            shard.reading = False
        self._check_trimmed(shard, length, groups)
        cursor: bytes | str = "0-0"
        while shard.owned and not shard.draining and not self._stopped:
            if min_idle:
                await self._wait_idle(shard, min_idle)
            shard.reading = True
            try:
                cursor, entries, deleted = await self._claim(shard, cursor, min_idle)
                entries = [(i, f) for i, f in entries if i not in shard.tracked and f]
                counts: dict[bytes, int] = {}
                if entries:
                    rows = await client.xpending_range(
                        shard.stream,
                        self._group,
                        entries[0][0],
                        entries[-1][0],
                        len(entries) + 16,
                        consumername=self.member_id,
                    )
                    counts = {_as_bytes(r["message_id"]): int(r["times_delivered"]) for r in rows}
                batch = []
                for entry_id, fields in entries:
                    shard.tracked.add(entry_id)
                    batch.append(
                        RedisDelivery(
                            decode_entry(fields),
                            max(1, counts.get(entry_id, 1)),
                            entry_id,
                            shard,
                            self,
                        )
                    )
            finally:
                shard.reading = False
            if deleted:
                self._report_lost(shard, len(deleted), "pending (delivered, not settled)")
            if batch:
                log.info(
                    "eventwire: delivering again %d unsettled event(s) of %s for group %s",
                    len(batch),
                    shard.stream,
                    self._group,
                )
            await self._deliver(batch)
            if cursor in (b"0-0", "0-0"):
                shard.ready = True
                await self._clean_consumers(shard)
                return

    async def _claim(
        self, shard: _Shard, cursor: bytes | str, min_idle: int
    ) -> tuple[bytes, list[tuple[bytes, Any]], list[bytes]]:
        reply = await self._client.xautoclaim(
            shard.stream, self._group, self.member_id, min_idle, cursor, count=RECOVER_PAGE
        )
        deleted = list(reply[2]) if len(reply) > 2 else []
        return reply[0], list(reply[1]), deleted

    async def _wait_idle(self, shard: _Shard, min_idle: int) -> None:
        """With ``claim_min_idle``, wait until every pending entry we do not hold ourselves
        is idle long enough to be claimed (claiming only some would break key order)."""
        while shard.owned and not shard.draining:
            rows = await self._client.xpending_range(
                shard.stream, self._group, "-", "+", RECOVER_PAGE
            )
            waits = [
                min_idle - int(r["time_since_delivered"])
                for r in rows
                if r["message_id"] not in shard.tracked
            ]
            longest = max(waits, default=0)
            if longest <= 0:
                return
            await asyncio.sleep(longest / 1000)

    async def _clean_consumers(self, shard: _Shard) -> None:
        """Forget consumers of crashed members once nothing is pending for them."""
        try:
            consumers = await self._client.xinfo_consumers(shard.stream, self._group)
            stale = [
                c["name"]
                for c in consumers
                if not c.get("pending")
                and c["name"] != self.member_id.encode()
                and int(c.get("idle", 0)) > 2 * self._ttl_ms
            ]
            if stale:
                pipe = self._client.pipeline(transaction=False)
                for name in stale:
                    await self._scripts.clean_consumer(
                        keys=[shard.stream], args=[self._group, name], client=pipe
                    )
                await pipe.execute()
        except ResponseError:
            pass

    # -- trimming -------------------------------------------------------------------------

    def _check_trimmed(self, shard: _Shard, length: Any, groups: Any) -> None:
        """Report entries the group never read that retention trimmed away.

        ``lag`` counts the entries added after the group's position; trimming removes the
        oldest entries first, so if unread ones were trimmed, every retained entry is unread
        and ``lag - length`` of them are gone."""
        for info in groups or ():
            name = info.get("name")
            if name not in (self._group, self._group.encode()):
                continue
            lag = info.get("lag")
            if lag is not None and int(lag) > int(length or 0):
                self._report_lost(shard, int(lag) - int(length or 0), "never read")
            return

    def _report_lost(self, shard: _Shard, count: int, what: str) -> None:
        log.error(
            "eventwire: %d %s event(s) of %s for group %s were trimmed by the stream's "
            "retention before they were settled; they cannot be delivered. Raise the "
            "redis backend's maxlen/retention or add consumers",
            count,
            what,
            shard.stream,
            self._group,
        )
        self._report_trimmed(count)
