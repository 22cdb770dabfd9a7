"""`NatsLeaseStore`: the kit's `LeaseStore` on a JetStream key-value bucket (``lease_bucket``,
history 1, ``max_age`` = the lease lifetime, so the server expires what nobody renews).

Per group of a channel (``token``): ``g.<token>.m.<member>``, a member's registration
(written by each heartbeat, purged on leave), and ``g.<token>.s.<shard>``, a shard's lease
holding the member id: taken with *create*, renewed with *update at the last revision*,
given back with *delete at the last revision*. Joins, leaves and releases are announced on
``_EVENTWIRE.rebalance.<token>`` so the other members run their next heartbeat at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any

from eventwire.backendkit import Grant, LeaseRequest

__all__ = ["NatsLeaseStore"]


class NatsLeaseStore:
    """Leases and members of one group on one channel (see the module docstring)."""

    def __init__(self, js: Any, kv: Any, nc: Any, bucket: str, token: str) -> None:
        from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError

        self._js = js
        self._kv = kv
        self._nc = nc
        self._bucket = bucket
        self._token = token
        self._conflict = (KeyWrongLastSequenceError, KeyNotFoundError)
        #: (member, shard) → the revision of the lease it holds
        self._revisions: dict[tuple[str, int], int] = {}
        self._registered: set[str] = set()
        #: Where joins, leaves and releases are announced (the payload is the member id).
        self.signal_subject = f"_EVENTWIRE.rebalance.{token}"

    async def heartbeat(self, member: str, ttl: float, *, alive: bool) -> Sequence[str]:
        key = f"g.{self._token}.m.{member}"
        if alive:
            await self._kv.put(key, member.encode())
        else:
            await self._js.purge_stream(f"KV_{self._bucket}", subject=f"$KV.{self._bucket}.{key}")
        if alive != (member in self._registered):  # it joined or left: tell the others
            self._registered ^= {member}
            await self._signal(member)
        info = await self._js.stream_info(
            f"KV_{self._bucket}", subjects_filter=f"$KV.{self._bucket}.g.{self._token}.m.*"
        )
        members = {subject.rsplit(".", 1)[-1] for subject in info.state.subjects or {}}
        return sorted(members | {member} if alive else members)

    async def leases(
        self, member: str, ttl: float, requests: Sequence[LeaseRequest]
    ) -> Sequence[Grant]:
        return await asyncio.gather(*(self._lease(member, r) for r in requests))

    async def _lease(self, member: str, request: LeaseRequest) -> Grant:
        key, held = f"g.{self._token}.s.{request.shard}", (member, request.shard)
        revision = self._revisions.get(held)
        if revision is not None:
            try:
                self._revisions[held] = await self._kv.update(key, member.encode(), last=revision)
                return Grant.RENEWED
            except self._conflict:  # expired, and maybe taken by another member
                del self._revisions[held]
        if not request.take:
            return Grant.DENIED
        try:
            self._revisions[held] = await self._kv.create(key, member.encode())
        except self._conflict:
            return Grant.DENIED
        return Grant.ACQUIRED

    async def release(self, member: str, shards: Sequence[int]) -> None:
        for shard in shards:
            revision = self._revisions.pop((member, shard), None)
            if revision is not None:
                with contextlib.suppress(Exception):  # not ours any more: nothing to give back
                    await self._kv.delete(f"g.{self._token}.s.{shard}", last=revision)
        await self._signal(member)

    async def _signal(self, member: str) -> None:
        with contextlib.suppress(Exception):  # an optimisation: the others tick anyway
            await self._nc.publish(self.signal_subject, member.encode())
