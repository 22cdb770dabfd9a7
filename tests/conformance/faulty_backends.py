"""Deliberately broken backends, for proving that the conformance suite has teeth.

Each wraps the in-memory backend and breaks exactly one promise of the backend contract
(`eventwire.backend`), under its own URL scheme:

- ``lossy://``: loses every 10th message published to a channel (the publish still succeeds);
- ``reorder://``: delivers same-key messages out of order (holds one back until the next of
  its key arrives, then hands over the later one first);
- ``redeliver://``: delivers every acked message once more, and replays a group's acked
  messages to each member that joins it later;
- ``nodlq://``: silently drops everything published to a ``*.dlq`` channel;
- ``noheaders://``: drops user headers and the correlation / causation ids;
- ``crashloss://``: when a member crashes (``abort``), its unsettled deliveries are acked,
  so they are lost instead of redelivered;
- ``firstcount://``: every delivery says ``delivery_count`` 1, redeliveries too;
- ``roundrobin://``: partitions by publish count, not by key (the key travels in a header):
  four partitions, so a strict rotation of 16 keys keeps each key on one by accident;
- ``eager://``: when a member joins a group, the members already in it give up the
  partitions at once: their unsettled deliveries count as settled for the hand-over, so the
  new owner starts on a key while the old owner still runs an event of it;
- ``unbounded://``: no backpressure: it prefetches without limit and hands every delivery
  to the handler at once, without waiting for the handler to take it.

``plugged://`` is not faulty: it is ``sqlite://`` (a backend shared by processes) under a
scheme that exists only where this module is imported, so G12's consumer process finds it
only if the suite hands its ``--plugin`` modules on.

Two more serve the runner's own tests: ``down://`` never connects (an unreachable broker),
and ``restartable://`` is the memory backend claiming G16, so the restart logic can run
with a harmless restart command.

Importing this module registers them with eventwire's plugin manager; load it in pytest with
``-p tests.conformance.faulty_backends`` (or ``eventwire conformance run --plugin ...``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import re
import zlib
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from eventwire import (
    Backend,
    BackendInfo,
    BackendUnavailableError,
    Capabilities,
    Inbound,
    Subscription,
    SubscriptionSpec,
    WireMessage,
    create_backend,
    hookimpl,
    redact_url,
)
from eventwire.backend import MessageHandler
from eventwire.plugins import get_plugin_manager
from eventwire_memory._broker import DEFAULT_PARTITIONS

__all__ = ["FAULTS", "HELPERS", "register"]

PLUGIN_NAME = "eventwire-conformance-faulty-backends"


class FaultyBackend:
    """Delegates everything to an in-memory broker of its own; subclasses add one fault."""

    binding: str
    capabilities: Capabilities

    def __init__(self, url: str, options: Mapping[str, Any]) -> None:
        scheme, rest = url.split("://", 1)
        self.name = scheme.lower()
        self._url = redact_url(f"{self.name}://{rest}")
        broker = re.sub(r"[^A-Za-z0-9_.-]+", "-", rest.rsplit("@", 1)[-1]).strip("-")
        self.inner: Backend = create_backend(f"memory://faulty-{self.name}-{broker}", options)
        self.binding = self.inner.binding
        self.capabilities = self.inner.capabilities

    @property
    def url(self) -> str:
        return self._url

    async def connect(self) -> None:
        await self.inner.connect()

    async def close(self) -> None:
        await self.inner.close()

    async def abort(self) -> None:
        await self.inner.abort()

    async def publish(self, channel: str, messages: Sequence[WireMessage]) -> None:
        await self.inner.publish(channel, messages)

    async def subscribe(self, spec: SubscriptionSpec, handler: MessageHandler) -> Subscription:
        return await self.inner.subscribe(spec, handler)

    async def browse(self, channel: str, limit: int = 1000) -> list[WireMessage]:
        return await self.inner.browse(channel, limit)


class _Replayed:
    """A delivery the broker should not have made: settling it changes nothing."""

    def __init__(self, message: WireMessage, delivery_count: int) -> None:
        self.message = message
        self.delivery_count = delivery_count

    async def ack(self) -> None:
        return None


class _Watched:
    """A delivery whose ack is reported to the faulty backend."""

    def __init__(self, inbound: Inbound, on_ack: Any) -> None:
        self._inbound = inbound
        self._on_ack = on_ack
        self.message = inbound.message
        self.delivery_count = inbound.delivery_count

    async def ack(self) -> None:
        await self._inbound.ack()
        self._on_ack(self._inbound)


# -- the faults --------------------------------------------------------------------------------

_published: defaultdict[tuple[str, str], int] = defaultdict(int)


class Lossy(FaultyBackend):
    async def publish(self, channel: str, messages: Sequence[WireMessage]) -> None:
        if channel.endswith(".dlq"):
            await self.inner.publish(channel, messages)
            return
        kept = []
        for message in messages:
            _published[(self._url, channel)] += 1
            if _published[(self._url, channel)] % 10:
                kept.append(message)
        if kept:
            await self.inner.publish(channel, kept)


class Reorder(FaultyBackend):
    HOLD = 0.05

    async def subscribe(self, spec: SubscriptionSpec, handler: MessageHandler) -> Subscription:
        held: dict[str, Inbound] = {}
        loop = asyncio.get_running_loop()
        tasks: set[asyncio.Task[None]] = set()

        async def release(key: str, inbound: Inbound) -> None:
            if held.get(key) is inbound:
                del held[key]
                await handler(inbound)

        def later(key: str, inbound: Inbound) -> None:
            task = loop.create_task(release(key, inbound))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

        async def swapped(inbound: Inbound) -> None:
            key = inbound.message.key
            if key is None:
                await handler(inbound)
                return
            earlier = held.pop(key, None)
            if earlier is None:  # hold it back until the next one of its key
                held[key] = inbound
                loop.call_later(self.HOLD, later, key, inbound)
                return
            await handler(inbound)  # the later one overtakes the earlier one
            await handler(earlier)

        return await self.inner.subscribe(spec, swapped)


_acked: defaultdict[tuple[str, str, str], list[WireMessage]] = defaultdict(list)


class Redeliver(FaultyBackend):
    async def subscribe(self, spec: SubscriptionSpec, handler: MessageHandler) -> Subscription:
        history = _acked[(self._url, spec.channel, spec.group)]
        duplicated: set[int] = set()
        loop = asyncio.get_running_loop()
        tasks: set[asyncio.Task[None]] = set()

        async def deliver(message: WireMessage, count: int) -> None:
            await handler(_Replayed(message, count))

        def again(message: WireMessage, count: int) -> None:
            task = loop.create_task(deliver(message, count))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

        def acked(inbound: Inbound) -> None:
            history.append(inbound.message)
            if id(inbound.message) not in duplicated:
                duplicated.add(id(inbound.message))
                loop.call_later(0.01, again, inbound.message, inbound.delivery_count + 1)

        async def watched(inbound: Inbound) -> None:
            await handler(_Watched(inbound, acked))

        subscription = await self.inner.subscribe(spec, watched)
        for message in list(history):  # a new member gets the group's past once more
            duplicated.add(id(message))
            again(message, 2)
        return subscription


class NoDlq(FaultyBackend):
    async def publish(self, channel: str, messages: Sequence[WireMessage]) -> None:
        if channel.endswith(".dlq"):
            return  # "stored"
        await self.inner.publish(channel, messages)


def _kept_header(name: str) -> bool:
    lower = name.lower()
    if lower in ("ce_correlationid", "ce_causationid"):
        return False
    return lower == "content-type" or lower.startswith(("ce_", "eventwire-dlq-"))


class NoHeaders(FaultyBackend):
    async def publish(self, channel: str, messages: Sequence[WireMessage]) -> None:
        stripped = [
            WireMessage(m.body, {k: v for k, v in m.headers.items() if _kept_header(k)}, m.key)
            for m in messages
        ]
        await self.inner.publish(channel, stripped)


class CrashLoss(FaultyBackend):
    def __init__(self, url: str, options: Mapping[str, Any]) -> None:
        super().__init__(url, options)
        self._unsettled: dict[int, Inbound] = {}

    async def subscribe(self, spec: SubscriptionSpec, handler: MessageHandler) -> Subscription:
        def acked(inbound: Inbound) -> None:
            self._unsettled.pop(id(inbound), None)

        async def watched(inbound: Inbound) -> None:
            self._unsettled[id(inbound)] = inbound
            await handler(_Watched(inbound, acked))

        return await self.inner.subscribe(spec, watched)

    async def abort(self) -> None:
        lost, self._unsettled = self._unsettled, {}
        for inbound in lost.values():
            await inbound.ack()  # settled as if handled: the crash loses them
        await self.inner.abort()


class _FirstCount:
    """A delivery that hides how often it was delivered before."""

    delivery_count = 1

    def __init__(self, inbound: Inbound) -> None:
        self._inbound = inbound
        self.message = inbound.message

    async def ack(self) -> None:
        await self._inbound.ack()


class FirstCount(FaultyBackend):
    async def subscribe(self, spec: SubscriptionSpec, handler: MessageHandler) -> Subscription:
        async def counted_once(inbound: Inbound) -> None:
            await handler(_FirstCount(inbound))

        return await self.inner.subscribe(spec, counted_once)


_ORIGINAL_KEY = "x-faulty-original-key"
_rotation: defaultdict[tuple[str, str], int] = defaultdict(int)


class _Rekeyed:
    """A delivery whose message got its original key back."""

    def __init__(self, inbound: Inbound) -> None:
        self._inbound = inbound
        self.delivery_count = inbound.delivery_count
        self.message = self.restore(inbound.message)

    @staticmethod
    def restore(message: WireMessage) -> WireMessage:
        if _ORIGINAL_KEY not in message.headers:
            return message
        headers = dict(message.headers)
        key = headers.pop(_ORIGINAL_KEY)
        return WireMessage(message.body, headers, key or None)

    async def ack(self) -> None:
        await self._inbound.ack()


def _partition_key(partition: int) -> str:
    """A key that the memory broker puts on `partition` (of its default count)."""
    return next(
        key
        for key in (f"p{partition}-{n}" for n in itertools.count())
        if zlib.crc32(key.encode()) % DEFAULT_PARTITIONS == partition
    )


class RoundRobin(FaultyBackend):
    KEYS = [_partition_key(p) for p in range(4)]

    async def publish(self, channel: str, messages: Sequence[WireMessage]) -> None:
        if channel.endswith(".dlq"):
            await self.inner.publish(channel, messages)
            return
        spread = []
        for message in messages:
            turn = _rotation[(self._url, channel)] % len(self.KEYS)
            _rotation[(self._url, channel)] += 1
            headers = {**message.headers, _ORIGINAL_KEY: message.key or ""}
            spread.append(WireMessage(message.body, headers, self.KEYS[turn]))
        await self.inner.publish(channel, spread)

    async def browse(self, channel: str, limit: int = 1000) -> list[WireMessage]:
        return [_Rekeyed.restore(m) for m in await self.inner.browse(channel, limit)]

    async def subscribe(self, spec: SubscriptionSpec, handler: MessageHandler) -> Subscription:
        async def rekeyed(inbound: Inbound) -> None:
            await handler(_Rekeyed(inbound))

        return await self.inner.subscribe(spec, rekeyed)


#: Unsettled deliveries per group, by the inner delivery's id.
_holding: defaultdict[tuple[str, str, str], dict[int, Inbound]] = defaultdict(dict)


class Eager(FaultyBackend):
    async def subscribe(self, spec: SubscriptionSpec, handler: MessageHandler) -> Subscription:
        holding = _holding[(self._url, spec.channel, spec.group)]

        def acked(inbound: Inbound) -> None:
            holding.pop(id(inbound), None)

        async def watched(inbound: Inbound) -> None:
            holding[id(inbound)] = inbound
            await handler(_Watched(inbound, acked))

        subscription = await self.inner.subscribe(spec, watched)
        for inbound in list(holding.values()):  # handed over without waiting for them
            await inbound.ack()
        return subscription


class Unbounded(FaultyBackend):
    async def subscribe(self, spec: SubscriptionSpec, handler: MessageHandler) -> Subscription:
        loop = asyncio.get_running_loop()
        tasks: set[asyncio.Task[None]] = set()

        async def handed_over(inbound: Inbound) -> None:
            task = loop.create_task(_run(handler, inbound))  # never waits for the handler
            tasks.add(task)
            task.add_done_callback(tasks.discard)

        unlimited = dataclasses.replace(spec, max_in_flight=1_000_000)
        return await self.inner.subscribe(unlimited, handed_over)


class Plugged(FaultyBackend):
    def __init__(self, url: str, options: Mapping[str, Any]) -> None:
        scheme, rest = url.split("://", 1)
        self.name = scheme.lower()
        self._url = redact_url(url)
        self.inner = create_backend(f"sqlite://{rest}", options)
        self.binding = self.inner.binding
        self.capabilities = self.inner.capabilities


class Down(FaultyBackend):
    async def connect(self) -> None:
        raise BackendUnavailableError(f"{self.url} is down (it never accepts a connection)")


class Restartable(FaultyBackend):
    def __init__(self, url: str, options: Mapping[str, Any]) -> None:
        super().__init__(url, options)
        claimed = {k: v for k, v in self.capabilities.unsupported.items() if k != "G16"}
        self.capabilities = dataclasses.replace(self.capabilities, unsupported=claimed)


FAULTS: dict[str, tuple[type[FaultyBackend], str]] = {
    "lossy": (Lossy, "loses every 10th message of a channel"),
    "reorder": (Reorder, "swaps same-key messages"),
    "redeliver": (Redeliver, "delivers acked messages again"),
    "nodlq": (NoDlq, "drops everything sent to dead-letter channels"),
    "noheaders": (NoHeaders, "drops user headers and correlation ids"),
    "crashloss": (CrashLoss, "loses unsettled messages when a member crashes"),
    "firstcount": (FirstCount, "reports delivery count 1 on every redelivery"),
    "roundrobin": (RoundRobin, "spreads a key's messages over four partitions"),
    "eager": (Eager, "hands partitions to a joining member without waiting for settlement"),
    "unbounded": (Unbounded, "prefetches without limit and never waits for the handler"),
}
HELPERS: dict[str, tuple[type[FaultyBackend], str]] = {
    "down": (Down, "never connects"),
    "restartable": (Restartable, "claims G16 (restarting it changes nothing)"),
    "plugged": (Plugged, "is sqlite:// found only where this plugin is loaded"),
}
_ALL = {**FAULTS, **HELPERS}


class _FaultyPlugin:
    @hookimpl
    def eventwire_backend_info(self) -> list[BackendInfo]:
        memory = create_backend("memory://")
        return [
            BackendInfo(
                name=scheme,
                schemes=(scheme,),
                description=f"in-memory backend that {what} (for testing the suite)",
                capabilities=memory.capabilities,
                binding=memory.binding,
            )
            for scheme, (_, what) in _ALL.items()
        ]

    @hookimpl
    def eventwire_make_backend(
        self, url: str, scheme: str, options: Mapping[str, Any]
    ) -> Backend | None:
        found = _ALL.get(scheme)
        return found[0](url, options) if found is not None else None


def register() -> None:
    """Register the faulty backends with eventwire's plugin manager (once)."""
    manager = get_plugin_manager()
    if manager.get_plugin(PLUGIN_NAME) is None:
        manager.register(_FaultyPlugin(), name=PLUGIN_NAME)


register()


async def _run(handler: MessageHandler, inbound: Inbound) -> None:
    await handler(inbound)
