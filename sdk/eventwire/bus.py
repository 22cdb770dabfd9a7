"""`EventBus`: publish and subscribe through one backend, chosen by URL."""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from eventwire._bulk import Encoded, Encoder
from eventwire._naming import check_name
from eventwire.backend import (
    Backend,
    ChannelPurger,
    IdempotencyStoreProvider,
    Subscription,
    SubscriptionSpec,
    WireMessage,
)
from eventwire.batching import BatchConsumer, BatchPolicy
from eventwire.bindings import BINDINGS, to_headers, user_headers
from eventwire.codec import PayloadValidator
from eventwire.deadletter import REPLAY, DeadLetter, dead_letter_channel
from eventwire.envelope import Envelope
from eventwire.errors import (
    BusClosedError,
    ConfigurationError,
    EventValidationError,
    UnsupportedOperationError,
)
from eventwire.events import Command, Event, Message, MessageSpec
from eventwire.foreign import (
    Accept,
    ForeignReader,
    PlainJSON,
    accept_forms,
    forms_from_document,
)
from eventwire.idempotency import IdempotencyStore, MemoryIdempotencyStore
from eventwire.middleware import Middleware, PublishContext, check_middlewares, publishing
from eventwire.observability import instrumentation, lag_watch
from eventwire.pipeline import Consumer, Route
from eventwire.plugins import (
    create_backend,
    get_plugin_manager,
    missing_client,
    open_idempotency_store,
)
from eventwire.retry import RetryPolicy
from eventwire.urls import url_scheme

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import TracerProvider

    from eventwire.observability.lag import LagWatch

__all__ = ["EventBus", "SubscriptionInfo"]

log = logging.getLogger("eventwire")

M = TypeVar("M", bound=Message)
H = TypeVar("H", bound=Callable[..., Awaitable[Any]])
Hook = TypeVar("Hook", bound=Callable[[], Any])

DEFAULT_RETRY = RetryPolicy()
_BASES = (Message, Event, Command)
#: A batch subscription's default window, in batches: while one batch runs the backend
#: fetches the next ones; with two, a NATS drain waited ~30 ms for its window to refill
#: after every other batch (12,400 msg/s, against 22,800 with four).
BATCHES_IN_FLIGHT = 4


