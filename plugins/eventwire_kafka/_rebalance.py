"""`Rebalance`: what a member does when the group coordinator moves partitions.

- Assigned: each partition is tracked from where the group starts it (its committed offset,
  else the log start or end, looked up: never the client's prefetched position), with the
  delivery record its previous owner committed (`eventwire_kafka._handed`); a new group's
  starting positions are committed (`eventwire_kafka._start`).
- Revoked: the partitions stop dispatching, their in-flight records get up to
  ``revoke_timeout_ms`` to finish, and the finished prefix is committed before the
  partitions move: same-key records never run on two members at once.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiokafka import ConsumerRebalanceListener
from aiokafka.structs import OffsetAndMetadata
from eventwire.backendkit import BaseSubscription, SubscriptionState, wait_event

from eventwire_kafka import _handed
from eventwire_kafka._commits import Committer
from eventwire_kafka._log import log_group
from eventwire_kafka._records import Partition
from eventwire_kafka._start import StartPositions

__all__ = ["Rebalance"]


class Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    """Keeps `parts`, the member's partition table, in step with the group's assignment
    (the callbacks run in aiokafka's coordinator task)."""

    def __init__(
        self,
        subscription: BaseSubscription,
        consumer: Any,
        parts: dict[Any, Partition],
        committer: Committer,
        start: StartPositions,
        revoke_timeout_ms: int,
    ) -> None:
        self._subscription = subscription
        self._consumer = consumer
        self._parts = parts
        self._committer = committer
        self._start = start
        self._revoke_timeout_ms = revoke_timeout_ms

    async def on_partitions_assigned(self, assigned: set[Any]) -> None:
        if self._subscription.state in (SubscriptionState.CLOSED, SubscriptionState.ABORTED):
            return
        fresh = []
        try:
            committed = await self._committed(assigned)
            starts = await self._starts([tp for tp in assigned if committed.get(tp) is None])
            for tp in sorted(assigned):
                previous = committed.get(tp)
                position = previous.offset if previous is not None else starts[tp]
                # Not `consumer.position(tp)`: the fetcher may have buffered records since
                # the assignment, which moves it past records this member has not handed.
                # The seek drops what was buffered and fetches again from `position`.
                self._consumer.seek(tp, position)
                metadata = previous.metadata if previous is not None else None
                part = Partition(tp, position, _handed.decode(metadata))
                if previous is None:  # a new group: commit where it starts
                    part.committed = -1
                    fresh.append(part)
                self._parts[tp] = part
            if fresh:
                await self._committer.commit(fresh, force=True)
        except Exception as exc:
            if self._start.failed(exc):
                return
        self._start.committed()

    async def _starts(self, fresh: list[Any]) -> dict[Any, int]:
        """Where a new group starts reading each of `fresh` (partitions it never committed):
        the log start with ``from_beginning``, else the end."""
        if not fresh:
            return {}
        consumer = self._consumer
        if self._subscription.spec.from_beginning:
            found = await consumer.beginning_offsets(fresh)
        else:
            found = await consumer.end_offsets(fresh)
        return {tp: int(offset) for tp, offset in found.items()}

    async def _committed(self, assigned: set[Any]) -> dict[Any, OffsetAndMetadata | None]:
        """The committed offset and metadata of each partition (None: nothing committed).

        ``AIOKafkaConsumer.committed`` returns the offset only; the metadata comes from the
        group coordinator's OffsetFetch, which that method wraps (a private call, pinned
        with the aiokafka version in pyproject.toml)."""
        if not assigned:
            return {}
        fetched = await self._consumer._coordinator.fetch_committed_offsets(list(assigned))
        return {
            tp: found if (found := fetched.get(tp)) is not None and found.offset >= 0 else None
            for tp in assigned
        }

    async def on_partitions_revoked(self, revoked: set[Any]) -> None:
        state = self._subscription.state
        if state is SubscriptionState.ABORTED:
            return
        parts = [p for tp in revoked if (p := self._parts.get(tp)) is not None]
        for part in parts:
            part.revoking = True
        if state is not SubscriptionState.CLOSED:
            await self._drain([p for p in parts if p.outstanding > 0])
        for part in parts:
            part.give_up()
        try:
            await self._committer.commit(parts)
        except Exception as exc:
            self._log(
                "commit on revoke failed (%s: %s); the uncommitted events will be delivered again",
                type(exc).__name__,
                exc,
            )
        for part in parts:
            part.lost = True
            if self._parts.get(part.tp) is part:
                del self._parts[part.tp]

    async def _drain(self, busy: list[Partition]) -> None:
        """Wait up to ``revoke_timeout_ms`` for the records in flight on `busy` to finish."""
        drained = []
        for part in busy:
            part.drained = asyncio.Event()
            drained.append(part.drained)
        timeout = self._revoke_timeout_ms / 1000
        done = await asyncio.gather(*(wait_event(event, timeout) for event in drained))
        if not all(done):
            self._log(
                "%d partition(s) revoked with events still in flight after "
                "revoke_timeout_ms=%d; they will be delivered again",
                done.count(False),
                self._revoke_timeout_ms,
            )

    def _log(self, message: str, *args: object) -> None:
        log_group(self._subscription.spec, logging.WARNING, message, *args)
