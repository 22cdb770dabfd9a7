"""Batch handlers: ``@bus.subscribe(Model, batch=BatchPolicy(...))`` and ``handle(events)``.

A batch subscription collects deliveries until ``max_size`` are waiting or ``max_wait``
seconds passed since the first of them arrived (or since the previous batch finished, for
events that arrived while it ran), then calls the handler once with the list of
events, in delivery order (so per-key order holds inside the list). Batches of one member run
one at a time, and a batch is finished (handled, retried, dead-lettered, settled) before the
next one starts, so per-key order also holds across batches.

Per event, everything the single-event pipeline does still happens: an undecodable or
contract-breaking payload is dead-lettered before the batch is built, an id already handled
(``idempotent=True``) is acked without being handed over, and each event's outcome is its
own:

- the handler returns: every event of the batch is handled; all are settled;
- the handler raises `BatchError` naming failed indices: the other events are settled now;
  each failed one is decided on like a failed single event (the retry policy, a
  `NonRetryableError`, the ``eventwire_consume_error`` hook) and the ones to retry are
  handed over again, as a smaller batch in their original order, after the longest of
  their backoff delays; the others are dead-lettered;
- the handler raises anything else: the whole batch failed with that error.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

from eventwire.backend import Inbound
from eventwire.delivery import Delivery
from eventwire.errors import ConfigurationError
from eventwire.middleware import BatchConsumeContext, Middleware, consuming_batches
from eventwire.pipeline import DONE_TTL, Admitted, Consumer, _Abandon

__all__ = ["BatchError", "BatchPolicy"]

log = logging.getLogger("eventwire.pipeline")


@dataclasses.dataclass(frozen=True, slots=True)
class BatchPolicy:
    """How a batch subscription groups deliveries.

    ``max_size``: events per handler call at most. ``max_wait``: seconds the first waiting
    event may wait for the batch to fill before the handler runs with what is there.
    """

    max_size: int = 100
    max_wait: float = 0.05

    def __post_init__(self) -> None:
        size = self.max_size
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ConfigurationError(f"BatchPolicy max_size must be an int >= 1, got {size!r}")
        wait = self.max_wait
        if (
            isinstance(wait, bool)
            or not isinstance(wait, (int, float))
            or not math.isfinite(wait)
            or wait < 0
        ):
            raise ConfigurationError(
                f"BatchPolicy max_wait must be a number of seconds >= 0, got {wait!r}"
            )


class BatchError(Exception):
    """Raised by a batch handler when some events of its batch failed.

    ``failed`` maps the index of each failed event in the list the handler received to the
    exception it failed with (a `NonRetryableError` dead-letters it at once). Every index
    not named is handled and is settled.
    """

    def __init__(self, failed: Mapping[int, Exception]) -> None:
        self.failed: dict[int, Exception] = dict(failed)
        for index, error in self.failed.items():
            if isinstance(index, bool) or not isinstance(index, int):
                raise TypeError(f"BatchError: indices are ints, got {index!r}")
            if not isinstance(error, Exception):
                raise TypeError(f"BatchError: index {index} maps to {error!r}, not an exception")
        indices = ", ".join(str(i) for i in sorted(self.failed)[:10])
        more = ", ..." if len(self.failed) > 10 else ""
        super().__init__(f"{len(self.failed)} event(s) of the batch failed (index {indices}{more})")


class BatchConsumer(Consumer):
    """The pipeline of a batch subscription (one route, one batch running at a time)."""

    def __init__(self, *, policy: BatchPolicy, **options: Any) -> None:
        super().__init__(**options)
        if len(self.routes) != 1:
            raise ConfigurationError("a batch subscription has exactly one handler")
        (self._route,) = self.routes.values()
        middlewares: tuple[Middleware, ...] = options.get("middlewares", ())
        #: The middlewares around each handler call, outermost first.
        self._batch_layers = consuming_batches(middlewares + self._route.middlewares)
        self._policy = policy
        self._buffer: list[Inbound] = []
        self._first_at = 0.0
        self._wake = asyncio.Event()
        self._flusher: asyncio.Task[None] | None = None

    # -- delivery from the backend -------------------------------------------------------

    async def on_message(self, inbound: Inbound) -> None:
        """Accept one delivery into the next batch; blocks while the window is full."""
        if not await self._take_slot():
            return
        self._buffer.append(inbound)
        self._buffered(1)

    __call__ = on_message

    def take_many(self, inbounds: Sequence[Inbound]) -> int:
        """Accept the prefix of a fetched batch the window has room for, without waiting."""
        if self._closing.is_set():
            return 0
        taken = self._window.take(len(inbounds))
        if taken:
            self._count_taken(taken)
            self._buffer.extend(inbounds[:taken])
            self._buffered(taken)
        return taken

    def _buffered(self, count: int) -> None:
        """`count` deliveries were appended to the buffer: wake the flusher when due."""
        buffer = self._buffer
        if len(buffer) == count:
            self._first_at = asyncio.get_running_loop().time()
            self._wake.set()
        elif len(buffer) >= self._policy.max_size:
            self._wake.set()
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush_loop())
            self._tasks.add(self._flusher)
            self._flusher.add_done_callback(self._tasks.discard)

    async def _flush_loop(self) -> None:
        loop = asyncio.get_running_loop()
        policy = self._policy
        buffer = self._buffer
        try:
            while not self._closing.is_set():
                if not buffer:
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                while len(buffer) < policy.max_size and not self._closing.is_set():
                    remaining = self._first_at + policy.max_wait - loop.time()
                    if remaining <= 0:
                        break
                    self._wake.clear()
                    try:
                        await asyncio.wait_for(self._wake.wait(), remaining)
                    except TimeoutError:
                        break
                if self._closing.is_set():
                    break
                batch = buffer[: policy.max_size]
                del buffer[: policy.max_size]
                if buffer:
                    self._first_at = loop.time()
                await self._run(batch)
        finally:
            self._forget(len(buffer))  # left unsettled: delivered again
            buffer.clear()

    def _forget(self, count: int) -> None:
        self._settled(count)

    # -- one batch -----------------------------------------------------------------------

    async def _run(self, batch: list[Inbound]) -> None:
        try:
            start = 0
            while start < len(batch):  # split where an event id repeats (a duplicate)
                admitted, start = await self._admit_run(batch, start)
                items = await self._claim_all(admitted)
                if items:
                    await self._deliver(items)
        except _Abandon:
            pass
        except Exception:  # the pipeline must never die of one batch
            log.exception("eventwire: unexpected error in %s/%s", self.channel, self.group)
        finally:
            self._forget(len(batch))

    async def _deliver(self, items: list[Admitted]) -> None:
        """Hand `items` to the handler until each is settled, retried or dead-lettered."""
        route = self._route
        pending = items
        try:
            while pending:
                failed = await self._call(pending)
                handled = [item for i, item in enumerate(pending) if i not in failed]
                retry: list[Admitted] = []
                delay = 0.0
                for index in sorted(failed):
                    item, error = pending[index], failed[index]
                    disposition = self._decide(error, route, item.envelope, item.attempt)
                    if disposition.action == "retry":
                        retry.append(item)
                        delay = max(delay, disposition.delay)
                    elif disposition.action == "ack":
                        handled.append(item)
                    else:
                        await self._give_up(item, disposition.reason or "failed", error)
                await self._finish(handled)
                pending = retry
                if retry:
                    log.info(
                        "eventwire: %d event(s) of a batch of %s failed; retrying in %.2fs",
                        len(retry),
                        route.model.__eventwire__.type,
                        delay,
                    )
                    await self._pause(delay)
                    for item in retry:
                        item.attempt += 1
        except BaseException:
            # Unsettled: a redelivery may try again (an unreleased claim expires anyway).
            for item in pending:
                if item.claim_key is not None:
                    with contextlib.suppress(Exception):
                        await self._store.release(item.claim_key)
            raise

    async def _call(self, items: list[Admitted]) -> dict[int, Exception]:
        """Run the handler (inside the middlewares) on `items`; the failed indices and their
        errors."""
        events = [item.event for item in items]
        try:
            if self._batch_layers:
                deliveries = [
                    Delivery(item.envelope, item.attempt, self.channel, self.group)
                    for item in items
                ]
                context = BatchConsumeContext(
                    events, deliveries, self._route.handler, self.channel, self.group
                )
                await self._batch_layer(0, context)
            else:
                await self._route.handler(events)
        except BatchError as exc:
            wrong = [i for i in exc.failed if not 0 <= i < len(items)]
            if not wrong:
                return exc.failed
            log.error(
                "eventwire: batch handler of %s/%s raised BatchError with index(es) %s outside "
                "its batch of %d; the whole batch counts as failed",
                self.channel,
                self.group,
                ", ".join(map(str, wrong)),
                len(items),
            )
            return dict.fromkeys(range(len(items)), exc)
        except Exception as exc:
            return dict.fromkeys(range(len(items)), exc)
        return {}

    async def _batch_layer(self, index: int, context: BatchConsumeContext) -> None:
        """Run middleware `index` around the rest of the chain (the handler last)."""
        layers = self._batch_layers

        async def call_next() -> None:
            try:
                if index + 1 < len(layers):
                    await self._batch_layer(index + 1, context)
                else:
                    await context.handler(context.events)
            except Exception as exc:
                if context.error is not exc:  # told once, where it was first seen
                    context.error = exc
                    context.failed = self._failures(exc, len(context.events))
                raise
            context.error = None
            context.failed = {}

        await layers[index].consume_batch(context, call_next)

    @staticmethod
    def _failures(exc: Exception, count: int) -> dict[int, Exception]:
        """Which events of a call of `count` failed, by what the handler raised."""
        if isinstance(exc, BatchError) and all(0 <= i < count for i in exc.failed):
            return dict(exc.failed)
        return dict.fromkeys(range(count), exc)

    async def _finish(self, items: list[Admitted]) -> None:
        """Settle handled events: remember their ids (idempotent; one round trip with a
        `BatchIdempotencyStore`), then ack them all at once (an ack is a round trip on most
        brokers: one after the other would add up)."""
        keys = [item.claim_key for item in items if item.claim_key is not None]
        store = self._batch_store
        if store is not None and len(keys) > 1:
            await self._settle(functools.partial(store.complete_many, keys, DONE_TTL))
        else:
            for key in keys:
                await self._settle(functools.partial(self._store.complete, key, DONE_TTL))
        await self._ack_all([item.inbound for item in items], together=True)

    async def _give_up(self, item: Admitted, reason: str, error: Exception) -> None:
        key = item.claim_key
        if key is not None:
            await self._settle(lambda: self._store.release(key))
        await self._dead_letter(
            item.inbound, reason, error, item.attempt, enabled=self._route.dead_letter
        )

    # -- shutdown ------------------------------------------------------------------------

    def abandon(self) -> None:
        super().abandon()
        self._wake.set()

    async def drain(self, timeout: float) -> None:
        self._closing.set()
        self._wake.set()
        await super().drain(timeout)
