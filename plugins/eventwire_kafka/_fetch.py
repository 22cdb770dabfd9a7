"""`Fetcher`: the task that takes records from the client and commits their delivery record
before they are handed over, and the `Lookahead` that bounds how far it runs ahead.

The delivery record of the next records is committed while the ones before them are being
handled, and one commit covers whatever the client had buffered (up to the lookahead), so
the commit round trip is neither waited for by the pipeline nor paid per
``fetch_count``. The price: after a crash, records fetched but not handed over yet
come back with a delivery count one too high (docs/backends/kafka.md).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from eventwire.backend import SubscriptionSpec
from eventwire.backendkit import Outage

from eventwire_kafka._commits import Committer
from eventwire_kafka._records import Fetched, Partition, take
from eventwire_kafka._settings import KafkaSettings

__all__ = ["Fetcher", "Lookahead"]

#: How long one ``getmany`` waits for records before looping.
_POLL_MS = 500


class Lookahead:
    """The fetched records waiting to be handed over (their delivery record committed), and
    how many records may be taken from the client and not handed over yet: each
    delivery-record commit covers up to half of it, so a slow commit round trip (tens of
    milliseconds on a busy broker) is paid once per thousands of records."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        #: Records taken from the client and not handed over (or given up) yet.
        self.ahead = 0
        self._room = asyncio.Event()
        self.ready: asyncio.Queue[Fetched] = asyncio.Queue()

    async def wait_room(self) -> None:
        """Wait until at most half the lookahead is taken."""
        while self.ahead > self.limit // 2:
            self._room.clear()
            await self._room.wait()

    def handed(self, count: int) -> None:
        """`count` records taken before are handed over (or given up)."""
        self.ahead -= count
        if self.ahead <= self.limit // 2:
            self._room.set()


class Fetcher:
    """Takes records from `consumer`, commits their delivery record, queues them on
    `lookahead`."""

    def __init__(
        self,
        consumer: Any,
        parts: Mapping[Any, Partition],
        committer: Committer,
        lookahead: Lookahead,
        spec: SubscriptionSpec,
        settings: KafkaSettings,
    ) -> None:
        self._consumer = consumer
        self._parts = parts
        self._committer = committer
        self._lookahead = lookahead
        self._max_records = settings.fetch_count
        self._outage = Outage(f"kafka fetch of {spec.channel}/{spec.group}", settings.scrub)

    async def run(self) -> None:
        lookahead = self._lookahead
        while True:
            await lookahead.wait_room()
            fetched: Fetched = []
            timeout = _POLL_MS
            while (room := lookahead.limit - lookahead.ahead) > 0:
                try:
                    batches = await self._consumer.getmany(
                        timeout_ms=timeout, max_records=min(self._max_records, room)
                    )
                except Exception as exc:  # a KafkaError, or a client error of another class
                    await asyncio.sleep(self._outage.failed(exc))
                    break
                self._outage.ok()
                taken = take(self._parts, batches)
                if not taken:
                    break
                fetched.extend(taken)
                lookahead.ahead += sum(len(entries) for _, entries in taken)
                timeout = 0  # then only what the client has buffered already
            if fetched:
                await self._committer.record_handed(list(dict.fromkeys(p for p, _ in fetched)))
                lookahead.ready.put_nowait(fetched)
