"""Log records written while a delivery is handled carry its ids, in-process and as JSON."""

from __future__ import annotations

import json
import logging
import signal
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from eventwire import Event, EventBus, RetryPolicy
from eventwire.observability.logs import FIELDS, EventFields
from eventwire.testing import TestBus

from tests.observability._otel import telemetry
from tests.runner._service import start, wait_until


class Refund(Event, channel="obs-logs-refunds", key="order_id"):
    order_id: str


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.addFilter(EventFields())

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def capture() -> Iterator[Capture]:
    handler = Capture()
    root = logging.getLogger()
    old = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield handler
    root.removeHandler(handler)
    root.setLevel(old)


@pytest.mark.anyio
async def test_pipeline_and_handler_records_carry_the_delivery(capture: Capture) -> None:
    t = telemetry()
    bus = EventBus("memory://", source="refunds", tracing=t.tracer_provider, metrics=False)
    app = logging.getLogger("refunds.app")

    @bus.subscribe(Refund, group="refunds", retry=RetryPolicy(max_attempts=2, backoff=0))
    async def refund(event: Refund) -> None:
        app.info("refunding %s", event.order_id)
        raise ValueError("card gone")

    async with TestBus(bus, skip_backoff=True) as tb:
        sent = await tb.publish(Refund(order_id="o-9"), correlation_id="corr-9")
    (send,) = [s for s in t.finished() if s.name.startswith("send")]
    trace_id = f"{send.context.trace_id:032x}"
    mine = [r for r in capture.records if getattr(r, "channel", None) == "obs-logs-refunds"]
    by_logger: dict[str, list[logging.LogRecord]] = {}
    for record in mine:
        by_logger.setdefault(record.name, []).append(record)
    handler_records = by_logger["refunds.app"]
    pipeline_records = by_logger["eventwire.pipeline"]
    assert [r.attempt for r in handler_records] == [1, 2]  # type: ignore[attr-defined]
    assert len(pipeline_records) == 2  # "retrying" after attempt 1, "dead-lettering" after 2
    assert [r.attempt for r in pipeline_records] == [1, 2]  # type: ignore[attr-defined]
    for record in handler_records + pipeline_records:
        assert record.event_id == sent.id  # type: ignore[attr-defined]
        assert record.event_type == sent.type  # type: ignore[attr-defined]
        assert record.group == "refunds"  # type: ignore[attr-defined]
        assert record.correlation_id == "corr-9"  # type: ignore[attr-defined]
        assert record.trace_id == trace_id  # type: ignore[attr-defined]
    outside = [r for r in capture.records if r not in mine and r.name == "refunds.app"]
    assert outside == []


def test_a_record_outside_any_delivery_has_no_fields(capture: Capture) -> None:
    logging.getLogger("refunds.app").info("starting")
    (record,) = [r for r in capture.records if r.name == "refunds.app"]
    assert not any(hasattr(record, name) for name in FIELDS)


APP = textwrap.dedent(
    """
    import logging

    from eventwire import Event, EventBus

    class Refund(Event, channel="obs-logs-run"):
        order_id: str

    bus = EventBus(source="refunds")
    log = logging.getLogger("refunds")

    @bus.on_startup
    async def feed() -> None:
        await bus.publish(Refund(order_id="o-1"), correlation_id="corr-run")

    @bus.subscribe(Refund, group="refunds", from_beginning=True)
    async def refund(event: Refund) -> None:
        log.info("refunding %s", event.order_id)
    """
)


def test_eventwire_run_json_logs_carry_the_fields(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(APP)
    proc = start(["app.py:bus", "--log-format", "json"], tmp_path)
    err = tmp_path / "err.txt"
    try:
        line = wait_until(
            lambda: next((x for x in err.read_text().splitlines() if "refunding" in x), None),
            "the handler's log line",
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    record = json.loads(line)
    assert record["message"] == "refunding o-1"
    assert record["channel"] == "obs-logs-run"
    assert record["group"] == "refunds"
    assert record["attempt"] == 1
    assert record["correlation_id"] == "corr-run"
    assert record["event_type"].endswith("Refund")
    assert len(record["event_id"]) > 0
    assert "trace_id" in record  # null: no tracer provider in that process
