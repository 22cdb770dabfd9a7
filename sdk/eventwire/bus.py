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
from typing import Any, TypeVar

from eventwire._naming import check_name
from eventwire.backend import Backend, ChannelPurger, Subscription, SubscriptionSpec, WireMessage
from eventwire.bindings import BINDINGS
from eventwire.codec import PayloadValidator, encode
from eventwire.deadletter import REPLAY, DeadLetter, dead_letter_channel
from eventwire.envelope import Envelope
from eventwire.errors import (
    BusClosedError,
    ConfigurationError,
    EventValidationError,
    MessageTooLargeError,
    UnsupportedOperationError,
)
from eventwire.events import Command, Event, Message, MessageSpec
from eventwire.idempotency import IdempotencyStore, MemoryIdempotencyStore
from eventwire.pipeline import Consumer, Route
from eventwire.plugins import create_backend, get_plugin_manager
from eventwire.retry import RetryPolicy

__all__ = ["EventBus", "SubscriptionInfo"]

log = logging.getLogger("eventwire")

M = TypeVar("M", bound=Message)
H = TypeVar("H", bound=Callable[..., Awaitable[Any]])

DEFAULT_RETRY = RetryPolicy()
_BASES = (Message, Event, Command)


@dataclasses.dataclass
class SubscriptionInfo:
    """One (channel, group) subscription of a bus and the handlers behind it."""

    channel: str
    group: str
    concurrency: int
    max_in_flight: int
    from_beginning: bool
    routes: dict[str, Route]

    @property
    def models(self) -> list[type[Message]]:
        """The message classes this subscription handles."""
        return [route.model for route in self.routes.values()]


