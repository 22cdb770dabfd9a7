"""One group member: shard coordination, the fetch loop and batched acknowledgements.

Three background tasks per member (`BaseSubscription.spawn`):

- the kit's `ShardCoordinator` heartbeats the member and holds its shard leases (rows of
  the file, `SqliteLeaseStore`);
- the *fetch loop* first delivers again, in order, what earlier owners of a newly leased
  shard left pending (delivery count + 1), then reads new messages of its ready shards in
  one transaction that marks them pending; it hands them to the handler one by one (a full
  pipeline blocks it: backpressure) and sleeps ``poll_interval`` when there is nothing;
- the *ack flusher* deletes the acked entries' pending rows in one transaction per batch,
  then reports them settled to the coordinator (which gives a draining shard back once its
  last one is settled).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING

from eventwire.backend import MessageHandler, SubscriptionSpec, WireMessage
from eventwire.backendkit import BaseSubscription, Shard, ShardCoordinator

from eventwire_sqlite._db import Database, Row, SqliteLeaseStore

if TYPE_CHECKING:
    from eventwire_sqlite._settings import SqliteSettings

__all__ = ["SqliteInbound", "SqliteSubscription"]

log = logging.getLogger("eventwire.sqlite")


class SqliteInbound:
    """A message handed to this member (an `eventwire.backend.Inbound`)."""

    __slots__ = ("_settled", "_shard", "_subscription", "delivery_count", "message", "seq")

    def __init__(self, subscription: SqliteSubscription, shard: Shard, row: Row) -> None:
        _, seq, deliveries, key, body, headers = row
        self.message = WireMessage(bytes(body), json.loads(headers), key)
        self.delivery_count = deliveries
        self.seq = seq
        self._shard = shard
        self._subscription = subscription
        self._settled = False

    async def ack(self) -> None:
        """Settle it; idempotent, ignored once the member closed or aborted."""
        if not self._settled:
            self._settled = True
            self._subscription.ack(self._shard, self.seq)

    def __repr__(self) -> str:
        return (
            f"<SqliteInbound shard={self._shard.index} seq={self.seq} "
            f"delivery_count={self.delivery_count}>"
        )


class SqliteSubscription(BaseSubscription):
    """One member of ``spec.group`` on ``spec.channel``; started by `SqliteBackend.subscribe`."""

    def __init__(
        self,
        spec: SubscriptionSpec,
        handler: MessageHandler,
        database: Database,
        settings: SqliteSettings,
        shards: int,
        scrub: Callable[[str], str],
    ) -> None:
        super().__init__(spec, handler)
        self.member_id = f"{spec.member_prefix}-{uuid.uuid4().hex[:12]}"
        self._db = database
        self._settings = settings
        self._scrub = scrub
        self.coordinator = ShardCoordinator(
            SqliteLeaseStore(database, spec.channel, spec.group),
            self.member_id,
            shards,
            ttl=settings.lease_ttl,
            scrub=scrub,
        )
        self._limit = min(settings.fetch_count, spec.max_in_flight)
        self._acks: list[tuple[Shard, int]] = []
        self._ack_event = asyncio.Event()
        self._wake = asyncio.Event()
        self._fetch: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"<SqliteSubscription {self.spec.channel}/{self.spec.group} {self.member_id}>"

    async def start(self) -> None:
        """Start the tasks; return once this member holds its share (or ``lease_ttl`` passed)."""
        self.spawn(self.coordinator.run(), "coordinator")
        self._fetch = self.spawn(self._fetch_loop(), "fetch")
        self.spawn(self._flush_loop(), "acks")
        # another member may still drain a shard of ours: it comes once settled
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.coordinator.balanced.wait(), self._settings.lease_ttl)

    def notify(self) -> None:
        """New messages were written (by this process): look now, not at the next poll."""
        self._wake.set()

    # -- fetching --------------------------------------------------------------------------

    async def _fetch_loop(self) -> None:
        failing = False
        while self.running:
            self._wake.clear()
            self.coordinator.changed.clear()
            try:
                found = await self._recover() | await self._read()
                failing = False
            except sqlite3.Error as exc:
                if not failing:
                    log.warning(
                        "eventwire: %s/%s cannot read the database (%s: %s); retrying",
                        self.spec.channel,
                        self.spec.group,
                        type(exc).__name__,
                        self._scrub(str(exc)),
                    )
                failing = True
                await asyncio.sleep(self._settings.poll_interval * 4)
                continue
            if not found:
                await self._idle()

    async def _idle(self) -> None:
        waits = [
            asyncio.ensure_future(self._wake.wait()),
            asyncio.ensure_future(self.coordinator.changed.wait()),
        ]
        try:
            await asyncio.wait(
                waits, timeout=self._settings.poll_interval, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for waiter in waits:
                waiter.cancel()

    async def _recover(self) -> bool:
        found = False
        for shard in self.coordinator.to_recover():
            epoch = shard.epoch
            with self.coordinator.reading([shard]):
                rows, lost = await self._db.run(
                    self._db.recover, self.spec.channel, self.spec.group, shard.index
                )
                self.coordinator.delivered(shard, len(rows))
            if lost:
                log.warning(
                    "eventwire: %d pending event(s) of %s/%s were deleted by retention before "
                    "they were settled",
                    lost,
                    self.spec.channel,
                    self.spec.group,
                )
            await self._deliver(shard, rows)
            self.coordinator.mark_recovered(shard, epoch)
            found = found or bool(rows)
        return found

    async def _read(self) -> bool:
        ready = self.coordinator.readable()
        if not ready or not self.running:
            return False
        by_index = {shard.index: shard for shard in ready}
        with self.coordinator.reading(ready):
            rows = await self._db.run(
                self._db.read, self.spec.channel, self.spec.group, list(by_index), self._limit
            )
            for row in rows:
                self.coordinator.delivered(by_index[row[0]])
        for row in rows:
            if not self.running:
                break  # stopped: the rest stay pending for the next owner
            await self.deliver(SqliteInbound(self, by_index[row[0]], row))
        return bool(rows)

    async def _deliver(self, shard: Shard, rows: list[Row]) -> None:
        for row in rows:
            if not self.running:
                return
            await self.deliver(SqliteInbound(self, shard, row))

    async def _stop_fetching(self) -> None:
        self.coordinator.stop()
        if self._fetch is not None:
            self._fetch.cancel()
            await asyncio.gather(self._fetch, return_exceptions=True)

    # -- acknowledgements ------------------------------------------------------------------

    def ack(self, shard: Shard, seq: int) -> None:
        if self.accepting:
            self._acks.append((shard, seq))
            self._ack_event.set()

    async def _flush_loop(self) -> None:
        failing = False
        while True:
            await self._ack_event.wait()
            self._ack_event.clear()
            try:
                await self._flush()
                failing = False
            except sqlite3.Error as exc:
                if not failing:
                    log.warning(
                        "eventwire: acknowledgements of %s/%s wait for the database (%s)",
                        self.spec.channel,
                        self.spec.group,
                        type(exc).__name__,
                    )
                failing = True
                self._ack_event.set()
                await asyncio.sleep(self._settings.poll_interval * 4)

    async def _flush(self) -> None:
        """Send the acks taken so far (also the last ones, on close)."""
        while self._acks:
            batch, self._acks = self._acks, []
            entries = [(shard.index, seq) for shard, seq in batch]
            try:
                await self._db.run(self._db.ack, self.spec.channel, self.spec.group, entries)
            except BaseException:
                self._acks[:0] = batch  # keep them, in order, for the next try
                raise
            for shard, _ in batch:
                self.coordinator.settled(shard)

    async def _release(self) -> None:
        await self.coordinator.leave()

    def _drop(self) -> None:
        self._acks.clear()
