"""What a member tracks of the records it fetched: per partition, the records handed over
and not yet part of the committed prefix (`Partition`), each one the pipeline's delivery
until it is acked (`KafkaInbound`)."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from eventwire.backend import Origin, WireMessage

from eventwire_kafka import _handed

__all__ = ["Fetched", "KafkaInbound", "Partition", "take", "to_wire"]


class Partition:
    """What one member tracks for one assigned partition (one assignment generation)."""

    def __init__(self, tp: Any, position: int, handed: _handed.Runs) -> None:
        self.tp = tp
        #: Deliveries before this assignment (from the commit metadata), by offset runs.
        self.handed = handed
        #: Handed to the pipeline and not yet part of the committed prefix, offset order.
        self.entries: deque[KafkaInbound] = deque()
        #: `entries` as runs of ``(upto offset, delivery_count)`` (the delivery record's
        #: shape), kept as entries come and go so a commit does not walk them all.
        self.runs: deque[tuple[int, int]] = deque()
        #: Handed and not acked yet.
        self.outstanding = 0
        #: The offset after the finished prefix (what to commit).
        self.next = position
        #: The offset known to be committed (-1: unknown, commit ``next``).
        self.committed = position
        #: The last offset the handler was offered (taken records after it were not).
        self.offered = position - 1
        #: Set once revoked: stop dispatching.
        self.revoking = False
        #: Set once the partition moved on: acks are ignored.
        self.lost = False
        #: Set, while a revoke waits, once nothing is in flight.
        self.drained: asyncio.Event | None = None

    def settled(self) -> None:
        """One record fewer is in flight (acked, or never taken by the pipeline)."""
        self.outstanding -= 1
        if self.outstanding == 0 and self.drained is not None:
            self.drained.set()

    def add(self, new: list[KafkaInbound]) -> None:
        """Append records handed over (in offset order, after every entry)."""
        self.entries.extend(new)
        _handed.append_runs(self.runs, ((entry.offset, entry.delivery_count) for entry in new))

    def give_up(self) -> None:
        """Forget the records taken after `offered` (never handed over: a stop, a revoke),
        so the delivery record committed next leaves them out and their next owner counts
        its first delivery of them as their first."""
        entries, runs = self.entries, self.runs
        while entries and entries[-1].offset > self.offered:
            entries.pop()
            self.committed = -1  # the delivery record changed: commit it again
        while runs and runs[-1][0] > self.offered:
            below = runs[-2][0] if len(runs) > 1 else self.next - 1
            if below >= self.offered:
                runs.pop()
            else:
                runs[-1] = (self.offered, runs[-1][1])
                break

    def advance(self) -> int:
        """Drop the finished prefix of `entries`; the offset after it (what to commit)."""
        entries = self.entries
        while entries and entries[0].done:
            self.next = entries.popleft().offset + 1
        runs = self.runs
        while runs and runs[0][0] < self.next:
            runs.popleft()
        return self.next

    def metadata(self) -> str:
        """The delivery record beyond the finished prefix: what is handed in this assignment,
        then what earlier owners handed and this one has not fetched again yet."""
        runs = list(self.runs)
        last = runs[-1][0] if runs else self.next - 1
        runs.extend(run for run in self.handed if run[0] > last)
        return _handed.encode(runs)


class KafkaInbound:
    """A record handed to the pipeline, unsettled until `ack` (also the partition's
    bookkeeping entry for its offset)."""

    __slots__ = ("_part", "delivery_count", "done", "message", "offset", "timestamp")

    def __init__(
        self,
        message: WireMessage,
        offset: int,
        count: int,
        part: Partition,
        timestamp: int | None = None,
    ) -> None:
        self.message = message
        self.offset = offset
        self.delivery_count = count
        self.done = False
        self._part = part
        #: The record's timestamp (milliseconds since the epoch), if it has one.
        self.timestamp = timestamp

    @property
    def origin(self) -> Origin:
        """``<topic>/<partition>/<offset>`` and the record's timestamp."""
        tp = self._part.tp
        stamp = self.timestamp
        return Origin(
            position=f"{tp.topic}/{tp.partition}/{self.offset}",
            timestamp=datetime.fromtimestamp(stamp / 1000, tz=UTC) if stamp else None,
        )

    def _finish(self) -> None:
        """Mark the record finished (once); the committer commits the finished prefix."""
        if not self.done:
            self.done = True
            self._part.settled()

    async def ack(self) -> None:
        self._finish()

    @staticmethod
    async def ack_many(inbounds: Sequence[KafkaInbound]) -> None:
        """`ack` each of `inbounds` in one step (`eventwire.backend.BulkAck`): a flag per
        record; the committer commits each partition's finished prefix."""
        for inbound in inbounds:
            inbound._finish()


#: Fetched records by partition, in fetch order.
Fetched = list[tuple[Partition, list[KafkaInbound]]]


def to_wire(record: Any) -> WireMessage:
    try:
        headers = {name: value.decode() for name, value in record.headers}
    except (UnicodeDecodeError, AttributeError):  # not UTF-8, or a null header value
        headers = {
            name: value.decode("utf-8", "replace") if value is not None else ""
            for name, value in record.headers
        }
    key = record.key
    return WireMessage(
        record.value if record.value is not None else b"",
        headers,
        key.decode("utf-8", "replace") if key is not None else None,
    )


def take(parts: Mapping[Any, Partition], batches: Mapping[Any, list[Any]]) -> Fetched:
    """The records of `batches` (from ``getmany``) not handed yet in this assignment, as
    entries appended to their partitions (they block the commit point until acked). The
    client's records are not kept (nor promoted by the garbage collector while they wait
    to be handed over): only the entries."""
    fetched = []
    for tp, records in batches.items():
        part = parts.get(tp)
        if part is None or part.revoking:
            continue
        entries = part.entries
        handed = part.handed
        # Offsets up to `seen` are handed in this assignment already.
        seen = entries[-1].offset if entries else part.next - 1
        new = []
        for record in records:
            offset = record.offset
            if offset <= seen:
                continue
            count = _handed.count_for(handed, offset) + 1 if handed else 1
            new.append(KafkaInbound(to_wire(record), offset, count, part, record.timestamp))
            seen = offset
        part.add(new)
        if new:
            fetched.append((part, new))
    return fetched
