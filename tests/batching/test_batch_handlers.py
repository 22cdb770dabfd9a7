"""Batch handlers (`BatchPolicy`, `BatchError`) on the embedded backends and every real broker.

Each backend test runs the real pipeline through `EventBus` on fresh channels: key order
inside and across batches, a partial failure (retried events, a dead-lettered one, the rest
settled once), a whole-batch failure, idempotent redelivery.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import uuid
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import pytest
from eventwire import (
    BatchError,
    BatchPolicy,
    ConfigurationError,
    Event,
    EventBus,
    Middleware,
    NonRetryableError,
    RetryPolicy,
)
from eventwire_conformance._cleanup import delete_channels

pytestmark = pytest.mark.anyio

BROKERS = {
    "kafka": os.environ.get("EVENTWIRE_KAFKA_URL", "kafka://127.0.0.1:9092"),
    "rabbit": os.environ.get("EVENTWIRE_RABBIT_URL", "amqp://guest:guest@127.0.0.1:5672/"),
    "redis": os.environ.get("EVENTWIRE_REDIS_URL", "redis://127.0.0.1:6379/0"),
    "nats": os.environ.get("EVENTWIRE_NATS_URL", "nats://127.0.0.1:4222"),
}
BACKENDS = [
    pytest.param("memory", id="memory"),
    pytest.param("sqlite", id="sqlite"),
    *(pytest.param(name, id=name, marks=pytest.mark.broker) for name in sorted(BROKERS)),
]
FAST = RetryPolicy(max_attempts=3, backoff=0.01, max_backoff=0.05, jitter=0.0)


class Order(Event):
    key: str
    seq: int


def order_model(channel: str) -> type[Order]:
    class ChannelOrder(Order, channel=channel, key="key", type="BatchOrder"):
        pass

    return ChannelOrder


@pytest.fixture
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    name = request.param
    if name == "memory":
        return "memory://"
    if name == "sqlite":
        return f"sqlite://{tmp_path}/batch.db"
    return BROKERS[name]


def fresh(prefix: str) -> str:
    return f"batch-{prefix}-{uuid.uuid4().hex[:10]}"


async def until(check: Callable[[], bool], within: float = 30.0) -> None:
    for _ in range(int(within / 0.02)):
        if check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"condition not met within {within}s")


async def cleanup(url: str, channel: str) -> None:
    """Delete `channel` and its dead letters once the test's bus is closed (a Kafka topic
    deleted under a running member leaves aiokafka retrying a commit until its close gives
    up). Best effort: a leftover only costs space."""
    with contextlib.suppress(Exception):
        await delete_channels(url, [channel], timeout=30)


@pytest.mark.parametrize("url", BACKENDS, indirect=True)
async def test_batches_keep_key_order_within_and_across_batches(url: str) -> None:
    channel = fresh("order")
    model = order_model(channel)
    bus = EventBus(url, source="batch-test")
    batches: list[list[tuple[str, int]]] = []

    @bus.subscribe(
        model,
        group=f"{channel}.g",
        from_beginning=True,
        batch=BatchPolicy(max_size=50, max_wait=0.05),
    )
    async def handle(events: list[Order]) -> None:
        batches.append([(e.key, e.seq) for e in events])
        await asyncio.sleep(0)  # let the backend deliver more while this batch runs

    keys = [f"k{i}" for i in range(5)]
    try:
        async with bus:
            for start in range(0, 300, 60):
                await bus.publish_many(
                    model(key=keys[seq % 5], seq=seq) for seq in range(start, start + 60)
                )
            await until(lambda: sum(map(len, batches)) >= 300)
    finally:
        await cleanup(url, channel)
    seen = [item for batch in batches for item in batch]
    assert sorted(seq for _, seq in seen) == list(range(300))  # each once
    per_key: dict[str, list[int]] = defaultdict(list)
    for key, seq in seen:
        per_key[key].append(seq)
    for key, seqs in per_key.items():
        assert seqs == sorted(seqs), f"{key} out of order: {seqs}"
    assert max(map(len, batches)) <= 50
    assert len(batches) < 300  # events were handed over together, not one by one


@pytest.mark.parametrize("url", BACKENDS, indirect=True)
async def test_a_partial_failure_retries_and_dead_letters_only_the_failed_events(
    url: str,
) -> None:
    channel = fresh("partial")
    model = order_model(channel)
    bus = EventBus(url, source="batch-test")
    calls: list[list[int]] = []
    handled: list[int] = []
    flaky = {3, 7}  # fail once, then succeed
    poison = 5  # never handled: dead-lettered at once

    @bus.subscribe(
        model,
        group=f"{channel}.g",
        from_beginning=True,
        retry=FAST,
        batch=BatchPolicy(max_size=10, max_wait=0.5),
    )
    async def handle(events: list[Order]) -> None:
        calls.append([e.seq for e in events])
        failed: dict[int, Exception] = {}
        for index, event in enumerate(events):
            if event.seq == poison:
                failed[index] = NonRetryableError("cannot be handled", reason="poison")
            elif event.seq in flaky:
                flaky.discard(event.seq)
                failed[index] = RuntimeError("temporarily down")
            else:
                handled.append(event.seq)
        if failed:
            raise BatchError(failed)

    try:
        async with bus:
            await bus.publish_many(model(key=f"k{seq}", seq=seq) for seq in range(10))
            await until(lambda: len(handled) == 9)
            letters: list[object] = []

            async def dead() -> bool:
                letters[:] = await bus.dead_letters(channel)
                return len(letters) == 1

            for _ in range(500):
                if await dead():
                    break
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.2)  # nothing else may arrive
    finally:
        await cleanup(url, channel)
    assert sorted(handled) == [s for s in range(10) if s != poison]  # each exactly once
    assert sorted(calls[0]) == list(range(10))
    assert sorted(calls[1]) == [3, 7]  # only the retryable failures, as a smaller batch
    assert len(calls) == 2
    (letter,) = letters
    assert letter.reason == "poison"  # type: ignore[attr-defined]
    assert json.loads(letter.original.body)["seq"] == poison  # type: ignore[attr-defined]


@pytest.mark.parametrize("url", ["memory", "sqlite"], indirect=True)
async def test_an_exception_fails_the_whole_batch_and_retries_it(url: str) -> None:
    channel = fresh("whole")
    model = order_model(channel)
    bus = EventBus(url, source="batch-test")
    calls: list[list[int]] = []

    @bus.subscribe(
        model,
        group=f"{channel}.g",
        from_beginning=True,
        retry=FAST,
        batch=BatchPolicy(max_size=4, max_wait=0.5),
    )
    async def handle(events: list[Order]) -> None:
        calls.append([e.seq for e in events])
        if len(calls) == 1:
            raise RuntimeError("database unavailable")

    async with bus:
        await bus.publish_many(model(key="k", seq=seq) for seq in range(4))
        await until(lambda: len(calls) == 2)
        await asyncio.sleep(0.2)
        assert await bus.dead_letters(channel) == []
    assert calls == [[0, 1, 2, 3], [0, 1, 2, 3]]


@pytest.mark.parametrize("url", ["memory"], indirect=True)
async def test_exhausted_retries_dead_letter_each_event(url: str) -> None:
    channel = fresh("exhaust")
    model = order_model(channel)
    bus = EventBus(url, source="batch-test")
    calls: list[list[int]] = []

    @bus.subscribe(model, group="g", retry=FAST, batch=BatchPolicy(max_size=3, max_wait=0.5))
    async def handle(events: list[Order]) -> None:
        calls.append([e.seq for e in events])
        raise BatchError({0: RuntimeError("always")})

    async with bus:
        await bus.publish_many(model(key="k", seq=seq) for seq in range(3))
        await until(lambda: len(calls) == 3)
        letters = []
        for _ in range(200):
            letters = await bus.dead_letters(channel)
            if letters:
                break
            await asyncio.sleep(0.02)
    assert calls == [[0, 1, 2], [0], [0]]  # event 0 alone, up to max_attempts
    assert [(json.loads(d.original.body)["seq"], d.reason, d.attempts) for d in letters] == [
        (0, "max-attempts", 3)
    ]


@pytest.mark.parametrize("url", ["memory"], indirect=True)
async def test_idempotent_batches_skip_events_already_handled(url: str) -> None:
    channel = fresh("idem")
    model = order_model(channel)
    bus = EventBus(url, source="batch-test")
    seen: list[int] = []

    @bus.subscribe(model, group="g", idempotent=True, batch=BatchPolicy(max_size=10, max_wait=0.05))
    async def handle(events: list[Order]) -> None:
        seen.extend(e.seq for e in events)

    async with bus:
        envelopes = await bus.publish_many(model(key="k", seq=seq) for seq in range(3))
        await until(lambda: len(seen) == 3)
        # the same events again (same ids): a replay or a duplicate publish
        originals = await bus.backend.browse(channel)
        await bus.backend.publish(channel, originals)
        await asyncio.sleep(0.3)
    assert len(envelopes) == 3
    assert seen == [0, 1, 2]


# -- bad settings -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        (lambda: BatchPolicy(max_size=0), "max_size must be an int >= 1, got 0"),
        (lambda: BatchPolicy(max_size=True), "max_size must be an int >= 1"),
        (lambda: BatchPolicy(max_wait=-1), "max_wait must be a number of seconds >= 0"),
        (lambda: BatchPolicy(max_wait=float("nan")), "max_wait must be a number"),
    ],
)
def test_a_bad_policy_says_what_is_wrong(policy: Callable[[], object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        policy()


def test_bad_batch_subscriptions_are_refused() -> None:
    model = order_model("batch-config")
    bus = EventBus(source="batch-test")

    async def handle(events: list[Order]) -> None:
        pass

    async def two(events: list[Order], delivery: object) -> None:
        pass

    policy = BatchPolicy(max_size=10)
    with pytest.raises(ConfigurationError, match="batch must be a BatchPolicy"):
        bus.subscribe(model, batch=10)(handle)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="one batch at a time"):
        bus.subscribe(model, batch=policy, concurrency=4)(handle)
    with pytest.raises(ConfigurationError, match="max_in_flight=5 is below"):
        bus.subscribe(model, batch=policy, max_in_flight=5)(handle)
    with pytest.raises(ConfigurationError, match=r"not an eventwire\.Middleware"):
        bus.subscribe(model, batch=policy, middlewares=[object()])(handle)  # type: ignore[list-item]
    with pytest.raises(ConfigurationError, match="does not override consume_batch"):
        bus.subscribe(model, batch=policy, middlewares=[Middleware()])(handle)
    with pytest.raises(ConfigurationError, match="takes one argument, the list of events"):
        bus.subscribe(model, batch=policy)(two)
    bus.subscribe(model, group="g", batch=policy)(handle)
    assert bus.subscriptions[("batch-config", "g")].max_in_flight == 40  # four batches
    with pytest.raises(ConfigurationError, match="needs a group of its own"):
        bus.subscribe(model, group="g")(handle)


def test_batch_error_checks_what_it_is_given() -> None:
    with pytest.raises(TypeError, match="indices are ints"):
        BatchError({"0": RuntimeError()})  # type: ignore[dict-item]
    with pytest.raises(TypeError, match="not an exception"):
        BatchError({0: "failed"})  # type: ignore[dict-item]
    assert "2 event(s) of the batch failed (index 1, 4)" in str(
        BatchError({4: ValueError(), 1: ValueError()})
    )


@pytest.mark.parametrize("url", ["memory", "sqlite"], indirect=True)
async def test_a_batch_cut_short_by_a_crash_is_delivered_again(url: str) -> None:
    if url == "memory://":
        url = f"memory://{fresh('crash')}"  # one in-process broker shared by both buses
    channel = fresh("crash")
    model = order_model(channel)
    policy = BatchPolicy(max_size=10, max_wait=0.05)
    started = asyncio.Event()
    first = EventBus(url, source="batch-test")

    @first.subscribe(model, group="g", from_beginning=True, batch=policy)
    async def stuck(events: list[Order]) -> None:
        started.set()
        await asyncio.Event().wait()  # never finishes: the process dies first

    await first.start()
    await first.publish_many(model(key="k", seq=seq) for seq in range(5))
    await asyncio.wait_for(started.wait(), 30)
    await first.abort()

    second = EventBus(url, source="batch-test")
    seen: list[int] = []

    @second.subscribe(model, group="g", from_beginning=True, batch=policy)
    async def handle(events: list[Order]) -> None:
        seen.extend(e.seq for e in events)

    async with second:
        await until(lambda: len(seen) >= 5)
    assert seen == [0, 1, 2, 3, 4]
