"""`Handover`: the task that hands fetched records, their delivery record committed, to the
pipeline in fetch order, per partition in offset order (in batches when the pipeline takes
them: `BaseSubscription.take_batch`); different keys then run concurrently."""

from __future__ import annotations

import asyncio

from eventwire.backendkit import BaseSubscription

from eventwire_kafka._fetch import Lookahead
from eventwire_kafka._records import KafkaInbound, Partition

__all__ = ["Handover"]


class Handover:
    """Hands what `lookahead` holds to `subscription`'s handler, stopping at a revoked
    partition."""

    def __init__(self, subscription: BaseSubscription, lookahead: Lookahead) -> None:
        self._subscription = subscription
        self._lookahead = lookahead

    async def run(self) -> None:
        batched = self._subscription.takes_batches
        while True:
            fetched = await self._lookahead.ready.get()
            for part, entries in fetched:
                try:
                    if batched:
                        await self._hand_batch(part, entries)
                    else:
                        await self._hand_each(part, entries)
                finally:
                    self._lookahead.handed(len(entries))

    async def _hand_each(self, part: Partition, entries: list[KafkaInbound]) -> None:
        """Hand a partition's fetched records to a handler one at a time."""
        for entry in entries:
            if part.revoking:
                return
            part.outstanding += 1
            part.offered = entry.offset  # before the wait: a revoke's drain waits for it
            try:
                taken = await self._subscription.deliver(entry)
            except asyncio.CancelledError:
                _abandon(part, entry)
                raise
            if not taken:
                _abandon(part, entry)

    async def _hand_batch(self, part: Partition, entries: list[KafkaInbound]) -> None:
        """Hand a partition's fetched records to the pipeline in as few steps as its window
        allows; stop handing once the partition is revoked or the pipeline closes."""
        subscription = self._subscription
        handed = 0
        waited = False
        window = subscription.spec.max_in_flight  # the most one step can take
        while handed < len(entries) and not part.revoking:
            taken = subscription.take_batch(entries[handed : handed + window])
            if not taken and waited:  # no room after room was promised: closing, or raised
                return
            part.outstanding += taken  # nothing of it can be settled before this line
            if taken:
                part.offered = entries[handed + taken - 1].offset
            handed += taken
            if handed < len(entries):
                if not await subscription.wait_room():
                    return
                waited = True


def _abandon(part: Partition, entry: KafkaInbound) -> None:
    """`entry` was not handed over: it blocks the commit point but is not in flight, and
    was not offered (a stop or revoke gives it up)."""
    part.offered = entry.offset - 1
    if not entry.done:
        part.settled()
