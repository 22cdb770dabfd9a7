"""G01-G05: what arrives, where, how many times, and in which order."""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime
from decimal import Decimal

from eventwire import Delivery, Envelope

from eventwire_conformance._events import Ping, ping_model, rich_model
from eventwire_conformance._members import Run, interleaved, overlapping
from eventwire_conformance._support import Harness, PingHandler, missing

# -- G01 roundtrip ---------------------------------------------------------------------------


async def test_G01_roundtrip(harness: Harness) -> None:
    channel = harness.name("g01")
    Rich = rich_model(channel)
    bus = harness.bus(source="conformance/g01-producer")
    got: list[tuple[object, Delivery]] = []

    @bus.subscribe(Rich, group=harness.name("grp"))
    async def handle(event: object, delivery: Delivery) -> None:
        got.append((event, delivery))

    full = Rich(
        key="order-7",
        text='Grüße, 世界 \u2014 "quoted" \\ back\nslash \U0001f680',
        number=-(2**53) + 1,
        ratio=0.1,
        amount=Decimal("12345.6789"),
        flag=True,
        when=datetime(2024, 2, 29, 23, 59, 58, 123456, tzinfo=UTC),
        tags=["a", "", "c d"],
        attrs={"x": 1, "y": -2},
    )
    bare = Rich(
        key="order-8",
        text="",
        number=0,
        ratio=-1.5,
        amount=Decimal("0"),
        flag=False,
        when=datetime(1999, 1, 1, tzinfo=UTC),
        tags=[],
        attrs={},
    )
    headers = {"x-tenant": "acme", "x-trace-id": "4bf92f3577b34da6", "x-empty": ""}
    async with bus:
        sent_full = await bus.publish(
            full, correlation_id="corr-g01", causation_id="cause-g01", headers=headers
        )
        sent_bare = await bus.publish(bare)
        await harness.wait_for(lambda: len(got) >= 2, lambda: f"received {len(got)}/2 events")

    by_key = {delivery.envelope.subject: (event, delivery) for event, delivery in got}
    assert set(by_key) == {"order-7", "order-8"}, f"unexpected deliveries: {list(by_key)}"
    for sent, event in ((sent_full, full), (sent_bare, bare)):
        received, delivery = by_key[event.key]
        assert received == event, f"payload changed in transit: sent {event!r}, got {received!r}"
        _same_envelope(sent, delivery.envelope)
    _, delivery = by_key["order-7"]
    assert delivery.correlation_id == "corr-g01", (
        f"correlation id: sent 'corr-g01', got {delivery.correlation_id!r}"
    )
    assert delivery.envelope.causationid == "cause-g01", (
        f"causation id: sent 'cause-g01', got {delivery.envelope.causationid!r}"
    )
    for name, value in headers.items():
        assert delivery.headers.get(name) == value, (
            f"header {name!r}: sent {value!r}, got {delivery.headers.get(name)!r} "
            f"(received headers: {dict(delivery.headers)})"
        )
    _, plain = by_key["order-8"]
    assert plain.correlation_id is None, f"unexpected correlation id {plain.correlation_id!r}"
    assert not set(headers) & set(plain.headers), "headers leaked into another event"


def _same_envelope(sent: Envelope, got: Envelope) -> None:
    for field in ("id", "type", "source", "time", "subject", "dataversion", "specversion"):
        expected, actual = getattr(sent, field), getattr(got, field)
        assert expected == actual, f"envelope {field}: sent {expected!r}, got {actual!r}"


# -- G02 isolation ---------------------------------------------------------------------------


