from __future__ import annotations

import asyncio
import functools
from collections import defaultdict
from typing import Any

import pytest
from eventwire import (
    BusClosedError,
    Command,
    ConfigurationError,
    Delivery,
    Event,
    EventBus,
    EventValidationError,
    InvalidURLError,
    RetryPolicy,
    UnknownBackendError,
    WireMessage,
)

from ._helpers import memory_url, wait_for

pytestmark = pytest.mark.anyio

FAST = RetryPolicy(max_attempts=3, backoff=0.001, max_backoff=0.005, jitter=0)


class OrderPlaced(Event, channel="orders", key="order_id"):
    order_id: str
    seq: int = 0


class ChargeCard(Command, channel="payments.commands", key="order_id"):
    order_id: str


async def test_roundtrip_with_delivery_and_headers() -> None:
    bus = EventBus(memory_url(), source="shop")
    got: list[tuple[OrderPlaced, Delivery]] = []

    @bus.subscribe(OrderPlaced, group="billing")
    async def handle(event: OrderPlaced, delivery: Delivery) -> None:
        got.append((event, delivery))

    async with bus:
        sent = await bus.publish(
            OrderPlaced(order_id="o-1"), correlation_id="req-1", headers={"tenant": "acme"}
        )
        await wait_for(lambda: len(got) == 1)
    event, delivery = got[0]
    assert event == OrderPlaced(order_id="o-1")
    assert delivery.id == sent.id and delivery.attempt == 1
    assert delivery.envelope.source == "shop" and delivery.envelope.subject == "o-1"
    assert delivery.correlation_id == "req-1" and delivery.headers == {"tenant": "acme"}
    assert (delivery.channel, delivery.group) == ("orders", "billing")


async def test_key_order_with_two_members_and_concurrency() -> None:
    """1,000 events over 16 keys, concurrency=8, two members: per-key order holds."""

    url = memory_url()
    seen: dict[str, list[int]] = defaultdict(list)
    running: set[str] = set()
    overlaps: list[str] = []
    members = [EventBus(url, source=f"m{i}") for i in range(2)]
    per_member = [0, 0]

    for index, bus in enumerate(members):

        @bus.subscribe(OrderPlaced, group="inventory", concurrency=8)
        async def handle(event: OrderPlaced, _i: int = index) -> None:
            if event.order_id in running:
                overlaps.append(event.order_id)
            running.add(event.order_id)
            await asyncio.sleep(0.0005 * (event.seq % 3))
            seen[event.order_id].append(event.seq)
            running.discard(event.order_id)
            per_member[_i] += 1

    for bus in members:
        await bus.start()
    publisher = EventBus(url, source="pub")
    async with publisher:
        await publisher.publish_many(OrderPlaced(order_id=f"k{n % 16}", seq=n) for n in range(1000))
        await wait_for(lambda: sum(len(v) for v in seen.values()) == 1000)
    for bus in members:
        await bus.close()
    assert len(seen) == 16
    for key, seqs in seen.items():
        assert seqs == sorted(seqs), f"key {key} out of order"
    assert overlaps == []
    assert all(per_member), f"both members must share the work, got {per_member}"


async def test_fan_out_to_every_group() -> None:
    bus = EventBus(memory_url())
    a: list[str] = []
    b: list[str] = []

    @bus.subscribe(OrderPlaced, group="a")
    async def ha(event: OrderPlaced) -> None:
        a.append(event.order_id)

    @bus.subscribe(OrderPlaced, group="b")
    async def hb(event: OrderPlaced) -> None:
        b.append(event.order_id)

    async with bus:
        await bus.publish_many(OrderPlaced(order_id=str(i)) for i in range(20))
        await wait_for(lambda: len(a) == 20 and len(b) == 20)
    assert sorted(a) == sorted(b) == sorted(str(i) for i in range(20))


