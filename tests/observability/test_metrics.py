"""Metrics of the real pipeline (memory://): OpenTelemetry instruments, Prometheus endpoint."""

from __future__ import annotations

import signal
import textwrap
import urllib.request
from pathlib import Path

import prometheus_client
import pytest
from eventwire import Event, EventBus, RetryPolicy
from eventwire.observability.metrics import Metrics
from eventwire.observability.prometheus import PrometheusRecorder
from eventwire.testing import TestBus

from tests.observability._otel import telemetry
from tests.runner._service import run, start, wait_until

PAYLOAD = "payload-value-4711"
KEY = "customer-key-0815"
CORRELATION = "correlation-id-2342"


class Paid(Event, channel="obs-metrics-payments", key="customer"):
    customer: str
    note: str


def _bus(t_meter: object, *middlewares: Metrics) -> tuple[EventBus, list[str]]:
    bus = EventBus(
        "memory://",
        source="billing",
        tracing=False,
        metrics=t_meter,  # type: ignore[arg-type]
        middlewares=list(middlewares),
    )
    calls: list[str] = []

    @bus.subscribe(Paid, group="billing", retry=RetryPolicy(max_attempts=2, backoff=0))
    async def bill(event: Paid) -> None:
        calls.append(event.note)
        if event.note == "flaky" and calls.count("flaky") == 1:
            raise TimeoutError("first try")
        if event.note == "broken":
            raise ValueError(f"no {event.note}")

    return bus, calls


@pytest.mark.anyio
async def test_counters_histograms_and_in_flight() -> None:
    t = telemetry()
    bus, _ = _bus(t.meter_provider)
    async with TestBus(bus, skip_backoff=True) as tb:
        await tb.publish(Paid(customer=KEY, note="ok"), correlation_id=CORRELATION)
        await tb.publish(Paid(customer=KEY, note="flaky"))
        await tb.publish(Paid(customer=KEY, note="broken"))

    def total(name: str) -> int:
        return sum(int(v) for _, v in t.points(name))  # type: ignore[call-overload]

    assert total("eventwire.messages.published") == 3
    assert total("eventwire.messages.handled") == 2  # ok, flaky on its second attempt
    assert total("eventwire.messages.failed") == 3  # flaky once, broken twice
    assert total("eventwire.messages.retried") == 2  # flaky once, broken once
    assert total("eventwire.messages.dead_lettered") == 1
    assert total("eventwire.handler.in_flight") == 0
    failed = {str(attrs["error.type"]): v for attrs, v in t.points("eventwire.messages.failed")}
    assert failed == {"TimeoutError": 1, "ValueError": 2}
    durations = t.points("eventwire.handler.duration")
    assert sum(p.count for _, p in durations) == 5  # type: ignore[attr-defined]
    (latency,) = t.points("eventwire.end_to_end.latency")
    assert latency[1].count == 3  # type: ignore[attr-defined]  # first attempts only
    assert latency[0] == {
        "messaging.system": "eventwire",
        "messaging.destination.name": "obs-metrics-payments",
        "messaging.consumer.group.name": "billing",
        "cloudevents.event_type": Paid.__eventwire__.type,
    }


@pytest.mark.anyio
async def test_labels_never_carry_payload_keys_ids_or_correlation() -> None:
    t = telemetry()
    prom = PrometheusRecorder(prometheus_client.CollectorRegistry())
    bus, _ = _bus(t.meter_provider, Metrics(system="eventwire", recorders=[prom]))
    async with TestBus(bus, skip_backoff=True) as tb:
        sent = await tb.publish(Paid(customer=KEY, note=PAYLOAD), correlation_id=CORRELATION)
        await tb.publish(Paid(customer=KEY, note="broken"))
    from prometheus_client import generate_latest

    text = generate_latest(prom.registry).decode()
    assert 'eventwire_messages_handled_total{channel="obs-metrics-payments"' in text
    otel_values = {
        str(v)
        for name in ("published", "handled", "failed", "retried", "dead_lettered")
        for attrs, _ in t.points(f"eventwire.messages.{name}")
        for v in attrs.values()
    }
    assert otel_values  # there is something to look at
    for secret in (PAYLOAD, KEY, CORRELATION, sent.id, "broken"):
        assert secret not in text
        assert not any(secret in value for value in otel_values)
    label_names = {
        part.split("=")[0]
        for line in text.splitlines()
        if line.startswith("eventwire_") and "{" in line
        for part in line[line.index("{") + 1 : line.index("}")].split(",")
    }
    assert label_names <= {"system", "channel", "group", "type", "error_type", "le"}


APP = textwrap.dedent(
    """
    from eventwire import Event, EventBus

    class Job(Event, channel="obs-run-jobs"):
        n: int

    bus = EventBus(source="worker")

    @bus.on_startup
    async def feed() -> None:
        await bus.publish(Job(n=1))
        await bus.publish(Job(n=2))

    @bus.subscribe(Job, group="jobs", from_beginning=True)
    async def work(job: Job) -> None:
        pass
    """
)


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        return str(answer.read().decode())


def test_eventwire_run_serves_prometheus_metrics(tmp_path: Path) -> None:
    import re

    (tmp_path / "app.py").write_text(APP)
    proc = start(["app.py:bus", "--metrics-port", "0", "--metrics-host", "127.0.0.1"], tmp_path)
    try:

        def port() -> int | None:
            found = re.search(
                r"metrics on http://[\d.]+:(\d+)/metrics", (tmp_path / "err.txt").read_text()
            )
            return int(found.group(1)) if found else None

        metrics_port = wait_until(port, "the metrics endpoint")
        handled = (
            "eventwire_messages_handled_total"
            '{channel="obs-run-jobs",group="jobs",system="eventwire",type='
        )
        text = wait_until(lambda: (t := _scrape(metrics_port)) and handled in t and t, "handled")
        assert re.search(re.escape(handled) + r'"[^"]+"\} 2\.0', text)
        assert 'eventwire_messages_published_total{channel="obs-run-jobs",group=""' in text
        assert "eventwire_end_to_end_latency_seconds_bucket" in text
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0


def test_metrics_port_with_workers_is_refused(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(APP)
    result = run(["app.py:bus", "--metrics-port", "0", "--workers", "2"], tmp_path)
    assert result.returncode == 2
    assert "--metrics-port serves the metrics of one process" in result.stderr
    assert "Traceback" not in result.stderr


def test_metrics_port_taken_is_one_line(tmp_path: Path) -> None:
    import socket

    (tmp_path / "app.py").write_text(APP)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        result = run(
            ["app.py:bus", "--metrics-port", str(busy), "--metrics-host", "127.0.0.1"], tmp_path
        )
    assert result.returncode == 2, result.stderr
    assert f"cannot serve metrics on 127.0.0.1:{busy}" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("value", ["yes", 1])
def test_metrics_must_be_a_bool_or_a_provider(value: object) -> None:
    from eventwire.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="metrics must be True, False or an OpenTelemetry"):
        EventBus("memory://", metrics=value)  # type: ignore[arg-type]
