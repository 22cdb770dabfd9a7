"""One group member: an ``AIOKafkaConsumer`` with manual commits of the finished prefix.

- Records are fetched in batches (``getmany``) and handed to the pipeline per partition, in
  offset order, as a batch (``BaseSubscription.hand_many``: the pipeline takes what fits in
  its in-flight window in one step); the pipeline runs different keys concurrently.
- Every handed record is tracked per partition. ``ack`` marks it finished; the committed
  offset of a partition is the end of its contiguous finished prefix, so a record is never
  committed before it (and every record before it) is settled.
- Commits run every ``commit_interval_ms``, when partitions are revoked, and on close.
- Before fetched records are handed over, their partitions are committed again (the same
  offset) with metadata naming the records handed out beyond it and their delivery counts
  (`eventwire_kafka._handed`); every commit carries it. The next owner of a partition,
  even after this member was killed, delivers those records with ``delivery_count`` one
  higher. One commit per fetch, not per record: the fetch task takes what the client has
  buffered (up to a lookahead of records not handed over yet), commits its delivery
  record and queues it, while a hand task hands the records recorded before to the
  pipeline; so the commit round trip overlaps the handling instead of stalling it.
- On a rebalance the revoked partitions stop dispatching, their in-flight records get up to
  ``revoke_timeout_ms`` to finish, and the finished prefix is committed before the
  partitions move: same-key records never run on two members at once.
- A newly assigned partition without a committed offset gets its starting position (the
  end, or the beginning with ``from_beginning``) committed before `subscribe` returns, so a
  later member of the group resumes there and nothing published after `subscribe` returns
  is missed. When that commit fails (the group rebalanced meanwhile, or the member was
  dropped from it), the member rejoins and `subscribe` waits for the next assignment to
  commit them, within its bound.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from aiokafka import ConsumerRebalanceListener
from aiokafka.errors import KafkaError
from aiokafka.structs import OffsetAndMetadata
from eventwire.backend import MessageHandler, Origin, SubscriptionSpec, WireMessage
from eventwire.backendkit import BaseSubscription, Outage, SubscriptionState
from eventwire.errors import BackendUnavailableError

from eventwire_kafka import _handed
from eventwire_kafka._settings import KafkaSettings

__all__ = ["KafkaInbound", "KafkaSubscription", "to_wire"]

log = logging.getLogger("eventwire.kafka")

#: How long one ``getmany`` waits for records before looping.
_POLL_MS = 500


class _Partition:
    """What one member tracks for one assigned partition (one assignment generation)."""

    __slots__ = (
        "committed",
        "drained",
        "entries",
        "handed",
        "lost",
        "next",
        "outstanding",
        "revoking",
        "tp",
    )

    def __init__(self, tp: Any, position: int, handed: _handed.Runs) -> None:
        self.tp = tp
        #: Deliveries before this assignment (from the commit metadata), by offset runs.
        self.handed = handed
        #: Handed to the pipeline and not yet part of the committed prefix, offset order.
        self.entries: deque[KafkaInbound] = deque()
        #: Handed and not acked yet.
        self.outstanding = 0
        #: The offset after the finished prefix (what to commit).
        self.next = position
        #: The offset known to be committed (-1: unknown, commit ``next``).
        self.committed = position
        #: Set once revoked: stop dispatching.
        self.revoking = False
        #: Set once the partition moved on: acks are ignored.
        self.lost = False
        self.drained: asyncio.Event | None = None

    def advance(self) -> int:
        entries = self.entries
        while entries and entries[0].done:
            self.next = entries.popleft().offset + 1
        return self.next

    def metadata(self) -> str:
        """The delivery record beyond the finished prefix: what is handed in this assignment,
        then what earlier owners handed and this one has not fetched again yet."""
        pairs = [(e.offset, e.delivery_count) for e in self.entries]
        last = pairs[-1][0] if pairs else self.next - 1
        pairs.extend(run for run in self.handed if run[0] > last)
        return _handed.encode(pairs)


class KafkaInbound:
    """A record handed to the pipeline, unsettled until `ack` (also the partition's
    bookkeeping entry for its offset)."""

    __slots__ = ("_part", "delivery_count", "done", "message", "offset", "timestamp")

    def __init__(
        self,
        message: WireMessage,
        offset: int,
        count: int,
        part: _Partition,
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
        if self.done:
            return
        self.done = True
        part = self._part
        part.outstanding -= 1
        if part.outstanding == 0 and part.drained is not None:
            part.drained.set()

    async def ack(self) -> None:
        self._finish()

    @staticmethod
    async def ack_many(inbounds: Sequence[KafkaInbound]) -> None:
        """`ack` each of `inbounds` in one step (`eventwire.backend.BulkAck`): a flag per
        record; the committer commits each partition's finished prefix."""
        for inbound in inbounds:
            inbound._finish()


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