async def test_failing_twice_then_succeeding_sees_attempts_1_2_3() -> None:
    bus = EventBus(memory_url())
    attempts: list[int] = []

    @bus.subscribe(OrderPlaced, group="g", retry=FAST)
    async def handle(event: OrderPlaced, delivery: Delivery) -> None:
        attempts.append(delivery.attempt)
        if delivery.attempt < 3:
            raise RuntimeError("flaky")

    async with bus:
        await bus.publish(OrderPlaced(order_id="o-1"))
        await wait_for(lambda: len(attempts) == 3)
        await asyncio.sleep(0.05)
        assert await bus.dead_letters(OrderPlaced) == []
    assert attempts == [1, 2, 3]


async def test_always_failing_handler_gives_one_dead_letter_with_metadata() -> None:
    bus = EventBus(memory_url())
    calls: list[int] = []

    @bus.subscribe(OrderPlaced, group="billing", retry=FAST)
    async def handle(event: OrderPlaced, delivery: Delivery) -> None:
        calls.append(delivery.attempt)
        raise ValueError("card declined")

    async with bus:
        sent = await bus.publish(OrderPlaced(order_id="o-9"), headers={"tenant": "acme"})
        await wait_for(lambda: len(calls) == 3)
        letters: list[Any] = []

        async def one_letter() -> bool:
            letters[:] = await bus.dead_letters("orders")
            return len(letters) == 1

        for _ in range(200):
            if await one_letter():
                break
            await asyncio.sleep(0.01)
    assert calls == [1, 2, 3]
    (letter,) = letters
    assert letter.reason == "max-attempts"
    assert letter.error_type == "ValueError" and letter.error == "card declined"
    assert (letter.attempts, letter.group, letter.channel) == (3, "billing", "orders")
    assert letter.time is not None
    assert letter.original.body == b'{"order_id":"o-9","seq":0}'
    assert letter.original.headers["ce_id"] == sent.id
    assert letter.original.headers["tenant"] == "acme"
    assert letter.original.key == "o-9"


async def test_undecodable_bytes_are_dead_lettered_and_the_consumer_goes_on() -> None:
    bus = EventBus(memory_url())
    got: list[str] = []

    @bus.subscribe(OrderPlaced, group="g", retry=FAST)
    async def handle(event: OrderPlaced) -> None:
        got.append(event.order_id)

    async with bus:
        good = await bus.publish(OrderPlaced(order_id="before"))
        await bus.backend.publish("orders", [WireMessage(b"\xff\x00garbage", {}, "x")])
        bad_payload = WireMessage(
            b'{"order_id": 42}',  # wrong type
            {
                "ce_id": "bad-1",
                "ce_type": "OrderPlaced",
                "ce_source": "t",
                "ce_specversion": "1.0",
            },
            "x",
        )
        await bus.backend.publish("orders", [bad_payload])
        await bus.publish(OrderPlaced(order_id="after"))
        await wait_for(lambda: len(got) == 2)
        letters = await bus.dead_letters("orders")
    assert good.id
    assert sorted(got) == ["after", "before"]
    assert [letter.reason for letter in letters] == ["invalid", "invalid"]
    assert all(letter.attempts == 1 for letter in letters)
    assert letters[0].original.body == b"\xff\x00garbage"
    assert letters[1].error_type == "DecodeError" and "order_id" in letters[1].error


async def test_duplicates_run_once_with_idempotent_handlers() -> None:
    bus = EventBus(memory_url())
    effects: list[str] = []

    @bus.subscribe(OrderPlaced, group="g", idempotent=True, concurrency=4)
    async def handle(event: OrderPlaced) -> None:
        await asyncio.sleep(0.01)
        effects.append(event.order_id)

    async with bus:
        sent = await bus.publish(OrderPlaced(order_id="o-1"))
        (original,) = await bus.backend.browse("orders")
        # the same event id three more times, concurrently with the first delivery
        await bus.backend.publish("orders", [original, original, original])
        await bus.publish(OrderPlaced(order_id="o-2"))
        await wait_for(lambda: "o-2" in effects)
        await asyncio.sleep(0.05)
    assert sent.id
    assert sorted(effects) == ["o-1", "o-2"]


