"""The consume pipeline, written once for every backend.

decode -> validate (model, contract) -> dedupe (idempotency store) -> handler
-> ack | retry in place after backoff | dead-letter to ``<channel>.dlq``

One `Consumer` serves one group member on one channel. Events with the same key run one at a
time, in the order the backend delivered them (one worker task per key that has work queued);
different keys run in parallel up to ``concurrency``. At most ``max_in_flight`` deliveries are
unsettled at once: beyond that the backend's delivery call blocks, which is the backpressure
that keeps memory flat.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import inspect
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import pluggy

from eventwire.backend import Backend, Inbound, WireMessage
from eventwire.codec import PayloadValidator, decode, decode_envelope
from eventwire.deadletter import dead_letter_channel, make_dead_letter
from eventwire.delivery import Delivery, Disposition, Failure
from eventwire.envelope import Envelope
from eventwire.errors import ConfigurationError, DecodeError, NonRetryableError
from eventwire.events import Message
from eventwire.foreign import ForeignReader
from eventwire.idempotency import Claim, IdempotencyStore
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
    (for an idempotent route) claimed under `claim_key`."""

    envelope: Envelope
    route: Route
    event: Message
    claim_key: str | None


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
        self._slots = asyncio.Semaphore(max_in_flight)
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
            await self._slots.acquire()
        except BaseException:
            self.handed -= 1
            raise
        if self._closing.is_set():
            self.handed -= 1
            return False
        self.in_flight += 1
        if self.in_flight > self.peak_in_flight:
            self.peak_in_flight = self.in_flight
        return True

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
        task = asyncio.create_task(self._work(key, chain))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _work(self, key: str | None, chain: deque[Inbound]) -> None:
        """Handle one key's deliveries in order, until its queue is empty."""
        try:
            while chain:
                try:
                    if not self._closing.is_set():
                        async with self._workers:
                            if not self._closing.is_set():
                                await self._process(chain[0])
                except _Abandon:
                    pass
                except Exception:  # the pipeline must never die of one message
                    log.exception("eventwire: unexpected error in %s/%s", self.channel, self.group)
                finally:
                    chain.popleft()
                    self.in_flight -= 1
                    self.handed -= 1
                    self._slots.release()
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
        self, inbound: Inbound, attempts: int, fields: DeliveryFields | None = None
    ) -> Admitted | None:
        """Decode, validate and claim one delivery; ``None`` once it is settled here because
        it is not for a handler (invalid, of another type, delivered too often, handled
        before). `fields` (the log fields) get the envelope as soon as it is read."""
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
            if not await self._claim(claim_key):
                await self._settle(inbound.ack)  # handled before: run the effect once
                return None
        return Admitted(envelope, route, event, claim_key)

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
            delivery = Delivery(envelope, attempt, self.channel, self.group)
            context: ConsumeContext | None = None
            try:
                if layers:
                    context = ConsumeContext(event, delivery, route.handler)
                    await self._layer(layers, 0, context, route)
                elif route.takes_delivery:
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

    async def drain(self, timeout: float) -> None:
        """Let running handlers finish and settle; leave the rest unsettled."""
        self._closing.set()
        for _ in range(self._max_in_flight):  # wake a backend blocked on a full window
            self._slots.release()
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=timeout)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)