@dataclasses.dataclass
class SubscriptionInfo:
    """One (channel, group) subscription of a bus and the handlers behind it."""

    channel: str
    group: str
    concurrency: int
    max_in_flight: int
    from_beginning: bool
    routes: dict[str, Route]
    #: message type -> the types its handler promises to publish in reaction (``emits=``)
    emits: dict[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    #: The messages without eventwire's envelope the group accepts (``accept=``).
    accept: tuple[Accept, ...] = ()
    #: Set for a batch subscription (its one handler takes a list of events).
    batch: BatchPolicy | None = None

    @property
    def models(self) -> list[type[Message]]:
        """The message classes this subscription handles."""
        return [route.model for route in self.routes.values()]


class EventBus:
    """Publish and consume events through the backend that `url` names.

    ``EventBus("kafka://localhost:9092", source="order-service")``; ``"memory://"`` (the
    default) is the embedded broker. Use it as an async context manager (or call `start` and
    `close`). Subscriptions are declared with the `subscribe` decorator before the bus starts.

    ``tracing``: with ``opentelemetry-api`` installed and a global tracer provider configured,
    every publish and handler attempt is traced (docs/observability.md); ``False`` turns
    that off, a ``TracerProvider`` is used instead of the global one. ``metrics`` likewise,
    with a meter provider (or the Prometheus endpoint of `eventwire.observability.prometheus`).

    ``idempotency_store``: where ``idempotent=True`` subscriptions remember handled event
    ids — an `IdempotencyStore`, or a store URL (``"redis://cache:6379/0"``,
    ``"nats://..."``, ``"sqlite:///var/lib/app/ids.db"``, ``"postgresql://..."``,
    ``"memory://"`` for this process only). By default, the backend's broker when it can
    hold one for every member (Redis, NATS, SQLite, memory), else a store in this process
    (Kafka, RabbitMQ: see docs/idempotency.md). A store the bus opened, it closes.
    """

    def __init__(
        self,
        url: str = "memory://",
        *,
        source: str = "eventwire",
        contract: str | os.PathLike[str] | None = None,
        idempotency_store: IdempotencyStore | str | None = None,
        backend_options: Mapping[str, Any] | None = None,
        close_timeout: float = 30.0,
        middlewares: Sequence[Middleware] | None = None,
        tracing: bool | TracerProvider = True,
        metrics: bool | MeterProvider = True,
    ) -> None:
        if not isinstance(source, str) or not source:
            raise ConfigurationError(f"source must be a non-empty string, got {source!r}")
        self.source = source
        self._plugins = get_plugin_manager()
        self._backend_args = (url, backend_options)
        self.backend: Backend = create_backend(url, backend_options, self._plugins)
        self.contract_path = Path(contract) if contract is not None else None
        self._validator: PayloadValidator | None = (
            _load_contract(self.contract_path) if self.contract_path is not None else None
        )
        self.idempotency_store: IdempotencyStore
        #: Whether the bus opened the store (and closes it).
        self._owns_store: bool
        self.idempotency_store, self._owns_store = self._store(idempotency_store)
        self.close_timeout = close_timeout
        #: Wrap every handler attempt and every publish of this bus (see `Middleware`).
        self.middlewares: list[Middleware] = list(check_middlewares(middlewares, "EventBus"))
        if not isinstance(tracing, bool) and not hasattr(tracing, "get_tracer"):
            raise ConfigurationError(
                f"tracing must be True, False or an OpenTelemetry TracerProvider, got {tracing!r}"
            )
        if not isinstance(metrics, bool) and not hasattr(metrics, "get_meter"):
            raise ConfigurationError(
                f"metrics must be True, False or an OpenTelemetry MeterProvider, got {metrics!r}"
            )
        self.tracing = tracing
        self.metrics = metrics
        #: The observing middlewares (outside the user's), decided when the bus starts.
        self._observers: tuple[Middleware, ...] = ()
        self._lag: LagWatch | None = None
        self.subscriptions: dict[tuple[str, str], SubscriptionInfo] = {}
        self.published: dict[str, type[Message]] = {}
        self._encoder: Encoder | None = None
        self._command_groups: dict[type[Message], str] = {}
        self._consumers: list[Consumer] = []
        self._running: list[Subscription] = []
        self._state = "new"
        self._on_startup: list[Callable[[], Any]] = []
        self._on_shutdown: list[Callable[[], Any]] = []
        self._hooks_started = False
        self._lock = asyncio.Lock()
        self._member_prefix = f"{socket.gethostname()}-{os.getpid()}-{id(self):x}"

    def _store(self, given: IdempotencyStore | str | None) -> tuple[IdempotencyStore, bool]:
        """The idempotency store to use, and whether this bus opened it."""
        if given is None:
            if isinstance(self.backend, IdempotencyStoreProvider):
                return self.backend.shared_idempotency_store(), True
            return MemoryIdempotencyStore(), False
        if isinstance(given, str):
            return open_idempotency_store(given, self._plugins), True
        if not isinstance(given, IdempotencyStore):
            raise ConfigurationError(
                f"idempotency_store must be an IdempotencyStore (claim, complete, release) or "
                f"a store URL, got {given!r}"
            )
        return given, False

    async def _close_store(self) -> None:
        close = getattr(self.idempotency_store, "close", None)
        if self._owns_store and close is not None:
            try:
                await close()
            except Exception:  # closing a connection that is gone: nothing is lost
                log.warning("eventwire: closing the idempotency store failed", exc_info=True)

    def __repr__(self) -> str:
        return f"EventBus({self.backend.url!r}, source={self.source!r}, state={self._state!r})"

    @property
    def url(self) -> str:
        """The backend URL without credentials."""
        return self.backend.url

    @property
    def state(self) -> str:
        """``new``, ``running``, ``draining`` (closing: in-flight handlers finish) or ``closed``."""
        return self._state

    @property
    def ready(self) -> bool:
        """Connected and every subscription started, and not closing."""
        return self._state == "running" and len(self._running) == len(self.subscriptions)

    # -- lifespan ---------------------------------------------------------------------------

    def on_startup(self, hook: Hook) -> Hook:
        """Run ``hook()`` (sync or async) when the bus starts: connected, before consuming.

        Hooks run in registration order and may publish; one that raises stops the start.
        """
        self._on_startup.append(_check_hook(hook, "on_startup"))
        return hook

    def on_shutdown(self, hook: Hook) -> Hook:
        """Run ``hook()`` (sync or async) when the bus closes, after in-flight handlers
        finished and before disconnecting (it may still publish). Hooks run in reverse
        registration order, and only if the startup hooks all succeeded."""
        self._on_shutdown.append(_check_hook(hook, "on_shutdown"))
        return hook

    # -- declaring --------------------------------------------------------------------------

    def declare(self, *models: type[Message]) -> None:
        """Declare message classes this bus publishes (for contracts and docs)."""
        for model in models:
            self.published[model.__eventwire__.type] = model

    def subscribe(
        self,
        model: type[M],
        *,
        group: str | None = None,
        concurrency: int = 1,
        retry: RetryPolicy | None = None,
        dead_letter: bool = True,
        idempotent: bool = False,
        from_beginning: bool = False,
        max_in_flight: int | None = None,
        middlewares: Sequence[Middleware] | None = None,
        emits: Sequence[type[Message]] | None = None,
        accept: Accept | Sequence[Accept] | None = None,
        batch: BatchPolicy | None = None,
    ) -> Callable[[H], H]:
        """Register an ``async def handler(event[, delivery])`` for `model`.

        - ``group``: members of one group share the events; every group gets every event.
          Default: ``<source>.<handler name>`` for events, the channel for commands.
        - ``concurrency``: handlers running at once (same-key events never run together).
        - ``retry``: attempts and backoff (default `RetryPolicy()`: 5 attempts).
        - ``dead_letter``: after the last attempt, move the event to ``<channel>.dlq``
          (``False``: log and drop it).
        - ``idempotent``: run the effect once per event id and group (uses the bus's
          idempotency store).
        - ``from_beginning``: a new group starts from the oldest retained event.
        - ``max_in_flight``: unsettled deliveries at most (default ``max(64, 4*concurrency)``).
        - ``middlewares``: wrap this handler's attempts, inside the bus's middlewares.
        - ``emits``: the message classes the handler publishes in reaction, one of which
          follows every event it handles, with the same correlation id. Written to the
          AsyncAPI document as ``x-eventwire-emits`` and checked by ``eventwire contracts test``;
          they count as declared (`declare`).
        - ``accept``: messages from producers that are not eventwire this group also reads:
          `CloudEventsJSON()` (structured CloudEvents) and/or `PlainJSON(...)` (plain JSON
          payloads, typed by a field, a header or the group's only message type); see
          `eventwire.foreign`. Every handler of one group declares the same forms.
        - ``batch``: a `BatchPolicy` makes this a batch handler,
          ``async def handle(events: list[Model])``, called with up to ``max_size`` events
          in delivery order; it reports a partial failure by raising `BatchError`
          (see `eventwire.batching`). A batch handler is alone in its group, runs one batch
          at a time (``concurrency`` 1), its middlewares run through ``consume_batch``;
          ``max_in_flight`` defaults to ``4 * max_size`` and must be at least ``max_size``.
        """
        spec = _message_spec(model)
        channel = spec.require_channel()
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise ConfigurationError(f"concurrency must be an int >= 1, got {concurrency!r}")
        window = max_in_flight if max_in_flight is not None else max(64, 4 * concurrency)
        if batch is not None:
            window = _check_batch(spec.type, batch, concurrency, max_in_flight, middlewares)
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise ConfigurationError(f"max_in_flight must be an int >= 1, got {max_in_flight!r}")
        if retry is not None and not isinstance(retry, RetryPolicy):
            raise ConfigurationError(f"retry must be a RetryPolicy, got {retry!r}")
        layers = check_middlewares(middlewares, "subscribe()")
        forms = accept_forms(accept)
        follow_ups = tuple(_message_spec(m).type for m in emits or ())

        def register(handler: H) -> H:
            function: Callable[..., Any] = handler
            if not inspect.iscoroutinefunction(function):
                raise ConfigurationError(
                    f"handler {getattr(handler, '__qualname__', handler)!r} for {spec.type} "
                    "must be an 'async def' function"
                )
            if self._state != "new":
                raise ConfigurationError(
                    "subscribe before the bus starts (before 'async with bus' or bus.start())"
                )
            route = Route.for_handler(
                model,
                handler,
                retry=retry or DEFAULT_RETRY,
                dead_letter=dead_letter,
                idempotent=idempotent,
                middlewares=layers,
            )
            if batch is not None and route.takes_delivery:
                raise ConfigurationError(
                    f"batch handler {handler.__qualname__} for {spec.type} takes one argument, "
                    f"the list of events: write 'async def {handler.__name__}(events: "
                    f"list[{model.__name__}])'"
                )
            name = group
            if name is None:
                name = channel if spec.kind == "command" else f"{self.source}.{handler.__name__}"
            check_name("group", name, owner=spec.type)
            if spec.kind == "command":
                known = self._command_groups.get(model)
                if known is not None and known != name:
                    raise ConfigurationError(
                        f"command {spec.type} already has the handling group {known!r}; a "
                        f"command has exactly one handling group, so {name!r} cannot be added"
                    )
                self._command_groups[model] = name
            key = (channel, name)
            info = self.subscriptions.get(key)
            if info is not None and (batch is not None or info.batch is not None):
                raise ConfigurationError(
                    f"group {name!r} on channel {channel!r} already has a handler; a batch "
                    "handler needs a group of its own (pass group=...)"
                )
            if info is None:
                info = SubscriptionInfo(channel, name, concurrency, window, from_beginning, {})
                info.batch = batch
                self.subscriptions[key] = info
            elif (info.concurrency, info.max_in_flight, info.from_beginning) != (
                concurrency,
                window,
                from_beginning,
            ):
                raise ConfigurationError(
                    f"group {name!r} on channel {channel!r} is already subscribed with "
                    f"concurrency={info.concurrency}, max_in_flight={info.max_in_flight}, "
                    f"from_beginning={info.from_beginning}; use the same settings"
                )
            if spec.type in info.routes:
                raise ConfigurationError(
                    f"{spec.type} already has a handler in group {name!r}; use another group"
                )
            if info.routes and info.accept != forms:
                raise ConfigurationError(
                    f"group {name!r} on channel {channel!r} is already subscribed with "
                    f"accept={list(info.accept)!r}; every handler of a group accepts the same "
                    "foreign messages, so give the same accept= (or use another group)"
                )
            untyped = any(isinstance(f, PlainJSON) and not f.typed for f in forms)
            if untyped and info.routes:
                raise ConfigurationError(
                    f"group {name!r} on channel {channel!r} accepts PlainJSON() without "
                    f"type_field= or type_header=, so it can handle one message type only; it "
                    f"already handles {', '.join(sorted(info.routes))}. Say where the type of "
                    "a plain message is, or use another group"
                )
            info.accept = forms
            info.routes[spec.type] = route
            if follow_ups:
                info.emits[spec.type] = follow_ups
                self.declare(*(emits or ()))  # what a handler emits, the bus publishes
            return handler

        return register

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect and start every subscription.

        A bus that was closed starts again with a new connection (the same subscriptions).
        """
        failed: BaseException | None = None
        async with self._lock:
            if self._state == "running":
                return
            if self._state == "closed":
                self._renew(None)
            try:
                await self.backend.connect()
            except ModuleNotFoundError as exc:  # a client imported on first use
                raise missing_client(exc, url_scheme(self._backend_args[0])) from None
            self._observers = instrumentation(self.backend, self.tracing, self.metrics)
            self._state = "running"
            try:
                for hook in self._on_startup:
                    await _call_hook(hook)
                self._hooks_started = True
                for info in self.subscriptions.values():
                    await self._start_subscription(info)
                self._lag = lag_watch(
                    self.backend,
                    self._observers,
                    ((info.channel, info.group) for info in self.subscriptions.values()),
                )
            except BaseException as exc:
                failed = exc
        if failed is not None:  # undo what started (outside the lock: close() takes it)
            await self.close()
            if isinstance(failed, ModuleNotFoundError):
                raise missing_client(failed, url_scheme(self._backend_args[0])) from None
            raise failed

    def _accept(self, info: SubscriptionInfo) -> tuple[Accept, ...]:
        """What the subscription accepts: its own ``accept=``, else its channel's in the
        contract (``x-eventwire-accept``)."""
        if info.accept:
            return info.accept
        declared: Mapping[str, object] = getattr(self._validator, "accept", None) or {}
        if info.channel not in declared:
            return ()
        models = {t: r.model for t, r in info.routes.items()}
        where = f"{self.contract_path}: channel {info.channel!r}"
        forms = forms_from_document(declared[info.channel], models, where)
        try:
            ForeignReader(forms, models, info.channel)  # the same checks as accept=
        except ConfigurationError as exc:
            raise ConfigurationError(f"{where}: {exc}") from None
        return forms

    async def _start_subscription(self, info: SubscriptionInfo) -> None:
        accept = self._accept(info)
        options: dict[str, Any] = {}
        if info.batch is not None:
            options["policy"] = info.batch
        consumer = (Consumer if info.batch is None else BatchConsumer)(
            **options,
            backend=self.backend,
            channel=info.channel,
            group=info.group,
            routes=info.routes,
            concurrency=info.concurrency,
            max_in_flight=info.max_in_flight,
            store=self.idempotency_store,
            validator=self._validator,
            plugins=self._plugins,
            middlewares=self._layers(),
            foreign=(
                ForeignReader(accept, {t: r.model for t, r in info.routes.items()}, info.channel)
                if accept
                else None
            ),
        )
        spec = SubscriptionSpec(
            channel=info.channel,
            group=info.group,
            from_beginning=info.from_beginning,
            max_in_flight=info.max_in_flight,
            member_prefix=self._member_prefix,
        )
        self._consumers.append(consumer)
        self._running.append(await self.backend.subscribe(spec, consumer))

    async def close(self) -> None:
        """Stop consuming, let in-flight handlers finish and settle (for at most
        ``close_timeout`` seconds), run the shutdown hooks, then disconnect.

        Handlers still running may publish until they finish. What was fetched but not
        started stays unsettled and is delivered again (to another member, or on restart).
        """
        async with self._lock:
            if self._state == "closed":
                return
            was_running = self._state == "running"
            self._state = "draining" if was_running else "closed"
            if not was_running:
                return
            failed: BaseException | None = None
            try:
                if self._lag is not None:
                    await self._lag.stop()
                await asyncio.gather(*(sub.stop() for sub in self._running), return_exceptions=True)
                await asyncio.gather(*(c.drain(self.close_timeout) for c in self._consumers))
                if self._hooks_started:
                    self._hooks_started = False
                    for hook in reversed(self._on_shutdown):
                        try:
                            await _call_hook(hook)
                        except Exception as exc:
                            log.exception("eventwire: shutdown hook %r failed", hook)
                            failed = failed or exc
            finally:
                self._state = "closed"
                try:
                    await self.backend.close()
                finally:
                    await self._close_store()
            if failed is not None:
                raise failed

    def _renew(self, backend: Backend | None) -> None:
        """Back to a new, unstarted bus on `backend` (default: a new one for the URL)."""
        if self._state == "running":
            raise BusClosedError("the bus is running; close it first")
        if backend is None:
            url, options = self._backend_args
            backend = create_backend(url, options, self._plugins)
        self.backend = backend
        self._consumers = []
        self._running = []
        self._hooks_started = False
        self._state = "new"

    def _rebind(self, url: str) -> None:
        """Use the broker at `url` from now on (the bus must not be running)."""
        backend = create_backend(url, self._backend_args[1], self._plugins)
        self._renew(backend)
        self._backend_args = (url, self._backend_args[1])

    async def abort(self) -> None:
        """Drop the connection as a crash would (for tests): nothing more is settled."""
        self._state = "closed"
        if self._lag is not None:
            await self._lag.stop()
        for consumer in self._consumers:
            consumer.abandon()
        try:
            await self.backend.abort()
        finally:
            await self._close_store()

    async def __aenter__(self) -> EventBus:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- publishing -------------------------------------------------------------------------

    async def publish(
        self,
        event: Message,
        *,
        correlation_id: str | None = None,
        causation_id: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Envelope:
        """Publish one event; returns once the broker has stored it."""
        channel, wire, envelope = self._prepare(event, correlation_id, causation_id, headers)
        return await self._send(event, channel, wire, envelope)

    async def publish_many(
        self,
        events: Iterable[Message],
        *,
        correlation_id: str | None = None,
        causation_id: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> list[Envelope]:
        """Publish several events (pipelined); returns once the broker has stored all.

        Every event is validated before anything is sent: one invalid event sends nothing.
        """
        if (
            not publishing(self._layers())
            and not self._plugins.hook.eventwire_enrich_headers.get_hookimpls()
        ):
            return await self._publish_bulk(events, correlation_id, causation_id, headers)
        prepared = [
            (event, *self._prepare(event, correlation_id, causation_id, headers))
            for event in events
        ]
        if publishing(self._layers()):
            # Each message through the middlewares; the broker gets them in one go anyway.
            return list(
                await asyncio.gather(*(self._send(e, c, w, env) for e, c, w, env in prepared))
            )
        batches: dict[str, list[WireMessage]] = {}
        for _, channel, wire, _ in prepared:
            batches.setdefault(channel, []).append(wire)
        for channel, wires in batches.items():
            await self.backend.publish(channel, wires)
        return [envelope for *_, envelope in prepared]

    async def _publish_bulk(
        self,
        events: Iterable[Message],
        correlation_id: str | None,
        causation_id: str | None,
        headers: Mapping[str, str] | None,
    ) -> list[Envelope]:
        """`publish_many` without middlewares or header hooks: encode everything in one go
        (`eventwire._bulk`), then one backend call per channel."""
        self._check_open()
        encoded = self._encode(events, correlation_id, causation_id, headers)
        for channel, wires in encoded.batches.items():
            await self.backend.publish(channel, wires)
        return encoded.envelopes

    def _encode(
        self,
        events: Iterable[Message],
        correlation_id: str | None,
        causation_id: str | None,
        headers: Mapping[str, str] | None,
    ) -> Encoded:
        """`events` encoded for this bus's backend (without header hooks)."""
        user = user_headers(headers, self.backend.binding)
        encoded = self._current_encoder().many(events, correlation_id, causation_id, user)
        for kind, model in encoded.models.items():
            self.published.setdefault(kind, model)
        return encoded

    def _current_encoder(self) -> Encoder:
        """The encoder for this bus's source and backend (both may change between runs: a
        test bus swaps the backend, ``eventwire run --url`` rebinds it)."""
        encoder = self._encoder
        if encoder is None or encoder.source != self.source or encoder.backend is not self.backend:
            encoder = self._encoder = Encoder(self.source, self.backend, self._validator)
        return encoder

    async def send(
        self,
        command: Command,
        *,
        correlation_id: str | None = None,
        causation_id: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Envelope:
        """Send a command to its one handling group; returns once the broker has it."""
        if not isinstance(command, Command):
            raise EventValidationError(
                f"send() takes a Command, got {type(command).__name__}; use publish() for events"
            )
        channel, wire, envelope = self._prepare(
            command, correlation_id, causation_id, headers, allow_command=True
        )
        return await self._send(command, channel, wire, envelope)

    async def _send(
        self, event: Message, channel: str, wire: WireMessage, envelope: Envelope
    ) -> Envelope:
        """Hand one encoded message to the broker, through the publish middlewares."""
        layers = publishing(self._layers())
        if not layers:
            await self.backend.publish(channel, [wire])
            return envelope
        context = PublishContext(event, channel, envelope, dict(envelope.headers))

        async def run(index: int) -> None:
            if index < len(layers):
                await layers[index].publish(context, lambda: run(index + 1))
                return
            message = wire
            if context.headers != envelope.headers:
                user = user_headers(context.headers, self.backend.binding)
                context.envelope = dataclasses.replace(envelope, headers=user)
                message = WireMessage(
                    wire.body, to_headers(context.envelope, self.backend.binding), wire.key
                )
            await self.backend.publish(channel, [message])

        await run(0)
        return context.envelope

    def _layers(self) -> tuple[Middleware, ...]:
        """Every middleware of the bus, outermost first: the observers, then the user's."""
        if not self._observers:
            return tuple(self.middlewares) if self.middlewares else ()
        return self._observers + tuple(self.middlewares)

    def _check_open(self) -> None:
        if self._state not in ("running", "draining"):
            raise BusClosedError(
                f"cannot publish: the bus is {self._state}; publish inside 'async with bus' "
                "(or after bus.start(), before bus.close())"
            )

    def _prepare(
        self,
        event: Message,
        correlation_id: str | None,
        causation_id: str | None,
        headers: Mapping[str, str] | None,
        *,
        allow_command: bool = False,
    ) -> tuple[str, WireMessage, Envelope]:
        self._check_open()
        hook = self._plugins.hook.eventwire_enrich_headers
        hooked = bool(hook.get_hookimpls())
        encoder = self._current_encoder()
        if not hooked and correlation_id is None and causation_id is None and not headers:
            channel, wire, envelope = encoder.one(event, allow_command)  # the usual publish
        else:
            channel, wire, envelope = encoder.custom(
                event,
                allow_command,
                correlation_id,
                causation_id,
                user_headers(headers, self.backend.binding),
                hook if hooked else None,
            )
        self.published.setdefault(envelope.type, type(event))
        return channel, wire, envelope

    # -- dead letters -----------------------------------------------------------------------

    async def dead_letters(
        self, channel: str | type[Message], limit: int = 1000
    ) -> list[DeadLetter]:
        """The dead letters of `channel` (a name or a message class), oldest first."""
        if self._state not in ("running", "draining"):
            raise BusClosedError(
                f"dead_letters() reads from the broker, and the bus is {self._state}; call it "
                "inside 'async with bus' (or after bus.start())"
            )
        name = _channel_name(channel)
        messages = await self.backend.browse(dead_letter_channel(name), limit)
        return [DeadLetter.from_wire(m) for m in messages]

    async def replay_dead_letters(
        self,
        channel: str | type[Message],
        *,
        ids: Sequence[str] | None = None,
        where: Callable[[DeadLetter], bool] | None = None,
        limit: int = 1000,
    ) -> int:
        """Publish dead letters of `channel` again to `channel`, unchanged; returns the count.

        ``ids`` (event ids) or ``where`` select which ones. The dead-letter channel keeps its
        entries (it is an audit log): replaying the same entry twice publishes it twice, and
        groups with ``idempotent=True`` run it once. Each replayed message carries an
        ``eventwire-replay`` header with a fresh id.
        """
        if self._state != "running":
            raise BusClosedError("replay_dead_letters needs a running bus")
        name = _channel_name(channel)
        wanted = set(ids) if ids is not None else None
        selected: list[WireMessage] = []
        for letter in await self.dead_letters(name, limit):
            event_id = _event_id(letter.original, self.backend.binding)
            if wanted is not None and event_id not in wanted:
                continue
            if where is not None and not where(letter):
                continue
            original = letter.original
            headers = {**original.headers, REPLAY: str(uuid.uuid4())}
            selected.append(WireMessage(original.body, headers, original.key))
        if selected:
            await self.backend.publish(name, selected)
        return len(selected)

    async def purge_dead_letters(self, channel: str | type[Message]) -> int:
        """Remove every dead letter of `channel` (a name or a message class); returns how
        many were removed.

        The whole dead-letter channel is purged: Kafka topics and RabbitMQ streams cannot
        drop single entries, so there is no filtered form. ``channel`` itself is untouched,
        and events dead-lettered afterwards are kept and listed as before. Raises
        `UnsupportedOperationError` when the backend cannot purge (it does not implement
        `eventwire.backend.ChannelPurger`).
        """
        if self._state != "running":
            raise BusClosedError("purge_dead_letters needs a running bus")
        backend = self.backend
        if not isinstance(backend, ChannelPurger):
            raise UnsupportedOperationError(
                f"the {backend.name} backend cannot purge dead letters (it does not implement "
                "eventwire.backend.ChannelPurger); delete them with the broker's own tools"
            )
        return await backend.purge_channel(dead_letter_channel(_channel_name(channel)))

    # -- introspection ----------------------------------------------------------------------

    def consumer_stats(self) -> list[dict[str, Any]]:
        """Per subscription: channel, group, in-flight now and the peak seen, and the
        deliveries handed over by the backend and not settled yet (in flight or waiting for
        a slot of ``max_in_flight``) now and at the peak."""
        return [
            {
                "channel": c.channel,
                "group": c.group,
                "in_flight": c.in_flight,
                "peak_in_flight": c.peak_in_flight,
                "handed": c.handed,
                "peak_handed": c.peak_handed,
            }
            for c in self._consumers
        ]


def _check_batch(
    kind: str,
    batch: object,
    concurrency: int,
    max_in_flight: int | None,
    middlewares: Sequence[Middleware] | None,
) -> int:
    """Check the settings of a batch subscription; its in-flight window."""
    if not isinstance(batch, BatchPolicy):
        raise ConfigurationError(f"batch must be a BatchPolicy, got {batch!r}")
    if concurrency != 1:
        raise ConfigurationError(
            f"a batch handler for {kind} runs one batch at a time (in key order); drop "
            f"concurrency={concurrency} or raise BatchPolicy max_size instead"
        )
    for middleware in check_middlewares(middlewares, "subscribe()"):
        if type(middleware).consume_batch is Middleware.consume_batch:
            raise ConfigurationError(
                f"middleware {middleware!r} does not override consume_batch, so it would never "
                f"run around the batch handler for {kind}: override consume_batch, or "
                "subscribe without batch="
            )
    if max_in_flight is None:
        return BATCHES_IN_FLIGHT * batch.max_size
    if isinstance(max_in_flight, int) and max_in_flight < batch.max_size:
        raise ConfigurationError(
            f"max_in_flight={max_in_flight} is below BatchPolicy max_size="
            f"{batch.max_size} for {kind}: a batch could never fill; raise max_in_flight"
        )
    return max_in_flight


def _check_hook(hook: object, name: str) -> Callable[[], Any]:
    if not callable(hook):
        raise ConfigurationError(f"@bus.{name} takes a function, got {hook!r}")
    try:
        inspect.signature(hook).bind()
    except TypeError:
        raise ConfigurationError(
            f"@bus.{name} hook {getattr(hook, '__qualname__', hook)!r} must take no arguments"
        ) from None
    except ValueError:  # no signature to inspect (a builtin): accept it
        pass
    return hook


async def _call_hook(hook: Callable[[], Any]) -> None:
    result = hook()
    if inspect.isawaitable(result):
        await result


def _message_spec(model: object) -> MessageSpec:
    if not isinstance(model, type) or not issubclass(model, Message) or model in _BASES:
        raise ConfigurationError(f"expected an Event or Command subclass, got {model!r}")
    return model.__eventwire__


def _channel_name(channel: str | type[Message]) -> str:
    if isinstance(channel, str):
        return check_name("channel", channel)
    return _message_spec(channel).require_channel()


def _event_id(message: WireMessage, binding: str) -> str | None:
    return message.headers.get(BINDINGS[binding] + "id")


def _load_contract(path: Path) -> PayloadValidator:
    from eventwire.contracts._load import load_validator

    return load_validator(path)
