"""`RedisLeaseStore`: the kit's `LeaseStore` on Redis, for the members of one group.

Members are a sorted set (member → heartbeat deadline, server time, trimmed by the
heartbeat script); a shard's lease is one key, ``SET NX PX`` to acquire, renewed only while
it holds the member's id, deleted only by its holder (`eventwire_redis._topology` has the
scripts). Joins, leaves and give-backs bump a counter the fetch loop polls with every read,
so the other members rebalance at once instead of at their next heartbeat.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from eventwire.backendkit import Grant, LeaseRequest

from eventwire_redis._topology import (
    CLEAN_CONSUMER,
    CREATE_GROUP,
    GIVE_BACK,
    HEARTBEAT,
    LEASES,
    RELEASE,
    ChannelKeys,
)

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.commands.core import AsyncScript

__all__ = ["RedisLeaseStore", "Scripts"]

_GRANTS = {0: Grant.DENIED, 1: Grant.RENEWED, 2: Grant.ACQUIRED}


class Scripts:
    """The Lua scripts, registered once per client."""

    def __init__(self, client: Redis) -> None:
        self.create_group: AsyncScript = client.register_script(CREATE_GROUP)
        self.heartbeat: AsyncScript = client.register_script(HEARTBEAT)
        self.leases: AsyncScript = client.register_script(LEASES)
        self.release: AsyncScript = client.register_script(RELEASE)
        self.clean_consumer: AsyncScript = client.register_script(CLEAN_CONSUMER)
        self.give_back: AsyncScript = client.register_script(GIVE_BACK)


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


class RedisLeaseStore:
    """Leases and live members of `group` on the channel of `keys` (a `LeaseStore`)."""

    def __init__(self, scripts: Scripts, keys: ChannelKeys, group: str) -> None:
        self._scripts = scripts
        self.members_key = keys.members(group)
        self.gen_key = keys.gen(group)
        self._lease_keys = [keys.lease(group, n) for n in range(len(keys.streams))]
        #: The membership counter as the last heartbeat saw it.
        self.gen: bytes | None = None

    async def heartbeat(self, member: str, ttl: float, *, alive: bool) -> Sequence[str]:
        reply = await self._scripts.heartbeat(
            keys=[self.members_key, self.gen_key], args=[member, _ms(ttl), int(alive)]
        )
        self.gen = reply[0]
        return [m.decode() for m in reply[1:]]

    async def leases(
        self, member: str, ttl: float, requests: Sequence[LeaseRequest]
    ) -> Sequence[Grant]:
        held = await self._scripts.leases(
            keys=[self._lease_keys[r.shard] for r in requests],
            args=[member, _ms(ttl), *("a" if r.take else "r" for r in requests)],
        )
        return [_GRANTS[int(h)] for h in held]

    async def release(self, member: str, shards: Sequence[int]) -> None:
        await self._scripts.release(
            keys=[self.gen_key, *(self._lease_keys[n] for n in shards)], args=[member]
        )
