"""`Committer`: a member's commits, one at a time: each partition's finished prefix, with
its delivery record (`eventwire_kafka._handed`) as metadata."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

from aiokafka.errors import CommitFailedError
from aiokafka.structs import OffsetAndMetadata
from eventwire.backend import SubscriptionSpec
from eventwire.backendkit import Outage, retrieve

from eventwire_kafka._log import log_group
from eventwire_kafka._records import Partition

__all__ = ["Committer"]


class Committer:
    """Commits the partitions of `parts` (the member's table, kept by the rebalance
    listener) through `consumer`."""

    def __init__(self, consumer: Any, parts: Mapping[Any, Partition], spec: SubscriptionSpec):
        self._consumer = consumer
        self._parts = parts
        self._spec = spec
        self._lock = asyncio.Lock()
        #: The commit being sent, if any (one at a time: `_lock`).
        self._sending: asyncio.Future[None] | None = None

    async def commit(self, parts: list[Partition] | None = None, *, force: bool = False) -> None:
        """Commit the finished prefix of `parts` (default: all) where it moved (every part
        with `force`), each with its delivery record as metadata. Partitions given up are
        left out; once all are, nothing waits for a commit in progress."""
        parts = list(self._parts.values()) if parts is None else parts
        if all(part.lost for part in parts):
            return
        async with self._lock:
            offsets = {}
            for part in parts:
                if part.lost:
                    continue
                point = part.advance()
                if force or point != part.committed:
                    offsets[part.tp] = OffsetAndMetadata(point, part.metadata())
            if not offsets:
                return
            await self._send(offsets)
            for part in parts:
                if part.tp in offsets:
                    part.committed = offsets[part.tp].offset

    async def _send(self, offsets: dict[Any, OffsetAndMetadata]) -> None:
        """``consumer.commit(offsets)``, which `abandon` ends with `CommitFailedError`
        (aiokafka retries a commit until it succeeds: for a deleted topic, forever)."""
        self._sending = sending = asyncio.ensure_future(self._consumer.commit(offsets))
        try:
            await sending
        except asyncio.CancelledError:
            _retrieve_request(self._consumer)
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise
            raise CommitFailedError("abandoned: the partitions were given up") from None
        finally:
            self._sending = None

    def abandon(self) -> None:
        """End a commit in progress (the partitions were given up: the member is leaving,
        or the topic is gone)."""
        if self._sending is not None:
            self._sending.cancel()

    async def record_handed(self, parts: list[Partition]) -> None:
        """Commit `parts` with the metadata naming what is about to be handed over."""
        try:
            await self.commit(parts, force=True)
        except Exception as exc:  # handed anyway: a later commit records them
            log_group(
                self._spec,
                logging.WARNING,
                "delivery record not committed (%s: %s); a member crash now delivers these "
                "events again with their count unchanged",
                type(exc).__name__,
                exc,
            )

    async def run(self, interval: float, scrub: Callable[[str], str]) -> None:
        """Commit what moved every `interval` seconds (failures retried the same way)."""
        spec = self._spec
        committing = Outage(f"kafka commit of {spec.channel}/{spec.group}", scrub)
        while True:
            await asyncio.sleep(interval)
            try:
                await self.commit()
            except Exception as exc:
                committing.failed(exc)
            else:
                committing.ok()


def _retrieve_request(consumer: Any) -> None:
    """aiokafka sends a commit's request under ``asyncio.shield``: a cancelled commit leaves
    it running, and its failure (for a deleted topic, ``UnknownTopicOrPartitionError``)
    would be reported as an exception never retrieved. Retrieve it when it ends."""
    coordinator = getattr(consumer, "_coordinator", None)
    for task in asyncio.all_tasks():
        frame = getattr(task.get_coro(), "cr_frame", None)
        if (
            frame is not None
            and frame.f_code.co_name == "_do_commit_offsets"
            and frame.f_locals.get("self") is coordinator
        ):
            task.add_done_callback(retrieve)
