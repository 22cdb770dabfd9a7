"""`MemoryBackend`: the `eventwire.backend.Backend` protocol over the in-process broker."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from eventwire._naming import check_name
from eventwire.backend import (
    Capabilities,
    MessageHandler,
    SubscriptionSpec,
    WireMessage,
)
from eventwire.errors import (
    BusClosedError,
    ConfigurationError,
    InvalidURLError,
    MessageTooLargeError,
)

from eventwire_memory._broker import (
    DEFAULT_BROKER,
    DEFAULT_PARTITIONS,
    Member,
    MemoryBroker,
    get_broker,
)
from eventwire_memory._info import CAPABILITIES, MAX_MESSAGE_BYTES, SCHEME

__all__ = ["MemoryBackend", "MemorySubscription", "parse_memory_url"]

log = logging.getLogger("eventwire.memory")

_BROKER_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
_OPTIONS = ("partitions",)
#: A member's fetch loop yields to the event loop after this many deliveries in a row.
_YIELD_EVERY = 64


def parse_memory_url(url: str) -> tuple[str, dict[str, str]]:
    """The broker name and query options of ``memory://[name][?partitions=N]``."""
    try:
        parts = urlsplit(url)
    except (TypeError, ValueError) as exc:
        raise InvalidURLError(f"{url!r} is not a memory:// URL: {exc}") from None
    if parts.scheme.lower() != SCHEME:
        raise InvalidURLError(f"{url!r} is not a memory:// URL; write memory:// or memory://name")
    name = parts.netloc or DEFAULT_BROKER
    if not _BROKER_NAME.match(name) or parts.path not in ("", "/") or parts.fragment:
        raise InvalidURLError(
            f"{url!r} is not a valid memory:// URL; write memory:// for the default broker "
            "or memory://name (letters, digits, '_', '-', '.') for a separate one"
        )
    try:
        query = dict(parse_qsl(parts.query, keep_blank_values=True, strict_parsing=True))
    except ValueError:
        if parts.query:
            raise InvalidURLError(
                f"{url!r} has a malformed query; write e.g. memory://name?partitions=4"
            ) from None
        query = {}
    return name, query


