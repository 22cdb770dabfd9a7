"""G11: the same event id delivered twice runs the handler's effect once per group.

Three ways to get a second delivery: the same message published twice, a redelivery after
the member that handled it went away before acking, and copies arriving at the same time.
A broker may drop a duplicate publish itself (NATS JetStream's ``Nats-Msg-Id``), so for
duplicates the tests wait until later work is done (a same-key event published after the
copies) or for a quiet window; the redelivery test waits until the store has recognised
the redelivered copy, so a redelivery that never happens cannot pass for one that was
deduplicated.
"""

from __future__ import annotations

import asyncio
from collections import Counter

from eventwire import Claim, Delivery, Envelope, MemoryIdempotencyStore, WireMessage
from eventwire.codec import encode

from eventwire_conformance._events import Ping, ping_model
from eventwire_conformance._support import Harness


class RecordingStore:
    """An in-memory idempotency store that records claims; can stall on ``complete``."""

    def __init__(self) -> None:
        self._inner = MemoryIdempotencyStore()
        self.claims: list[tuple[str, Claim]] = []
        self.completed: list[str] = []
        #: While set, ``complete`` never returns: the member dies between effect and ack.
        self.stall = False

    async def claim(self, key: str, lease: float) -> Claim:
        state = await self._inner.claim(key, lease)
        self.claims.append((key, state))
        return state

    async def complete(self, key: str, ttl: float) -> None:
        await self._inner.complete(key, ttl)
        self.completed.append(key)
        if self.stall:
            await asyncio.Event().wait()

    async def release(self, key: str) -> None:
        await self._inner.release(key)

    def count(self, event_id: str, state: Claim, group: str = "") -> int:
        """Claims of `event_id` (in `group`, if given) that got `state`."""
        return sum(
            1
            for key, got in self.claims
            if got is state and key.endswith(event_id) and group in key
        )


def _wire(model: type[Ping], event: Ping, binding: str) -> tuple[WireMessage, Envelope]:
    envelope = Envelope.new(
        type=model.__eventwire__.type, source="conformance/g11", subject=event.message_key()
    )
    return encode(event, envelope, binding), envelope


async def test_G11_duplicate_publish_runs_once_per_group(harness: Harness) -> None:
    channel = harness.name("g11d")
    model = ping_model(channel)
    bus = harness.bus()
    groups = [harness.name("grp-a"), harness.name("grp-b")]
    effects: Counter[tuple[str, str]] = Counter()
    markers: set[str] = set()

    for group in groups:

        @bus.subscribe(model, group=group, idempotent=True)
        async def effect(event: Ping, delivery: Delivery) -> None:
            if event.tag == "after":
                markers.add(delivery.group)
                return
            effects[(delivery.group, delivery.id)] += 1

    async with bus:
        wire, envelope = _wire(model, model(key="dup", seq=1), bus.backend.binding)
        await bus.backend.publish(channel, [wire])
        await bus.backend.publish(channel, [wire])
        # Same key, published after both copies: once it is handled, so are the copies.
        await bus.publish(model(key="dup", seq=2, tag="after"))
        await harness.wait_for(
            lambda: markers >= set(groups),
            lambda: f"the event after the copies, in every group (got it in {sorted(markers)})",
        )

    for group in groups:
        assert effects[(group, envelope.id)] == 1, (
            f"group {group}: the effect ran {effects[(group, envelope.id)]} times for one "
            "event id published twice"
        )


async def test_G11_redelivery_after_unacked_effect_runs_once(harness: Harness) -> None:
    channel = harness.name("g11r")
    model = ping_model(channel)
    group = harness.name("grp")
    store = RecordingStore()
    effects: Counter[str] = Counter()
    first = harness.bus(idempotency_store=store, close_timeout=0.3)
    second = harness.bus(idempotency_store=store)
    publisher = harness.bus()
    for bus in (first, second):

        @bus.subscribe(model, group=group, idempotent=True)
        async def effect(event: Ping, delivery: Delivery) -> None:
            effects[delivery.id] += 1

    async with publisher:
        await first.start()
        store.stall = True
        sent = await publisher.publish(model(key="once", seq=1))
        await harness.wait_for(
            lambda: any(k.endswith(sent.id) for k in store.completed), "the first handling"
        )
        # The effect ran and was recorded, but the member closes before it could ack
        # (its close times out): the broker must hand the event to the next member.
        await first.close()
        store.stall = False
        async with second:
            await harness.wait_for(
                lambda: store.count(sent.id, Claim.DONE) >= 1,
                "the unacked event to be redelivered to the next member of the group",
            )

    assert effects[sent.id] == 1, f"the effect ran {effects[sent.id]} times for one event"


async def test_G11_concurrent_duplicates_run_once(harness: Harness) -> None:
    channel = harness.name("g11c")
    model = ping_model(channel, keyed=False)  # no key: copies may run in parallel
    group = harness.name("grp")
    store = RecordingStore()
    effects: Counter[str] = Counter()
    members = [harness.bus(idempotency_store=store), harness.bus(idempotency_store=store)]
    for bus in members:

        @bus.subscribe(model, group=group, concurrency=4, idempotent=True)
        async def effect(event: Ping, delivery: Delivery) -> None:
            effects[delivery.id] += 1
            await asyncio.sleep(0.2)  # long enough for the other copies to arrive meanwhile

    copies = 4
    async with members[0], members[1]:
        wire, envelope = _wire(model, model(key="-", seq=1), members[0].backend.binding)
        await members[0].backend.publish(channel, [wire] * copies)
        await harness.wait_for(lambda: effects[envelope.id] >= 1, "the effect to run once")
        # No marker can follow unkeyed copies: give the other copies time to show up.
        await harness.quiet(1.0)

    recognised = store.count(envelope.id, Claim.DONE)
    assert effects[envelope.id] == 1, (
        f"the effect ran {effects[envelope.id]} times for {copies} concurrent copies of one "
        f"event ({recognised} copies were recognised as duplicates)"
    )
