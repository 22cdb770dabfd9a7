"""`SqliteBackend`: the `eventwire.backend.Backend` protocol over one SQLite file."""

from __future__ import annotations

import dataclasses
import sqlite3
import time
import weakref
from collections.abc import Mapping, Sequence
from typing import Any

from eventwire.backend import MessageHandler, SubscriptionSpec, WireMessage
from eventwire.backendkit import BaseBackend, GroupCommit, shard_of
from eventwire.errors import BackendUnavailableError, PublishError

from eventwire_sqlite._db import Database
from eventwire_sqlite._idempotency import SqliteIdempotencyStore
from eventwire_sqlite._info import CAPABILITIES
from eventwire_sqlite._settings import SqliteSettings
from eventwire_sqlite._subscription import SqliteSubscription

__all__ = ["SqliteBackend"]

#: The subscriptions of this process per database file: a publish wakes them at once.
_LOCAL: dict[str, weakref.WeakSet[SqliteSubscription]] = {}


class SqliteBackend(BaseBackend[SqliteSettings]):
    """A connection to one SQLite database file, shared with the other processes using it."""

    name = "sqlite"
    binding = "kafka"
    capabilities = CAPABILITIES
    error_map = {sqlite3.Error: BackendUnavailableError}

    def __init__(self, url: str, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(SqliteSettings.parse(url, options))
        self.capabilities = dataclasses.replace(
            CAPABILITIES, max_message_bytes=self.settings.max_message_bytes
        )
        self._db = Database(self.settings)
        self._shards: dict[str, int] = {}
        self._round_robin = 0
        self._trimmed = 0.0
        #: Publishes written in one transaction with those waiting meanwhile (group commit:
        #: one disk sync for all of them).
        self._commits: GroupCommit[tuple[str, list[tuple[int, WireMessage]]]] = GroupCommit(
            self._write, name=f"eventwire-sqlite:{self.url}"
        )

    def shared_idempotency_store(self) -> SqliteIdempotencyStore:
        """A `SqliteIdempotencyStore` in this backend's file (the bus's default store)."""
        return SqliteIdempotencyStore(self.settings)

    async def _connect(self) -> None:
        await self._db.open()

    async def _close(self) -> None:
        await self._db.close()

    async def _abort(self) -> None:
        self._db.abandon()

    async def _channel_shards(self, channel: str) -> int:
        shards = self._shards.get(channel)
        if shards is None:
            shards = self._shards[channel] = await self._db.run(self._db.channel_shards, channel)
        return shards

    def _shard(self, key: str | None, shards: int) -> int:
        if key is None:
            self._round_robin = (self._round_robin + 1) % shards
            return self._round_robin
        return shard_of(key, shards)

    async def publish(self, channel: str, messages: Sequence[WireMessage]) -> None:
        self.check_publish(channel, messages)
        if not messages:
            return
        with self.map_errors(f"publish to {channel!r}", into=PublishError):
            shards = await self._channel_shards(channel)
            rows = [(self._shard(m.key, shards), m) for m in messages]
            await self._commits.submit((channel, rows))
        for subscription in list(_LOCAL.get(self.settings.path, ())):
            if subscription.spec.channel == channel:
                subscription.wake()

    async def _write(self, batch: list[tuple[str, list[tuple[int, WireMessage]]]]) -> None:
        await self._db.run(self._db.append, batch)
        await self._apply_retention()

    async def _apply_retention(self) -> None:
        retention = self.settings.retention
        now = time.time()
        if retention is None or now - self._trimmed < min(retention / 10, 60.0):
            return
        self._trimmed = now
        await self._db.run(self._db.trim, now - retention)

    async def subscribe(
        self, spec: SubscriptionSpec, handler: MessageHandler
    ) -> SqliteSubscription:
        self.check_subscribe(spec)
        with self.map_errors(f"subscribe to {spec.channel!r}"):
            shards = await self._channel_shards(spec.channel)
            await self._db.run(self._db.join, spec.channel, spec.group, spec.from_beginning)
        subscription = SqliteSubscription(
            spec, handler, self._db, self.settings, shards, self.settings.scrub
        )
        _LOCAL.setdefault(self.settings.path, weakref.WeakSet()).add(subscription)
        return await self.started(subscription)

    async def browse(self, channel: str, limit: int = 1000) -> list[WireMessage]:
        self.check_channel(channel)
        with self.map_errors(f"browse {channel!r}"):
            return await self._db.run(self._db.browse, channel, limit)

    async def lag(self, channel: str, group: str) -> int | None:
        """Messages of `channel` that `group` has not acked yet, handed out or not
        (`eventwire.backend.LagReporter`); ``None`` if the group never joined."""
        self.check_connected()
        self.check_channel(channel)
        with self.map_errors(f"lag of group {group!r} on {channel!r}"):
            return await self._db.run(self._db.lag, channel, group)

    async def delete_channel(self, channel: str) -> bool:
        """Forget `channel` and everything about it (`eventwire.backend.ChannelDeleter`)."""
        self.check_connected()
        self._shards.pop(channel, None)
        with self.map_errors(f"delete {channel!r}"):
            return await self._db.run(self._db.delete_channel, channel)

    async def purge_channel(self, channel: str) -> int:
        """Remove the channel's retained messages (`eventwire.backend.ChannelPurger`)."""
        self.check_channel(channel)
        with self.map_errors(f"purge {channel!r}"):
            return await self._db.run(self._db.purge_channel, channel)
