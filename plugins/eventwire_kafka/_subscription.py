"""`KafkaSubscription`: one group member, an ``AIOKafkaConsumer`` with manual commits of the
finished prefix.

- `eventwire_kafka._fetch`: a fetch task takes records in batches (``getmany``) up to a
  lookahead, commits their delivery record and queues them; `eventwire_kafka._hand`: a hand
  task hands them to the pipeline in fetch order, per partition in offset order.
- `eventwire_kafka._records`: every handed record is tracked per partition; ``ack`` marks
  it finished, and the committed offset of a partition is the end of its contiguous
  finished prefix, so a record is never committed before it (and every record before it)
  is settled.
- `eventwire_kafka._commits`: commits run every ``commit_interval_ms``, when partitions are
  revoked, before records are handed over (the delivery record) and on close.
- `eventwire_kafka._rebalance`: assigned partitions are tracked, revoked ones drained and
  committed before they move; `eventwire_kafka._start`: `subscribe` returns once a new
  group's starting positions are committed.
"""

from __future__ import annotations

import asyncio
from typing import Any

from eventwire.backend import MessageHandler, SubscriptionSpec
from eventwire.backendkit import BaseSubscription, cancel_and_wait, quietly

from eventwire_kafka._commits import Committer
from eventwire_kafka._fetch import Fetcher, Lookahead
from eventwire_kafka._hand import Handover
from eventwire_kafka._rebalance import Rebalance
from eventwire_kafka._records import Partition
from eventwire_kafka._settings import KafkaSettings
from eventwire_kafka._start import StartPositions

__all__ = ["KafkaSubscription"]


class KafkaSubscription(BaseSubscription):
    """One member of ``spec.group`` on ``spec.channel``."""

    def __init__(
        self,
        spec: SubscriptionSpec,
        handler: MessageHandler,
        consumer: Any,
        settings: KafkaSettings,
    ) -> None:
        super().__init__(spec, handler)
        self._consumer = consumer
        self._settings = settings
        self._parts: dict[Any, Partition] = {}
        self._committer = Committer(consumer, self._parts, spec)
        self._start = StartPositions(consumer, spec)
        lookahead = Lookahead(max(16 * settings.fetch_count, 4 * spec.max_in_flight))
        self._fetcher = Fetcher(consumer, self._parts, self._committer, lookahead, spec, settings)
        self._handover = Handover(self, lookahead)
        self._fetching: list[asyncio.Task[None]] = []

    @property
    def partitions(self) -> list[int]:
        """The partitions this member holds now."""
        return sorted(tp.partition for tp, p in self._parts.items() if not p.revoking)

    async def start(self) -> None:
        """Join the group; return once partitions are assigned, positions are known and a
        new group's starting positions are committed. (A failed start is aborted by the
        backend's `started`.)"""
        s = self._settings
        await asyncio.wait_for(self._consumer.start(), s.connect_timeout)
        listener = Rebalance(
            self, self._consumer, self._parts, self._committer, self._start, s.revoke_timeout_ms
        )
        self._consumer.subscribe(topics=[self.spec.channel], listener=listener)
        self._fetching = [
            self.spawn(self._fetcher.run(), "fetch"),
            self.spawn(self._handover.run(), "hand"),
        ]
        await self._start.wait(
            s.connect_timeout + (s.session_timeout_ms + s.revoke_timeout_ms) / 1000 + 10
        )
        self.spawn(self._committer.run(s.commit_interval_ms / 1000, s.scrub), "commit")

    # -- the kit's shutdown contract -----------------------------------------------------

    async def _stop_fetching(self) -> None:
        """Stop taking and handing over records; what was taken and not handed over stays
        unsettled (after the committed offset: delivered again), and out of the delivery
        record the close commits."""
        await cancel_and_wait(self._fetching)
        for part in self._parts.values():
            part.give_up()

    async def _flush(self) -> None:
        """Commit the finished prefix (what is finished after it is delivered again)."""
        await asyncio.wait_for(self._committer.commit(), self._settings.request_timeout_ms / 1000)

    async def _release(self) -> None:
        """Leave the group and disconnect."""
        self.drop()
        await quietly(
            self._consumer.stop(),
            "kafka consumer stop",
            timeout=self._settings.request_timeout_ms / 1000,
        )

    def drop(self) -> None:
        """Mark every partition given up and end a revoke wait and a commit in progress: the
        member is leaving (what is still in flight is delivered again elsewhere), or the
        topic is gone."""
        for part in self._parts.values():
            part.lost = True
            if part.drained is not None:
                part.drained.set()
        self._committer.abandon()

    async def abort(self) -> None:
        """Crash: stop at once, commit nothing more, drop the connections."""
        await super().abort()
        await quietly(self._consumer.stop(), "kafka consumer stop", timeout=5.0)
