"""Consumer lag: each backend's `LagReporter`, and the gauges the bus records it into."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import prometheus_client
import pytest
from eventwire import Event, EventBus
from eventwire.backend import LagReporter
from eventwire.observability import lag
from eventwire.observability.prometheus import PrometheusRecorder

from tests.observability._otel import telemetry

URLS = {
    "kafka": os.environ.get("EVENTWIRE_KAFKA_URL") or "kafka://127.0.0.1:9092",
    "rabbit": os.environ.get("EVENTWIRE_RABBIT_URL") or "amqp://guest:guest@127.0.0.1:5672/",
    "redis": os.environ.get("EVENTWIRE_REDIS_URL") or "redis://127.0.0.1:6379/0",
    "nats": os.environ.get("EVENTWIRE_NATS_URL") or "nats://127.0.0.1:4222",
}


def _event(channel: str) -> Any:  # a model class made here, with `key` and `n`
    class Ticked(Event, channel=channel, key="key"):
        key: str
        n: int

    return Ticked


async def _eventually(read: Callable[[], Awaitable[int | None]], want: int) -> int | None:
    """The value `read` settles on: `want` as soon as it shows, else the last one (brokers
    that count asynchronously, e.g. SQS, catch up within seconds)."""
    value = None
    for _ in range(100):
        value = await read()
        if value == want:
            break
        await asyncio.sleep(0.1)
    return value


async def stopped_group_lag(url: str, *, before: int = 3, during: int = 7) -> int | None:
    """A group handles `before` events and stops; `during` more are published: its lag."""
    channel = f"obs-lag-{uuid.uuid4().hex[:10]}"
    ticked = _event(channel)
    consumer = EventBus(url, source="lag-consumer", tracing=False, metrics=False)
    producer = EventBus(url, source="lag-producer", tracing=False, metrics=False)
    handled: list[int] = []
    got_all = asyncio.Event()

    @consumer.subscribe(ticked, group="ledger")
    async def handle(event: Event) -> None:
        handled.append(event.n)  # type: ignore[attr-defined]
        if len(handled) == before:
            got_all.set()

    async with producer:
        async with consumer:
            for n in range(before):
                await producer.publish(ticked(key=f"k{n % 4}", n=n))
            await asyncio.wait_for(got_all.wait(), 60)
        reporter = producer.backend
        assert isinstance(reporter, LagReporter)
        for n in range(during):
            await producer.publish(ticked(key=f"k{n % 4}", n=before + n))
        value = await _eventually(lambda: reporter.lag(channel, "ledger"), during)
        unknown = await reporter.lag(channel, "nobody")
        assert unknown is None, f"a group that never joined has lag {unknown}, not None"
        return value


@pytest.mark.parametrize("url", ["memory://", "sqlite:///{tmp}/lag.db"], ids=["memory", "sqlite"])
@pytest.mark.anyio
async def test_lag_of_a_stopped_group_counts_what_was_published_since(
    url: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    url = url.format(tmp=tmp_path_factory.mktemp("lag"))
    assert await stopped_group_lag(url) == 7


@pytest.mark.broker
@pytest.mark.parametrize("backend", sorted(URLS))
@pytest.mark.anyio
async def test_lag_on_real_brokers(backend: str) -> None:
    assert await stopped_group_lag(URLS[backend]) == 7


@pytest.mark.anyio
async def test_the_bus_records_lag_into_opentelemetry_and_prometheus(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Five events wait for a group whose handler is held: the first reading of the watch
    (as the bus starts) reports 5 in both gauges, a reading after they were handled 0."""
    monkeypatch.setattr(lag, "INTERVAL", 3600.0)  # only the first reading, then ours
    channel = f"obs-lag-{uuid.uuid4().hex[:10]}"
    ticked = _event(channel)
    t = telemetry()
    registry = prometheus_client.CollectorRegistry()
    scrape = PrometheusRecorder(registry)
    monkeypatch.setattr("eventwire.observability.prometheus._recorder", scrape)
    producer = EventBus("memory://", source="p", tracing=False, metrics=False)
    bus = EventBus("memory://", source="c", tracing=False, metrics=t.meter_provider)
    gate = asyncio.Event()
    handled: list[int] = []
    all_handled = asyncio.Event()

    @bus.subscribe(ticked, group="ledger", from_beginning=True)
    async def handle(event: Event) -> None:
        await gate.wait()
        handled.append(1)
        if len(handled) == 5:
            all_handled.set()

    def reported() -> tuple[list[object], float | None]:
        labels = {"system": "eventwire", "channel": channel, "group": "ledger"}
        return (
            [
                v
                for attrs, v in t.points("eventwire.consumer.lag")
                if attrs.get("messaging.destination.name") == channel
            ],
            registry.get_sample_value("eventwire_consumer_lag", labels),
        )

    async with producer:
        for n in range(5):
            await producer.publish(ticked(key=f"k{n}", n=n))
        async with bus:
            await asyncio.sleep(0)  # the watch's first reading
            for _ in range(100):
                if reported()[1] is not None:
                    break
                await asyncio.sleep(0.01)
            assert reported() == ([5], 5.0)
            gate.set()
            await asyncio.wait_for(all_handled.wait(), 30)
            for _ in range(100):  # acks settle right after the handler returns
                assert bus._lag is not None
                await bus._lag.poll()
                if reported()[1] == 0.0:
                    break
                await asyncio.sleep(0.01)
            assert reported() == ([0], 0.0)
            (attrs,) = [a for a, _ in t.points("eventwire.consumer.lag")]
            assert attrs == {
                "messaging.system": "eventwire",
                "messaging.destination.name": channel,
                "messaging.consumer.group.name": "ledger",
            }


