"""G17-G20: large payloads, shutdown, backpressure and contracts."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import random
from collections import Counter
from pathlib import Path

from eventwire import EventValidationError, MessageTooLargeError

from eventwire_conformance._contract import MAX_TAG, contract_bus_or_fail, write_contract
from eventwire_conformance._events import Blob, Ping, blob_model, ping_model
from eventwire_conformance._support import Harness, missing

MIB = 1024 * 1024

# -- G17 large payloads ----------------------------------------------------------------------


async def test_G17_one_mib_payload_roundtrips(harness: Harness) -> None:
    limit = harness.capabilities.max_message_bytes
    assert limit is None or limit > MIB + 4096, (
        f"the backend declares max_message_bytes={limit}, below a 1 MiB payload plus its "
        "envelope; raise the limit (the broker's and the backend's) to at least 1.1 MB"
    )
    channel = harness.name("g17")
    model = blob_model(channel)
    bus = harness.bus()
    got: list[Blob] = []

    @bus.subscribe(model, group=harness.name("grp"))
    async def handle(event: Blob) -> None:
        got.append(event)

    # Random text (not one repeated byte), so truncation or corruption cannot hide.
    data = base64.b64encode(random.Random(17).randbytes(MIB * 3 // 4)).decode()
    assert len(data) == MIB
    async with bus:
        await bus.publish(model(key="big", data=data))
        await harness.wait_for(lambda: bool(got), "the 1 MiB event", scale=1.5)

    received = got[0].data
    assert len(received) == MIB, f"received {len(received)} characters, sent {MIB}"
    assert hashlib.sha256(received.encode()).digest() == hashlib.sha256(data.encode()).digest(), (
        "the 1 MiB payload arrived with the right length but different content"
    )


async def test_G17_too_large_is_refused_at_publish(harness: Harness) -> None:
    limit = harness.capabilities.max_message_bytes
    if limit is None:
        return  # the backend declares no limit: nothing is too large for it
    channel = harness.name("g17l")
    model = blob_model(channel)
    bus = harness.bus()
    got: list[str] = []

    @bus.subscribe(model, group=harness.name("grp"))
    async def handle(event: Blob) -> None:
        got.append(event.key)

    async with bus:
        try:
            await bus.publish(model(key="huge", data="x" * (limit + 1)))
        except MessageTooLargeError as exc:
            text = str(exc)
            assert str(limit) in text.replace(",", ""), (
                f"MessageTooLargeError should name the limit ({limit}): {text!r}"
            )
        else:
            raise AssertionError(
                f"publishing {limit + 1} bytes (above max_message_bytes={limit}) did not raise "
                "MessageTooLargeError"
            )
        await bus.publish(model(key="small", data="ok"))
        await harness.wait_for(lambda: "small" in got, "the small event after the huge one")

    # Duplicates of the small event are G11's business; the huge one must never arrive.
    assert set(got) == {"small"}, f"received {got}; the refused event must not be sent"


# -- G18 graceful shutdown -------------------------------------------------------------------


async def test_G18_close_finishes_in_flight_and_redelivers_nothing_finished(
    harness: Harness,
) -> None:
    channel = harness.name("g18")
    model = ping_model(channel)
    group = harness.name("grp")
    started: set[int] = set()
    finished: set[int] = set()
    later: Counter[int] = Counter()

    first, second, publisher = harness.bus(), harness.bus(), harness.bus()

    @first.subscribe(model, group=group, concurrency=4)
    async def slow(event: Ping) -> None:
        started.add(event.seq)
        await asyncio.sleep(0.3)
        finished.add(event.seq)

    @second.subscribe(model, group=group, concurrency=4)
    async def fast(event: Ping) -> None:
        later[event.seq] += 1

    total = 16
    expected = set(range(total))
    async with publisher:
        await first.start()
        await publisher.publish_many(model(key=f"k{i}", seq=i) for i in range(total))
        await harness.wait_for(
            lambda: len(started) >= 4, lambda: f"{len(started)}/4 handlers running"
        )
        running = set(started)
        await first.close()
        cut = running - finished
        assert not cut, f"close() returned while handlers of events {sorted(cut)} had not finished"
        assert started == finished, f"handlers cut off by close(): {sorted(started - finished)}"

        async with second:
            await harness.wait_for(
                lambda: finished | set(later) >= expected,
                lambda: (
                    f"after close, the rest of the group's events: "
                    f"{missing(expected, finished | set(later))}"
                ),
            )
            await harness.quiet(0.3)

    again = sorted(finished & set(later))
    assert not again, (
        f"events finished before close() were delivered again to the next member: {again}"
    )
    twice = sorted(s for s, n in later.items() if n > 1)
    assert not twice, f"events handled twice by the next member: {twice}"


# -- G19 backpressure ------------------------------------------------------------------------


#: Handler calls a correct backend may have waiting beyond the window: it awaits each call,
#: so at most one per fetch loop (partition, shard, consumer) running at once. Every backend
#: of the project has one call waiting at most (8 or 9 handed over with a window of 8).
G19_WAITING_CALLS = 16


async def test_G19_slow_handler_bounds_in_flight(harness: Harness) -> None:
    channel = harness.name("g19")
    model = ping_model(channel)
    window = 8
    total = 200
    bus, publisher = harness.bus(), harness.bus()
    done: set[int] = set()
    running = {"now": 0, "peak": 0}
    sampled: list[int] = []
    stalled = asyncio.Event()

    @bus.subscribe(model, group=harness.name("grp"), concurrency=2, max_in_flight=window)
    async def slow(event: Ping) -> None:
        running["now"] += 1
        running["peak"] = max(running["peak"], running["now"])
        await stalled.wait()
        await asyncio.sleep(0.005)
        running["now"] -= 1
        done.add(event.seq)

    def stats() -> dict[str, int]:
        mine = [s for s in bus.consumer_stats() if s["channel"] == channel]
        assert len(mine) == 1, f"consumer_stats() has {len(mine)} entries for {channel}"
        return mine[0]

    async with bus, publisher:
        await publisher.publish_many(model(key=f"k{i % 50}", seq=i) for i in range(total))
        expected = set(range(total))
        # The handler is stalled: the window fills, and a backend that does not wait for
        # the handler keeps handing deliveries over (fetched, unsettled, held for nothing).
        await harness.wait_for(
            lambda: stats()["in_flight"] >= window,
            lambda: f"the window of {window} to fill (in flight {stats()['in_flight']})",
        )
        await harness.quiet(0.5)
        held = stats()["peak_handed"]
        stalled.set()

        def finished() -> bool:
            sampled.append(stats()["in_flight"])
            return done >= expected

        await harness.wait_for(finished, lambda: missing(expected, done), extra=total * 0.005)

    bound = window + G19_WAITING_CALLS
    assert held <= bound, (
        f"with the handler stalled, the backend handed over {held} of {total} deliveries "
        f"that could not be settled (max_in_flight={window}; at most {bound}): it does not "
        f"wait for the handler, so what it fetches is unbounded"
    )
    peak = stats()["peak_in_flight"]
    assert peak <= window, f"peak_in_flight {peak} exceeds max_in_flight={window}"
    assert max(sampled) <= window, f"in_flight reached {max(sampled)} (max_in_flight={window})"
    assert running["peak"] <= 2, f"{running['peak']} handlers ran at once with concurrency=2"
    assert peak >= 2, f"peak_in_flight {peak}: the consumer never had two events in flight"


# -- G20 contract ----------------------------------------------------------------------------


async def test_G20_contract_refuses_invalid_event(harness: Harness, tmp_path: Path) -> None:
    channel = harness.name("g20")
    model = ping_model(channel, type_name="ContractPing")
    path = write_contract(tmp_path, channel)
    producer = contract_bus_or_fail(harness, path)
    observer = harness.bus()
    seen: list[str] = []

    @observer.subscribe(model, group=harness.name("grp"))
    async def watch(event: Ping) -> None:
        seen.append(event.tag)

    too_long = "x" * (MAX_TAG + 5)
    async with observer, producer:
        await producer.publish(model(key="c", seq=1, tag="first"))
        refusal = ""
        try:
            await producer.publish(model(key="c", seq=2, tag=too_long))
        except EventValidationError as exc:
            refusal = str(exc)
        assert refusal, (
            "publishing an event whose tag breaks the contract's maxLength did not raise "
            "EventValidationError"
        )
        assert "tag" in refusal, f"the error does not say what is wrong: {refusal}"
        try:
            await producer.publish_many(
                [model(key="c", seq=3, tag="valid"), model(key="c", seq=4, tag=too_long)]
            )
        except EventValidationError:
            pass
        else:
            raise AssertionError("publish_many with one contract-breaking event did not raise")
        await producer.publish(model(key="c", seq=5, tag="last"))
        await harness.wait_for(lambda: "last" in seen, lambda: f"received so far: {seen}")

    assert set(seen) == {"first", "last"}, (
        f"received {seen}; nothing of a refused publish may be sent (expected 'first' and "
        "'last' only)"
    )
