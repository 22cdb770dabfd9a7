"""G06-G10: failing handlers, retries, dead letters, poison messages and replay."""

from __future__ import annotations

import itertools
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

from eventwire import DeadLetter, Delivery, Envelope, EventBus, RetryPolicy, WireMessage
from eventwire.bindings import to_headers
from eventwire.codec import decode_envelope

from eventwire_conformance._contract import contract_bus_or_fail, write_contract
from eventwire_conformance._events import Ping, ping_model
from eventwire_conformance._support import Harness, missing

FAST = RetryPolicy(max_attempts=5, backoff=0.01, max_backoff=0.05, jitter=0.0)


class FlakyError(Exception):
    """What the suite's failing handlers raise."""


async def _dead_letters(
    bus: EventBus, channel: str, count: int, harness: Harness, extra: float = 0.0
) -> list[DeadLetter]:
    found: list[DeadLetter] = []

    async def enough() -> bool:
        found[:] = await bus.dead_letters(channel)
        return len(found) >= count

    await harness.wait_call(
        enough, lambda: f"{len(found)}/{count} dead letters in {channel}.dlq", extra=extra
    )
    return found


# -- G06 at-least-once -----------------------------------------------------------------------


async def test_G06_failed_handler_is_redelivered(harness: Harness) -> None:
    channel = harness.name("g06")
    model = ping_model(channel)
    bus = harness.bus()
    attempts: dict[int, list[int]] = defaultdict(list)
    done: set[int] = set()

    @bus.subscribe(model, group=harness.name("grp"), concurrency=4, retry=FAST)
    async def handle(event: Ping, delivery: Delivery) -> None:
        attempts[event.seq].append(delivery.attempt)
        if delivery.attempt < 3:
            raise FlakyError(f"failure {delivery.attempt} of event {event.seq}")
        done.add(event.seq)

    total = 20
    expected = set(range(total))
    async with bus:
        await bus.publish_many(model(key=f"k{i % 7}", seq=i) for i in range(total))
        await harness.wait_for(lambda: done >= expected, lambda: missing(expected, done))
        letters = await bus.dead_letters(channel)

    # Later deliveries of a succeeded event are G11's business; here: retried until success.
    wrong = {seq: seen for seq, seen in attempts.items() if seen[:3] != [1, 2, 3]}
    assert not wrong, f"attempt numbers seen per event (expected 1, 2, 3): {wrong}"
    assert not letters, f"{len(letters)} events were dead-lettered although they succeeded"


# -- G07 retry -------------------------------------------------------------------------------


async def test_G07_retry_bounds_and_backoff(harness: Harness) -> None:
    channel = harness.name("g07")
    model = ping_model(channel)
    bus = harness.bus()
    policy = RetryPolicy(max_attempts=4, backoff=0.05, multiplier=2.0, max_backoff=1.0, jitter=0.0)
    calls: list[tuple[int, float]] = []

    # dead_letter=False: what happens after the last attempt is G08's business.
    @bus.subscribe(model, group=harness.name("grp"), retry=policy, dead_letter=False)
    async def handle(event: Ping, delivery: Delivery) -> None:
        calls.append((delivery.attempt, time.monotonic()))
        raise FlakyError("always fails")

    async with bus:
        await bus.publish(model(key="k", seq=1))
        await harness.wait_for(
            lambda: len(calls) >= policy.max_attempts,
            lambda: f"{len(calls)}/{policy.max_attempts} attempts",
            extra=2.0,
        )
        await harness.quiet(0.5)  # a fifth attempt would come within 0.4 s

    seen = [attempt for attempt, _ in calls]
    assert seen[:4] == [1, 2, 3, 4], f"attempt numbers: expected [1, 2, 3, 4], got {seen}"
    beyond = [attempt for attempt in seen if attempt > policy.max_attempts]
    assert not beyond, f"attempts beyond max_attempts=4 were made: {seen}"
    first = calls[:4]
    gaps = [later - earlier for (_, earlier), (_, later) in itertools.pairwise(first)]
    for n, gap in enumerate(gaps, start=1):
        wanted = policy.backoff * policy.multiplier ** (n - 1)
        assert gap >= wanted - 0.01, (
            f"attempt {n + 1} came {gap:.3f}s after attempt {n}; the backoff is {wanted:.3f}s"
        )
        assert gap <= wanted + 2.0, (
            f"attempt {n + 1} came {gap:.3f}s after attempt {n}; the backoff is {wanted:.3f}s"
        )