async def test_G02_isolation(harness: Harness) -> None:
    base = harness.name("g02")
    # Prefixes, suffixes, children and near-misses of one name: wildcard subjects, prefix
    # matching and sloppy topic routing all leak between some of these.
    suffixes = ("orders", "orders.eu", "orders-eu", "ordersx", "order")
    names = [*(harness.channel(f"{base}.{suffix}") for suffix in suffixes), base]
    models = {name: ping_model(name) for name in names}
    bus = harness.bus()
    seen: dict[str, list[str]] = defaultdict(list)

    def make(channel: str) -> PingHandler:
        async def handle(event: Ping) -> None:
            seen[channel].append(event.tag)

        return handle

    for name, model in models.items():
        bus.subscribe(model, group=harness.name("grp"))(make(name))

    per_channel = 3
    async with bus:
        for name, model in models.items():
            for i in range(per_channel):
                await bus.publish(model(key=f"k{i}", seq=i, tag=name))

        def complete() -> bool:
            return all(seen[n].count(n) >= per_channel for n in names)

        await harness.wait_for(
            complete,
            lambda: (
                "own events received per channel: "
                + ", ".join(f"{n}={seen[n].count(n)}/{per_channel}" for n in names)
            ),
        )
        await harness.quiet()

    leaks = {
        name: sorted(Counter(tag for tag in tags if tag != name).items())
        for name, tags in seen.items()
        if any(tag != name for tag in tags)
    }
    assert not leaks, f"events leaked between channels (subscriber: [(source, count)]): {leaks}"


# -- G03 fan-out -----------------------------------------------------------------------------


async def test_G03_fan_out(harness: Harness) -> None:
    channel = harness.name("g03")
    model = ping_model(channel)
    first, second = harness.bus(), harness.bus()
    groups = [harness.name("grp-a"), harness.name("grp-b"), harness.name("grp-c")]
    got: dict[str, set[int]] = {g: set() for g in groups}

    def make(group: str) -> PingHandler:
        async def handle(event: Ping) -> None:
            got[group].add(event.seq)

        return handle

    first.subscribe(model, group=groups[0], concurrency=4)(make(groups[0]))
    first.subscribe(model, group=groups[1])(make(groups[1]))
    second.subscribe(model, group=groups[2], concurrency=2)(make(groups[2]))

    total = 40
    expected = set(range(total))
    async with first, second:
        await first.publish_many(model(key=f"k{i % 5}", seq=i) for i in range(total))
        await harness.wait_for(
            lambda: all(got[g] >= expected for g in groups),
            lambda: "; ".join(f"group {g}: {missing(expected, got[g])}" for g in groups),
        )


# -- G04 competing consumers -----------------------------------------------------------------


async def test_G04_competing_consumers(harness: Harness) -> None:
    channel = harness.name("g04")
    model = ping_model(channel)
    group = harness.name("grp")
    handled: Counter[int] = Counter()
    per_member: dict[str, set[int]] = {"a": set(), "b": set()}
    members = {"a": harness.bus(), "b": harness.bus()}

    def make(member: str) -> PingHandler:
        async def handle(event: Ping) -> None:
            handled[event.seq] += 1
            per_member[member].add(event.seq)

        return handle

    for name, bus in members.items():
        bus.subscribe(model, group=group, concurrency=2)(make(name))

    publisher = harness.bus()
    seq = 0

    async def publish_round(count: int) -> None:
        nonlocal seq
        await publisher.publish_many(
            model(key=f"k{n % 24}", seq=n) for n in range(seq, seq + count)
        )
        seq += count

    async with members["a"], members["b"], publisher:
        # Publish in rounds until both members work (a broker may assign work lazily),
        # then a final batch that both share.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + harness.patience
        while not (per_member["a"] and per_member["b"]):
            if loop.time() > deadline:
                raise AssertionError(
                    f"only one member of the group got events after {seq} published "
                    f"(a: {len(per_member['a'])}, b: {len(per_member['b'])}); members of "
                    "one group must share the work"
                )
            await publish_round(24)
            await harness.wait_for(
                lambda: sum(handled.values()) >= seq or bool(per_member["a"] and per_member["b"]),
                lambda: f"handled {sum(handled.values())}/{seq}",
            )
        await publish_round(120)
        expected = set(range(seq))
        await harness.wait_for(
            lambda: set(handled) >= expected, lambda: missing(expected, set(handled))
        )
        await harness.quiet(0.2)

    twice = sorted(s for s, n in handled.items() if n > 1)
    assert not twice, (
        f"{len(twice)} events were handled more than once in one group, e.g. {twice[:8]} "
        f"(counts {[handled[s] for s in twice[:8]]})"
    )
    both = per_member["a"] & per_member["b"]
    assert not both, f"events handled by both members: {sorted(both)[:8]}"


# -- G05 key order ---------------------------------------------------------------------------