@pytest.mark.anyio
async def test_no_watch_without_metrics_or_without_a_lag_reporter() -> None:
    bus = EventBus("memory://", source="c", tracing=False, metrics=False)

    @bus.subscribe(_event(f"obs-lag-{uuid.uuid4().hex[:10]}"), group="g")
    async def handle(event: Event) -> None:
        pass

    async with bus:
        assert bus._lag is None


@pytest.mark.broker
@pytest.mark.anyio
async def test_labels_never_carry_the_brokers_credentials_or_address(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A bus on a URL with a user and password: no label of any metric (the lag gauge
    included) holds them, nor the broker's host or port."""
    base = URLS["nats"]
    url = base.replace("nats://", "nats://lagtester:pw-7f3c9a@", 1)
    secrets = ("lagtester", "pw-7f3c9a", "127.0.0.1", "4222")
    channel = f"obs-lag-{uuid.uuid4().hex[:10]}"
    ticked = _event(channel)
    t = telemetry()
    registry = prometheus_client.CollectorRegistry()
    monkeypatch.setattr(
        "eventwire.observability.prometheus._recorder", PrometheusRecorder(registry)
    )
    bus = EventBus(url, source="creds", tracing=t.tracer_provider, metrics=t.meter_provider)
    done = asyncio.Event()

    @bus.subscribe(ticked, group="ledger")
    async def handle(event: Event) -> None:
        done.set()

    async with bus:
        await bus.publish(ticked(key="k", n=1))
        await asyncio.wait_for(done.wait(), 30)
        assert bus._lag is not None
        await bus._lag.poll()
    text = prometheus_client.generate_latest(registry).decode()
    assert f'eventwire_consumer_lag{{channel="{channel}"' in text
    values = {
        str(v)
        for name in ("messages.published", "messages.handled", "consumer.lag")
        for attrs, _ in t.points(f"eventwire.{name}")
        for v in attrs.values()
    }
    assert channel in values
    for secret in secrets:
        assert secret not in text, f"{secret!r} in a Prometheus label"
        assert not any(secret in v for v in values), f"{secret!r} in an OpenTelemetry attribute"