async def test_G07_retries_keep_key_order(harness: Harness) -> None:
    channel = harness.name("g07o")
    model = ping_model(channel)
    bus = harness.bus()
    trace: list[str] = []

    @bus.subscribe(model, group=harness.name("grp"), concurrency=4, retry=FAST)
    async def handle(event: Ping, delivery: Delivery) -> None:
        trace.append(f"{event.seq}#{delivery.attempt}")
        if event.seq == 1 and delivery.attempt < 3:
            raise FlakyError("first event fails twice")

    async with bus:
        await bus.publish(model(key="same", seq=1))
        await bus.publish(model(key="same", seq=2))
        await bus.publish(model(key="same", seq=3))
        await harness.wait_for(lambda: len(trace) >= 5, lambda: f"calls so far: {trace}")
        await harness.quiet(0.1)

    assert trace[:5] == ["1#1", "1#2", "1#3", "2#1", "3#1"], (
        f"same-key events must wait for a retried one: expected calls "
        f"['1#1', '1#2', '1#3', '2#1', '3#1'], got {trace}"
    )


# -- G08 dead-letter -------------------------------------------------------------------------


async def test_G08_dead_letter_after_last_attempt(harness: Harness) -> None:
    channel = harness.name("g08")
    model = ping_model(channel)
    group = harness.name("grp")
    bus = harness.bus()
    calls: list[int] = []
    handled: list[int] = []
    policy = RetryPolicy(max_attempts=2, backoff=0.01, max_backoff=0.01, jitter=0.0)

    @bus.subscribe(model, group=group, retry=policy)
    async def handle(event: Ping, delivery: Delivery) -> None:
        if event.seq == 1:
            calls.append(delivery.attempt)
            raise FlakyError("cannot handle event 1")
        handled.append(event.seq)

    poison = model(key="k", seq=1, tag="doomed")
    headers = {"x-tenant": "acme", "x-reason": "g08"}
    started = datetime.now(UTC)
    async with bus:
        sent = await bus.publish(poison, correlation_id="corr-g08", headers=headers)
        await bus.publish(model(key="k", seq=2))
        await harness.wait_for(lambda: 2 in handled, "the event after the failing one")
        letters = await _dead_letters(bus, channel, 1, harness)
        await harness.quiet(0.1)
        letters = await bus.dead_letters(channel)

    assert calls[:2] == [1, 2], f"the failing event was tried {calls}, expected attempts [1, 2]"
    ids = [_event_id(letter, bus) for letter in letters]
    assert set(ids) == {sent.id}, (
        f"the DLQ holds {ids}; expected only the failing event {sent.id} (the next one succeeded)"
    )
    letter = letters[0]
    assert letter.reason == "max-attempts", f"reason: {letter.reason!r}"
    assert letter.error_type == "FlakyError", f"error type: {letter.error_type!r}"
    assert "cannot handle event 1" in letter.error, f"error text: {letter.error!r}"
    assert letter.attempts == 2, f"attempts: {letter.attempts}"
    assert letter.group == group, f"group: {letter.group!r}, expected {group!r}"
    assert letter.channel == channel, f"channel: {letter.channel!r}, expected {channel!r}"
    assert letter.time is not None, "the dead letter has no time"
    assert (
        started - timedelta(minutes=1) <= letter.time <= datetime.now(UTC) + timedelta(minutes=1)
    ), f"dead-letter time {letter.time} is not the time of the failure"
    _check_original(letter.original, sent, poison, bus.backend.binding)
    for name, value in headers.items():
        assert letter.original.headers.get(name) == value, (
            f"the dead letter lost header {name!r} (original headers: "
            f"{dict(letter.original.headers)})"
        )
    envelope = decode_envelope(letter.original.headers, bus.backend.binding)
    assert envelope.correlationid == "corr-g08", (
        f"the dead letter lost the correlation id: {envelope.correlationid!r}"
    )


def _check_original(original: WireMessage, sent: Envelope, event: Ping, binding: str) -> None:
    envelope = decode_envelope(original.headers, binding)
    assert envelope.id == sent.id, f"dead letter id {envelope.id!r}, expected {sent.id!r}"
    assert envelope.type == sent.type, f"dead letter type {envelope.type!r}"
    received = type(event).model_validate_json(original.body)
    assert received == event, f"dead letter payload {received!r}, expected {event!r}"
    assert original.key == event.key, f"dead letter key {original.key!r}, expected {event.key!r}"


# -- G09 poison ------------------------------------------------------------------------------