def _why(exc: BaseException) -> str:
    """The exception's name and text, or its cause's (aiokafka's ``CommitFailedError``
    tells what failed only through its cause)."""
    cause = exc.__cause__
    if cause is not None:
        return f"{type(exc).__name__} ({type(cause).__name__}: {cause})"
    return f"{type(exc).__name__}: {exc}"


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, subscription: KafkaSubscription) -> None:
        self._subscription = subscription

    async def on_partitions_revoked(self, revoked: set[Any]) -> None:
        await self._subscription._on_revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[Any]) -> None:
        await self._subscription._on_assigned(assigned)


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
        self._parts: dict[Any, _Partition] = {}
        self._assigned = asyncio.Event()
        #: Why the last try to commit a new group's starting positions failed (start only).
        self._start_failure: Exception | None = None
        self._commit_lock = asyncio.Lock()
        self._fetch_task: asyncio.Task[None] | None = None
        self._hand_task: asyncio.Task[None] | None = None
        #: Fetched records whose delivery record is committed, waiting to be handed over.
        self._ready: asyncio.Queue[list[tuple[_Partition, list[KafkaInbound]]]] = asyncio.Queue()
        #: How many records may be taken from the client and not handed over yet: each
        #: delivery-record commit covers up to half of it, so a slow commit round trip (tens
        #: of milliseconds on a busy broker) is paid once per thousands of records.
        self._lookahead = max(16 * settings.fetch_max_records, 4 * spec.max_in_flight)
        #: Records taken from the client and not handed over (or given up) yet.
        self._ahead = 0
        #: Set when `_ahead` falls to half the lookahead: time to fetch again.
        self._fetch_room = asyncio.Event()

    @property
    def partitions(self) -> list[int]:
        """The partitions this member holds now."""
        return sorted(tp.partition for tp, p in self._parts.items() if not p.revoking)

    # -- start ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Join the group; return once partitions are assigned, positions are known and a
        new group's starting positions are committed."""
        settings = self._settings
        try:
            await asyncio.wait_for(self._consumer.start(), settings.connect_timeout)
            self._consumer.subscribe(topics=[self.spec.channel], listener=_Listener(self))
            self._fetch_task = self.spawn(self._fetch_loop(), "fetch")
            self._hand_task = self.spawn(self._hand_loop(), "hand")
            limit = (
                settings.connect_timeout
                + (settings.session_timeout_ms + settings.revoke_timeout_ms) / 1000
                + 10
            )
            try:
                await asyncio.wait_for(self._assigned.wait(), limit)
            except TimeoutError:
                failure = self._start_failure
                if failure is None:
                    raise
                raise BackendUnavailableError(
                    f"Kafka group {self.spec.group!r} on topic {self.spec.channel!r}: its "
                    f"starting positions were not committed within {limit:.0f} s, across "
                    f"rebalances (last failure: {_why(failure)}); check "
                    "that the brokers and the group coordinator are healthy, then subscribe "
                    "again"
                ) from failure
        except BaseException:
            await self.abort()
            raise
        self.spawn(self._commit_loop(), "commit")

    # -- rebalance callbacks (run by aiokafka's coordinator) -------------------------------

    async def _on_assigned(self, assigned: set[Any]) -> None:
        if self.state in (SubscriptionState.CLOSED, SubscriptionState.ABORTED):
            return
        consumer = self._consumer
        fresh: dict[Any, int] = {}
        try:
            committed = await self._committed(assigned)
            starts = await self._starts([tp for tp in assigned if committed.get(tp) is None])
            for tp in sorted(assigned):
                previous = committed.get(tp)
                position = previous.offset if previous is not None else starts[tp]
                # Not `consumer.position(tp)`: the fetcher may have buffered records since
                # the assignment, which moves it past records this member has not handed.
                # The seek drops what was buffered and fetches again from `position`.
                consumer.seek(tp, position)
                handed = _handed.decode(previous.metadata) if previous is not None else []
                part = _Partition(tp, position, handed)
                if previous is None:
                    part.committed = -1
                    fresh[tp] = position
                self._parts[tp] = part
            if fresh:
                async with self._commit_lock:
                    await consumer.commit(fresh)
                for tp in fresh:
                    self._parts[tp].committed = fresh[tp]
        except Exception as exc:
            if not self._assigned.is_set():
                # `start` waits: rejoin and commit them on the next assignment.
                self._start_failure = exc
                consumer._coordinator.request_rejoin()
                log.info(
                    "eventwire: kafka %s/%s: starting positions not committed (%s); "
                    "rejoining the group to commit them",
                    self.spec.channel,
                    self.spec.group,
                    _why(exc),
                )
                return
            # The committer retries what is left uncommitted.
            log.warning(
                "eventwire: kafka %s/%s: starting positions not committed yet (%s: %s)",
                self.spec.channel,
                self.spec.group,
                type(exc).__name__,
                exc,
            )
        self._assigned.set()

    async def _starts(self, fresh: list[Any]) -> dict[Any, int]:
        """Where a new group starts reading each of `fresh` (partitions it never committed):
        the log start with ``from_beginning``, else the end."""
        if not fresh:
            return {}
        consumer = self._consumer
        ends = consumer.beginning_offsets if self.spec.from_beginning else consumer.end_offsets
        return {tp: int(offset) for tp, offset in (await ends(fresh)).items()}

    async def _committed(self, assigned: set[Any]) -> dict[Any, OffsetAndMetadata | None]:
        """The committed offset and metadata of each partition (None: nothing committed).

        ``AIOKafkaConsumer.committed`` returns the offset only; the metadata comes from the
        group coordinator's OffsetFetch, which that method wraps."""
        if not assigned:
            return {}
        fetched = await self._consumer._coordinator.fetch_committed_offsets(list(assigned))
        result: dict[Any, OffsetAndMetadata | None] = {}
        for tp in assigned:
            found = fetched.get(tp)
            result[tp] = found if found is not None and found.offset >= 0 else None
        return result

    async def _on_revoked(self, revoked: set[Any]) -> None:
        if self.state is SubscriptionState.ABORTED:
            return
        parts = [p for tp in revoked if (p := self._parts.get(tp)) is not None]
        for part in parts:
            part.revoking = True
        closed = self.state is SubscriptionState.CLOSED
        busy = [p for p in parts if p.outstanding > 0 and not closed]
        if busy:
            for part in busy:
                part.drained = asyncio.Event()
                if part.outstanding == 0:
                    part.drained.set()
            waits = [asyncio.ensure_future(p.drained.wait()) for p in busy if p.drained]
            _, pending = await asyncio.wait(waits, timeout=self._settings.revoke_timeout_ms / 1000)
            for wait in pending:
                wait.cancel()
            if pending:
                log.warning(
                    "eventwire: kafka %s/%s: %d partition(s) revoked with events still in "
                    "flight after revoke_timeout_ms=%d; they will be delivered again",
                    self.spec.channel,
                    self.spec.group,
                    len(pending),
                    self._settings.revoke_timeout_ms,
                )
        try:
            await self._commit(parts)
        except Exception as exc:
            log.warning(
                "eventwire: kafka %s/%s: commit on revoke failed (%s: %s); the uncommitted "
                "events will be delivered again",
                self.spec.channel,
                self.spec.group,
                type(exc).__name__,
                exc,
            )
        for part in parts:
            part.lost = True
            if self._parts.get(part.tp) is part:
                del self._parts[part.tp]

    # -- fetching ------------------------------------------------------------------------

    async def _fetch_loop(self) -> None:
        """Take records from the client, record them as delivered (one commit for what was
        taken since the last one), then queue them for `_hand_loop`.

        The delivery record of the next records is committed while the ones before them are
        being handled, and a commit covers whatever the client had buffered (up to the
        lookahead), so the commit round trip is neither waited for by the pipeline nor
        paid per `fetch_max_records`."""
        consumer = self._consumer
        max_records = self._settings.fetch_max_records
        limit = self._lookahead
        fetching = Outage(
            f"kafka fetch of {self.spec.channel}/{self.spec.group}", self._settings.scrub
        )
        while True:
            while self._ahead > limit // 2:
                self._fetch_room.clear()
                await self._fetch_room.wait()
            batch: list[tuple[_Partition, list[KafkaInbound]]] = []
            timeout = _POLL_MS
            while self._ahead < limit:
                try:
                    # The client's records are not kept past `_take` (nor promoted by the
                    # garbage collector while they wait to be handed over): only the entries.
                    taken = self._take(
                        await consumer.getmany(
                            timeout_ms=timeout, max_records=min(max_records, limit - self._ahead)
                        )
                    )
                except KafkaError as exc:
                    await asyncio.sleep(fetching.failed(exc))
                    break
                fetching.ok()
                if not taken:
                    break
                batch.extend(taken)
                self._ahead += sum(len(entries) for _, entries in taken)
                timeout = 0  # then only what the client has buffered already
            if batch:
                await self._record_handed(list(dict.fromkeys(part for part, _ in batch)))
                self._ready.put_nowait(batch)

    async def _hand_loop(self) -> None:
        """Hand the recorded records to the pipeline, in the order they were fetched."""
        while True:
            batch = await self._ready.get()
            for part, entries in batch:
                try:
                    if self.takes_batches:
                        await self._hand_batch(part, entries)
                    else:
                        await self._hand_each(part, entries)
                finally:
                    self._ahead -= len(entries)
                    if self._ahead <= self._lookahead // 2:
                        self._fetch_room.set()

    async def _hand_each(self, part: _Partition, entries: list[KafkaInbound]) -> None:
        """Hand a partition's fetched records to a handler one at a time."""
        for entry in entries:
            if part.revoking:
                return
            part.outstanding += 1
            try:
                taken = await self.deliver(entry)
            except asyncio.CancelledError:
                self._abandon(part, entry)
                raise
            if not taken:
                self._abandon(part, entry)

    async def _hand_batch(self, part: _Partition, entries: list[KafkaInbound]) -> None:
        """Hand a partition's fetched records to the pipeline in as few steps as its window
        allows; stop handing once the partition is revoked or the pipeline closes."""
        handed = 0
        waited = False
        window = self.spec.max_in_flight  # the most one step can take: slice no further
        while handed < len(entries) and not part.revoking:
            step = (
                entries
                if handed == 0 and len(entries) <= window
                else entries[handed : handed + window]
            )
            taken = self.take_batch(step)
            if not taken and waited:  # no room after room was promised: closing, or raised
                return
            part.outstanding += taken  # nothing of it can be settled before this line
            handed += taken
            if handed < len(entries):
                if not await self.wait_room():
                    return
                waited = True

    def _take(self, batches: dict[Any, list[Any]]) -> list[tuple[_Partition, list[KafkaInbound]]]:
        """The records of `batches` not handed yet in this assignment, as entries appended
        to their partitions (they block the commit point until delivered and acked)."""
        batch = []
        for tp, records in batches.items():
            part = self._parts.get(tp)
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
            entries.extend(new)
            if new:
                batch.append((part, new))
        return batch

    async def _record_handed(self, parts: list[_Partition]) -> None:
        """Commit `parts` with the metadata naming what is about to be handed over."""
        try:
            await self._commit(parts, force=True)
        except Exception as exc:  # handed anyway: a later commit records them
            log.warning(
                "eventwire: kafka %s/%s: delivery record not committed (%s: %s); a member "
                "crash now delivers these events again with their count unchanged",
                self.spec.channel,
                self.spec.group,
                type(exc).__name__,
                exc,
            )

    @staticmethod
    def _abandon(part: _Partition, entry: KafkaInbound) -> None:
        """`entry` was not handed over: it blocks the commit point but is not in flight."""
        if not entry.done:
            part.outstanding -= 1
            if part.outstanding == 0 and part.drained is not None:
                part.drained.set()

    # -- committing ----------------------------------------------------------------------

    async def _commit_loop(self) -> None:
        interval = self._settings.commit_interval_ms / 1000
        committing = Outage(
            f"kafka commit of {self.spec.channel}/{self.spec.group}", self._settings.scrub
        )
        while True:
            await asyncio.sleep(interval)
            try:
                await self._commit(list(self._parts.values()))
            except Exception as exc:  # retried every commit_interval_ms
                committing.failed(exc)
            else:
                committing.ok()

    async def _commit(self, parts: list[_Partition], *, force: bool = False) -> None:
        """Commit the finished prefix of `parts` where it moved (every part with `force`),
        each with its delivery record as metadata."""
        async with self._commit_lock:
            offsets = {}
            for part in parts:
                if part.lost:
                    continue
                point = part.advance()
                if force or point != part.committed:
                    offsets[part.tp] = OffsetAndMetadata(point, part.metadata())
            if not offsets:
                return
            await self._consumer.commit(offsets)
            for part in parts:
                if part.tp in offsets:
                    part.committed = offsets[part.tp].offset

    # -- stopping (the kit's shutdown contract) -----------------------------------------

    async def _stop_fetching(self) -> None:
        """Stop taking and handing over records; what was taken and not handed over stays
        unsettled (after the committed offset: delivered again)."""
        tasks = [task for task in (self._fetch_task, self._hand_task) if task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _flush(self) -> None:
        """Commit the finished prefix (what is finished after it is delivered again)."""
        timeout = self._settings.request_timeout_ms / 1000
        await asyncio.wait_for(self._commit(list(self._parts.values())), timeout)

    async def _release(self) -> None:
        """Leave the group and disconnect."""
        self._drop()
        await self._stop_consumer(self._settings.request_timeout_ms / 1000)

    def _drop(self) -> None:
        """Mark every partition given up and end a revoke wait in progress: the member is
        leaving, what is still in flight is delivered again elsewhere."""
        for part in self._parts.values():
            part.lost = True
            if part.drained is not None:
                part.drained.set()

    async def abort(self) -> None:
        """Crash: stop at once, commit nothing more, drop the connections."""
        await super().abort()
        await self._stop_consumer(5.0)

    async def _stop_consumer(self, timeout: float) -> None:
        try:
            await asyncio.wait_for(self._consumer.stop(), timeout)
        except Exception as exc:
            log.debug("eventwire: kafka consumer stop: %s", exc)
