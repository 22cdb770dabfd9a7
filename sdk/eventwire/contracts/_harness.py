"""Running a service's bus for contract tests: an isolated broker, capture, and settling.

`Harness` takes an `EventBus` that has not started, points it at a broker of its own (a fresh
``memory://`` broker with a unique name unless a URL is given), and runs its real pipeline.
It sees three things, through a thin wrapper around the backend:

- every message the service publishes (``publish`` calls, dead letters included);
- every settlement: the pipeline ends each delivery with ``Inbound.ack()`` — after the
  handler succeeded, after a dead letter was published, or when the group skips the type;
- every handler call (event, envelope, exception), through a wrapper around each route.

`Harness.inject` publishes one raw message and returns when every group on its channel has
settled it and everything it caused (messages published meanwhile on channels the bus
consumes) — so a case's reactions are exactly the publishes seen during `inject`.
Handlers run once per case (``RetryPolicy(max_attempts=1)``): a failure is a finding, not
something to retry.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from eventwire.backend import (
    Backend,
    Inbound,
    MessageHandler,
    Subscription,
    SubscriptionSpec,
    WireMessage,
)
from eventwire.bindings import BINDINGS
from eventwire.bus import EventBus
from eventwire.delivery import Delivery
from eventwire.errors import ConfigurationError
from eventwire.pipeline import Route
from eventwire.plugins import create_backend
from eventwire.retry import RetryPolicy

__all__ = ["Call", "Harness", "Published"]

_ONCE = RetryPolicy(max_attempts=1)


@dataclasses.dataclass(frozen=True)
class Published:
    """A message the service published."""

    channel: str
    message: WireMessage


@dataclasses.dataclass(frozen=True)
class Call:
    """One handler call: which group, which event, and the exception it raised (if any)."""

    channel: str
    group: str
    type: str
    event_id: str
    event: Any
    error: BaseException | None


class _Recording:
    """The bus's backend, with publishes and settlements recorded."""

    def __init__(self, backend: Backend, harness: Harness) -> None:
        self._backend = backend
        self._harness = harness
        self.name = backend.name
        self.binding = backend.binding
        self.capabilities = backend.capabilities

    @property
    def url(self) -> str:
        return self._backend.url

    async def connect(self) -> None:
        await self._backend.connect()

    async def close(self) -> None:
        await self._backend.close()

    async def abort(self) -> None:
        await self._backend.abort()

    async def browse(self, channel: str, limit: int = 1000) -> list[WireMessage]:
        return await self._backend.browse(channel, limit)

    async def publish(self, channel: str, messages: Sequence[WireMessage]) -> None:
        await self._backend.publish(channel, messages)
        self._harness._published(channel, messages)

    async def raw_publish(self, channel: str, messages: Sequence[WireMessage]) -> None:
        await self._backend.publish(channel, messages)

    async def subscribe(self, spec: SubscriptionSpec, handler: MessageHandler) -> Subscription:
        harness = self._harness

        async def tracked(inbound: Inbound) -> None:
            await handler(_Tracked(inbound, spec, harness))

        return await self._backend.subscribe(spec, tracked)


class _Tracked:
    """An `Inbound` whose ``ack`` is reported to the harness."""

    def __init__(self, inbound: Inbound, spec: SubscriptionSpec, harness: Harness) -> None:
        self._inbound = inbound
        self._spec = spec
        self._harness = harness

    @property
    def message(self) -> WireMessage:
        return self._inbound.message

    @property
    def delivery_count(self) -> int:
        return self._inbound.delivery_count

    async def ack(self) -> None:
        await self._inbound.ack()
        self._harness._settled(self._spec.channel, self._spec.group, self._inbound.message)


class Harness:
    """An `EventBus` on an isolated broker, with what it publishes, handles and settles."""

    def __init__(self, bus: EventBus, url: str | None = None, *, settle_timeout: float = 10.0):
        if not isinstance(bus, EventBus):
            raise ConfigurationError(f"expected an eventwire EventBus, got {type(bus).__name__}")
        if bus._state != "new":
            raise ConfigurationError(
                "the bus was already started; contract tests need a bus that has not started "
                "(build a fresh one, e.g. from a factory)"
            )
        self.bus = bus
        self.settle_timeout = settle_timeout
        target = url or f"memory://contract-test-{uuid.uuid4().hex[:12]}"
        self._recording = _Recording(create_backend(target, None, bus._plugins), self)
        bus.backend = self._recording
        self.binding = self._recording.binding
        self._id_header = BINDINGS[self.binding] + "id"
        self.published: list[Published] = []
        self.calls: list[Call] = []
        self._acks: set[tuple[str, str, str]] = set()
        self._changed = asyncio.Event()
        self.groups: dict[str, list[str]] = {}
        for info in bus.subscriptions.values():
            self.groups.setdefault(info.channel, []).append(info.group)
            info.routes = {
                name: dataclasses.replace(
                    route,
                    handler=self._wrap(route, info.channel, info.group, name),
                    retry=_ONCE,
                    takes_delivery=True,
                )
                for name, route in info.routes.items()
            }

    async def __aenter__(self) -> Harness:
        await self.bus.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.bus.close()

    def _wrap(
        self, route: Route, channel: str, group: str, name: str
    ) -> Callable[..., Awaitable[Any]]:
        handler = route.handler

        async def wrapper(event: Any, delivery: Delivery) -> Any:
            try:
                if route.takes_delivery:
                    result = await handler(event, delivery)
                else:
                    result = await handler(event)
            except BaseException as exc:
                self.calls.append(Call(channel, group, name, delivery.id, event, exc))
                raise
            self.calls.append(Call(channel, group, name, delivery.id, event, None))
            return result

        return wrapper

    def _published(self, channel: str, messages: Sequence[WireMessage]) -> None:
        self.published.extend(Published(channel, m) for m in messages)
        self._changed.set()

    def _settled(self, channel: str, group: str, message: WireMessage) -> None:
        self._acks.add((channel, group, self.event_id(message)))
        self._changed.set()

    def event_id(self, message: WireMessage) -> str:
        """The CloudEvents id of a wire message ('' when it has none)."""
        return str(message.headers.get(self._id_header, ""))

    async def inject(self, channel: str, message: WireMessage) -> bool:
        """Publish `message` as a foreign producer would; wait until it and its effects settle.

        Returns False when something was still unsettled after ``settle_timeout`` seconds.
        """
        start = len(self.published)
        await self._recording.raw_publish(channel, [message])
        waiting = [(channel, self.event_id(message))]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settle_timeout
        while True:
            caused = [
                (p.channel, self.event_id(p.message))
                for p in self.published[start:]
                if p.channel in self.groups
            ]
            pending = [
                (ch, group, ident)
                for ch, ident in (*waiting, *caused)
                for group in self.groups.get(ch, ())
                if (ch, group, ident) not in self._acks
            ]
            if not pending:
                return True
            self._changed.clear()
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                return False

    async def wait_for(self, found: Callable[[], bool], timeout: float) -> bool:
        """Wait until `found()` is true (re-checked after each publish), at most `timeout` s."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not found():
            self._changed.clear()
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                return found()
        return True
