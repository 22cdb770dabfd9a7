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
  to the handler at once, without waiting for the handler to take it;
- ``hastyleave://``: a member that leaves (its subscription stops) settles what it holds at
  once, so its partitions move on while its handlers still run (hand-over without waiting
  for in-flight events);
- ``leasesteal://``: a member that joins is handed, again, every event the members already
  in the group hold unsettled, while they still run them (taking a lease held by a live
  member).

Broken idempotency stores (`STORE_FAULTS`): each is a correct memory backend whose *default
idempotency store* breaks one promise of `eventwire.idempotency`:

- ``racyclaim://``: shared by every bus of the broker, but ``claim`` reads, waits for a
  round trip, then writes: two members claiming one id at the same time both acquire it;
- ``localstore://``: says it is the broker's store, but each bus gets a store of its own:
  a duplicate that reaches another member runs again.

``nostore://`` (a helper) is the memory backend without a store of its own, like Kafka and
RabbitMQ: the cross-process part of G11 is unsupported unless a store is configured.

``plugged://`` is not faulty: it is ``sqlite://`` (a backend shared by processes) under a
scheme that exists only where this module is imported, so G12's consumer process finds it
only if the suite hands its ``--plugin`` modules on.

Three more serve the runner's own tests: ``down://`` never connects (an unreachable broker),
``restartable://`` is the memory backend claiming G16, G22 and G23, so the restart and kill
logic can run with a harmless command, and ``stuckcrash://`` is ``restartable://`` whose
crashed member keeps its partitions for ever (its subscriptions live on without a handler
taking anything), so the events of those partitions stall, as a shard does when its dead
owner is never taken over: G22 must report them.

``unreplicated://`` (G23's teeth) claims G23 like ``restartable://`` but confirms a publish
before it is replicated: a message becomes part of the log (deliverable) only
`Unreplicated.REPLICATION` seconds after ``publish`` returned, and is lost if the leading
node "dies" first, that is if the file named by the environment variable `NODE_DOWN_VARIABLE`
exists then (the node kill command creates it, the start command removes it).

