"""docs/examples/kafka_floor.py: the floor of a Kafka drain behind docs/performance.md runs,
and leaves no topic behind."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess

import pytest

from tests.docs._guide import run_example

URL = os.environ.get("EVENTWIRE_KAFKA_URL") or "kafka://127.0.0.1:9092"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return run_example("kafka_floor", *args, timeout=300)


async def floor_topics() -> set[str]:
    from aiokafka.admin import AIOKafkaAdminClient
    from eventwire_kafka import KafkaSettings

    admin = AIOKafkaAdminClient(bootstrap_servers=",".join(KafkaSettings.parse(URL).hosts))
    await admin.start()
    try:
        return {topic for topic in await admin.list_topics() if topic.startswith("floor-")}
    finally:
        await admin.close()


@pytest.mark.broker
def test_the_floor_is_measured_on_both_topics_and_the_topics_are_deleted() -> None:
    before = asyncio.run(floor_topics())
    result = run(URL, "--events", "1000", "--rounds", "1")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith("1,000 records, 1 round (medians), partitions "), out
    number = r"\d+\.\d\d"
    assert re.search(rf"raw loop, bare records: +{number} µs CPU/record", out), out
    assert re.search(rf"raw loop, eventwire's records: +{number} µs CPU/record", out), out
    for step in ("to_wire", "envelope", "validation", "claim"):
        assert re.search(rf"{step} {number}", out), out
    assert re.search(rf"floor: {number} µs CPU/record -> at most \d+\.\d\dx the raw row", out)
    assert asyncio.run(floor_topics()) == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--events", "999"), "--events must be >= 1000"),
        (("--rounds", "0"), "--rounds >= 1"),
    ],
)
def test_too_few_events_or_rounds_are_refused(args: tuple[str, ...], message: str) -> None:
    result = run(URL, *args)
    assert result.returncode == 2
    assert message in result.stderr


def test_a_url_of_another_backend_is_refused_with_the_scheme_to_use() -> None:
    result = run("redis://127.0.0.1:6379/0")
    assert result.returncode == 2
    assert "is not a kafka URL; write kafka://" in result.stderr
