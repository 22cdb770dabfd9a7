"""``eventwire bench``: the shape of its report and its handling of bad input.

Never a timing: only that every figure is there, positive, and that every event arrived.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from eventwire_conformance.bench import FIGURES, MissingEventsError, harness
from eventwire_conformance.bench.eventwire_runner import EventwireRunner
from eventwire_conformance.bench.model import BenchConfig, BenchError, Tracker

BROKER_URLS = {
    "kafka": "kafka://127.0.0.1:9092",
    "rabbit": "amqp://guest:guest@127.0.0.1:5672/",
    "redis": "redis://127.0.0.1:6379/0",
    "nats": "nats://127.0.0.1:4222",
}


def run_bench(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "eventwire.cli", "bench", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "COLUMNS": "160"},
    )


def check_report(report: dict[str, Any], runners: tuple[str, ...]) -> None:
    assert report["schema"] == "eventwire-bench/1"
    assert report["events_verified"] is True
    assert report["peak_rss_bytes"] > 0
    assert list(report["figures"]) == list(FIGURES)
    for figure, entry in report["figures"].items():
        for kind in ("eventwire", "faststream", "raw"):
            row = entry[kind]
            if kind not in runners:
                assert row is None, (figure, kind)
                continue
            assert row is not None, (figure, kind)
            rate = row["msg_per_s"]
            assert len(rate["rounds"]) == report["config"]["rounds"]
            assert 0 < rate["min"] <= rate["median"] <= rate["max"], (figure, kind, rate)
            assert row["received"] == [row["events"]] * len(rate["rounds"]), (figure, kind)
            if figure == "latency":
                assert 0 < row["p50_ms"]["median"] <= row["p99_ms"]["median"]
            if figure == "drain":
                assert row["rss_growth_mib"]["median"] >= 0
        for other in ("faststream", "raw"):
            ratio = entry["ratio"][f"eventwire/{other}"]
            assert (ratio is not None and ratio > 0) == (other in runners), (figure, other)
        batch = entry["eventwire_batch"]
        if figure in ("e2e", "drain"):  # the batch API's row: the consuming figures only
            assert batch["received"] == [batch["events"]] * report["config"]["rounds"]
            assert batch["msg_per_s"]["median"] > 0
            ratio = entry["ratio"]["eventwire_batch/raw"]
            assert (ratio is not None and ratio > 0) == ("raw" in runners), figure
        else:
            assert batch is None, figure
    validation = report["contract_validation"]
    assert validation["target_us"] == 5.0
    for kind in ("BenchEvent", "OrderPlaced"):
        costs = validation["messages"][kind]
        assert costs["compiled"] > 0 and costs["jsonschema_alone"] > 0, kind
    assert validation["met"] == all(m["compiled"] < 5.0 for m in validation["messages"].values())
    assert {t["id"] for t in report["targets"]} >= {"batch-drain-vs-raw", "publish-vs-faststream"}


def test_quick_memory_run_reports_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    done = run_bench("memory://", "--quick", "--json", str(out))
    assert done.returncode == 0, done.stderr
    report = json.loads(out.read_text())
    check_report(report, ("eventwire",))
    assert report["backend"] == "memory"
    assert report["runners"]["faststream"]["available"] is False
    assert "not applicable" in report["runners"]["raw"]["reason"]
    assert report["cleanup"]["error"] is None
    for figure in ("publish", "drain", "latency"):
        assert report["figures"][figure]["eventwire"]["events"] > 0
    assert "every event received: yes" in done.stdout
    assert "eventwire / FastStream" in done.stdout
    # a quick run's rounds take milliseconds: the report says its ratios are not steady
    assert set(report["short_rounds_s"]) == {"publish", "publish_many", "e2e", "drain"}
    assert "short rounds" in done.stdout


def test_only_rounds_under_a_second_are_called_short() -> None:
    from eventwire_conformance.bench.harness import BenchResult, Sample
    from eventwire_conformance.bench.model import BenchConfig
    from eventwire_conformance.bench.report import short_rounds

    config = BenchConfig("kafka://127.0.0.1:9092", figures=("publish", "drain", "latency"))
    result = BenchResult(config, "run", "kafka", {}, {})
    for kind, seconds in (("eventwire", 2.0), ("raw", 0.4), ("raw", 0.6), ("raw", 3.0)):
        result.samples.append(Sample("drain", kind, 0, 1000, seconds, 1000 / seconds, 1000, 0))
    for kind in ("eventwire", "raw"):
        result.samples.append(Sample("publish", kind, 0, 1000, 1.5, 666.0, 1000, 0))
        result.samples.append(Sample("latency", kind, 0, 10, 0.01, 1000.0, 10, 0))
    assert short_rounds(result) == {"drain": 0.6}  # the raw row's median round


@pytest.mark.anyio
async def test_tracker_fails_loudly_when_an_event_is_missing() -> None:
    tracker = Tracker(3)
    tracker.hit(0, 0)
    tracker.hit(2, 0)
    tracker.hit(2, 0)
    with pytest.raises(MissingEventsError, match=r"received 2 of 3 .*seq \[1\]"):
        await tracker.wait_all(0.2, "drain")
    assert tracker.duplicates == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["memory://", "--events", "5"], "--events"),
        (["memory://", "--events", "100000000"], "--events"),
        (["memory://", "--size", "10"], "--size"),
        (["memory://", "--size", str(64 * 1024 * 1024)], "--size"),
        (["memory://", "--rounds", "0"], "--rounds"),
        (["memory://", "--only", "publish,warp"], "warp"),
        (["nosuch://somewhere", "--quick"], "no installed backend serves"),
        (["not a url", "--quick"], "not a backend URL"),
    ],
)
def test_bad_input_is_a_clear_error_with_exit_2(args: list[str], message: str) -> None:
    done = run_bench(*args, timeout=60)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def test_ctrl_c_stops_cleanly_and_reports_cleanup() -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "eventwire.cli",
            "bench",
            "memory://",
            "--events",
            "2000000",
            "--only",
            "publish",
            "--rounds",
            "1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # as from a terminal: a test run started in the background inherits SIGINT ignored
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        time.sleep(3)  # well inside the publish figure
        proc.send_signal(signal.SIGINT)
        _stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr
    assert "cleanup: deleted 1 broker object(s)" in stderr
    assert "Traceback" not in stderr


@pytest.mark.broker
def test_unreachable_broker_fails_fast() -> None:
    started = time.monotonic()
    done = run_bench("redis://127.0.0.1:1/0", "--quick", timeout=60)
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "cannot reach the broker" in done.stderr or "127.0.0.1:1" in done.stderr
    assert time.monotonic() - started < 30


@pytest.mark.parametrize(
    ("url", "advice"),
    [
        ("rediss://127.0.0.1:1/0", "is a TLS listener, and the FastStream and raw-client rows"),
        ("redis://127.0.0.1:1/0", "is a broker running at redis://127.0.0.1:1/0?"),
    ],
)
def test_a_row_that_cannot_connect_says_why_and_what_to_do(url: str, advice: str) -> None:
    done = run_bench(url, "--quick", "--runners", "faststream", timeout=60)
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "cannot reach the broker for faststream" in done.stderr
    assert advice in " ".join(done.stderr.split())


@pytest.mark.anyio
async def test_a_row_failing_during_a_figure_is_named_and_the_run_cleans_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def broken(self: object, channel: str, group: str, figure: str) -> None:
        raise ConnectionError("the broker went away")

    monkeypatch.setattr(EventwireRunner, "prepare", broken)
    config = BenchConfig(url="memory://", events=10, rounds=1, figures=("drain",))
    results: list[harness.BenchResult] = []
    with pytest.raises(BenchError) as caught:
        await harness.run_bench(config, results=results)
    assert str(caught.value) == (
        "the eventwire row failed in drain round 1: ConnectionError: the broker went away"
    )
    assert isinstance(caught.value.__cause__, ConnectionError)
    assert results[0].cleanup_error is None


@pytest.mark.broker
@pytest.mark.slow
@pytest.mark.parametrize("backend", sorted(BROKER_URLS))
def test_quick_run_on_a_real_broker(backend: str, tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    done = run_bench(BROKER_URLS[backend], "--quick", "--json", str(out), timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    check_report(report, ("eventwire", "faststream", "raw"))
    assert report["backend"] == backend
    confirmed = report["figures"]["drain"]["faststream_confirmed"]
    assert (confirmed is not None) == (backend in ("rabbit", "kafka"))
    if confirmed is not None:  # the FastStream targets are held to the same guarantees
        against = {t["id"]: t["against"] for t in report["targets"]}
        assert against["consume-drain-vs-faststream"] == "faststream_confirmed"
        assert confirmed["received"] == [confirmed["events"]] * report["config"]["rounds"]
    assert report["cleanup"]["error"] is None, report["cleanup"]
    assert report["cleanup"]["deleted"], "the run's channels were not found for deletion"


@pytest.mark.broker
@pytest.mark.anyio
@pytest.mark.parametrize("query", ["", "?partitions=3"])
async def test_every_kafka_row_publishes_to_topics_of_the_eventwire_rows_layout(
    query: str, caplog: pytest.LogCaptureFixture
) -> None:
    from aiokafka import AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient
    from eventwire import EventBus
    from eventwire_conformance.bench._raw_kafka import create_topic
    from eventwire_conformance.bench.eventwire_runner import channel_model

    url = BROKER_URLS["kafka"] + query
    name = f"bench-layout-{time.time_ns()}"
    await create_topic(url, f"{name}-raw")
    producer = AIOKafkaProducer(bootstrap_servers="127.0.0.1:9092", acks="all")
    await producer.start()
    try:  # the topic is ready: no partition's leader refuses a first send
        with caplog.at_level(logging.WARNING, logger="aiokafka"):
            sent = [await producer.send(f"{name}-raw", b"x", partition=p) for p in range(3)]
            await asyncio.gather(*sent)
    finally:
        await producer.stop()
    assert [r.getMessage() for r in caplog.records if "NotLeader" in r.getMessage()] == []
    bus = EventBus(url, source="layout-test")
    await bus.start()
    try:
        await bus.publish(channel_model(f"{name}-eventwire")(seq=0, key="k", sent_ns=0, pad=""))
    finally:
        await bus.close()
    admin = AIOKafkaAdminClient(bootstrap_servers="127.0.0.1:9092")
    await admin.start()
    try:
        topics = [f"{name}-raw", f"{name}-eventwire"]
        described = {t["topic"]: len(t["partitions"]) for t in await admin.describe_topics(topics)}
        await admin.delete_topics(topics)
    finally:
        await admin.close()
    assert described == dict.fromkeys(topics, 3 if query else 8)


def test_the_raw_kafka_row_says_it_fetches_and_lays_out_as_the_eventwire_row() -> None:
    from eventwire_conformance.bench._raw_kafka import KafkaRawRunner
    from eventwire_conformance.bench.model import BenchConfig, PayloadFactory

    default = KafkaRawRunner(BenchConfig("kafka://127.0.0.1:9092"), PayloadFactory(128, 16))
    assert "topics with 8 partitions, fetch_max_wait_ms=100" in default.label
    url = "kafka://127.0.0.1:9092?partitions=3&fetch_max_wait_ms=250"
    tuned = KafkaRawRunner(BenchConfig(url), PayloadFactory(128, 16))
    assert "topics with 3 partitions, fetch_max_wait_ms=250" in tuned.label
