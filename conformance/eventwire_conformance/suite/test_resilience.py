"""G12-G16: crashes, absent groups, old events, publisher confirms and broker restarts."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from eventwire import Delivery, EventBus

from eventwire_conformance._events import Ping, ping_model
from eventwire_conformance._members import MemberProcess
from eventwire_conformance._support import (
    Harness,
    missing,
    publish_confirmed,
    run_command_while,
    unsupported,
)

# -- G12 crash -------------------------------------------------------------------------------

CRASH_EVENTS = 24
CRASH_CONCURRENCY = 4


async def test_G12_killed_consumer_loses_nothing(harness: Harness, tmp_path: Path) -> None:
    channel = harness.name("g12")
    model = ping_model(channel)
    group = harness.name("grp")
    got: set[int] = set()
    attempts: dict[int, int] = {}
    survivor, publisher = harness.bus(), harness.bus()

    @survivor.subscribe(model, group=group, concurrency=4)
    async def take(event: Ping, delivery: Delivery) -> None:
        # The pipeline's attempt number of a first try is the backend's delivery_count.
        attempts.setdefault(event.seq, delivery.attempt)
        got.add(event.seq)

    expected = set(range(CRASH_EVENTS))
    events = [model(key=f"k{i % 6}", seq=i) for i in range(CRASH_EVENTS)]
    async with publisher:
        if harness.capabilities.cross_process:
            held = await _crash_subprocess(
                harness, channel, group, tmp_path, publisher, events, survivor
            )
        else:
            held = await _crash_in_process(harness, model, group, publisher, events, survivor)
        await harness.wait_for(
            lambda: got >= expected,
            lambda: (
                f"after the crash, events held by the killed member {sorted(held)}: "
                f"{missing(expected, got)}"
            ),
            # A broker notices a dead consumer process only after a session timeout.
            scale=3.0 if harness.capabilities.cross_process else 1.0,
        )
    # A redelivery says so: the max-deliveries guard against poison events depends on it.
    first = {seq: attempts[seq] for seq in sorted(held) if attempts.get(seq, 0) < 2}
    assert not first, (
        f"events redelivered after the crash came with delivery_count 1, as if never "
        f"delivered before (seq: attempt seen by the survivor): {first}"
    )


async def _crash_in_process(
    harness: Harness,
    model: type[Ping],
    group: str,
    publisher: EventBus,
    events: list[Ping],
    survivor: EventBus,
) -> set[int]:
    victim = harness.bus()
    held: set[int] = set()
    never = asyncio.Event()

    @victim.subscribe(model, group=group, concurrency=CRASH_CONCURRENCY)
    async def hold(event: Ping) -> None:
        held.add(event.seq)
        await never.wait()

    await victim.start()
    await publisher.publish_many(events)
    await harness.wait_for(
        lambda: len(held) >= CRASH_CONCURRENCY,
        lambda: f"the member to hold {CRASH_CONCURRENCY} events (holds {len(held)})",
    )
    await survivor.start()
    await victim.abort()  # a crash: nothing it holds is settled
    return held


async def _crash_subprocess(
    harness: Harness,
    channel: str,
    group: str,
    tmp_path: Path,
    publisher: EventBus,
    events: list[Ping],
    survivor: EventBus,
) -> set[int]:
    victim = await MemberProcess.start(
        harness.url,
        channel,
        group,
        tmp_path / "held.txt",
        name="victim",
        patience=harness.patience,
        concurrency=CRASH_CONCURRENCY,
    )
    try:
        await publisher.publish_many(events)
        await harness.wait_for(
            lambda: len(victim.held()) >= CRASH_CONCURRENCY,
            lambda: (
                f"the consumer process to hold {CRASH_CONCURRENCY} events "
                f"(holds {len(victim.held())})"
            ),
        )
        await survivor.start()
    finally:
        await victim.kill()
    return victim.held()


# -- G13 durable groups ----------------------------------------------------------------------


async def test_G13_events_wait_for_an_absent_group(harness: Harness) -> None:
    channel = harness.name("g13")
    model = ping_model(channel)
    group = harness.name("grp")
    first, second, publisher = harness.bus(), harness.bus(), harness.bus()
    before: set[int] = set()
    after: set[int] = set()

    @first.subscribe(model, group=group)
    async def early(event: Ping) -> None:
        before.add(event.seq)

    @second.subscribe(model, group=group, concurrency=4)
    async def late(event: Ping) -> None:
        after.add(event.seq)

    total = 12
    expected = set(range(1, total + 1))
    async with publisher:
        async with first:
            await publisher.publish(model(key="k", seq=0))
            await harness.wait_for(lambda: 0 in before, "the group's first event")
        # The group now has no running member.
        await publisher.publish_many(model(key=f"k{i % 3}", seq=i) for i in expected)
        async with second:
            await harness.wait_for(lambda: after >= expected, lambda: missing(expected, after))


# -- G14 from the beginning ------------------------------------------------------------------


async def test_G14_new_group_from_beginning(harness: Harness) -> None:
    channel = harness.name("g14")
    model = ping_model(channel)
    publisher, fresh, late = harness.bus(), harness.bus(), harness.bus()
    from_start: list[str] = []
    from_now: list[str] = []

    @fresh.subscribe(model, group=harness.name("grp-old"), from_beginning=True)
    async def replay(event: Ping) -> None:
        from_start.append(event.tag)

    @late.subscribe(model, group=harness.name("grp-new"))
    async def current(event: Ping) -> None:
        from_now.append(event.tag)

    old = [f"old{i}" for i in range(5)]
    async with publisher:
        await publisher.publish_many(model(key="fb", seq=i, tag=tag) for i, tag in enumerate(old))
        async with fresh, late:
            # Same key as the old events: any old event a group gets comes before this one.
            await publisher.publish(model(key="fb", seq=99, tag="marker"))
            await harness.wait_for(
                lambda: set(from_start) >= {*old, "marker"} and "marker" in from_now,
                lambda: f"from_beginning group got {from_start}, new group got {from_now}",
            )
            await harness.quiet(0.2)

    assert set(from_now) == {"marker"}, (
        f"a new group without from_beginning got {from_now}; it must start at new events"
    )


# -- G15 confirms ----------------------------------------------------------------------------

CONFIRM_EVENTS = 10_000


async def test_G15_concurrent_publishes_then_close_lose_nothing(harness: Harness) -> None:
    channel = harness.name("g15")
    model = ping_model(channel)
    consumer, publisher = harness.bus(), harness.bus()
    got: set[int] = set()

    @consumer.subscribe(model, group=harness.name("grp"), concurrency=16)
    async def take(event: Ping) -> None:
        got.add(event.seq)

    expected = set(range(CONFIRM_EVENTS))
    async with consumer:
        await publisher.start()
        results = await asyncio.gather(
            *(publisher.publish(model(key=f"k{i % 16}", seq=i)) for i in expected),
            return_exceptions=True,
        )
        await publisher.close()
        errors = [r for r in results if isinstance(r, BaseException)]
        assert not errors, f"{len(errors)} publishes failed, first: {errors[0]!r}"
        await harness.wait_for(lambda: got >= expected, lambda: missing(expected, got), scale=2.0)


# -- G16 reconnect ---------------------------------------------------------------------------


async def test_G16_broker_restart_loses_nothing(harness: Harness) -> None:
    command = harness.restart_cmd
    if not command:
        unsupported(
            "no broker restart command given (--restart-cmd / --eventwire-restart-cmd); "
            "G16 needs a way to restart the broker"
        )
    command = command.replace("{backend}", harness.target.id)
    channel = harness.name("g16")
    model = ping_model(channel)
    consumer, publisher = harness.bus(), harness.bus()
    got: set[int] = set()
    confirmed: set[int] = set()
    refused: list[str] = []

    @consumer.subscribe(model, group=harness.name("grp"), concurrency=4)
    async def take(event: Ping) -> None:
        got.add(event.seq)

    seq = 0

    async def publish_one(deadline: float) -> None:
        nonlocal seq
        event = model(key=f"k{seq % 4}", seq=seq)
        seq += 1
        await publish_confirmed(publisher, event, deadline, refused, "the restart")
        confirmed.add(event.seq)

    async with consumer, publisher:
        # the bound G22 gives a crash and start: a graceful restart is no faster (a cluster
        # of three RabbitMQ nodes holding hundreds of quorum queues takes minutes)
        deadline = time.monotonic() + harness.patience * 6
        for _ in range(20):
            await publish_one(deadline)
        code, output = await run_command_while(command, lambda: publish_one(deadline), deadline)
        assert code == 0, f"the restart command exited with {code}: {output[-500:]}"
        for _ in range(20):
            await publish_one(deadline)
        await harness.wait_for(
            lambda: got >= confirmed,
            lambda: (
                f"{missing(confirmed, got)} of the confirmed publishes "
                f"({len(refused)} publish attempts were refused during the restart)"
            ),
            scale=4.0,
        )
    harness.note(
        f"{len(confirmed)} confirmed events all handled; {len(refused)} publish attempts "
        "refused during the restart"
        + (
            ""
            if refused
            else " (none: the client rode through it, or the command did not restart the broker)"
        )
    )


# A broker restart (stop, start, clients reconnecting) can take minutes.
test_G16_broker_restart_loses_nothing.TIME_FACTOR = 3  # type: ignore[attr-defined]
