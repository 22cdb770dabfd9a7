"""The least a Kafka drain of eventwire's records can cost, against `eventwire bench`'s raw row.

    python -m docs.examples.kafka_floor kafka://127.0.0.1:9092 --events 100000 --rounds 3

The bench's raw row drains records that carry no headers; eventwire's records carry the
event's CloudEvents attributes as headers (binary content mode). This script puts the same N
bodies (about 128 B, 16 keys) on two topics with the eventwire row's partitions, once as
eventwire publishes them and once bare, and drains each with the raw row's loop (aiokafka
``getmany`` of up to 500 records, ``json.loads`` of each body, one commit per batch),
alternating the two, and prints the CPU per record and the rate of each. Then it times, in a
tight loop with the garbage collector off (warm caches: a lower bound), the steps no
eventwire consumer can skip for a record: the Kafka backend's ``to_wire`` (headers to text),
the envelope from the headers, pydantic's validation of the body, and the idempotency claim
in the in-memory store (500 keys per call).

A consumer runs in one thread, so its CPU per record bounds its wall time per record from
below; the floor (aiokafka on eventwire's records + those steps) against the raw row's
time per record says which ratio to the raw row a drain can reach at best.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import statistics
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from eventwire import Event, EventBus
from eventwire.codec import decode, decode_envelope
from eventwire.errors import EventwireError
from eventwire.idempotency import MemoryIdempotencyStore
from eventwire_conformance.bench.model import Tracker
from eventwire_kafka import KafkaSettings
from eventwire_kafka._records import to_wire

KEYS = 16
PAD = "x" * 60


@contextlib.asynccontextmanager
async def _consumer(bootstrap: str, topic: str, **options: Any) -> AsyncIterator[Any]:
    """A started consumer of `topic` in a new group, from its beginning, committing by hand."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"floor-{uuid.uuid4().hex[:8]}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **options,
    )
    await consumer.start()
    try:
        yield consumer
    finally:
        await consumer.stop()


async def _drain(bootstrap: str, topic: str, events: int, fetch_wait: int) -> tuple[float, float]:
    """The raw row's consumer loop over `topic`: CPU µs per record and records per second,
    from the first batch to the last."""
    async with _consumer(bootstrap, topic, fetch_max_wait_ms=fetch_wait) as consumer:
        tracker = Tracker(events)
        seen = first = 0
        cpu = wall = 0.0
        gc.collect()
        while seen < events:
            batches = await consumer.getmany(timeout_ms=1000, max_records=500)
            for records in batches.values():
                for record in records:
                    data = json.loads(record.value)
                    tracker.hit(data["seq"], data["sent_ns"])
                    seen += 1
            if batches:
                await consumer.commit()
                if not first:
                    first, cpu, wall = seen, time.process_time(), time.perf_counter()
        return (
            (time.process_time() - cpu) / (seen - first) * 1e6,
            (seen - first) / (time.perf_counter() - wall),
        )


async def _records(bootstrap: str, topic: str, events: int) -> list[Any]:
    async with _consumer(bootstrap, topic) as consumer:
        kept: list[Any] = []
        while len(kept) < events:
            for records in (await consumer.getmany(timeout_ms=1000)).values():
                kept.extend(records)
        return kept


def _now(step: Coroutine[Any, Any, object]) -> object:
    """The result of a coroutine that finishes without suspending (the in-memory store's)."""
    try:
        step.send(None)
    except StopIteration as done:
        return done.value
    step.close()
    raise RuntimeError("the step suspended: time it on an event loop instead")


def _per_record(step: Callable[[], object], count: int, repeat: int = 3) -> float:
    """CPU µs per record of `step` (which handles `count` records), garbage collector off:
    the least of `repeat` runs."""
    times = []
    for _ in range(repeat):
        gc.collect()
        gc.disable()
        try:
            started = time.process_time()
            step()
            times.append(time.process_time() - started)
        finally:
            gc.enable()
    return min(times) / count * 1e6


