"""One group member: shard coordination, the fetch loop and batched acknowledgements.

Three background tasks per member (`BaseSubscription.spawn`):

- the kit's `ShardCoordinator` heartbeats the member and holds its shard leases (rows of
  the file, `SqliteLeaseStore`);
- the kit's *fetch loop* (`ShardedSubscription._fetch`): `_recover` delivers again, in
  order, what earlier owners of a newly leased shard left pending (delivery count + 1),
  `_read` reads new messages of its ready shards in one transaction that marks them
  pending; the kit hands them to the handler one by one (a full pipeline blocks it:
  backpressure) and waits ``poll_interval`` when there is nothing (a publish in this
  process wakes it: `wake`);
- the *ack flusher* (the kit's `AckBatcher`) deletes the acked entries' pending rows in one
  transaction per batch, then reports them settled to the coordinator (which gives a
  draining shard back once its last one is settled).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from eventwire.backend import MessageHandler, Origin, SubscriptionSpec, WireMessage
from eventwire.backendkit import Shard, ShardedSubscription, ShardInbound

from eventwire_sqlite._db import Database, Row
from eventwire_sqlite._leases import SqliteLeaseStore

if TYPE_CHECKING:
    from eventwire_sqlite._settings import SqliteSettings

__all__ = ["SqliteInbound", "SqliteSubscription"]

log = logging.getLogger("eventwire.sqlite")


class SqliteInbound(ShardInbound[int]):
    """A message handed to this member (an `eventwire.backend.Inbound`); the position is
    the row's ``seq``."""

    __slots__ = ()

    @property
    def origin(self) -> Origin:
        """``<channel>/<seq>``: the row of the message in the database's log."""
        return Origin(position=f"{self.subscription.spec.channel}/{self.position}")


def _inbound(subscription: SqliteSubscription, row: Row) -> SqliteInbound:
    shard, seq, deliveries, key, body, headers = row
    message = WireMessage(bytes(body), json.loads(headers), key)
    return SqliteInbound(
        subscription, subscription.coordinator.shards[shard], seq, message, deliveries
    )


class SqliteSubscription(ShardedSubscription[int]):
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
        super().__init__(
            spec,
            handler,
            store=SqliteLeaseStore(database, spec.channel, spec.group),
            member_id=f"{spec.member_prefix}-{uuid.uuid4().hex[:12]}",
            shards=shards,
            ttl=settings.lease_ttl,
            scrub=scrub,
            backend="sqlite",
        )
        self._db = database
        self._limit = min(settings.fetch_count, spec.max_in_flight)
        self._turn = 0
        self.poll_interval = settings.poll_interval
        self.transient = (sqlite3.Error,)

    def __repr__(self) -> str:
        return f"<SqliteSubscription {self.spec.channel}/{self.spec.group} {self.member_id}>"

    # -- fetching: the kit's loop over `_recover` and `_read` -------------------------------

    async def _recover(self, shard: Shard) -> list[SqliteInbound]:
        mine = frozenset(self.handed(shard))  # read in the database's thread
        rows, lost = await self._take(
            self._db.recover, self.spec.channel, self.spec.group, shard.index, mine
        )
        if lost:
            log.warning(
                "eventwire: %d pending event(s) of %s/%s were deleted by retention before "
                "they were settled",
                lost,
                self.spec.channel,
                self.spec.group,
            )
        return [_inbound(self, row) for row in rows]

    async def _read(self, ready: list[Shard]) -> list[SqliteInbound]:
        self._turn = (self._turn + 1) % len(ready)  # who goes first when the limit is small
        order = [shard.index for shard in ready[self._turn :] + ready[: self._turn]]
        rows, _ = await self._take(
            self._db.read, self.spec.channel, self.spec.group, order, self._limit
        )
        return [_inbound(self, row) for row in rows]

    async def _take(self, work: Callable[..., Any], *args: Any) -> tuple[list[Row], int]:
        """Run a read or a recovery (which marks rows as handed out in the database) and
        mark its rows handed. Stopped while it runs, the rows it took are given back at once."""
        job = asyncio.ensure_future(self._db.run(work, *args))
        try:
            result = await asyncio.shield(job)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                late = await job
                rows = late[0] if isinstance(late, tuple) else late
                await self._give_back([(row[0], row[1]) for row in rows])
            raise
        rows, lost = result if isinstance(result, tuple) else (result, 0)
        shards = self.coordinator.shards
        for row in rows:
            self.mark_handed(shards[row[0]], (row[1],))
        return rows, lost

    async def _give_up(self, inbounds: list[ShardInbound[int]]) -> None:
        await self._give_back([(inbound.shard.index, inbound.position) for inbound in inbounds])

    async def _give_back(self, entries: list[tuple[int, int]]) -> None:
        """`entries` (shard, seq) were taken but never reached the handler: undo their
        delivery count, so the next owner delivers them as if this member had not taken
        them."""
        if entries:
            with contextlib.suppress(sqlite3.Error):
                await self._db.run(self._db.give_back, self.spec.channel, self.spec.group, entries)

    # -- acknowledgements ------------------------------------------------------------------

    async def _send_acks(self, batch: list[tuple[Shard, int]]) -> None:
        entries = [(shard.index, seq) for shard, seq in batch]
        await self._db.run(self._db.ack, self.spec.channel, self.spec.group, entries)
