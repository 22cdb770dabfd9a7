"""`BaseSubscription`: one group member's shutdown contract, task supervision and handler call.

The shutdown contract, the same for every backend built on the kit:

``stop()``
    Stop fetching. Once it returns, the handler is not called again (a call blocked on
    backpressure is cancelled). Deliveries already handed out stay unsettled and can still be
    acked until ``close()``; shards are given back as their deliveries are settled.
    Idempotent.
``close()``
    ``stop()``, then: acks are no longer accepted (later ``ack()`` calls are ignored); the
    background tasks end; the acks accepted before are sent (`_flush`); the member leaves
    (`_release`: leases, membership), so what is left unsettled is delivered again to a
    surviving member at once. Idempotent; broker trouble is logged, never raised.
``abort()``
    A crash. At once, before its first await, the subscription stops delivering and
    accepting acks (`_drop`); then its tasks are cancelled. Nothing more is sent: no ack,
    no release, no leave; the broker delivers unsettled messages again once it notices
    (connection gone, lease expired). Idempotent, and a no-op after ``close()``.
"""

from __future__ import annotations

import abc
import asyncio
import enum
import logging
from collections.abc import Coroutine, Iterable, Sequence
from typing import Any

from eventwire.backend import BatchReceiver, Inbound, MessageHandler, SubscriptionSpec

__all__ = ["BaseSubscription", "SubscriptionState", "cancel_and_wait"]

log = logging.getLogger("eventwire.backendkit")

#: How long ``close``/``abort`` wait for a cancelled background task to end.
TASK_PATIENCE = 5.0
#: How long a cancelled task may run on before it is cancelled again.
RECANCEL = 0.2


class SubscriptionState(enum.Enum):
    """Where a subscription is in its life: running → stopped → closed, or aborted."""

    RUNNING = "running"
    STOPPED = "stopped"
    CLOSED = "closed"
    ABORTED = "aborted"


