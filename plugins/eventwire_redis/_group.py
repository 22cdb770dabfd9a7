"""`StreamGroup`: one eventwire group of one channel as the server keeps it — a consumer
group on every shard stream — and the stream commands a member runs on it."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from redis.exceptions import ResponseError

from eventwire_redis._leases import Scripts

if TYPE_CHECKING:
    from collections.abc import Set

    from redis.asyncio import Redis

__all__ = ["Claimed", "StreamGroup", "group_info"]

#: Entries claimed per XAUTOCLAIM page while recovering a shard.
RECOVER_PAGE = 200

#: (entry id, fields, delivery count) of an entry claimed for this member.
Claimed = tuple[bytes, Any, int]


class StreamGroup:
    """The consumer group `group` on `streams`, seen by the member `member`."""

    def __init__(
        self, client: Redis, scripts: Scripts, streams: list[str], group: str, member: str
    ) -> None:
        self.client = client
        self.streams = streams
        self.group = group
        self.member = member
        self._scripts = scripts
        self._index = {s.encode(): n for n, s in enumerate(streams)}

    async def create(self, start: str) -> None:
        """Create the group on every shard stream (``$``: new entries, ``0``: all retained)
        unless it exists there."""
        pipe = self.client.pipeline(transaction=False)
        for stream in self.streams:
            await self._scripts.create_group(keys=[stream], args=[self.group, start], client=pipe)
        await pipe.execute()

    async def ack(self, entries: list[tuple[int, bytes]]) -> None:
        """``XACK`` (shard, entry id) pairs: one command per shard, in one round trip."""
        by_shard: dict[int, list[bytes]] = {}
        for shard, entry_id in entries:
            by_shard.setdefault(shard, []).append(entry_id)
        pipe = self.client.pipeline(transaction=False)
        for shard, ids in by_shard.items():
            pipe.xack(self.streams[shard], self.group, *ids)
        await pipe.execute()

    async def give_back(self, entries: list[tuple[int, bytes, int]], idle_ms: int) -> None:
        """Set the delivery counts of (shard, entry id, count) entries still pending for this
        member, idle for `idle_ms`: one script per shard, in one round trip."""
        by_shard: dict[int, list[bytes | int]] = {}
        for shard, entry_id, count in entries:
            by_shard.setdefault(shard, []).extend((entry_id, count))
        pipe = self.client.pipeline(transaction=False)
        for shard, pairs in by_shard.items():
            await self._scripts.give_back(
                keys=[self.streams[shard]],
                args=[self.group, self.member, idle_ms, *pairs],
                client=pipe,
            )
        await pipe.execute()

    async def leave(self, members: list[str] | None = None, stream: str | None = None) -> None:
        """Remove the consumers of `members` (default: this member) from the group on
        `stream` (default: every shard stream) when nothing is pending for them."""
        pipe = self.client.pipeline(transaction=False)
        for name in members or [self.member]:
            for each in [stream] if stream else self.streams:
                await self._scripts.clean_consumer(
                    keys=[each], args=[self.group, name], client=pipe
                )
        await pipe.execute()

    async def claim(
        self, stream: str, cursor: bytes | str, min_idle: int, skip: Set[bytes]
    ) -> tuple[bytes, list[Claimed], int]:
        """One XAUTOCLAIM page of entries pending on `stream` (those in `skip` left out):
        the next cursor, the entries with their delivery counts, how many were deleted."""
        reply = await self.client.xautoclaim(
            stream, self.group, self.member, min_idle, cursor, count=RECOVER_PAGE
        )
        entries = [(i, f) for i, f in reply[1] if i not in skip and f]
        counts: dict[bytes, int] = {}
        if entries:
            rows = await self.client.xpending_range(
                stream,
                self.group,
                entries[0][0],
                entries[-1][0],
                len(entries) + 16,
                consumername=self.member,
            )
            counts = {_as_bytes(r["message_id"]): int(r["times_delivered"]) for r in rows}
        deleted = len(reply[2]) if len(reply) > 2 else 0
        return reply[0], [(i, f, max(1, counts.get(i, 1))) for i, f in entries], deleted

    async def idle_wait(self, stream: str, min_idle: int, skip: Set[bytes]) -> float:
        """Seconds until every entry pending on `stream` (but those in `skip`) is idle for
        `min_idle` ms (claiming only some would break key order); 0: it is now."""
        rows = await self.client.xpending_range(stream, self.group, "-", "+", RECOVER_PAGE)
        waits = [
            min_idle - int(r["time_since_delivered"])
            for r in rows
            if _as_bytes(r["message_id"]) not in skip
        ]
        return max([0, *waits]) / 1000

    async def clean_consumers(self, stream: str, idle_ms: float) -> None:
        """Forget the consumers of crashed members once nothing is pending for them."""
        with contextlib.suppress(ResponseError):  # the stream or group went away meanwhile
            consumers = await self.client.xinfo_consumers(stream, self.group)
            stale = [
                c["name"].decode()
                for c in consumers
                if not c.get("pending")
                and c["name"] != self.member.encode()
                and int(c.get("idle", 0)) > idle_ms
            ]
            if stale:
                await self.leave(stale, stream)

    async def read(
        self, shards: list[int], count: int, block: float, check: list[int], gen_key: str
    ) -> tuple[bytes | None, dict[int, int], dict[int, list[tuple[bytes, Any]]]]:
        """One pipelined round trip: the membership counter at `gen_key`, how many unread
        entries retention trimmed on the shards in `check`, and one ``XREADGROUP ... BLOCK``
        of at most `count` new entries per shard of `shards` (entries by shard)."""
        pipe = self.client.pipeline(transaction=False)
        pipe.get(gen_key)
        for n in check:
            pipe.xlen(self.streams[n])
            pipe.xinfo_groups(self.streams[n])
        pipe.xreadgroup(
            self.group,
            self.member,
            {self.streams[n]: ">" for n in shards},
            count=count,
            block=max(1, int(block * 1000)),
        )
        replies = await pipe.execute()
        trimmed = {
            n: self._unread_trimmed(replies[1 + 2 * i], replies[2 + 2 * i])
            for i, n in enumerate(check)
        }
        entries = {
            self._index[stream]: [(i, f) for i, f in got if f is not None]  # None: deleted
            for stream, got in replies[-1] or ()
        }
        return replies[0], trimmed, entries

    def _unread_trimmed(self, length: Any, groups: Any) -> int:
        """How many entries the group never read were trimmed away, from ``XLEN`` and
        ``XINFO GROUPS``: ``lag`` counts the entries added after the group's position;
        trimming removes the oldest first, so if unread ones were trimmed every retained
        entry is unread and ``lag - length`` of them are gone."""
        lag = (group_info(groups, self.group) or {}).get("lag")
        return max(0, int(lag) - int(length or 0)) if lag is not None else 0


def group_info(groups: Any, group: str) -> Any:
    """The entry of `group` in an ``XINFO GROUPS`` reply; ``None`` if it is not there."""
    return next((g for g in groups or () if g.get("name") in (group, group.encode())), None)


def _as_bytes(value: object) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()