def _partitions(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and value.strip().isdigit():
        number = int(value)
    else:
        number = 0
    if number < 1:
        raise ConfigurationError(
            f"memory backend option partitions={value!r} is invalid; give a whole number >= 1 "
            f"(default {DEFAULT_PARTITIONS})"
        )
    return number


def _message_size(message: WireMessage) -> int:
    size = len(message.body)
    for name, value in message.headers.items():
        size += len(name) + len(value)
    return size


class MemorySubscription:
    """One group member's fetch loop: pulls deliveries and awaits the handler for each."""

    def __init__(
        self,
        spec: SubscriptionSpec,
        member: Member,
        handler: MessageHandler,
    ) -> None:
        self.spec = spec
        self._member = member
        self._handler = handler
        self._stopping = False
        self._task = asyncio.create_task(
            self._run(), name=f"eventwire-memory:{spec.channel}/{spec.group}/{member.id}"
        )

    def __repr__(self) -> str:
        return f"<MemorySubscription {self.spec.channel}/{self.spec.group} {self.member_id}>"

    @property
    def member_id(self) -> str:
        return self._member.id

    @property
    def partitions(self) -> list[int]:
        """The partitions this member is assigned now (empty once stopped)."""
        return self._member.partitions

    async def _run(self) -> None:
        member = self._member
        handler = self._handler
        take = member.take
        event = member.event
        streak = 0
        try:
            while True:
                delivery = take()
                if delivery is None:
                    streak = 0
                    event.clear()
                    member.waiting = True
                    try:
                        await event.wait()
                    finally:
                        member.waiting = False
                    continue
                try:
                    await handler(delivery)
                except Exception:
                    # The delivery stays unsettled (redelivered when this member leaves).
                    log.exception(
                        "eventwire: the handler of %s/%s raised on a delivery; it stays unsettled",
                        self.spec.channel,
                        self.spec.group,
                    )
                streak += 1
                if streak >= _YIELD_EVERY:
                    streak = 0
                    await asyncio.sleep(0)
        except asyncio.CancelledError:
            if not self._stopping:
                member.leave()  # cancelled from outside (e.g. the event loop ended): a crash
            raise

    async def stop(self) -> None:
        """Stop fetching. A handler call blocked on backpressure is cancelled; its delivery
        and every other unsettled one stay pending (they can still be acked until the
        backend closes, and are redelivered to a surviving member after that)."""
        if not self._stopping:
            self._stopping = True
            self._member.stop()
            self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    def _crash(self) -> asyncio.Task[None]:
        """Leave the group at once (no await in between) and cancel the fetch loop."""
        self._stopping = True
        self._member.leave()
        self._task.cancel()
        return self._task

    def _leave(self) -> None:
        self._member.leave()


class MemoryBackend:
    """A connection to a named in-process broker: ``memory://`` or ``memory://name``.

    Backends created with the same URL in one process share one broker, so two of them
    subscribed with the same group are two members of that group.
    """

    name = "memory"
    binding = "kafka"
    capabilities: Capabilities = CAPABILITIES

    def __init__(self, url: str = "memory://", options: Mapping[str, Any] | None = None) -> None:
        broker_name, query = parse_memory_url(url)
        merged: dict[str, object] = {**query, **(options or {})}
        unknown = sorted(set(merged) - set(_OPTIONS))
        if unknown:
            raise ConfigurationError(
                f"unknown memory backend option(s) {', '.join(map(repr, unknown))}; "
                f"the memory backend knows: {', '.join(_OPTIONS)}"
            )
        self.partitions = _partitions(merged.get("partitions", DEFAULT_PARTITIONS))
        self.broker_name = broker_name
        self._url = "memory://" if broker_name == DEFAULT_BROKER else f"memory://{broker_name}"
        self._broker: MemoryBroker | None = None
        self._closed = False
        self._subscriptions: list[MemorySubscription] = []
        self._checked: set[str] = set()
        self._unyielded = 0

    def __repr__(self) -> str:
        state = "closed" if self._closed else "connected" if self._broker else "new"
        return f"<MemoryBackend {self._url} {state}>"

    @property
    def url(self) -> str:
        return self._url

    @property
    def broker(self) -> MemoryBroker:
        """The broker this backend is connected to."""
        return self._connected()

    def _connected(self) -> MemoryBroker:
        if self._closed:
            raise BusClosedError(
                f"the {self._url} backend is closed; create a new backend (or EventBus)"
            )
        if self._broker is None:
            raise BusClosedError(f"the {self._url} backend is not connected; call connect() first")
        return self._broker

    def _check_channel(self, channel: str) -> None:
        if channel not in self._checked:
            check_name("channel", channel)
            self._checked.add(channel)

    async def connect(self) -> None:
        if self._closed:
            raise BusClosedError(f"the {self._url} backend is closed; create a new backend")
        if self._broker is None:
            self._broker = get_broker(self.broker_name)

    async def publish(self, channel: str, messages: Sequence[WireMessage]) -> None:
        broker = self._connected()
        self._check_channel(channel)
        for index, message in enumerate(messages):
            size = _message_size(message)
            if size > MAX_MESSAGE_BYTES:
                raise MessageTooLargeError(
                    f"message {index} for channel {channel!r} is {size} bytes (body and "
                    f"headers), over the memory backend's limit of {MAX_MESSAGE_BYTES} bytes "
                    "(8 MiB); nothing was sent. Publish a reference to the data instead of "
                    "the data itself"
                )
        broker.publish(channel, messages, self.partitions)
        # A broker round trip would let other tasks run; do the same now and then.
        self._unyielded += len(messages)
        if self._unyielded >= _YIELD_EVERY:
            self._unyielded = 0
            await asyncio.sleep(0)

    async def subscribe(
        self, spec: SubscriptionSpec, handler: MessageHandler
    ) -> MemorySubscription:
        broker = self._connected()
        self._check_channel(spec.channel)
        check_name("group", spec.group)
        if spec.max_in_flight < 1:
            raise ConfigurationError(
                f"max_in_flight={spec.max_in_flight} for {spec.channel}/{spec.group} must be >= 1"
            )
        member = broker.join(
            spec.channel,
            spec.group,
            consumer=spec.consumer,
            max_in_flight=spec.max_in_flight,
            from_beginning=spec.from_beginning,
            partitions=self.partitions,
        )
        subscription = MemorySubscription(spec, member, handler)
        self._subscriptions.append(subscription)
        return subscription

    async def browse(self, channel: str, limit: int = 1000) -> list[WireMessage]:
        broker = self._connected()
        self._check_channel(channel)
        return broker.browse(channel, limit)

    async def delete_group(self, channel: str, group: str) -> None:
        """Forget `group` on `channel` (its positions); members still joined keep theirs."""
        broker = self._connected()
        self._check_channel(channel)
        broker.delete_group(channel, group)

    async def close(self) -> None:
        """Stop every subscription, then leave the groups: what is unsettled is redelivered."""
        if self._closed:
            return
        subscriptions = self._subscriptions
        await asyncio.gather(*(s.stop() for s in subscriptions))
        for subscription in subscriptions:
            subscription._leave()
        self._closed = True
        self._subscriptions = []

    async def abort(self) -> None:
        """Crash: every member leaves at once; later acks of its deliveries are ignored."""
        if self._closed:
            return
        self._closed = True
        tasks = [subscription._crash() for subscription in self._subscriptions]
        self._subscriptions = []
        await asyncio.gather(*tasks, return_exceptions=True)
