"""The consume pipeline, written once for every backend.

decode -> validate (model, contract) -> dedupe (idempotency store) -> handler
-> ack | retry in place after backoff | dead-letter to ``<channel>.dlq``

One `Consumer` serves one group member on one channel. Events with the same key run one at a
time, in the order the backend delivered them (one worker task per key that has work queued);
different keys run in parallel up to ``concurrency``. At most ``max_in_flight`` deliveries are
unsettled at once: beyond that the backend's delivery call blocks, which is the backpressure
that keeps memory flat.

A backend may hand over a fetched batch instead of one delivery per call (the consumer is a
`eventwire.backend.BatchReceiver`): `Consumer.take_many` takes what fits in the window in one
step and queues each key's run behind its worker at once. With an idempotency store that
claims in bulk (`eventwire.idempotency.BatchIdempotencyStore`), a worker handles the run
queued for its key as one step: decoded and validated, claimed in one round trip, handled
one event after another (per-event retries and dead-letters as always), then the handled
ids are completed in one round trip and their deliveries acked.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import inspect
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import pluggy

from eventwire._window import Window
from eventwire.backend import Backend, Inbound, WireMessage
from eventwire.codec import PayloadValidator, decode, decode_envelope
from eventwire.deadletter import dead_letter_channel, make_dead_letter
from eventwire.delivery import Delivery, Disposition, Failure
from eventwire.envelope import Envelope
from eventwire.errors import ConfigurationError, DecodeError, NonRetryableError
from eventwire.events import Message
from eventwire.foreign import ForeignReader
from eventwire.idempotency import BatchIdempotencyStore, Claim, IdempotencyStore
from eventwire.middleware import ConsumeContext, Middleware, consuming
from eventwire.observability.logs import DeliveryFields, EventFields
from eventwire.observability.logs import current as log_fields
from eventwire.retry import RetryPolicy

__all__ = ["Consumer", "Route"]

log = logging.getLogger("eventwire.pipeline")
log.addFilter(EventFields())

Handler = Callable[..., Awaitable[Any]]
#: How long a claim on an event id lasts while its handler runs (renewed by completion). A
#: member that crashed holds its ids this long in a shared store: the copies the broker
#: redelivers to the other members wait for it, so it is kept short; a handler run (with its
#: in-place retries) longer than this lets a concurrent copy of the same id run too.
CLAIM_LEASE = 20.0
#: How long a handled event id is remembered by the idempotency store.
DONE_TTL = 7 * 24 * 3600.0
#: Pause between attempts to settle (ack / dead-letter / idempotency store) while the broker
#: or the store is unreachable.
SETTLE_RETRY = 0.5
#: The most deliveries of one key handled as one run (claimed and completed together, with a
#: `BatchIdempotencyStore`); a run starts at `RUN_START` and adapts to the handlers' speed.
RUN_MAX = 64
RUN_START = 8
_ACK = Disposition.ack()


@dataclasses.dataclass(frozen=True, slots=True)
class Route:
    """One handler for one message type within a consumer."""

    model: type[Message]
    handler: Handler
    retry: RetryPolicy
    dead_letter: bool
    idempotent: bool
    takes_delivery: bool
    middlewares: tuple[Middleware, ...] = ()

    @classmethod
    def for_handler(
        cls,
        model: type[Message],
        handler: Handler,
        *,
        retry: RetryPolicy,
        dead_letter: bool,
        idempotent: bool,
        middlewares: tuple[Middleware, ...] = (),
    ) -> Route:
        # ``handler(event)`` or ``handler(event, delivery)``: a second positional parameter
        # without a default receives the `Delivery`.
        params = list(inspect.signature(handler).parameters.values())
        positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        required = [p for p in positional if p.default is inspect.Parameter.empty]
        keyword_only = [p.name for p in params if p.kind is p.KEYWORD_ONLY and p.default is p.empty]
        takes_varargs = any(p.kind is p.VAR_POSITIONAL for p in params)
        problem = None
        if not positional and not takes_varargs:
            problem = "takes no arguments, so it cannot receive the event"
        elif len(required) > 2:
            names = ", ".join(p.name for p in required)
            problem = f"requires {len(required)} arguments ({names}); it gets at most two"
        elif keyword_only:
            problem = f"requires keyword-only argument(s) {', '.join(keyword_only)}"
        if problem is not None:
            name = getattr(handler, "__qualname__", repr(handler))
            kind = model.__name__
            raise ConfigurationError(
                f"handler {name} for {model.__eventwire__.type} {problem}; write "
                f"'async def {getattr(handler, '__name__', 'handler')}(event: {kind})' or "
                f"'(event: {kind}, delivery: Delivery)'"
            )
        return cls(model, handler, retry, dead_letter, idempotent, len(required) >= 2, middlewares)


@dataclasses.dataclass(slots=True)
class Admitted:
    """A delivery that is for a handler: decoded, validated, under the policy's attempts and
    (for an idempotent route) claimed under `claim_key`; `attempt` is the attempt it is at."""

    envelope: Envelope
    route: Route
    event: Message
    claim_key: str | None
    inbound: Inbound
    attempt: int


class _Abandon(Exception):
    """The consumer is closing: leave this delivery unsettled for redelivery."""


class Consumer:
    """The pipeline of one group member on one channel."""

    def __init__(
        self,
        *,
        backend: Backend,
        channel: str,
        group: str,
        routes: dict[str, Route],
        concurrency: int,
        max_in_flight: int,
        store: IdempotencyStore,
        validator: PayloadValidator | None = None,
        plugins: pluggy.PluginManager | None = None,
        middlewares: tuple[Middleware, ...] = (),
        foreign: ForeignReader | None = None,
    ) -> None:
        self.backend = backend
        self.channel = channel
        self.group = group
        self.routes = routes
        self._binding = backend.binding
        self._store = store
        self._validator = validator
        self._plugins = plugins
        #: Reads the messages without eventwire's envelope this subscription accepts.
        self._foreign = foreign
        # Per message type: the consume middlewares around its handler, outermost first.
        self._layers = {
            name: consuming(middlewares + route.middlewares) for name, route in routes.items()
        }
        self._max_in_flight = max_in_flight
        self._window = Window(max_in_flight)
        self._batch_store = store if isinstance(store, BatchIdempotencyStore) else None
        self._run_limit = RUN_START
        self._workers = asyncio.Semaphore(concurrency)
        self._chains: dict[str, deque[Inbound]] = {}  # key -> deliveries waiting, in order
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = asyncio.Event()
        self.in_flight = 0
        self.peak_in_flight = 0
        # Deliveries the backend has handed to `on_message` and that are not settled yet:
        # the in-flight ones and the ones waiting for a free slot (what the backend holds
        # beyond the window when it does not wait for the handler).
        self.handed = 0
        self.peak_handed = 0

    # -- delivery from the backend -------------------------------------------------------

    async def _take_slot(self) -> bool:
        """Wait for room in the ``max_in_flight`` window; ``False`` when closing (the
        delivery is left unsettled, for the broker to give to another member)."""
        if self._closing.is_set():
            return False
        self.handed += 1
        if self.handed > self.peak_handed:
            self.peak_handed = self.handed
        try:
            taken = await self._window.acquire()
        except BaseException:
            self.handed -= 1
            raise
        if not taken:
            self.handed -= 1
            return False
        self.in_flight += 1
        if self.in_flight > self.peak_in_flight:
            self.peak_in_flight = self.in_flight
        return True

    def _count_taken(self, count: int) -> None:
        self.handed += count
        if self.handed > self.peak_handed:
            self.peak_handed = self.handed
        self.in_flight += count
        if self.in_flight > self.peak_in_flight:
            self.peak_in_flight = self.in_flight

    def _settled(self, count: int) -> None:
        """`count` deliveries taken from the window are settled (or left to the broker)."""
        self.in_flight -= count
        self.handed -= count
        self._window.release(count)

    async def on_message(self, inbound: Inbound) -> None:
        """Accept one delivery; blocks while ``max_in_flight`` deliveries are unsettled."""
        if not await self._take_slot():
            return
        key = inbound.message.key
        if key is not None:
            chain = self._chains.get(key)
            if chain is not None:  # a worker is running this key: queue behind it
                chain.append(inbound)
                return
            chain = self._chains[key] = deque((inbound,))
        else:
            chain = deque((inbound,))
        self._start(key, chain)

    __call__ = on_message

    def take_many(self, inbounds: Sequence[Inbound]) -> int:
        """Accept the longest prefix of `inbounds` the window has room for, without waiting
        (`eventwire.backend.BatchReceiver`); how many were taken. Each key's run of the
        prefix is queued behind that key's worker in one step."""
        if self._closing.is_set():
            return 0
        taken = self._window.take(len(inbounds))
        if not taken:
            return 0
        self._count_taken(taken)
        chains = self._chains
        fresh: dict[str, deque[Inbound]] = {}
        for index in range(taken):
            inbound = inbounds[index]
            key = inbound.message.key
            if key is None:
                self._start(None, deque((inbound,)))
                continue
            chain = chains.get(key)
            if chain is None:
                chain = chains[key] = fresh[key] = deque()
            chain.append(inbound)
        for key, chain in fresh.items():
            self._start(key, chain)
        return taken

    async def room(self) -> bool:
        """Wait until the window has room worth handing a batch to (a quarter of it);
        ``False`` once the consumer is closing."""
        wanted = max(1, self._max_in_flight // 4)
        return await self._window.wait_room(wanted) and not self._closing.is_set()

    def _start(self, key: str | None, chain: deque[Inbound]) -> None:
        task = asyncio.create_task(self._work(key, chain))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _work(self, key: str | None, chain: deque[Inbound]) -> None:
        """Handle one key's deliveries in order, until its queue is empty: one at a time,
        or (with a `BatchIdempotencyStore`) in runs of what is queued, claimed together."""
        batched = self._batch_store is not None
        try:
            while chain:
                count = 1
                try:
                    if not self._closing.is_set():
                        async with self._workers:
                            if self._closing.is_set():
                                pass
                            elif batched and len(chain) > 1:
                                count = min(len(chain), self._run_limit)
                                count = await self._process_run([chain[i] for i in range(count)])
                            else:
                                await self._process(chain[0])
                except _Abandon:
                    pass
                except Exception:  # the pipeline must never die of one message
                    log.exception("eventwire: unexpected error in %s/%s", self.channel, self.group)
                finally:
                    for _ in range(count):
                        chain.popleft()
                    self._settled(count)
        finally:
            if key is not None and self._chains.get(key) is chain:
                del self._chains[key]

    # -- the steps -----------------------------------------------------------------------

    async def _process(self, inbound: Inbound) -> None:
        attempts = max(1, inbound.delivery_count)
        fields = DeliveryFields(self.channel, self.group, attempts)
        token = log_fields.set(fields)  # every log record about this delivery carries it
        try:
            await self._process_fields(inbound, attempts, fields)
        finally:
            log_fields.reset(token)

    async def _read(self, inbound: Inbound, attempts: int) -> tuple[Envelope, bytes] | None:
        """The delivery's envelope and payload: eventwire's own headers, else one of the
        foreign forms the group accepts; ``None`` once a message that is neither has been
        dead-lettered as invalid."""
        message = inbound.message
        try:
            return decode_envelope(message.headers, self._binding), message.body
        except DecodeError as exc:
            try:
                if self._foreign is None:
                    raise
                return self._foreign.read(inbound, self._binding, exc)
            except DecodeError as problem:
                await self._dead_letter(inbound, "invalid", problem, attempts)
                return None

    async def _admit(
        self,
        inbound: Inbound,
        attempts: int,
        fields: DeliveryFields | None = None,
        *,
        claim: bool = True,
    ) -> Admitted | None:
        """Decode, validate and claim one delivery; ``None`` once it is settled here because
        it is not for a handler (invalid, of another type, delivered too often, handled
        before). `fields` (the log fields) get the envelope as soon as it is read. With
        ``claim=False`` the claim key is named but not claimed (`_claim_all` does that)."""
        read = await self._read(inbound, attempts)
        if read is None:
            return None
        envelope, body = read
        if fields is not None:
            fields.envelope = envelope
        route = self.routes.get(envelope.type)
        if route is None:  # another type on this channel: not this group's business
            await self._settle(inbound.ack)
            return None
        try:
            if self._validator is not None:
                problems = self._validator.errors(envelope.type, body)
                if problems:
                    raise DecodeError("breaks the contract: " + "; ".join(problems))
            event = decode(body, route.model)
        except DecodeError as exc:
            await self._dead_letter(inbound, "invalid", exc, attempts)
            return None
        if attempts > route.retry.max_attempts:
            # Delivered more often than the policy allows (e.g. it crashed every consumer
            # that took it): do not run it again.
            await self._dead_letter(
                inbound, "max-deliveries", None, attempts - 1, enabled=route.dead_letter
            )
            return None
        claim_key = None
        if route.idempotent:
            claim_key = f"{self.group}:{envelope.id}"
            if claim and not await self._claim(claim_key):
                await self._settle(inbound.ack)  # handled before: run the effect once
                return None
        return Admitted(envelope, route, event, claim_key, inbound, attempts)

    def _admit_now(self, inbound: Inbound, attempts: int) -> Admitted | None:
        """`_admit` without claiming and without waiting, for the usual delivery: eventwire's
        envelope, a handler for its type, a valid payload, not delivered too often. ``None``
        for any other (nothing is settled here: `_admit` decides what to do with it)."""
        message = inbound.message
        try:
            envelope = decode_envelope(message.headers, self._binding)
        except DecodeError:
            return None
        route = self.routes.get(envelope.type)
        if route is None or attempts > route.retry.max_attempts:
            return None
        body = message.body
        if self._validator is not None and self._validator.errors(envelope.type, body):
            return None
        try:
            event = decode(body, route.model)
        except DecodeError:  # `_admit` settles it
            return None
        claim_key = f"{self.group}:{envelope.id}" if route.idempotent else None
        return Admitted(envelope, route, event, claim_key, inbound, attempts)

    async def _process_fields(
        self, inbound: Inbound, attempts: int, fields: DeliveryFields
    ) -> None:
        admitted = await self._admit(inbound, attempts, fields)
        if admitted is None:
            return
        envelope, route, event, claim_key = (
            admitted.envelope,
            admitted.route,
            admitted.event,
            admitted.claim_key,
        )
        try:
            outcome = await self._attempts(route, event, envelope, attempts, fields)
        except BaseException:
            if claim_key is not None:  # best effort: an unreleased claim expires with its lease
                with contextlib.suppress(Exception):
                    await self._store.release(claim_key)
            raise
        action, error, attempt, reason = outcome
        if claim_key is not None:
            key = claim_key
            if action == "dead_letter":
                await self._settle(lambda: self._store.release(key))
            else:
                await self._settle(lambda: self._store.complete(key, DONE_TTL))
        if action == "dead_letter":
            await self._dead_letter(inbound, reason, error, attempt, enabled=route.dead_letter)
        else:
            await self._settle(inbound.ack)

    async def _claim_all(self, admitted: list[Admitted]) -> list[Admitted]:
        """Claim the claim keys of `admitted` deliveries (named by ``_admit(claim=False)``):
        one round trip with a `BatchIdempotencyStore`. Those handled before are acked here
        and left out of the answer; concurrent duplicates are waited out as in `_claim`."""
        keys = [item.claim_key for item in admitted if item.claim_key is not None]
        if not keys:
            return admitted
        if self._batch_store is None or len(keys) == 1:
            states = None
        else:
            states = iter(await self._claim_states(self._batch_store, keys))
        kept = []
        for item in admitted:
            key = item.claim_key
            if key is not None:
                state = Claim.BUSY if states is None else next(states)
                acquired = state is Claim.ACQUIRED
                if state is Claim.BUSY:
                    acquired = await self._claim(key)
                if not acquired:
                    await self._settle(item.inbound.ack)  # handled before: run the effect once
                    continue
            kept.append(item)
        return kept

    async def _claim_states(self, store: BatchIdempotencyStore, keys: list[str]) -> list[Claim]:
        while True:
            try:
                return await store.claim_many(keys, CLAIM_LEASE)
            except Exception as exc:  # the store is unreachable: wait, keep the events
                log.warning("eventwire: idempotency store failed (%s); retrying", exc)
                await self._pause(SETTLE_RETRY)

    async def _admit_run(self, run: list[Inbound], start: int) -> tuple[list[Admitted], int]:
        """`_admit` (without claiming) ``run[start:]`` up to the first delivery whose claim
        key repeats one before it (a duplicate of an event in the run: it may only be
        claimed once the first is settled); the admitted ones and the index it stopped at."""
        admitted: list[Admitted] = []
        keys: set[str] = set()
        index = start
        while index < len(run):
            inbound = run[index]
            attempts = max(1, inbound.delivery_count)
            try:
                item = self._admit_now(inbound, attempts)
                if item is None:  # to settle here, or a foreign form: the full path
                    item = await self._admit(inbound, attempts, claim=False)
            except _Abandon:
                raise
            except Exception:  # left unsettled, as `_work` leaves a failed delivery
                log.exception("eventwire: unexpected error in %s/%s", self.channel, self.group)
                item = None
            if item is not None:
                key = item.claim_key
                if key is not None:
                    if key in keys:
                        break
                    keys.add(key)
                admitted.append(item)
            index += 1
        return admitted, index

    async def _process_run(self, run: list[Inbound]) -> int:
        """Handle a key's queued deliveries in order, in one step: admit them (up to a
        repeated event id; claims in one round trip), run each handler in turn (retries in
        place, dead-letters as `_process`), then remember the handled ids in one round trip
        and ack them. Returns how many deliveries of `run` it took (the rest wait).

        Claims are leases: a claim older than half its lease is renewed (released and
        claimed again) before its event runs, and the run length adapts so that a run
        usually ends well within one lease."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        admitted, consumed = await self._admit_run(run, 0)
        admitted = await self._claim_all(admitted)
        claimed_at = loop.time()
        done: list[str] = []
        handled: list[Inbound] = []
        index = 0
        try:
            while index < len(admitted) and not self._closing.is_set():
                item = admitted[index]
                inbound = item.inbound
                key = item.claim_key
                if key is not None and loop.time() - claimed_at > CLAIM_LEASE / 2:
                    await self._settle(functools.partial(self._store.release, key))
                    if not await self._claim(key):
                        await self._settle(inbound.ack)
                        index += 1
                        continue
                    claimed_at = loop.time()
                fields = DeliveryFields(self.channel, self.group, item.attempt, item.envelope)
                token = log_fields.set(fields)
                try:
                    action, error, attempt, reason = await self._attempts(
                        item.route, item.event, item.envelope, item.attempt, fields
                    )
                    if action == "dead_letter":
                        if key is not None:
                            await self._settle(functools.partial(self._store.release, key))
                        await self._dead_letter(
                            inbound, reason, error, attempt, enabled=item.route.dead_letter
                        )
                    else:
                        if key is not None:
                            done.append(key)
                        handled.append(inbound)
                finally:
                    log_fields.reset(token)
                index += 1
        finally:
            for item in admitted[index:]:  # not run: a redelivery may claim them at once
                if item.claim_key is not None:
                    with contextlib.suppress(Exception):
                        await self._store.release(item.claim_key)
            await self._finish_run(done, handled)
        elapsed = loop.time() - started
        if elapsed > CLAIM_LEASE / 8:
            self._run_limit = max(1, self._run_limit // 2)
        elif self._run_limit < RUN_MAX:
            self._run_limit = min(RUN_MAX, self._run_limit * 2)
        return consumed

    async def _finish_run(self, done: list[str], handled: list[Inbound]) -> None:
        """Remember the handled ids (one round trip), then ack their deliveries."""
        store = self._batch_store
        if done:
            if store is not None:
                await self._settle(functools.partial(store.complete_many, done, DONE_TTL))
            else:
                for key in done:
                    await self._settle(functools.partial(self._store.complete, key, DONE_TTL))
        await self._ack_all(handled)

    async def _ack_all(self, inbounds: Sequence[Inbound], *, together: bool = False) -> None:
        """Ack `inbounds`: in one step where their class acks in bulk
        (`eventwire.backend.BulkAck`), else one after the other, or all at once with
        `together` (where each ack is a broker round trip)."""
        if not inbounds:
            return
        cls = type(inbounds[0])
        ack_many = getattr(cls, "ack_many", None)
        if ack_many is not None and set(map(type, inbounds)) == {cls}:
            await self._settle(functools.partial(ack_many, inbounds))
        elif together:
            await asyncio.gather(*(self._settle(inbound.ack) for inbound in inbounds))
        else:
            for inbound in inbounds:
                await self._settle(inbound.ack)

    async def _claim(self, key: str) -> bool:
        """True when this delivery should run the handler; waits out concurrent duplicates."""
        while True:
            try:
                state = await self._store.claim(key, CLAIM_LEASE)
            except Exception as exc:  # the store is unreachable: wait, keep the event
                log.warning("eventwire: idempotency store failed (%s); retrying", exc)
                await self._pause(SETTLE_RETRY)
                continue
            if state is Claim.ACQUIRED:
                return True
            if state is Claim.DONE:
                return False
            await self._pause(0.02)

    async def _attempts(
        self,
        route: Route,
        event: Message,
        envelope: Envelope,
        attempt: int,
        fields: DeliveryFields,
    ) -> tuple[str, BaseException | None, int, str]:
        layers = self._layers[envelope.type]
        while True:
            fields.attempt = attempt
            context: ConsumeContext | None = None
            try:
                # The `Delivery` is built only for who receives it.
                if layers:
                    delivery = Delivery(envelope, attempt, self.channel, self.group)
                    context = ConsumeContext(event, delivery, route.handler)
                    await self._layer(layers, 0, context, route)
                elif route.takes_delivery:
                    delivery = Delivery(envelope, attempt, self.channel, self.group)
                    await route.handler(event, delivery)
                else:
                    await route.handler(event)
            except Exception as exc:
                if context is not None and context.error is exc and context.outcome is not None:
                    disposition = context.outcome
                else:
                    disposition = self._decide(exc, route, envelope, attempt)
                if disposition.action == "retry":
                    log.info(
                        "eventwire: %s %s attempt %d failed (%s: %s); retrying in %.2fs",
                        envelope.type,
                        envelope.id,
                        attempt,
                        type(exc).__name__,
                        exc,
                        disposition.delay,
                    )
                    await self._pause(disposition.delay)
                    attempt += 1
                    continue
                return disposition.action, exc, attempt, disposition.reason or "failed"
            return "ack", None, attempt, ""

    async def _layer(
        self, layers: tuple[Middleware, ...], index: int, context: ConsumeContext, route: Route
    ) -> None:
        """Run middleware `index` around the rest of the chain (the handler last)."""

        async def call_next() -> None:
            try:
                if index + 1 < len(layers):
                    await self._layer(layers, index + 1, context, route)
                elif route.takes_delivery:
                    await route.handler(context.event, context.delivery)
                else:
                    await route.handler(context.event)
            except Exception as exc:
                if context.error is not exc:  # decided once, where it was first seen
                    context.error = exc
                    context.outcome = self._decide(exc, route, context.envelope, context.attempt)
                raise
            context.error = None
            context.outcome = _ACK

        await layers[index].consume(context, call_next)

    def _decide(
        self, exc: Exception, route: Route, envelope: Envelope, attempt: int
    ) -> Disposition:
        if self._plugins is not None:
            failure = Failure(exc, attempt, route.retry, envelope, self.channel, self.group)
            answer = self._plugins.hook.eventwire_consume_error(failure=failure)
            if answer is not None:
                return answer  # type: ignore[no-any-return]
        if isinstance(exc, NonRetryableError):
            return Disposition.dead_letter(exc.reason)
        if route.retry.should_retry(attempt):
            return Disposition.retry(route.retry.delay(attempt))
        return Disposition.dead_letter("max-attempts")

    async def _dead_letter(
        self,
        inbound: Inbound,
        reason: str,
        error: BaseException | None,
        attempts: int,
        *,
        enabled: bool = True,
    ) -> None:
        if enabled:
            dlq = make_dead_letter(
                inbound.message,
                reason=reason,
                error=error,
                attempts=attempts,
                group=self.group,
                channel=self.channel,
            )
            log.warning(
                "eventwire: dead-lettering a message of %s (group %s) after %d attempt(s): %s %s",
                self.channel,
                self.group,
                attempts,
                reason,
                error or "",
            )
            await self._settle(lambda: self._publish_dlq(dlq))
        else:
            log.error(
                "eventwire: dropping a message of %s (group %s, dead_letter=False): %s %s",
                self.channel,
                self.group,
                reason,
                error or "",
            )
        await self._settle(inbound.ack)

    async def _publish_dlq(self, message: WireMessage) -> None:
        await self.backend.publish(dead_letter_channel(self.channel), [message])

    async def _settle(self, action: Callable[[], Awaitable[None]]) -> None:
        """Run a settlement step until it succeeds (the broker may be restarting)."""
        while True:
            try:
                await action()
                return
            except Exception as exc:
                if self._closing.is_set():
                    raise _Abandon() from exc
                log.warning("eventwire: settling failed (%s); retrying", exc)
                await self._pause(SETTLE_RETRY)

    async def _pause(self, seconds: float) -> None:
        """Sleep, or raise `_Abandon` as soon as the consumer starts closing."""
        if self._closing.is_set():
            raise _Abandon()
        try:
            await asyncio.wait_for(self._closing.wait(), timeout=seconds)
        except TimeoutError:
            return
        raise _Abandon()

    # -- shutdown ------------------------------------------------------------------------

    def abandon(self) -> None:
        """Stop at once (a crash): nothing more is handled or settled."""
        self._closing.set()
        self._window.close()

    async def drain(self, timeout: float) -> None:
        """Let running handlers finish and settle; leave the rest unsettled."""
        self._closing.set()
        self._window.close()  # wake a backend blocked on a full window
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=timeout)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)
