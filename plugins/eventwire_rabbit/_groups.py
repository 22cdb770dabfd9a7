"""Creating a channel's and a group's topology once, and filling a new group from history.

A group is created by one member at a time (an exclusive lock queue); the bound group
exchange marks a finished group, so a member that finds it only checks the shard count.
A ``from_beginning`` group is filled from the channel's history stream through a temporary
router bound to the same shards in the same way (same key, same shard) before the group
exchange is bound, catching up in rounds until a round is short.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Iterator
from typing import Any

import aiormq
from aiormq.abc import DeliveredMessage
from eventwire.backend import SubscriptionSpec
from eventwire.backendkit import Memo
from eventwire.errors import BackendUnavailableError, ConfigurationError

from eventwire_rabbit._history import Visitor, scan
from eventwire_rabbit._topology import (
    Connection,
    declare_channel,
    declare_router,
    declare_shards,
    group_exchange,
    groups_queue,
    history_queue,
    init_lock_queue,
    shard_queue,
    unslotted_exchange,
)
from eventwire_rabbit._wire import Outgoing

__all__ = ["Groups"]

log = logging.getLogger("eventwire.rabbit")

#: A from_beginning copy stops catching up once a round copies fewer messages than this.
_CATCH_UP = 50


class Groups:
    """The channels and groups one backend has declared (each once, concurrent callers wait)."""

    def __init__(self, backend: Connection) -> None:
        self._backend = backend
        self._settings = backend.settings
        #: The channels declared; ``declared.forget(channel)`` declares one again on its next
        #: use (its topology was deleted).
        self.declared: Memo[str, None] = Memo()

    async def ensure_channel(self, channel: str) -> None:
        """Declare `channel`'s exchange and history stream once."""
        await self.declared.get(channel, lambda: self._declare_channel(channel))

    async def _declare_channel(self, channel: str) -> None:
        with self._declaring(channel):
            async with self._backend.scratch() as scratch:
                await declare_channel(scratch, self._settings, channel)

    @contextlib.contextmanager
    def _declaring(self, what: str) -> Iterator[None]:
        """The backend's error mapping, and a clear `ConfigurationError` for a topology that
        exists with other arguments."""
        with self._backend.map_errors(f"declaring the topology of {what!r}"):
            try:
                yield
            except aiormq.exceptions.ChannelPreconditionFailed as exc:
                raise ConfigurationError(
                    f"RabbitMQ refused to declare the topology of {what!r}: {exc}. It exists "
                    "with other settings (shards, history_*, delivery_limit, group_expires): "
                    "use the same options everywhere or delete the old queues/exchanges"
                ) from exc

    async def _exists(self, exchange: str) -> bool:
        """Whether the exchange `exchange` exists."""
        async with self._backend.scratch() as scratch:
            try:
                await scratch.exchange_declare(exchange, passive=True)
                return True
            except aiormq.exceptions.ChannelNotFoundEntity:
                return False

    async def _ready(self, queue: str) -> int | None:
        """The ready messages of the queue `queue` (a passive declare); ``None`` if it does
        not exist."""
        async with self._backend.scratch() as scratch:
            try:
                declared = await scratch.queue_declare(queue, passive=True)
            except aiormq.exceptions.ChannelNotFoundEntity:
                return None
        return int(declared.message_count or 0)

    async def ensure_group(self, spec: SubscriptionSpec) -> None:
        """Create the group's shards and exchanges once (and fill them from history for
        ``from_beginning``); the bound group exchange marks a finished group."""
        channel, group = spec.channel, spec.group
        name = group_exchange(channel, group)
        await self.ensure_channel(channel)
        await self.ensure_channel(channel + ".dlq")
        with self._declaring(f"{channel}/{group}"):
            if await self._exists(name):
                await self._check_group(channel, group)
                return
            async with self._backend.scratch() as lock:
                try:
                    await lock.queue_declare(
                        init_lock_queue(channel, group), exclusive=True, auto_delete=True
                    )
                except aiormq.exceptions.ChannelLockedResource:
                    await self._wait_for_group(name)
                    return
                if await self._exists(name):
                    return
                await self._create_group(spec)

    async def delete_group(self, channel: str, group: str, shards: int | None = None) -> None:
        """Delete `group`'s exchanges and shard queues on `channel` (`shards` of them; this
        backend's ``shards`` by default)."""
        async with self._backend.scratch() as scratch:
            name = group_exchange(channel, group)
            await scratch.exchange_delete(name)
            await scratch.exchange_delete(unslotted_exchange(name))
            for shard in range(self._settings.shards if shards is None else shards):
                await scratch.queue_delete(shard_queue(channel, group, shard))

    async def delete_channel(self, channel: str) -> bool:
        """Delete every group recorded for `channel`, then its exchange, history stream and
        record of groups; whether the exchange existed."""
        existed = await self._exists(channel)
        for group, shards in await self._recorded_groups(channel):
            await self.delete_group(channel, group, shards)
        async with self._backend.scratch() as scratch:
            await scratch.exchange_delete(channel)
            await scratch.queue_delete(history_queue(channel))
            await scratch.queue_delete(groups_queue(channel))
        self.declared.forget(channel)
        return existed

    async def _recorded_groups(self, channel: str) -> list[tuple[str, int]]:
        """The groups `_create_group` recorded for `channel`, with their shard counts."""
        found: list[tuple[str, int]] = []
        count = await self._ready(groups_queue(channel))
        if not count:
            return found
        async with self._backend.scratch() as scratch:
            for _ in range(count):
                message = await scratch.basic_get(groups_queue(channel), no_ack=True)
                group, _, shards = message.body.decode(errors="replace").partition("\t")
                if group and shards.isdigit():
                    found.append((group, int(shards)))
        return found

    async def lag(self, channel: str, group: str) -> int | None:
        """The ready messages of `group`'s shard queues; ``None`` if it has none."""
        shards = range(self._settings.shards)
        ready = [await self._ready(shard_queue(channel, group, shard)) for shard in shards]
        found = [count for count in ready if count is not None]
        return sum(found) if found else None

    async def _check_group(self, channel: str, group: str) -> None:
        """The group exists: its shard count must be ours (last shard there, next absent)."""
        count = self._settings.shards
        last = await self._ready(shard_queue(channel, group, count - 1)) is not None
        extra = await self._ready(shard_queue(channel, group, count)) is not None
        if not last or extra:
            raise ConfigurationError(
                f"group {group!r} on channel {channel!r} was created with "
                f"{'fewer' if not last else 'more'} shards than shards={count}; give every "
                "member the group's original shard count"
            )

    async def _wait_for_group(self, name: str) -> None:
        deadline = time.monotonic() + max(60.0, self._settings.publish_timeout)
        while not await self._exists(name):
            if time.monotonic() > deadline:
                raise BackendUnavailableError(
                    f"another member has been creating {name!r} for too long; retry"
                )
            await asyncio.sleep(0.1)

    async def _create_group(self, spec: SubscriptionSpec) -> None:
        channel, group = spec.channel, spec.group
        settings = self._settings
        async with self._backend.scratch() as scratch:
            shards = await declare_shards(scratch, settings, channel, group)
            copy = spec.from_beginning and (settings.history or channel.endswith(".dlq"))
            start: int | str = "first"
            temp = f"{group_exchange(channel, group)}:init-{uuid.uuid4().hex[:8]}"
            if copy:
                # Same shards bound in the same order: the same key lands in the same shard.
                await declare_router(scratch, temp, shards, durable=False)
                for _ in range(8):  # catch up until a round is short
                    copied, start = await self._copy_history(channel, temp, start)
                    if copied < _CATCH_UP:
                        break
            name = group_exchange(channel, group)
            await declare_router(scratch, name, shards, durable=True)
            await scratch.exchange_bind(name, channel, routing_key="#")
            await self._record_group(channel, group, len(shards))
            if copy:
                # What arrived between the last round and the binding (a few may now be
                # in the shards twice: at-least-once).
                await self._copy_history(channel, temp, start)
                await scratch.exchange_delete(temp)
                await scratch.exchange_delete(unslotted_exchange(temp))

    async def _record_group(self, channel: str, group: str, shards: int) -> None:
        """Record `group` in ``<channel>:groups`` for `delete_channel` (AMQP cannot list what
        is bound to an exchange). A replicated queue, like the shards; best effort: a group
        that could not be recorded works all the same, `delete_channel` just misses it."""
        arguments: dict[str, Any] = {"x-queue-type": "quorum"}
        if self._settings.quorum_size:
            arguments["x-quorum-initial-group-size"] = self._settings.quorum_size
        try:
            async with self._backend.scratch() as scratch:
                await scratch.queue_declare(
                    groups_queue(channel), durable=True, arguments=arguments
                )
                await scratch.basic_publish(
                    f"{group}\t{shards}".encode(),
                    routing_key=groups_queue(channel),
                    properties=aiormq.spec.Basic.Properties(delivery_mode=2),
                )
        except (aiormq.exceptions.AMQPError, BackendUnavailableError, OSError) as exc:
            log.warning(
                "group %r of channel %r is not recorded in %s (delete_channel will not find "
                "it; delete_group deletes it): %s",
                group,
                channel,
                groups_queue(channel),
                exc,
            )

    async def read_history(
        self, channel: str, visit: Visitor, start: int | str = "first"
    ) -> int | None:
        """Visit `channel`'s history stream from `start` (see `scan`): the offset after the
        last message read, ``None`` if `visit` stopped early. Raises
        `aiormq.exceptions.ChannelNotFoundEntity` when the channel keeps no history."""
        timeout = self._settings.publish_timeout
        publisher = await self._backend.publisher.channel(time.monotonic() + timeout)
        amqp = await self._backend.amqp(timeout)
        return await scan(amqp, publisher, history_queue(channel), start, visit, timeout=timeout)

    async def _copy_history(
        self, channel: str, target: str, start: int | str
    ) -> tuple[int, int | str]:
        backend = self._backend
        window: list[Outgoing] = []
        copied = 0

        async def visit(message: DeliveredMessage) -> bool:
            nonlocal copied
            props = message.header.properties
            headers = props.headers or {}
            props.headers = {k: v for k, v in headers.items() if not k.startswith("x-stream")}
            key = message.delivery.routing_key or ""  # type: ignore[union-attr]
            window.append((message.body, key, props))
            copied += 1
            if len(window) >= 500:
                await backend.publisher.send(target, window)
                window.clear()
            return False

        try:
            end = await self.read_history(channel, visit, start)
        except aiormq.exceptions.ChannelNotFoundEntity:
            end = None
        await backend.publisher.send(target, window)
        return copied, (end if end is not None else start)