class BaseSubscription(abc.ABC):
    """Base of a backend's subscription: implement `_stop_fetching`, and the other hooks
    (`_flush`, `_release`, `_drop`) where the backend has something to do there."""

    def __init__(self, spec: SubscriptionSpec, handler: MessageHandler) -> None:
        self.spec = spec
        self.state = SubscriptionState.RUNNING
        self._handler = handler
        #: The handler, when it takes fetched batches in one step (`take_batch`).
        self._receiver = handler if isinstance(handler, BatchReceiver) else None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._name = f"{type(self).__name__}:{spec.channel}/{spec.group}"

    def __repr__(self) -> str:
        return f"<{self._name} {self.state.value}>"

    @property
    def accepting(self) -> bool:
        """Whether an ``ack()`` now is taken (running or stopped, not closed or aborted)."""
        return self.state in (SubscriptionState.RUNNING, SubscriptionState.STOPPED)

    @property
    def running(self) -> bool:
        """Whether the subscription still fetches (neither stopped, closed nor aborted)."""
        return self.state is SubscriptionState.RUNNING

    # -- the contract ----------------------------------------------------------------------

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Start fetching; return once the member reads (its group's position fixed, its
        share of shards held). Default: nothing (a subscription that started its tasks in
        its constructor)."""

    def wake(self) -> None:  # noqa: B027 - optional hook
        """Messages came for this subscription (a publish in this process, the broker's
        notification): a fetch loop waiting for them looks now. Default: nothing."""

    async def stop(self) -> None:
        """Stop fetching; unsettled deliveries can still be acked until `close`."""
        if self.state is not SubscriptionState.RUNNING:
            return
        self.state = SubscriptionState.STOPPED
        await self._stop_fetching()

    async def close(self) -> None:
        """Stop, send the acks taken so far, leave: unsettled deliveries go to survivors."""
        await self.stop()
        if self.state is not SubscriptionState.STOPPED:
            return
        self.state = SubscriptionState.CLOSED
        await self.cancel_tasks()
        for step in (self._flush, self._release):
            try:
                await step()
            except Exception as exc:  # close never raises for broker trouble
                log.warning(
                    "eventwire: %s: %s while closing (%s); unsettled deliveries come back "
                    "once the broker notices the member is gone",
                    self._name,
                    step.__name__.strip("_"),
                    type(exc).__name__,
                )

    async def abort(self) -> None:
        """Crash: stop at once, send nothing more; the broker redelivers what is unsettled."""
        self.abort_now()
        await self.cancel_tasks()

    def abort_now(self) -> None:
        """The synchronous half of `abort`: a backend aborting several subscriptions calls
        this on each first, so none of them delivers anything while the others stop."""
        if self.state in (SubscriptionState.CLOSED, SubscriptionState.ABORTED):
            return
        self.state = SubscriptionState.ABORTED
        self._drop()
        for task in self._tasks:
            task.cancel()

    # -- hooks -----------------------------------------------------------------------------

    @abc.abstractmethod
    async def _stop_fetching(self) -> None:
        """End the fetch loop; after this returns the handler is not called again."""

    async def _flush(self) -> None:  # noqa: B027 - optional hook
        """Send the acks accepted before `close` (batched backends). Default: nothing."""

    async def _release(self) -> None:  # noqa: B027 - optional hook
        """Leave: give back leases, leave the group. Default: nothing."""

    def _drop(self) -> None:  # noqa: B027 - optional hook
        """On abort, synchronously: forget buffered acks and local state. Default: nothing."""

    # -- helpers ---------------------------------------------------------------------------

    async def deliver(self, inbound: Inbound) -> bool:
        """Hand `inbound` to the handler: the one place a handler exception is caught.

        An exception leaves the delivery unsettled (it is delivered again after the member
        leaves) and is logged; cancellation propagates. Returns whether the handler took
        the delivery (``False``: it raised, so nothing will settle it on this member).
        """
        try:
            await self._handler(inbound)
        except Exception:
            log.exception(
                "eventwire: the handler of %s/%s raised on a delivery; it stays unsettled",
                self.spec.channel,
                self.spec.group,
            )
            return False
        return True

    @property
    def takes_batches(self) -> bool:
        """Whether the handler takes fetched batches (`take_batch`, `wait_room`)."""
        return self._receiver is not None

    def take_batch(self, inbounds: Sequence[Inbound]) -> int:
        """Hand the longest prefix of `inbounds` that fits in the handler's in-flight window
        to it, in one synchronous step (only when `takes_batches`); how many it took.

        Nothing runs between the call and the hand-over, so whatever the backend checked
        just before still holds, and no delivery of the prefix is settled before this
        returns (count them in flight right after). Zero when the handler raised (logged;
        the batch stays unsettled, as with `deliver`) or takes no more."""
        assert self._receiver is not None, "take_batch needs a BatchReceiver handler"
        try:
            return self._receiver.take_many(inbounds)
        except Exception:
            log.exception(
                "eventwire: the handler of %s/%s raised on a batch; it stays unsettled",
                self.spec.channel,
                self.spec.group,
            )
            return 0

    async def wait_room(self) -> bool:
        """Wait until the handler has room for a batch; ``False`` once it takes no more."""
        assert self._receiver is not None, "wait_room needs a BatchReceiver handler"
        return await self._receiver.room()

    def spawn(self, coro: Coroutine[Any, Any, Any], role: str) -> asyncio.Task[Any]:
        """Run `coro` as a background task of this subscription, ended by close and abort.

        A task that fails is logged once and not restarted: a fetch loop catches every
        `Exception` (a client library's too, whatever its class) and retries with an
        `Outage`, or its subscription delivers nothing more while it looks alive.
        """
        task = asyncio.create_task(
            coro, name=f"eventwire:{self.spec.channel}/{self.spec.group}:{role}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error(
                "eventwire: background task %s of %s failed",
                task.get_name(),
                self._name,
                exc_info=task.exception(),
            )

    async def cancel_tasks(self, patience: float = TASK_PATIENCE) -> None:
        """Cancel every background task and wait (at most `patience` seconds) for them."""
        pending = await cancel_and_wait(self._tasks, patience)
        if pending:
            log.warning(
                "eventwire: %d task(s) of %s did not end within %ss of being cancelled",
                pending,
                self._name,
                patience,
            )


async def cancel_and_wait(
    tasks: Iterable[asyncio.Task[Any]], patience: float = TASK_PATIENCE
) -> int:
    """Cancel `tasks` and wait for them to end, at most `patience` seconds; how many did not.

    A task still running a moment after its cancellation is cancelled again: a client
    library can swallow a cancellation that arrives while it reads a reply."""
    pending = {task for task in tasks if not task.done()}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + patience
    while pending:
        for task in pending:
            task.cancel()
        left = deadline - loop.time()
        if left <= 0:
            break
        _, pending = await asyncio.wait(pending, timeout=min(left, RECANCEL))
    return len(pending)
