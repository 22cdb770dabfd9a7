"""`TestBus`: run a service's buses on a fresh embedded broker and wait for the effects."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any

from eventwire.backend import (
    Backend,
    BrokerReset,
    GroupAdmin,
    MessageHandler,
    Subscription,
    SubscriptionSpec,
    WireMessage,
)
from eventwire.bindings import BINDINGS
from eventwire.bus import EventBus, SubscriptionInfo
from eventwire.codec import decode_envelope
from eventwire.deadletter import DLQ_SUFFIX, DeadLetter
from eventwire.delivery import Disposition
from eventwire.envelope import Envelope
from eventwire.errors import ConfigurationError, DecodeError
from eventwire.events import Command, Message
from eventwire.idempotency import IdempotencyStore, MemoryIdempotencyStore
from eventwire.middleware import CallNext, ConsumeContext, Middleware, PublishContext
from eventwire.plugins import create_backend
from eventwire.testing._records import Call, Published

__all__ = ["NotSettledError", "TestBus"]

DEFAULT_TIMEOUT = 10.0
_POLL = 0.002


class NotSettledError(AssertionError):
    """Events were still unsettled when a `TestBus` wait timed out."""


@dataclasses.dataclass
class _Saved:
    backend: Backend
    fresh: bool
    store: IdempotencyStore
    subscriptions: dict[tuple[str, str], SubscriptionInfo]


#: A message on a channel: (channel, event id), or (channel, "body:" + hex) without an id.
_Mark = tuple[str, str]


def _mark(channel: str, message: WireMessage, binding: str) -> _Mark:
    event_id = message.headers.get(BINDINGS[binding] + "id")
    return (channel, event_id if event_id else "body:" + message.body.hex())


class _Tap:
    """The backend of a bus under test: records the dead letters its pipeline publishes.

    The pipeline dead-letters what it cannot decode before any middleware runs; this is
    where those final outcomes are seen. Everything else is the real backend's.
    """

    def __init__(self, backend: Backend, test: TestBus) -> None:
        self._backend = backend
        self._test = test
        self.binding = backend.binding

    def __getattr__(self, name: str) -> Any:
        return getattr(self._backend, name)

    @property
    def url(self) -> str:
        return self._backend.url

    async def connect(self) -> None:
        await self._backend.connect()

    async def close(self) -> None:
        await self._backend.close()

    async def abort(self) -> None:
        await self._backend.abort()

    async def publish(self, channel: str, messages: Sequence[WireMessage]) -> None:
        await self._backend.publish(channel, messages)
        if channel.endswith(DLQ_SUFFIX):
            for message in messages:
                letter = DeadLetter.from_wire(message)
                self._test.letters.append(letter)
                mark = _mark(letter.channel, letter.original, self.binding)
                self._test._final(mark, letter.group)

    async def subscribe(self, spec: SubscriptionSpec, handler: MessageHandler) -> Subscription:
        return await self._backend.subscribe(spec, handler)

    async def browse(self, channel: str, limit: int = 1000) -> list[WireMessage]:
        return await self._backend.browse(channel, limit)


class _Recorder(Middleware):
    """The outermost middleware of every bus under test: records publishes and calls."""

    def __init__(self, test: TestBus, bus: EventBus) -> None:
        self._test = test
        self._bus = bus

    async def consume(self, context: ConsumeContext, call_next: CallNext) -> None:
        call = Call(context.handler, context.event, context.delivery)
        self._test._calls.append(call)
        try:
            await call_next()
        except Exception as exc:
            if self._test.raise_handler_errors:
                # Surface it in the test instead of retrying: the event is dead-lettered now.
                context.outcome = Disposition.dead_letter("failed")
                context.error = exc
                self._test._errors.append(exc)
            elif self._test.skip_backoff and context.outcome and context.outcome.action == "retry":
                context.outcome = Disposition.retry(0)
            call.error = exc
            call.disposition = context.outcome
            call.outcome = context.outcome.action if context.outcome else "retry"
            if call.outcome == "dead_letter":
                self._test._final((context.channel, context.envelope.id), context.group)
            raise
        call.disposition = context.outcome
        call.outcome = "ack"
        self._test._final((context.channel, context.envelope.id), context.group)

    async def publish(self, context: PublishContext, call_next: CallNext) -> None:
        await call_next()
        event = context.event
        self._test._expect((context.channel, context.envelope.id), context.envelope.type)
        self._test.published.append(
            Published(
                channel=context.channel,
                type=context.envelope.type,
                event=event,
                payload=json.loads(type(event).__pydantic_serializer__.to_json(event)),
                envelope=context.envelope,
                source=self._bus.source,
            )
        )


class TestBus:
    """Run `buses` on a fresh embedded broker (or on `url`) for one test, then put them back.

    ``async with TestBus(bus) as tb:`` starts each bus on its own ``memory://`` broker (with a
    fresh idempotency store), records what is published and every handler attempt, and on
    exit closes the buses and restores their backend, so a module-level bus serves test
    after test. Several buses (several services) share the one broker.
    ``TestBus(bus, url="redis://...")`` runs them on that broker instead. The channels keep
    their names (a contract fixes them), so each group gets a name of its own for the
    session, ``<group>-test-<hex>``, starting at the end of its channel: the buses never
    take messages from the service's real groups, and read only what arrives during the
    session. Others' messages arriving meanwhile are handled too, and the other groups of
    those channels see what the session publishes: use channels that carry no production
    traffic. Only what this session publishes or injects is waited for.

    ``await tb.publish(event)`` returns once every subscribed group has settled the event
    and everything it caused (acked or dead-lettered). ``raise_handler_errors=True``
    re-raises a handler's exception there instead of retrying (the event is dead-lettered);
    ``skip_backoff=True`` retries at once, as often as the `RetryPolicy` says.
    The pipeline is the real one: retries, dead letters, idempotency and key order behave
    as on a broker.

    An event is settled when each group of the buses that handles its type on its channel
    reached a final outcome for it: the handler returned (ack) or it was dead-lettered
    (seen by the middleware, or on its way to the dead-letter channel when the pipeline
    rejects it before any handler). The same signal on every backend.
    """

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        *buses: EventBus,
        raise_handler_errors: bool = False,
        skip_backoff: bool = False,
        timeout: float = DEFAULT_TIMEOUT,
        url: str | None = None,
    ) -> None:
        if not buses:
            raise ConfigurationError("TestBus needs at least one EventBus: TestBus(bus)")
        for bus in buses:
            if not isinstance(bus, EventBus):
                raise ConfigurationError(f"TestBus takes EventBus instances, got {bus!r}")
        if len(set(map(id, buses))) != len(buses):
            raise ConfigurationError("TestBus got the same bus twice")
        self.buses = buses
        self.raise_handler_errors = raise_handler_errors
        self.skip_backoff = skip_backoff
        self.timeout = timeout
        #: Every message published through the buses during the session, in order.
        self.published: list[Published] = []
        self._calls: list[Call] = []
        self._errors: list[BaseException] = []
        #: Every dead letter the buses' pipelines wrote during the session, in order.
        self.letters: list[DeadLetter] = []
        self._session = uuid.uuid4().hex[:8]
        self._broker_name = f"eventwire-test-{uuid.uuid4().hex}"
        self._url = url
        self._expected: dict[_Mark, set[tuple[str, str]]] = {}
        self._finals: set[tuple[_Mark, str]] = set()
        self._saved: dict[int, _Saved] = {}
        self._recorders: dict[int, _Recorder] = {}
        self._active = False
        self._started = False

    def __repr__(self) -> str:
        state = "active" if self._active else "inactive"
        return f"<TestBus {', '.join(b.source for b in self.buses)} {state}>"

    @property
    def url(self) -> str:
        """The URL of this session's broker."""
        return self._url or f"memory://{self._broker_name}"

    # -- session ----------------------------------------------------------------------------

    async def __aenter__(self) -> TestBus:
        if self._active:
            raise ConfigurationError("this TestBus is already in use; create one per test")
        for bus in self.buses:
            if bus._state == "running":
                raise ConfigurationError(
                    f"{bus!r} is already started; TestBus starts and closes the bus itself "
                    "(do not enter 'async with bus' around it)"
                )
        self._active = True
        try:
            for bus in self.buses:
                self._saved[id(bus)] = _Saved(
                    bus.backend, bus._state == "new", bus.idempotency_store, bus.subscriptions
                )
                if self._url is not None:
                    bus.subscriptions = self._session_groups(bus.subscriptions)
                bus._renew(_Tap(create_backend(self.url), self))
                bus.idempotency_store = MemoryIdempotencyStore()
                recorder = self._recorders[id(bus)] = _Recorder(self, bus)
                bus.middlewares.insert(0, recorder)
            for bus in self.buses:
                await bus.start()
                self._started = True
        except BaseException:
            await self._restore()
            raise
        return self

    def _session_groups(
        self, subscriptions: dict[tuple[str, str], SubscriptionInfo]
    ) -> dict[tuple[str, str], SubscriptionInfo]:
        """The subscriptions with this session's group names, starting at the channel's end."""
        renamed = {}
        for (channel, group), info in subscriptions.items():
            name = f"{group}-test-{self._session}"
            renamed[(channel, name)] = dataclasses.replace(info, group=name, from_beginning=False)
        return renamed

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if exc_type is None:
                await self.settled()
        finally:
            await self._restore()

    async def _restore(self) -> None:
        for bus in self.buses:
            await bus.close()
        started = self._url is not None and self._started
        groups = [key for bus in self.buses if started for key in bus.subscriptions]
        self._detach()
        if groups:
            await self._forget(groups)

    async def _forget(self, groups: list[tuple[str, str]]) -> None:
        """Remove the session's groups from the broker (best effort: it may be gone)."""
        backend = create_backend(self.url)
        if not isinstance(backend, GroupAdmin):
            return
        with contextlib.suppress(Exception):
            await backend.connect()
            try:
                for channel, group in groups:
                    await backend.delete_group(channel, group)
            finally:
                await backend.close()

    def _abandon(self) -> None:
        """Put the buses back without closing them (their event loop is gone)."""
        for bus in self.buses:
            if bus._state == "running":
                bus._state = "closed"
        self._detach()

    def _detach(self) -> None:
        for bus in self.buses:
            saved = self._saved.pop(id(bus), None)
            recorder = self._recorders.pop(id(bus), None)
            if recorder is not None and recorder in bus.middlewares:
                bus.middlewares.remove(recorder)
            if saved is not None:
                bus._renew(saved.backend if saved.fresh else None)
                bus.idempotency_store = saved.store
                bus.subscriptions = saved.subscriptions
        if self._url is None:
            backend = create_backend(self.url)
            if isinstance(backend, BrokerReset):
                backend.reset_broker()
        self._active = False

    def _require_active(self, what: str) -> None:
        if not self._active:
            raise ConfigurationError(
                f"TestBus.{what} needs an active session: use it inside 'async with TestBus(bus) "
                "as tb:'"
            )

    def _bus(self, via: EventBus | None) -> EventBus:
        if via is None:
            return self.buses[0]
        if via not in self.buses:
            raise ConfigurationError(f"{via!r} is not one of this TestBus's buses")
        return via

    # -- driving ----------------------------------------------------------------------------

    async def publish(
        self, event: Message, *, via: EventBus | None = None, **options: Any
    ) -> Envelope:
        """Publish `event` (through `via`, default the first bus) and wait until settled.

        `options` are `EventBus.publish`'s (``correlation_id``, ``causation_id``,
        ``headers``).
        """
        self._require_active("publish")
        envelope = await self._bus(via).publish(event, **options)
        await self.settled()
        return envelope

    async def send(
        self, command: Command, *, via: EventBus | None = None, **options: Any
    ) -> Envelope:
        """Send `command` (see `EventBus.send`) and wait until settled."""
        self._require_active("send")
        envelope = await self._bus(via).send(command, **options)
        await self.settled()
        return envelope

    async def inject(
        self,
        channel: str | type[Message],
        body: bytes | str,
        headers: Mapping[str, str] | None = None,
        *,
        key: str | None = None,
    ) -> None:
        """Put raw bytes and headers on `channel`, bypassing every check, and wait.

        For testing bad input: the pipeline dead-letters what it cannot decode.
        """
        self._require_active("inject")
        name = channel if isinstance(channel, str) else channel.__eventwire__.require_channel()
        data = body.encode() if isinstance(body, str) else bytes(body)
        message = WireMessage(data, dict(headers or {}), key)
        binding = self.buses[0].backend.binding
        try:
            kind: str | None = decode_envelope(message.headers, binding).type
        except DecodeError:
            kind = None  # every group on the channel dead-letters it
        self._expect(_mark(name, message, binding), kind)
        await self.buses[0].backend.publish(name, [message])
        await self.settled()

    async def settled(self, timeout: float | None = None) -> None:
        """Wait until every group of every bus has settled everything on its channels.

        Raises the first handler error when ``raise_handler_errors`` is set, and
        `NotSettledError` naming what is still pending after `timeout` seconds.
        """
        self._require_active("settled")
        limit = self.timeout if timeout is None else timeout
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit
        while self._unsettled():
            if loop.time() >= deadline:
                raise NotSettledError(self._pending_report(limit))
            await asyncio.sleep(_POLL)
        self._raise_errors()

    def _groups(self) -> Iterable[tuple[str, str]]:
        for bus in self.buses:
            yield from bus.subscriptions

    def _expect(self, mark: _Mark, kind: str | None) -> None:
        """`mark` was put on its channel: each group handling `kind` there must settle it."""
        channel = mark[0]
        self._expected[mark] = {
            (channel, info.group)
            for bus in self.buses
            for info in bus.subscriptions.values()
            if info.channel == channel and (kind is None or kind in info.routes)
        }

    def _final(self, mark: _Mark, group: str) -> None:
        """`group` reached a final outcome (ack or dead letter) for `mark`."""
        self._finals.add((mark, group))

    def _unsettled(self) -> dict[tuple[str, str], int]:
        pending: dict[tuple[str, str], int] = {}
        for mark, groups in self._expected.items():
            for channel, group in groups:
                if (mark, group) not in self._finals:
                    pending[(channel, group)] = pending.get((channel, group), 0) + 1
        return pending

    def _pending_report(self, limit: float) -> str:
        lines = [f"TestBus: not settled after {limit:g} s:"]
        for (channel, group), lag in sorted(self._unsettled().items()):
            lines.append(f"  {channel} / group {group}: {lag} message(s) unsettled")
            for call in self._calls:
                here = call.group == group and call.delivery.channel == channel
                if here and call.outcome in (None, "retry"):
                    lines.append(f"    {call}")
        lines.append(
            "A handler that never returns, a long retry backoff or a handler waiting for "
            "something the test never sends keeps events unsettled; raise the timeout "
            "(TestBus(..., timeout=...)) only if the handler is just slow"
        )
        return "\n".join(lines)

    def _raise_errors(self) -> None:
        if not self._errors:
            return
        first, *others = self._errors
        self._errors.clear()
        if others:
            first.add_note(
                f"TestBus: {len(others)} more handler error(s): "
                + "; ".join(f"{type(e).__name__}: {e}" for e in others)
            )
        raise first

    # -- inspecting -------------------------------------------------------------------------

    def calls(self, handler: Callable[..., Awaitable[Any]] | None = None) -> list[Call]:
        """Every handler attempt so far (of `handler` only, if given), in start order."""
        if handler is None:
            return list(self._calls)
        return [call for call in self._calls if call.handler is handler]

    async def dead_letters(self, channel: str | type[Message] | None = None) -> list[DeadLetter]:
        """The dead letters of `channel`, or of every subscribed channel, oldest first."""
        self._require_active("dead_letters")
        bus = self.buses[0]
        if channel is not None:
            return await bus.dead_letters(channel)
        letters: list[DeadLetter] = []
        for name in sorted({c for c, _ in self._groups()}):
            letters.extend(await bus.dead_letters(name))
        return letters

    def published_of(self, model: type[Message] | str) -> list[Published]:
        """The published messages of one class (or type name), in order."""
        name = model if isinstance(model, str) else model.__eventwire__.type
        return [p for p in self.published if p.type == name]

    def assert_published(
        self, model: type[Message] | str, *, count: int | None = None, **fields: Any
    ) -> Published:
        """The first published `model` whose fields equal `fields`; a readable failure if none.

        ``count`` also requires exactly that many matches.
        """
        name = model if isinstance(model, str) else model.__eventwire__.type
        candidates = self.published_of(name)
        matches = [p for p in candidates if not _differences(p, fields)]
        if matches and (count is None or len(matches) == count):
            return matches[0]
        wanted = ", ".join(f"{k}={v!r}" for k, v in fields.items())
        lines = [f"expected {name}({wanted}) to be published" + _times(count)]
        if matches:
            lines.append(f"found it {len(matches)} time(s)")
        elif candidates:
            lines.append(f"{len(candidates)} {name} published, none matches:")
            for index, candidate in enumerate(candidates, 1):
                diff = "; ".join(_differences(candidate, fields))
                lines.append(f"  #{index}: {diff}")
        else:
            others = sorted({p.type for p in self.published})
            lines.append(f"no {name} was published; published: {', '.join(others) or 'nothing'}")
        raise AssertionError("\n".join(lines))

    def assert_not_published(self, model: type[Message] | str, **fields: Any) -> None:
        """Fail if a published `model` has `fields`, naming it."""
        name = model if isinstance(model, str) else model.__eventwire__.type
        for candidate in self.published_of(name):
            if not _differences(candidate, fields):
                raise AssertionError(f"expected no {name} like that, but got: {candidate}")


def _times(count: int | None) -> str:
    return "" if count is None else f" exactly {count} time(s)"


_MISSING = object()


def _differences(published: Published, fields: Mapping[str, Any]) -> list[str]:
    """``field: got X, expected Y`` for every field of `fields` that does not match."""
    out = []
    for name, expected in fields.items():
        got = getattr(published.event, name, _MISSING)
        if got is _MISSING:
            got = published.payload.get(name, _MISSING)
        if got is _MISSING:
            out.append(f"{name}: no such field")
        elif got != expected:
            out.append(f"{name}: got {got!r}, expected {expected!r}")
    return out