KEYS = 16
PER_KEY = 63  # 16 x 63 = 1008 events
#: Handled events (of the measured stream) after which a third member joins the group.
JOIN_AFTER = KEYS * PER_KEY // 4


async def test_G05_key_order(harness: Harness) -> None:
    channel = harness.name("g05")
    model = ping_model(channel)
    group = harness.name("grp")
    order: dict[str, list[int]] = defaultdict(list)
    warm: dict[str, int] = {"a": 0, "b": 0, "c": 0}
    by_member: Counter[str] = Counter()
    runs: list[Run] = []
    parallel = {"now": 0, "peak": 0}

    def make(member: str) -> PingHandler:
        async def handle(event: Ping) -> None:
            if event.tag == "warm":
                warm[member] += 1
                return
            begin = time.monotonic()
            parallel["now"] += 1
            parallel["peak"] = max(parallel["peak"], parallel["now"])
            try:
                # Uneven handler times, so keys overtake each other between members.
                await asyncio.sleep(0.002 * (event.seq % 3))
                order[event.key].append(event.seq)
                by_member[member] += 1
            finally:
                parallel["now"] -= 1
                runs.append(Run(begin, time.monotonic(), event.key, event.seq, member))

        return handle

    a, b, c, publisher = harness.bus(), harness.bus(), harness.bus(), harness.bus()
    for member, bus in (("a", a), ("b", b), ("c", c)):
        bus.subscribe(model, group=group, concurrency=4)(make(member))
    keys = [f"key-{k:02d}" for k in range(KEYS)]
    total = KEYS * PER_KEY

    def first_deliveries() -> int:
        return sum(len(set(seqs)) for seqs in order.values())

    async with a, b, publisher:
        # Make sure both members take part before the measured stream starts.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + harness.patience
        round_ = 0
        while not (warm["a"] and warm["b"]):
            if loop.time() > deadline:
                raise AssertionError(
                    f"only one group member receives events (warm-up a={warm['a']}, "
                    f"b={warm['b']}); G05 needs several members"
                )
            await publisher.publish_many(
                model(key=f"warm-{round_}-{k}", seq=k, tag="warm") for k in range(KEYS)
            )
            round_ += 1
            await harness.quiet(0.05)
        await publisher.publish_many(
            model(key=key, seq=seq) for key, seq in interleaved(keys, PER_KEY, seed=total)
        )
        # A member joins while same-key events are in flight on the other two: the backend
        # hands partitions over, and must not let a key run on two members at once.
        await harness.wait_for(
            lambda: first_deliveries() >= JOIN_AFTER,
            lambda: f"handled {first_deliveries()}/{total} events before the third member joins",
        )
        joined_at = first_deliveries()
        async with c:
            await harness.wait_for(
                lambda: first_deliveries() >= total,
                lambda: f"handled {first_deliveries()}/{total} events",
            )

    two_at_once = overlapping(runs)
    assert not two_at_once, (
        f"{len(two_at_once)} times a key was handled twice at the same time (the third "
        f"member joined after {joined_at} events), e.g. {two_at_once[:5]}"
    )
    expected = list(range(PER_KEY))
    # A rebalance may deliver an event again (after its first run ended): order counts
    # first deliveries.
    firsts = {k: list(dict.fromkeys(seqs)) for k, seqs in order.items()}
    wrong = {k: seqs for k, seqs in firsts.items() if seqs != expected}
    if wrong:
        key, seqs = next(iter(sorted(wrong.items())))
        at = next(
            (i for i, (x, y) in enumerate(zip(seqs, expected, strict=False)) if x != y),
            min(len(seqs), len(expected)),
        )
        raise AssertionError(
            f"{len(wrong)} of {KEYS} keys out of publish order (the third member joined "
            f"after {joined_at} events); {key}: first difference at position {at}: got "
            f"{seqs[max(0, at - 2) : at + 4]}, expected {expected[max(0, at - 2) : at + 4]} "
            f"({len(seqs)} handled)"
        )
    assert parallel["peak"] > 1, "no two keys were ever handled in parallel (concurrency 4 x 3)"
    assert by_member["a"] and by_member["b"], (
        f"one member handled all keyed events (a={by_member['a']}, b={by_member['b']})"
    )