async def test_G09_poison_goes_to_dlq_at_once(harness: Harness) -> None:
    channel = harness.name("g09")
    model = ping_model(channel)
    bus = harness.bus()
    handled: list[int] = []
    slow = RetryPolicy(max_attempts=5, backoff=5.0, max_backoff=5.0, jitter=0.0)

    @bus.subscribe(model, group=harness.name("grp"), retry=slow)
    async def handle(event: Ping) -> None:
        handled.append(event.seq)

    garbage = WireMessage(body=b"\xff\xfe\x00 not an event {", headers={"x-junk": "1"})
    envelope = Envelope.new(type="Ping", source="conformance/g09", subject="p")
    invalid = WireMessage(
        body=b'{"key": 5, "tag": ["not", "a", "string"]}',
        headers=to_headers(envelope, bus.backend.binding),
        key="p",
    )
    async with bus:
        started = time.monotonic()
        await bus.backend.publish(channel, [garbage])
        await bus.backend.publish(channel, [invalid])
        await bus.publish(model(key="p", seq=7))
        letters = await _dead_letters(bus, channel, 2, harness)
        elapsed = time.monotonic() - started
        await harness.wait_for(lambda: 7 in handled, "the valid event after the poison")

    assert set(handled) == {7}, f"the handler saw {handled}; it must see only the valid event 7"
    by_body: dict[bytes, DeadLetter] = {}
    for letter in letters:  # oldest first: the first dead letter of each message counts
        by_body.setdefault(letter.original.body, letter)
    for name, message in (("undecodable", garbage), ("invalid", invalid)):
        first = by_body.get(message.body)
        assert first is not None, (
            f"the {name} message is not in the DLQ with its original body "
            f"(DLQ bodies: {[lt.original.body[:40] for lt in letters]})"
        )
        assert first.reason == "invalid", f"{name} message: reason {first.reason!r}"
        assert first.attempts == 1, f"{name} message: {first.attempts} attempts, expected 1"
    assert elapsed < slow.backoff, (
        f"poison took {elapsed:.1f}s to reach the DLQ: it was retried instead of "
        "dead-lettered at once"
    )


async def test_G09_contract_invalid_goes_to_dlq(harness: Harness, tmp_path: Path) -> None:
    channel = harness.name("g09c")
    model = ping_model(channel, type_name="ContractPing")
    path = write_contract(tmp_path, channel)
    consumer = contract_bus_or_fail(harness, path)
    producer = harness.bus()  # no contract: it can send what the contract forbids
    handled: list[str] = []

    @consumer.subscribe(model, group=harness.name("grp"), retry=FAST)
    async def handle(event: Ping) -> None:
        handled.append(event.tag)

    async with consumer, producer:
        await producer.publish(model(key="c", seq=1, tag="far-too-long-for-the-contract"))
        await producer.publish(model(key="c", seq=2, tag="ok"))
        letters = await _dead_letters(consumer, channel, 1, harness)
        await harness.wait_for(lambda: "ok" in handled, "the valid event after the invalid one")

    assert set(handled) == {"ok"}, (
        f"the handler saw {handled}; the contract-invalid event must not run"
    )
    assert letters[0].reason == "invalid", f"reason {letters[0].reason!r}, expected 'invalid'"
    assert letters[0].attempts == 1, f"{letters[0].attempts} attempts, expected 1"


# -- G10 replay ------------------------------------------------------------------------------


async def test_G10_list_and_replay_dead_letters(harness: Harness) -> None:
    channel = harness.name("g10")
    model = ping_model(channel)
    bus = harness.bus()
    broken = {"now": True}
    handled: list[tuple[int, str]] = []
    once = RetryPolicy(max_attempts=1, backoff=0.0, max_backoff=0.0)

    @bus.subscribe(model, group=harness.name("grp"), retry=once)
    async def handle(event: Ping, delivery: Delivery) -> None:
        if broken["now"] and event.tag != "marker":
            raise FlakyError("the handler is broken")
        handled.append((event.seq, delivery.id))

    events = [model(key="r", seq=i) for i in range(3)]
    async with bus:
        sent = [await bus.publish(event) for event in events]
        letters = await _dead_letters(bus, channel, 3, harness)
        listed = {_event_id(letter, bus) for letter in letters}
        assert listed == {s.id for s in sent}, (
            f"dead_letters() lists {sorted(listed)}, expected the ids {[s.id for s in sent]}"
        )
        broken["now"] = False
        replayed = await bus.replay_dead_letters(channel, ids=[sent[0].id, sent[2].id])
        assert replayed >= 2, f"replay_dead_letters returned {replayed}, expected 2"
        await bus.publish(model(key="r", seq=99, tag="marker"))
        await harness.wait_for(
            lambda: any(seq == 99 for seq, _ in handled), lambda: f"handled so far: {handled}"
        )

    replayed_events = {entry for entry in handled if entry[0] != 99}
    assert replayed_events == {(0, sent[0].id), (2, sent[2].id)}, (
        f"after replaying events 0 and 2 the handler saw {sorted(replayed_events)} "
        f"(expected events 0 and 2 with their original ids {sent[0].id}, {sent[2].id})"
    )


def _event_id(letter: DeadLetter, bus: EventBus) -> str:
    return decode_envelope(letter.original.headers, bus.backend.binding).id