Importing this module registers them with eventwire's plugin manager; load it in pytest with
``-p tests.conformance.faulty_backends`` (or ``eventwire conformance run --plugin ...``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import os
import re
import zlib
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from eventwire import (
    Backend,
    BackendInfo,
    BackendUnavailableError,
    Capabilities,
    Claim,
    IdempotencyStore,
    Inbound,
    MemoryIdempotencyStore,
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

from tests.conformance._runner import NODE_DOWN_VARIABLE

__all__ = ["FAULTS", "HELPERS", "STORE_FAULTS", "register"]

PLUGIN_NAME = "eventwire-conformance-faulty-backends"


class Wrapper:
    """Delegates everything to an in-memory broker of its own (but has no idempotency store
    of its own); subclasses add one fault."""

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


class FaultyBackend(Wrapper):
    """A `Wrapper` whose default idempotency store is the inner backend's."""

    def shared_idempotency_store(self) -> IdempotencyStore:
        return self.inner.shared_idempotency_store()  # type: ignore[attr-defined,no-any-return]


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


class _HastyStop:
    """A subscription that, asked to stop, settles its member's unsettled deliveries at
    once, so the group hands its partitions on while the handlers still run."""

    def __init__(self, inner: Subscription, holding: dict[int, Inbound]) -> None:
        self._inner = inner
        self._holding = holding

    async def stop(self) -> None:
        for inbound in list(self._holding.values()):
            await inbound.ack()
        await self._inner.stop()


class HastyLeave(FaultyBackend):
    async def subscribe(self, spec: SubscriptionSpec, handler: MessageHandler) -> Subscription:
        holding: dict[int, Inbound] = {}

        async def watched(inbound: Inbound) -> None:
            holding[id(inbound)] = inbound
            await handler(_Watched(inbound, lambda done: holding.pop(id(done), None)))

        return _HastyStop(await self.inner.subscribe(spec, watched), holding)


class LeaseSteal(FaultyBackend):
    async def subscribe(self, spec: SubscriptionSpec, handler: MessageHandler) -> Subscription:
        holding = _holding[(self._url, spec.channel, spec.group)]

        def acked(inbound: Inbound) -> None:
            holding.pop(id(inbound), None)

        async def watched(inbound: Inbound) -> None:
            holding[id(inbound)] = inbound
            await handler(_Watched(inbound, acked))

        stolen = list(holding.values())
        subscription = await self.inner.subscribe(spec, watched)
        # The newcomer takes what live members hold, as if their leases had expired.
        for inbound in stolen:
            await handler(_Replayed(inbound.message, inbound.delivery_count + 1))
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


class _RacyStore:
    """Claims in two steps with a round trip between them (a read, then a write)."""

    def __init__(self, entries: dict[str, bool]) -> None:
        self._entries = entries  # key -> done

    async def claim(self, key: str, lease: float) -> Claim:
        known = self._entries.get(key)
        await asyncio.sleep(0.02)  # the write goes out after the read came back
        if known is not None:
            return Claim.DONE if known else Claim.BUSY
        self._entries[key] = False
        return Claim.ACQUIRED

    async def complete(self, key: str, ttl: float) -> None:
        self._entries[key] = True

    async def release(self, key: str) -> None:
        if self._entries.get(key) is False:
            del self._entries[key]


#: The racy stores' entries, per broker (shared by every bus of it, like a real server's).
_RACY_ENTRIES: defaultdict[str, dict[str, bool]] = defaultdict(dict)


class RacyClaim(FaultyBackend):
    def shared_idempotency_store(self) -> IdempotencyStore:
        return _RacyStore(_RACY_ENTRIES[self.url])


class LocalStore(FaultyBackend):
    def shared_idempotency_store(self) -> IdempotencyStore:
        return MemoryIdempotencyStore()


class NoStore(Wrapper):
    pass


class Down(FaultyBackend):
    async def connect(self) -> None:
        raise BackendUnavailableError(f"{self.url} is down (it never accepts a connection)")


class Restartable(FaultyBackend):
    def __init__(self, url: str, options: Mapping[str, Any]) -> None:
        super().__init__(url, options)
        claimed = {
            k: v for k, v in self.capabilities.unsupported.items() if k not in ("G16", "G22", "G23")
        }
        self.capabilities = dataclasses.replace(self.capabilities, unsupported=claimed)


class Unreplicated(Restartable):
    """Confirms publishes the leader has not replicated yet (see the module docstring)."""

    REPLICATION = 0.2

    def __init__(self, url: str, options: Mapping[str, Any]) -> None:
        super().__init__(url, options)
        self._log: asyncio.Queue[tuple[float, str, Sequence[WireMessage]]] = asyncio.Queue()
        self._replicator: asyncio.Task[None] | None = None

    async def publish(self, channel: str, messages: Sequence[WireMessage]) -> None:
        if self._replicator is None:
            self._replicator = asyncio.ensure_future(self._replicate())
        self._log.put_nowait((asyncio.get_running_loop().time(), channel, messages))

    async def _replicate(self) -> None:
        loop = asyncio.get_running_loop()
        variable = os.environ.get(NODE_DOWN_VARIABLE)
        marker = Path(variable) if variable else None
        while True:
            when, channel, messages = await self._log.get()
            await asyncio.sleep(max(0.0, when + self.REPLICATION - loop.time()))
            if marker is None or not marker.exists():
                await self.inner.publish(channel, messages)

    async def close(self) -> None:
        if self._replicator is not None:
            self._replicator.cancel()
        await super().close()

    async def abort(self) -> None:
        if self._replicator is not None:
            self._replicator.cancel()
        await super().abort()


class StuckCrash(Restartable):
    async def abort(self) -> None:
        """A crash that leaves the member's subscriptions running: its partitions stay
        with a member that hands nothing to a handler any more."""


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
    "hastyleave": (HastyLeave, "hands a leaving member's partitions on before its handlers end"),
    "leasesteal": (LeaseSteal, "lets a joining member take events live members still hold"),
}
STORE_FAULTS: dict[str, tuple[type[FaultyBackend], str]] = {
    "racyclaim": (RacyClaim, "has an idempotency store whose claim is not atomic"),
    "localstore": (LocalStore, "has an idempotency store per bus, not shared by the members"),
}
HELPERS: dict[str, tuple[type[Wrapper], str]] = {
    "nostore": (NoStore, "has no idempotency store of its own"),
    "down": (Down, "never connects"),
    "restartable": (
        Restartable,
        "claims G16, G22 and G23 (restarting or killing it changes nothing)",
    ),
    "unreplicated": (Unreplicated, "confirms a publish before it is replicated"),
    "plugged": (Plugged, "is sqlite:// found only where this plugin is loaded"),
    "stuckcrash": (StuckCrash, "claims G22, and a crashed member keeps its partitions"),
}
_ALL: dict[str, tuple[type[Wrapper], str]] = {**FAULTS, **STORE_FAULTS, **HELPERS}


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