class EventBus:
    """Publish and consume events through the backend that `url` names.

    ``EventBus("kafka://localhost:9092", source="order-service")``; ``"memory://"`` (the
    default) is the embedded broker. Use it as an async context manager (or call `start` and
    `close`). Subscriptions are declared with the `subscribe` decorator before the bus starts.
    """

    def __init__(
        self,
        url: str = "memory://",
        *,
        source: str = "eventwire",
        contract: str | os.PathLike[str] | None = None,
        idempotency_store: IdempotencyStore | None = None,
        backend_options: Mapping[str, Any] | None = None,
        close_timeout: float = 30.0,
    ) -> None:
        if not isinstance(source, str) or not source:
            raise ConfigurationError(f"source must be a non-empty string, got {source!r}")
        self.source = source
        self._plugins = get_plugin_manager()
        self.backend: Backend = create_backend(url, backend_options, self._plugins)
        self.contract_path = Path(contract) if contract is not None else None
        self._validator: PayloadValidator | None = (
            _load_contract(self.contract_path) if self.contract_path is not None else None
        )
        self.idempotency_store: IdempotencyStore = (
            MemoryIdempotencyStore() if idempotency_store is None else idempotency_store
        )
        self.close_timeout = close_timeout
        self.subscriptions: dict[tuple[str, str], SubscriptionInfo] = {}
        self.published: dict[str, type[Message]] = {}
        self._command_groups: dict[type[Message], str] = {}
        self._consumers: list[Consumer] = []
        self._running: list[Subscription] = []
        self._state = "new"
        self._lock = asyncio.Lock()
        self._member_prefix = f"{socket.gethostname()}-{os.getpid()}-{id(self):x}"

    def __repr__(self) -> str:
        return f"EventBus({self.backend.url!r}, source={self.source!r}, state={self._state!r})"

    @property
    def url(self) -> str:
        """The backend URL without credentials."""
        return self.backend.url

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
        """
        spec = _message_spec(model)
        channel = spec.require_channel()
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise ConfigurationError(f"concurrency must be an int >= 1, got {concurrency!r}")
        window = max_in_flight if max_in_flight is not None else max(64, 4 * concurrency)
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise ConfigurationError(f"max_in_flight must be an int >= 1, got {max_in_flight!r}")
        if retry is not None and not isinstance(retry, RetryPolicy):
            raise ConfigurationError(f"retry must be a RetryPolicy, got {retry!r}")

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
            if info is None:
                info = SubscriptionInfo(channel, name, concurrency, window, from_beginning, {})
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
            info.routes[spec.type] = Route.for_handler(
                model,
                handler,
                retry=retry or DEFAULT_RETRY,
                dead_letter=dead_letter,
                idempotent=idempotent,
            )
            return handler

        return register

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect and start every subscription."""
        failed: BaseException | None = None
        async with self._lock:
            if self._state == "running":
                return
            if self._state != "new":
                raise BusClosedError("this bus was closed; create a new EventBus")
            await self.backend.connect()
            self._state = "running"
            try:
                for info in self.subscriptions.values():
                    await self._start_subscription(info)
            except BaseException as exc:
                failed = exc
        if failed is not None:  # undo what started (outside the lock: close() takes it)
            await self.close()
            raise failed

    async def _start_subscription(self, info: SubscriptionInfo) -> None:
        consumer = Consumer(
            backend=self.backend,
            channel=info.channel,
            group=info.group,
            routes=info.routes,
            concurrency=info.concurrency,
            max_in_flight=info.max_in_flight,
            store=self.idempotency_store,
            validator=self._validator,
            plugins=self._plugins,
        )
        spec = SubscriptionSpec(
            channel=info.channel,
            group=info.group,
            from_beginning=info.from_beginning,
            max_in_flight=info.max_in_flight,
            member_prefix=self._member_prefix,
        )
        self._consumers.append(consumer)
        self._running.append(await self.backend.subscribe(spec, consumer.on_message))

    async def close(self) -> None:
        """Stop consuming, let in-flight handlers finish and settle, then disconnect."""
        async with self._lock:
            if self._state == "closed":
                return
            was_running = self._state == "running"
            self._state = "closed"
            if not was_running:
                return
            await asyncio.gather(*(sub.stop() for sub in self._running), return_exceptions=True)
            await asyncio.gather(*(c.drain(self.close_timeout) for c in self._consumers))
            await self.backend.close()

    async def abort(self) -> None:
        """Drop the connection as a crash would (for tests): nothing more is settled."""
        self._state = "closed"
        for consumer in self._consumers:
            consumer.abandon()
        await self.backend.abort()

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
        await self.backend.publish(channel, [wire])
        return envelope

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
        batches: dict[str, list[WireMessage]] = {}
        envelopes: list[Envelope] = []
        for event in events:
            channel, wire, envelope = self._prepare(event, correlation_id, causation_id, headers)
            batches.setdefault(channel, []).append(wire)
            envelopes.append(envelope)
        for channel, wires in batches.items():
            await self.backend.publish(channel, wires)
        return envelopes

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
        await self.backend.publish(channel, [wire])
        return envelope

    def _prepare(
        self,
        event: Message,
        correlation_id: str | None,
        causation_id: str | None,
        headers: Mapping[str, str] | None,
        *,
        allow_command: bool = False,
    ) -> tuple[str, WireMessage, Envelope]:
        if self._state != "running":
            raise BusClosedError(
                f"cannot publish: the bus is {self._state}; publish inside 'async with bus' "
                "(or after bus.start(), before bus.close())"
            )
        if not isinstance(event, Message):
            raise EventValidationError(
                f"publish() takes an eventwire Event, got {type(event).__name__}"
            )
        spec = type(event).__eventwire__
        if spec.kind == "command" and not allow_command:
            raise EventValidationError(
                f"{spec.type} is a Command; use bus.send() so it reaches its one handling group"
            )
        channel = spec.require_channel()
        user = {str(k): str(v) for k, v in headers.items()} if headers else {}
        envelope = Envelope.new(
            type=spec.type,
            source=self.source,
            subject=event.message_key(),
            correlationid=correlation_id,
            causationid=causation_id,
            dataversion=str(spec.version),
            headers=user,
        )
        hook = self._plugins.hook.eventwire_enrich_headers
        if hook.get_hookimpls():
            hook(event=event, envelope=envelope, headers=user)
            envelope = dataclasses.replace(envelope, headers=user)
        wire = encode(event, envelope, self.backend.binding, self._validator)
        limit = self.backend.capabilities.max_message_bytes
        if limit is not None and len(wire.body) > limit:
            raise MessageTooLargeError(
                f"{spec.type} encodes to {len(wire.body)} bytes, over the {self.backend.name} "
                f"backend's limit of {limit} bytes; nothing was sent. Send a reference to the "
                "data instead (a 'thin' event) or raise the broker's limit"
            )
        self.published.setdefault(spec.type, type(event))
        return channel, wire, envelope

    # -- dead letters -----------------------------------------------------------------------

    async def dead_letters(
        self, channel: str | type[Message], limit: int = 1000
    ) -> list[DeadLetter]:
        """The dead letters of `channel` (a name or a message class), oldest first."""
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
        """Per subscription: channel, group, in-flight now and the peak seen."""
        return [
            {
                "channel": c.channel,
                "group": c.group,
                "in_flight": c.in_flight,
                "peak_in_flight": c.peak_in_flight,
            }
            for c in self._consumers
        ]


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
    from eventwire.contracts import load_validator

    return load_validator(path)
