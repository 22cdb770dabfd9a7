"""`SagaOrchestrator`: runs sagas on an `EventBus`, one stored state machine per instance.

Every input (the starting event, a reply, a timeout) is applied the same way, under a lock
per saga id:

1. load the state; a message id already in ``processed`` changes nothing;
2. compute the transition, put the messages it decides into the state's ``outbox``;
3. save the state (versioned; a conflicting writer makes it start over);
4. send the outbox (commands with ``bus.send``, events with ``bus.publish``), then save it
   empty.

A crash between 3 and 4 loses nothing: the outbox is sent again when the same reply is
redelivered or when the orchestrator starts and resumes the active sagas (it also re-arms
their timeouts). Messages may therefore be sent twice, never lost: the services handling
the commands must be idempotent, as every eventwire consumer should be. Every message
carries the saga id as its correlation id and the id of the message that caused it as its
causation id. When the bus traces, each message is sent inside a span of the saga, in the
trace of the message that started it (`eventwire.observability._saga`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
import zlib
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any

from eventwire.bus import EventBus
from eventwire.delivery import Delivery
from eventwire.errors import ConfigurationError
from eventwire.events import Command, Event, Message
from eventwire.retry import RetryPolicy
from eventwire.saga._definition import Saga, SagaContext, Step
from eventwire.saga._tracing import tracer_of, transition_span

if TYPE_CHECKING:
    from eventwire.observability._saga import SagaTracer
from eventwire.saga._errors import UnknownSagaError
from eventwire.saga._store import MemorySagaStore, SagaConflictError, SagaState, SagaStore

__all__ = ["SagaOrchestrator"]

log = logging.getLogger("eventwire.saga")

_LOCKS = 256
_CONFLICT_RETRIES = 20
#: Seconds before a timeout whose handling failed (the broker was down, say) is tried again.
_TIMEOUT_RETRY = 1.0


class SagaOrchestrator:
    """Run `sagas` on `bus`, keeping their state in `store`.

    Create it before the bus starts (it subscribes to the starting events and the replies),
    then enter both: ``async with bus, orchestrator: ...``. Entering the orchestrator
    resumes the sagas the store holds as active: it sends what they had decided but not
    sent, and re-arms their timeouts.

    - ``store``: a `SagaStore` (default `MemorySagaStore`; use `SqliteSagaStore` to survive
      restarts).
    - ``group``: the consumer group of the replies (default ``<bus source>.sagas``); the
      starting events of saga ``name`` are consumed by ``<group>.<name>``.
    - ``concurrency`` / ``retry``: as in `EventBus.subscribe`.

    A reply whose correlation id names no saga of this orchestrator is dead-lettered at
    once, with reason ``unknown-saga``.
    """

    def __init__(
        self,
        bus: EventBus,
        sagas: Sequence[Saga],
        *,
        store: SagaStore | None = None,
        group: str | None = None,
        concurrency: int = 16,
        retry: RetryPolicy | None = None,
    ) -> None:
        if not sagas:
            raise ConfigurationError("SagaOrchestrator needs at least one Saga")
        self.bus = bus
        self.store: SagaStore = store if store is not None else MemorySagaStore()
        self.sagas: dict[str, Saga] = {}
        for saga in sagas:
            if not isinstance(saga, Saga):
                raise ConfigurationError(f"expected a Saga, got {saga!r}")
            if saga.name in self.sagas:
                raise ConfigurationError(f"two sagas are named {saga.name!r}; rename one")
            self.sagas[saga.name] = saga
        self.group = group or f"{bus.source}.sagas"
        self._locks = [asyncio.Lock() for _ in range(_LOCKS)]
        self._deadlines: dict[str, float] = {}
        self._wake: asyncio.Event | None = None
        self._timer: asyncio.Task[None] | None = None
        self._timeouts: set[asyncio.Task[None]] = set()
        self._started = False
        self._closing = False
        self._start_lock = asyncio.Lock()
        self._tracer: SagaTracer | None = None
        self._subscribe(concurrency, retry)

    # -- wiring ------------------------------------------------------------------------

    def _subscribe(self, concurrency: int, retry: RetryPolicy | None) -> None:
        replies: set[type[Event]] = set()
        for saga in self.sagas.values():
            replies.update(saga.replies)
            self.bus.declare(*saga.commands(), *saga.events.all())
            if saga.started_by is not None:
                self.bus.subscribe(
                    saga.started_by,
                    group=f"{self.group}.{saga.name}",
                    concurrency=concurrency,
                    retry=retry,
                )(self._starter(saga))
        for model in sorted(replies, key=lambda m: m.__eventwire__.type):
            self.bus.subscribe(model, group=self.group, concurrency=concurrency, retry=retry)(
                self._on_reply
            )

    def _starter(self, saga: Saga) -> Callable[[Event, Delivery], Any]:
        async def start_saga(event: Event, delivery: Delivery) -> None:
            await self.start()
            if saga.saga_id_of is not None:
                saga_id = str(saga.saga_id_of(event))
            else:
                saga_id = delivery.correlation_id or delivery.id
            await self._begin(saga, saga_id, event.model_dump(mode="json"), delivery.id)

        return start_saga

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        """Resume the active sagas in the store and start the timeout clock (idempotent)."""
        if self._started:
            return
        async with self._start_lock:
            if self._started:
                return
            self._wake = asyncio.Event()
            self._closing = False
            self._tracer = tracer_of(self.bus)
            self._timer = asyncio.create_task(self._clock(), name="eventwire-saga-clock")
            self._started = True
            for state in await self.store.active():
                saga = self.sagas.get(state.saga)
                if saga is None:
                    continue
                if state.outbox:
                    await self._locked(state.saga_id, lambda s, st: False)
                else:
                    self._arm(state)
            log.debug("eventwire: saga orchestrator started (%d armed)", len(self._deadlines))

    async def close(self) -> None:
        """Stop the timeout clock (the bus is closed by its owner)."""
        self._closing = True
        if self._wake is not None:
            self._wake.set()
        if self._timer is not None:
            self._timer.cancel()
            await asyncio.gather(self._timer, return_exceptions=True)
            self._timer = None
        if self._timeouts:
            await asyncio.gather(*self._timeouts, return_exceptions=True)
        self._started = False

    async def __aenter__(self) -> SagaOrchestrator:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- inputs ------------------------------------------------------------------------

    async def begin(
        self,
        saga: str | Saga,
        data: Mapping[str, Any],
        *,
        saga_id: str | None = None,
        causation_id: str | None = None,
    ) -> str:
        """Start saga `saga` with `data` from code; returns its id (new uuid by default).

        Starting an id that exists already does nothing.
        """
        await self.start()
        definition = self.sagas.get(saga if isinstance(saga, str) else saga.name)
        if definition is None:
            raise ConfigurationError(f"this orchestrator runs no saga named {saga!r}")
        saga_id = saga_id or str(uuid.uuid4())
        await self._begin(definition, saga_id, dict(data), causation_id or saga_id)
        return saga_id

    async def load(self, saga_id: str) -> SagaState | None:
        """The stored state of saga `saga_id`."""
        return await self.store.load(saga_id)

    async def _begin(self, saga: Saga, saga_id: str, data: dict[str, Any], cause: str) -> None:
        async with self._lock(saga_id):
            state = await self.store.load(saga_id)
            if state is None:
                state = SagaState(saga=saga.name, saga_id=saga_id, data=data)
                if self._tracer is not None:
                    state.traceparent = self._tracer.origin()
                state.processed.append(cause)
                _emit(state, "lifecycle", cause, type="SagaStarted")
                _start_step(saga, state, 0, cause)
                try:
                    await self.store.save(state)
                except SagaConflictError:  # started meanwhile by another process
                    state = await self.store.load(saga_id)
                    if state is None:
                        raise
            if state.outbox:
                await self._flush(saga, state)

    async def _on_reply(self, event: Event, delivery: Delivery) -> None:
        await self.start()
        saga_id = delivery.correlation_id
        state = await self.store.load(saga_id) if saga_id else None
        if state is None or state.saga not in self.sagas:
            raise UnknownSagaError(
                f"{delivery.envelope.type} {delivery.id} has correlation id {saga_id!r}, which "
                f"names no saga run by this orchestrator (group {self.group!r}); a reply must "
                "carry the correlation id of the command it answers"
            )
        assert saga_id is not None

        def apply(saga: Saga, state: SagaState) -> bool:
            return _on_reply(saga, state, event, delivery.id)

        await self._locked(saga_id, apply)

    async def _on_timeout(self, saga_id: str, deadline: float) -> None:
        def apply(saga: Saga, state: SagaState) -> bool:
            if not state.active or state.deadline is None or state.deadline > deadline:
                return False  # answered, or re-armed, meanwhile
            return _on_timeout(saga, state)

        try:
            await self._locked(saga_id, apply)
        except Exception:
            log.exception("eventwire: handling the timeout of saga %s failed; retrying", saga_id)
            self._deadlines[saga_id] = time.time() + _TIMEOUT_RETRY
            if self._wake is not None:
                self._wake.set()

    # -- applying ----------------------------------------------------------------------

    def _lock(self, saga_id: str) -> asyncio.Lock:
        return self._locks[zlib.crc32(saga_id.encode()) % _LOCKS]

    async def _locked(self, saga_id: str, apply: Callable[[Saga, SagaState], bool]) -> None:
        async with self._lock(saga_id):
            for _ in range(_CONFLICT_RETRIES):
                state = await self.store.load(saga_id)
                if state is None:
                    return
                saga = self.sagas[state.saga]
                if apply(saga, state):
                    try:
                        await self.store.save(state)
                    except SagaConflictError:
                        continue
                if state.outbox:
                    await self._flush(saga, state)
                else:
                    self._arm(state)
                return
            raise SagaConflictError(f"saga {saga_id!r} kept changing under this orchestrator")

    async def _flush(self, saga: Saga, state: SagaState) -> None:
        for entry in state.outbox:
            message = _build(saga, state, entry)
            if message is None:
                continue
            with transition_span(self._tracer, saga.name, state, entry):
                if isinstance(message, Command):
                    await self.bus.send(
                        message, correlation_id=state.saga_id, causation_id=entry["cause"]
                    )
                else:
                    await self.bus.publish(
                        message, correlation_id=state.saga_id, causation_id=entry["cause"]
                    )
        state.outbox = []
        try:
            await self.store.save(state)
        except SagaConflictError:  # a newer writer owns the state and its outbox
            return
        self._arm(state)

    def _arm(self, state: SagaState) -> None:
        if state.active and state.deadline is not None:
            self._deadlines[state.saga_id] = state.deadline
        else:
            self._deadlines.pop(state.saga_id, None)
        if self._wake is not None:
            self._wake.set()

    async def _clock(self) -> None:
        assert self._wake is not None
        # a flag as well as cancel(): in Python 3.11, wait_for() may swallow a cancellation
        # that arrives just as the event is set
        while not self._closing:
            now = time.time()
            for saga_id, deadline in list(self._deadlines.items()):
                if deadline <= now:
                    del self._deadlines[saga_id]
                    task = asyncio.create_task(self._on_timeout(saga_id, deadline))
                    self._timeouts.add(task)
                    task.add_done_callback(self._timeouts.discard)
            upcoming = min(self._deadlines.values(), default=None)
            self._wake.clear()
            wait = None if upcoming is None else max(0.0, upcoming - time.time())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=wait)


# -- the state machine (pure: it only changes the state and its outbox) ---------------------


def _emit(state: SagaState, op: str, cause: str, **fields: str) -> None:
    state.outbox.append({"op": op, "cause": cause, **fields})


def _start_step(saga: Saga, state: SagaState, index: int, cause: str) -> None:
    step = saga.steps[index]
    state.step = index
    state.deadline = time.time() + saga.timeout_of(step)
    _emit(state, "command", cause, step=step.name)


def _on_reply(saga: Saga, state: SagaState, event: Event, event_id: str) -> bool:
    if event_id in state.processed:
        return False  # a redelivered reply: applied before
    state.processed.append(event_id)
    model = type(event)
    owner = saga.replies.get(model)
    reply = model.__eventwire__.type
    if owner is None or not state.active:
        log.info("eventwire: saga %s ignores %s (status %s)", state.saga_id, reply, state.status)
        return True
    step = saga.step(owner)
    if state.status == "running" and saga.index(owner) == state.step:
        if model in step.completed_by:
            state.replies[step.name] = event.model_dump(mode="json")
            state.completed.append(step.name)
            _emit(
                state, "lifecycle", event_id, type="SagaStepCompleted", step=step.name, reply=reply
            )
            if state.step + 1 < len(saga.steps):
                _start_step(saga, state, state.step + 1, event_id)
            else:
                state.status = "completed"
                state.deadline = None
                _emit(state, "lifecycle", event_id, type="SagaCompleted")
                _emit(state, "final", event_id, outcome="completed")
            return True
        if model in step.failed_by:
            _compensate(
                saga, state, step, f"{step.name} failed: {reply}", event_id, undo_current=False
            )
            return True
    if (
        state.status == "compensating"
        and state.to_compensate
        and state.to_compensate[0] == owner
        and model in step.compensated_by
    ):
        state.to_compensate.pop(0)
        _next_compensation(saga, state, event_id)
        return True
    log.info("eventwire: saga %s ignores a late %s", state.saga_id, reply)
    return True


def _on_timeout(saga: Saga, state: SagaState) -> bool:
    cause = f"timeout:{state.saga_id}:{state.version}"
    if state.status == "running":
        step = saga.steps[state.step]
        reason = f"{step.name} timed out after {saga.timeout_of(step):g}s"
        _compensate(saga, state, step, reason, cause, undo_current=True)
        return True
    name = state.to_compensate[0]
    step = saga.step(name)
    if state.attempts < saga.compensation_attempts:
        state.attempts += 1
        state.deadline = time.time() + saga.timeout_of(step)
        _emit(state, "compensation", cause, step=name)
        return True
    state.reason += f"; the compensation of {name} was not confirmed"
    state.to_compensate.pop(0)
    _next_compensation(saga, state, cause)
    return True


def _compensate(
    saga: Saga, state: SagaState, step: Step, reason: str, cause: str, *, undo_current: bool
) -> None:
    state.status = "compensating"
    state.reason = reason
    state.failed_step = step.name
    done = list(state.completed)
    if undo_current:
        done.append(step.name)
    state.to_compensate = [n for n in reversed(done) if saga.step(n).compensates]
    _emit(state, "lifecycle", cause, type="SagaCompensating", step=step.name, reason=reason)
    _next_compensation(saga, state, cause)


def _next_compensation(saga: Saga, state: SagaState, cause: str) -> None:
    while state.to_compensate:
        step = saga.step(state.to_compensate[0])
        state.step = saga.index(step.name)
        state.attempts = 1
        _emit(state, "compensation", cause, step=step.name)
        if step.compensated_by:
            state.deadline = time.time() + saga.timeout_of(step)
            return
        state.to_compensate.pop(0)
    state.status = "failed"
    state.deadline = None
    _emit(state, "lifecycle", cause, type="SagaFailed", step=state.failed_step, reason=state.reason)
    _emit(state, "final", cause, outcome="failed")


def _build(saga: Saga, state: SagaState, entry: Mapping[str, str]) -> Message | None:
    op = entry["op"]
    context = SagaContext(state.saga_id, state.data, state.replies, state.reason)
    if op == "command":
        return saga.step(entry["step"]).make_command(context)
    if op == "compensation":
        return saga.step(entry["step"]).make_compensation(context)
    if op == "final":
        builder = saga.on_completed if entry["outcome"] == "completed" else saga.on_failed
        return builder(context) if builder is not None else None
    model = saga.events.by_type(entry["type"])
    fields: dict[str, Any] = {"saga": saga.name, "saga_id": state.saga_id}
    for name in ("step", "reason", "reply"):
        if name in entry:
            fields[name] = entry[name]
    if entry["type"] == "SagaStarted":
        fields["data"] = state.data
    return model.model_validate(fields)
