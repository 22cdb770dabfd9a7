"""G11: the same event id delivered twice runs the handler's effect once per group.

Four ways to get a second delivery: the same message published twice, a redelivery after
the member that handled it went away before acking, copies arriving at the same time at two
members, and a copy reaching a member in another process after the first was handled.
Every member opens its own connection to the idempotency store under test (the configured
one, else the backend's own): a store whose claim is not atomic across connections runs
concurrent copies twice, and one that is not shared across processes runs the late copy
again. A backend with neither reports the cross-process case as unsupported.
A broker may drop a duplicate publish itself (NATS JetStream's ``Nats-Msg-Id``), so for
duplicates the tests wait until later work is done (a same-key event published after the
copies) or for a quiet window; the redelivery test waits until the store has recognised
the redelivered copy, so a redelivery that never happens cannot pass for one that was
deduplicated.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

from eventwire import Claim, Delivery, Envelope, EventBus, IdempotencyStore, WireMessage
from eventwire.codec import encode

from eventwire_conformance._events import Ping, ping_model
from eventwire_conformance._members import MemberProcess
from eventwire_conformance._support import Harness, unsupported


class Ledger:
    """What the members' stores answered, shared by the `RecordingStore` of each member."""

    def __init__(self) -> None:
        self.claims: list[tuple[str, Claim]] = []
        self.completed: list[str] = []
        #: While set, ``complete`` never returns: the member dies between effect and ack.
        self.stall = False

    def count(self, event_id: str, state: Claim, group: str = "") -> int:
        """Claims of `event_id` (in `group`, if given) that got `state`."""
        return sum(
            1
            for key, got in self.claims
            if got is state and key.endswith(event_id) and group in key
        )


class RecordingStore:
    """One member's connection to the store under test, recording into a shared `Ledger`."""

    def __init__(self, inner: IdempotencyStore, ledger: Ledger) -> None:
        self._inner = inner
        self.ledger = ledger

    async def claim(self, key: str, lease: float) -> Claim:
        state = await self._inner.claim(key, lease)
        self.ledger.claims.append((key, state))
        return state

    async def complete(self, key: str, ttl: float) -> None:
        await self._inner.complete(key, ttl)
        self.ledger.completed.append(key)
        if self.ledger.stall:
            await asyncio.Event().wait()

    async def release(self, key: str) -> None:
        await self._inner.release(key)


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
    store = Ledger()
    effects: Counter[str] = Counter()
    first = harness.bus(idempotency_store=RecordingStore(harness.store(), store), close_timeout=0.3)
    second = harness.bus(idempotency_store=RecordingStore(harness.store(), store))
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
                # recognised as handled, or (a store that forgot it) handled again
                lambda: store.count(sent.id, Claim.DONE) >= 1 or effects[sent.id] > 1,
                "the unacked event to be redelivered to the next member of the group",
            )

    assert effects[sent.id] == 1, f"the effect ran {effects[sent.id]} times for one event"


async def test_G11_concurrent_duplicates_run_once(harness: Harness) -> None:
    channel = harness.name("g11c")
    model = ping_model(channel, keyed=False)  # no key: copies may run in parallel
    group = harness.name("grp")
    store = Ledger()
    effects: Counter[str] = Counter()
    members = [
        harness.bus(idempotency_store=RecordingStore(harness.store(), store)) for _ in range(2)
    ]
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


async def test_G11_duplicate_on_another_member_process_runs_once(
    harness: Harness, tmp_path: Path
) -> None:
    reason = harness.no_shared_store()
    if reason is not None:
        unsupported(reason)
    channel = harness.name("g11p")
    model = ping_model(channel)
    group = harness.name("grp")
    ledger = Ledger()
    effects: Counter[str] = Counter()
    member = harness.bus(idempotency_store=RecordingStore(harness.store(), ledger))
    publisher = harness.bus()

    @member.subscribe(model, group=group, idempotent=True)
    async def effect(event: Ping, delivery: Delivery) -> None:
        effects[delivery.id] += 1

    async with publisher:
        wire, envelope = _wire(model, model(key="dup", seq=1), publisher.backend.binding)
        if harness.capabilities.cross_process:
            # Another member process handles it and dies after the store recorded it, before
            # the ack: the broker redelivers it to this member.
            await _handled_in_another_process(harness, channel, group, tmp_path, publisher, wire)
            await member.start()
        else:
            # The members share one process: another bus (its own store connection) handles
            # it, then a copy of it is published.
            await _handled_by_another_bus(harness, model, channel, group, publisher, wire)
            await member.start()
            await publisher.backend.publish(channel, [wire])
        await harness.wait_for(
            # recognised as handled, or (a store the other member did not share) run again
            lambda: ledger.count(envelope.id, Claim.DONE) >= 1 or effects[envelope.id] >= 1,
            "the event handled by the other member to reach this one",
            scale=3.0 if harness.capabilities.cross_process else 1.0,
        )

    assert effects[envelope.id] == 0, (
        f"the effect ran again in another member for an event id the first member had "
        f"already handled ({effects[envelope.id]} time(s)): the idempotency store is not "
        "shared by the group's members"
    )


async def _handled_by_another_bus(
    harness: Harness,
    model: type[Ping],
    channel: str,
    group: str,
    publisher: EventBus,
    wire: WireMessage,
) -> None:
    other = harness.bus(idempotency_store=harness.store())
    handled: list[int] = []

    @other.subscribe(model, group=group, idempotent=True)
    async def effect(event: Ping) -> None:
        handled.append(event.seq)

    async with other:
        await publisher.backend.publish(channel, [wire])
        await harness.wait_for(lambda: bool(handled), "the first copy in the other member")


async def _handled_in_another_process(
    harness: Harness,
    channel: str,
    group: str,
    tmp_path: Path,
    publisher: EventBus,
    wire: WireMessage,
) -> None:
    # A new interpreter importing eventwire and its plugins: slow on a busy host.
    member = await MemberProcess.start(
        harness.url,
        channel,
        group,
        tmp_path / "handled.txt",
        name="the second member",
        patience=harness.patience * 3,
        idempotent=True,
        store=harness.idempotency_store,
    )
    try:
        await publisher.backend.publish(channel, [wire])
        try:
            code = await asyncio.wait_for(member.process.wait(), harness.patience * 3)
        except TimeoutError:
            code = None
        if code != 0 or not member.held():
            raise AssertionError(
                f"the member process did not handle the event and stop (exit code {code}; "
                f"stderr: {member.stderr_tail()!r})"
            )
    finally:
        await member.kill()