async def floor(url: str, events: int, rounds: int) -> str:
    settings = KafkaSettings.parse(url)
    bootstrap = ",".join(settings.hosts)
    channel = f"floor-{uuid.uuid4().hex[:12]}"
    bare = f"{channel}-bare"

    class Item(Event, type="FloorItem", channel=channel, key="key"):
        seq: int
        key: str
        sent_ns: int
        pad: str

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    bus = EventBus(url, source="kafka-floor")
    try:
        await admin.create_topics([NewTopic(bare, settings.partitions, 1)])
        async with bus:
            for start in range(0, events, 500):
                seqs = range(start, min(events, start + 500))
                await bus.publish_many(
                    [
                        Item(seq=s, key=f"k{s % KEYS}", sent_ns=time.perf_counter_ns(), pad=PAD)
                        for s in seqs
                    ]
                )
        records = await _records(bootstrap, channel, events)
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
        await producer.start()
        try:
            for start in range(0, events, 500):
                batch = records[start : start + 500]
                sent = [await producer.send(bare, r.value, key=r.key) for r in batch]
                await asyncio.gather(*sent)
        finally:
            await producer.stop()

        fetch_wait = settings.fetch_max_wait_ms
        with_headers, without = [], []
        for _ in range(rounds):
            with_headers.append(await _drain(bootstrap, channel, events, fetch_wait))
            without.append(await _drain(bootstrap, bare, events, fetch_wait))

        wires = [to_wire(r) for r in records]
        keys = [f"floor:{decode_envelope(w.headers, 'kafka').id}" for w in wires]

        def claim() -> None:
            store = MemoryIdempotencyStore(max_entries=events)
            for start in range(0, len(keys), 500):
                _now(store.claim_many(keys[start : start + 500], 20.0))

        count = len(records)
        steps = {
            "to_wire": _per_record(lambda: [to_wire(r) for r in records], count),
            "envelope": _per_record(
                lambda: [decode_envelope(w.headers, "kafka") for w in wires], count
            ),
            "validation": _per_record(lambda: [decode(w.body, Item) for w in wires], count),
            "claim": _per_record(claim, count),
        }
    finally:
        for topic in (channel, bare):
            try:
                await admin.delete_topics([topic])
            except Exception as exc:  # report it, keep the figures
                print(f"could not delete {topic}: {exc}", file=sys.stderr)
        await admin.close()

    cpu_h = statistics.median(c for c, _ in with_headers)
    cpu_b = statistics.median(c for c, _ in without)
    rate_h = statistics.median(r for _, r in with_headers)
    rate_b = statistics.median(r for _, r in without)
    sdk = steps["to_wire"] + steps["envelope"] + steps["claim"]
    least = cpu_h + sdk
    budget = 1e6 / rate_b
    lines = [
        f"{events:,} records, {rounds} round{'s' if rounds > 1 else ''} (medians), "
        f"partitions {settings.partitions}",
        f"raw loop, bare records:        {cpu_b:5.2f} µs CPU/record, {rate_b:,.0f} records/s "
        f"({budget:.2f} µs/record)",
        f"raw loop, eventwire's records: {cpu_h:5.2f} µs CPU/record, {rate_h:,.0f} records/s "
        f"({rate_h / rate_b:.2f}x the bare records)",
        "steps in a tight loop, gc off: "
        + ", ".join(f"{name} {value:.2f}" for name, value in steps.items())
        + f" µs/record; in the floor (all but validation) {sdk:.2f}",
        f"floor: {least:.2f} µs CPU/record -> at most {budget / least:.2f}x the raw row "
        f"(targets: 0.5x needs <= {budget / 0.5:.2f} µs, 0.8x <= {budget / 0.8:.2f} µs)",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    if args.events < 1000 or args.rounds < 1:
        parser.error("--events must be >= 1000 and --rounds >= 1")
    try:
        KafkaSettings.parse(args.url)
    except EventwireError as exc:
        parser.error(str(exc))
    print(asyncio.run(floor(args.url, args.events, args.rounds)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