async def test_commands_have_exactly_one_handling_group() -> None:
    bus = EventBus(memory_url())
    charged: list[str] = []

    @bus.subscribe(ChargeCard)
    async def charge(command: ChargeCard) -> None:
        charged.append(command.order_id)

    with pytest.raises(ConfigurationError, match="exactly one handling group"):

        @bus.subscribe(ChargeCard, group="other")
        async def charge_again(command: ChargeCard) -> None:
            pass

    async with bus:
        with pytest.raises(EventValidationError, match="send"):
            await bus.publish(ChargeCard(order_id="c-1"))
        await bus.send(ChargeCard(order_id="c-1"))
        await wait_for(lambda: charged == ["c-1"])


async def test_invalid_event_at_publish_sends_nothing() -> None:
    bus = EventBus(memory_url())
    async with bus:
        broken = OrderPlaced.model_construct(order_id=None, seq="not a number")
        with pytest.raises(EventValidationError, match="OrderPlaced is not valid"):
            await bus.publish(broken)
        with pytest.raises(EventValidationError, match="OrderPlaced is not valid"):
            await bus.publish_many([OrderPlaced(order_id="ok"), broken])
        with pytest.raises(EventValidationError, match="takes an eventwire Event"):
            await bus.publish({"order_id": "x"})  # type: ignore[arg-type]
        assert await bus.backend.browse("orders") == []


def test_unknown_scheme_lists_installed_schemes() -> None:
    with pytest.raises(UnknownBackendError, match=r"installed schemes: .*memory://"):
        EventBus("mqtt://user:pw@host:1883")
    with pytest.raises(UnknownBackendError) as info:
        EventBus("mqtt://user:pw@host:1883")
    assert "pw" not in str(info.value)


def test_malformed_url() -> None:
    with pytest.raises(InvalidURLError):
        EventBus("localhost:9092")


async def test_publish_after_close_and_before_start() -> None:
    bus = EventBus(memory_url())
    with pytest.raises(BusClosedError, match="new"):
        await bus.publish(OrderPlaced(order_id="x"))
    async with bus:
        await bus.publish(OrderPlaced(order_id="x"))
    with pytest.raises(BusClosedError, match="closed"):
        await bus.publish(OrderPlaced(order_id="y"))


async def test_a_closed_bus_starts_again_with_its_subscriptions() -> None:
    seen: list[str] = []
    bus = EventBus(memory_url(), source="restart")

    @bus.subscribe(OrderPlaced, group="g")
    async def handle(event: OrderPlaced) -> None:
        seen.append(event.order_id)

    for number in range(2):
        async with bus:
            await bus.publish(OrderPlaced(order_id=f"o-{number}"))
            await wait_for(functools.partial(_longer_than, seen, number))
        assert bus.consumer_stats()[0]["group"] == "g"
    assert seen == ["o-0", "o-1"]


def test_bad_subscriptions_are_rejected() -> None:
    bus = EventBus(memory_url())
    with pytest.raises(ConfigurationError, match="async def"):
        bus.subscribe(OrderPlaced, group="g")(lambda e: None)  # type: ignore[type-var]
    with pytest.raises(ConfigurationError, match="concurrency"):
        bus.subscribe(OrderPlaced, concurrency=0)
    with pytest.raises(ConfigurationError, match="Event or Command subclass"):
        bus.subscribe(Event)
    with pytest.raises(ConfigurationError, match="group name"):

        @bus.subscribe(OrderPlaced, group="bad group")
        async def h(event: OrderPlaced) -> None:
            pass


async def test_close_lets_running_handlers_finish_and_settles_them() -> None:
    url = memory_url()
    bus = EventBus(url)
    started = asyncio.Event()
    finished: list[str] = []

    @bus.subscribe(OrderPlaced, group="g", concurrency=2)
    async def slow(event: OrderPlaced) -> None:
        started.set()
        await asyncio.sleep(0.2)
        finished.append(event.order_id)

    await bus.start()
    await bus.publish(OrderPlaced(order_id="o-1"))
    await asyncio.wait_for(started.wait(), 5)
    await bus.close()
    assert finished == ["o-1"]

    again: list[str] = []
    bus2 = EventBus(url)

    @bus2.subscribe(OrderPlaced, group="g")
    async def h2(event: OrderPlaced) -> None:
        again.append(event.order_id)

    async with bus2:
        await bus2.publish(OrderPlaced(order_id="o-2"))
        await wait_for(lambda: again == ["o-2"])
    assert again == ["o-2"], "a finished event must not be delivered again"


