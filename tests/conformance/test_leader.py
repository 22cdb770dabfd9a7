"""``python -m eventwire_conformance.leader URL CHANNEL`` (G23's helper): the node leading a
channel on a real Kafka broker, and a clear one-line error for bad input. The RabbitMQ and
Redis Sentinel leaders are checked on the clusters (tests/brokers/test_clusters.py)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid

import pytest
from eventwire.backend import WireMessage
from eventwire_kafka import KafkaBackend

KAFKA = os.environ.get("EVENTWIRE_KAFKA_URL") or "kafka://127.0.0.1:9092"


def leader(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "eventwire_conformance.leader", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("args", "said"),
    [
        ((), "usage: python -m eventwire_conformance.leader URL CHANNEL"),
        (("memory://", "orders"), "cannot find a channel's leader on memory://"),
        (("amqp://127.0.0.1:5672/", "orders", "--management"), "usage: "),
        (
            ("amqp://127.0.0.1:5672/", "orders", "--management", "http://127.0.0.1:9"),
            "no RabbitMQ management API answered (enable the rabbitmq_management plugin",
        ),
        (
            ("redis+sentinel://127.0.0.1:9/mymaster", "orders"),
            "no sentinel of 127.0.0.1:9 names a master for 'mymaster'",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args: tuple[str, ...], said: str) -> None:
    done = leader(*args)
    assert done.returncode == 2
    assert said in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert "Traceback" not in done.stderr


@pytest.mark.broker
def test_the_kafka_leader_is_the_broker_id() -> None:
    channel = f"ewt-leader-{uuid.uuid4().hex[:10]}"

    async def create() -> None:
        backend = KafkaBackend(KAFKA)
        await backend.connect()
        try:
            await backend.publish(channel, [WireMessage(b"{}", {}, "k")])
        finally:
            await backend.close()

    # kept sync: the helper under test is a blocking subprocess
    asyncio.run(create())
    done = leader(KAFKA, channel)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().isdigit()  # the node id of the single broker
    missing = leader(KAFKA, channel + "-missing")
    assert missing.returncode == 2 and "has no topic" in missing.stderr