async def test_replay_dead_letters() -> None:
    bus = EventBus(memory_url())
    fail = True
    done: list[str] = []

    @bus.subscribe(OrderPlaced, group="g", retry=RetryPolicy(max_attempts=1))
    async def handle(event: OrderPlaced) -> None:
        if fail:
            raise RuntimeError("down")
        done.append(event.order_id)

    async with bus:
        await bus.publish_many([OrderPlaced(order_id="a"), OrderPlaced(order_id="b")])
        for _ in range(500):
            if len(await bus.dead_letters("orders")) == 2:
                break
            await asyncio.sleep(0.01)
        fail = False
        letters = await bus.dead_letters("orders")
        (wanted,) = [x.original.headers["ce_id"] for x in letters if b'"a"' in x.original.body]
        assert await bus.replay_dead_letters("orders", ids=[wanted]) == 1
        (replayed,) = [
            m for m in await bus.backend.browse("orders") if "eventwire-replay" in m.headers
        ]
        assert replayed.headers["ce_id"] == wanted
        await wait_for(lambda: done == ["a"])


async def test_non_retryable_error_dead_letters_at_once() -> None:
    from eventwire import NonRetryableError

    bus = EventBus(memory_url())
    calls: list[int] = []

    @bus.subscribe(OrderPlaced, group="g", retry=FAST)
    async def handle(event: OrderPlaced, delivery: Delivery) -> None:
        calls.append(delivery.attempt)
        raise NonRetryableError("unknown customer", reason="unknown-customer")

    async with bus:
        await bus.publish(OrderPlaced(order_id="o-1"))
        letters: list[Any] = []
        for _ in range(500):
            letters = await bus.dead_letters("orders")
            if letters:
                break
            await asyncio.sleep(0.01)
    assert calls == [1]
    assert [(x.reason, x.attempts, x.error) for x in letters] == [
        ("unknown-customer", 1, "unknown customer")
    ]


async def test_an_unreachable_idempotency_store_delays_but_loses_nothing() -> None:
    from eventwire import Claim, MemoryIdempotencyStore

    class FlakyStore(MemoryIdempotencyStore):
        """Fails its first two claims and its first completion, like a store restarting."""

        def __init__(self) -> None:
            super().__init__()
            self.failures = {"claim": 2, "complete": 1}

        def _maybe_fail(self, call: str) -> None:
            if self.failures[call] > 0:
                self.failures[call] -= 1
                raise ConnectionError(f"store down ({call})")

        async def claim(self, key: str, lease: float) -> Claim:
            self._maybe_fail("claim")
            return await super().claim(key, lease)

        async def complete(self, key: str, ttl: float) -> None:
            self._maybe_fail("complete")
            await super().complete(key, ttl)

    import eventwire.pipeline as pipeline

    store = FlakyStore()
    bus = EventBus(memory_url(), idempotency_store=store)
    effects: list[str] = []

    @bus.subscribe(OrderPlaced, group="g", idempotent=True)
    async def handle(event: OrderPlaced) -> None:
        effects.append(event.order_id)

    pause, pipeline.SETTLE_RETRY = pipeline.SETTLE_RETRY, 0.01
    try:
        async with bus:
            await bus.publish(OrderPlaced(order_id="o-1"))
            await wait_for(lambda: store.failures == {"claim": 0, "complete": 0})
            await bus.publish(OrderPlaced(order_id="o-2"))
            await wait_for(lambda: effects == ["o-1", "o-2"] or len(effects) > 2)
            (first,) = [m for m in await bus.backend.browse("orders") if b"o-1" in m.body]
            await bus.backend.publish("orders", [first])  # a redelivery of o-1
            await bus.publish(OrderPlaced(order_id="o-3"))
            await wait_for(lambda: "o-3" in effects)
            assert await bus.dead_letters("orders") == []
    finally:
        pipeline.SETTLE_RETRY = pause
    assert effects == ["o-1", "o-2", "o-3"]


def _longer_than(items: list[str], count: int) -> bool:
    return len(items) > count
