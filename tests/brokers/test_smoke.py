"""Smoke tests of the local brokers and of conformance/brokers/brokers.

The ``broker`` tests need the brokers running (``conformance/brokers/brokers up``) and
talk to them with the raw client libraries. The restart tests start private brokers on
free ports in a temporary folder, so they never restart the shared ones. The tests of
bad input need no broker at all.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests._tools import run
from tests.brokers.conftest import run_brokers_script

REPO_ROOT = Path(__file__).resolve().parents[2]

PORT_VARS = (
    "EVENTWIRE_REDIS_PORT",
    "EVENTWIRE_NATS_PORT",
    "EVENTWIRE_NATS_MONITOR_PORT",
    "EVENTWIRE_RABBIT_PORT",
    "EVENTWIRE_RABBIT_DIST_PORT",
    "EVENTWIRE_KAFKA_PORT",
    "EVENTWIRE_KAFKA_CONTROLLER_PORT",
    "EVENTWIRE_AWS_PORT",
    "EVENTWIRE_POSTGRES_PORT",
)
ALL_NAMES = ("kafka", "rabbit", "redis", "nats", "aws", "postgres")


def host_port(url: str, default_port: int) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or default_port


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _shared_cache() -> str:
    base = os.environ.get("EVENTWIRE_BROKERS_DIR") or str(REPO_ROOT / ".brokers")
    return os.environ.get("EVENTWIRE_BROKERS_CACHE") or str(Path(base) / "cache")


def _script(
    *args: str, env: dict[str, str], timeout: float = 240
) -> subprocess.CompletedProcess[str]:
    return run_brokers_script(*args, env=env, timeout=timeout)


@pytest.fixture
def isolated_env(tmp_path: Path) -> dict[str, str]:
    """An environment whose brokers dir is empty and whose ports nobody uses."""
    env = {k: v for k, v in os.environ.items() if k not in PORT_VARS}
    env["EVENTWIRE_BROKERS_DIR"] = str(tmp_path / "brokers")
    env["EVENTWIRE_BROKERS_CACHE"] = _shared_cache()
    env["EVENTWIRE_VENV"] = sys.prefix  # moto_server comes from the venv running the tests
    for var in PORT_VARS:
        env[var] = str(_free_port())
    return env


@pytest.fixture
def private_broker(isolated_env: dict[str, str]) -> Iterator[dict[str, str]]:
    """The isolated environment; every broker started in it is stopped afterwards."""
    try:
        yield isolated_env
    finally:
        _script("down", *ALL_NAMES, env=isolated_env, timeout=120)


# --------------------------------------------------------------------------- round trips


@pytest.mark.broker
@pytest.mark.anyio
async def test_kafka_round_trip(kafka_url: str) -> None:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    host, port = host_port(kafka_url, 9092)
    bootstrap = f"{host}:{port}"
    topic = f"smoke-{uuid.uuid4().hex}"

    async with asyncio.timeout(60):
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
        await producer.start()
        try:
            sent = await producer.send_and_wait(topic, b"hello", key=b"k1")
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(
            topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest"
        )
        await consumer.start()
        try:
            received = await consumer.getone()
        finally:
            await consumer.stop()
    assert sent.offset == 0
    assert (received.key, received.value, received.offset) == (b"k1", b"hello", 0)


@pytest.mark.broker
def test_kafka_is_apache_kafka_4(kafka_url: str, brokers_script: ModuleType) -> None:
    host, port = host_port(kafka_url, 9092)
    info = brokers_script.kafka_api_versions(port, host)
    assert info["error_code"] == 0
    level = info["finalized_features"]["metadata.version"][1]
    assert level >= 22, f"metadata.version level {level} is older than Kafka 4.0 (22)"
    release = brokers_script.kafka_release(info)
    assert release is not None
    assert release.startswith(("4.", ">4.")), release
    # Kafka 4.0 removed Fetch v0-v3 (KIP-896): the broker must not offer them.
    assert info["api_keys"][1][0] >= 4


@pytest.mark.broker
@pytest.mark.anyio
async def test_rabbit_round_trip_through_consistent_hash_exchange(rabbit_url: str) -> None:
    import aio_pika

    name = f"smoke-{uuid.uuid4().hex}"
    got: tuple[bytes, str | None] | None = None

    async with asyncio.timeout(60):
        connection = await aio_pika.connect(rabbit_url)
        async with connection:
            channel = await connection.channel(publisher_confirms=True)
            # fails with NOT_FOUND / command invalid unless the plugin is enabled
            exchange = await channel.declare_exchange(name, "x-consistent-hash", auto_delete=True)
            queue = await channel.declare_queue(name, exclusive=True)
            await queue.bind(exchange, routing_key="1")
            await exchange.publish(
                aio_pika.Message(b"hello", message_id="m1"), routing_key="order-42"
            )
            async with queue.iterator() as messages:
                async for message in messages:
                    async with message.process():
                        got = message.body, message.message_id
                    break

    assert got == (b"hello", "m1")


@pytest.mark.broker
@pytest.mark.anyio
async def test_redis_stream_round_trip(redis_url: str) -> None:
    import redis.asyncio as aioredis

    stream = f"smoke-{uuid.uuid4().hex}"

    async with asyncio.timeout(60):
        client = aioredis.from_url(redis_url)
        try:
            await client.xgroup_create(stream, "g", id="0", mkstream=True)
            entry_id = await client.xadd(stream, {"body": b"hello"})
            got: Any = await client.xreadgroup("g", "c1", {stream: ">"}, count=1, block=5000)
            [(_, [(read_id, fields)])] = got
            acked = await client.xack(stream, "g", read_id)
            await client.delete(stream)
        finally:
            await client.aclose()

    assert read_id == entry_id
    assert fields == {b"body": b"hello"}
    assert acked == 1


@pytest.mark.broker
@pytest.mark.anyio
async def test_nats_jetstream_round_trip(nats_url: str) -> None:
    import nats

    token = uuid.uuid4().hex
    stream, subject = f"SMOKE_{token}", f"smoke.{token}"

    async with asyncio.timeout(60):
        nc = await nats.connect(nats_url)
        try:
            js = nc.jetstream()
            await js.add_stream(name=stream, subjects=[subject])
            try:
                ack = await js.publish(subject, b"hello")
                sub = await js.pull_subscribe(subject, durable="smoke")
                [msg] = await sub.fetch(1, timeout=10)
                await msg.ack()
            finally:
                await js.delete_stream(stream)
        finally:
            await nc.close()

    assert (ack.seq, msg.data, msg.metadata.num_delivered) == (1, b"hello", 1)


# --------------------------------------------------------------------------- restarts keep data


@pytest.mark.broker
@pytest.mark.slow
@pytest.mark.parametrize("how", ["restart", "kill"])
def test_restart_or_kill_redis_keeps_stream(private_broker: dict[str, str], how: str) -> None:
    """`restart` stops gracefully; `kill` is a crash (SIGKILL, the process is gone at once)
    and `up` brings the broker back on the same data: with ``appendfsync always`` every
    acknowledged write survives either way."""
    import redis.asyncio as aioredis

    env = private_broker
    up = _script("up", "redis", env=env)
    assert up.returncode == 0, up.stdout + up.stderr
    url = f"redis://127.0.0.1:{env['EVENTWIRE_REDIS_PORT']}/0"

    async def write():  # type: ignore[no-untyped-def]
        client = aioredis.from_url(url)
        try:
            return [await client.xadd("orders", {"n": str(i)}) for i in range(3)]
        finally:
            await client.aclose()

    async def read() -> list[Any]:
        client = aioredis.from_url(url)
        try:
            entries: Any = await client.xrange("orders")
            return [entry_id for entry_id, _ in entries]
        finally:
            await client.aclose()

    written = run(write)
    if how == "restart":
        restarted = _script("restart", "redis", env=env)
        assert restarted.returncode == 0, restarted.stdout + restarted.stderr
        assert "stopped" in restarted.stdout
    else:
        killed = _script("kill", "redis", env=env)
        assert killed.returncode == 0, killed.stdout + killed.stderr
        assert "killed" in killed.stdout and "SIGKILL" in killed.stdout
        status = _script("status", "redis", env=env)
        assert status.returncode == 3 and "stopped" in status.stdout, status.stdout
        again = _script("kill", "redis", env=env)
        assert again.returncode == 1 and "not running" in again.stderr, again.stderr
        up = _script("up", "redis", env=env)
        assert up.returncode == 0, up.stdout + up.stderr
    assert run(read) == written


@pytest.mark.broker
@pytest.mark.slow
def test_restart_kafka_keeps_topic(private_broker: dict[str, str]) -> None:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    env = private_broker
    up = _script("up", "kafka", env=env)
    assert up.returncode == 0, up.stdout + up.stderr
    bootstrap = f"127.0.0.1:{env['EVENTWIRE_KAFKA_PORT']}"

    async def write():  # type: ignore[no-untyped-def]
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
        await producer.start()
        try:
            for i in range(3):
                await producer.send_and_wait("orders", f"order-{i}".encode())
        finally:
            await producer.stop()

    async def read():  # type: ignore[no-untyped-def]
        consumer = AIOKafkaConsumer(
            "orders", bootstrap_servers=bootstrap, auto_offset_reset="earliest"
        )
        await consumer.start()
        try:
            values: list[Any] = []
            while len(values) < 3:
                batch = await consumer.getmany(timeout_ms=1000)
                values += [r.value for records in batch.values() for r in records]
            return values
        finally:
            await consumer.stop()

    run(write)
    restarted = _script("restart", "kafka", env=env)
    assert restarted.returncode == 0, restarted.stdout + restarted.stderr
    assert run(read, timeout=90) == [b"order-0", b"order-1", b"order-2"]


@pytest.mark.broker
def test_postgres_up_serves_the_idempotency_store(
    private_broker: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """`up postgres`: a cluster of its own on loopback (run as the postgres user when root,
    so its folder must be reachable by that user), trust for the eventwire user."""
    import tempfile

    from eventwire import Claim
    from eventwire.plugins import open_idempotency_store

    home = Path(tempfile.mkdtemp(prefix="eventwire-brokers-"))
    home.chmod(0o755)
    env = {**private_broker, "EVENTWIRE_BROKERS_DIR": str(home)}
    port = int(env["EVENTWIRE_POSTGRES_PORT"])
    try:
        up = _script("up", "postgres", env=env, timeout=180)
        assert up.returncode == 0, up.stdout + up.stderr
        line = next(row for row in up.stdout.splitlines() if row.startswith("postgres"))
        url = f"postgresql://eventwire@127.0.0.1:{port}/postgres"
        assert url in line and "PostgreSQL" in line, line

        async def claim_twice() -> tuple[Claim, Claim]:
            first, second = open_idempotency_store(url), open_idempotency_store(url)
            try:
                return await first.claim("g:1", 30), await second.claim("g:1", 30)
            finally:
                await first.close()  # type: ignore[attr-defined]
                await second.close()  # type: ignore[attr-defined]

        assert run(claim_twice) == (Claim.ACQUIRED, Claim.BUSY)
        status = _script("status", "postgres", env=env)
        assert status.returncode == 0 and "postgres running" in status.stdout, status.stdout
    finally:
        down = _script("down", "postgres", env=env, timeout=60)
        import shutil

        shutil.rmtree(home, ignore_errors=True)
    assert "postgres stopped  pid" in down.stdout, down.stdout + down.stderr


def _aws_json(port: int, service: str, target: str, body: dict[str, Any]) -> dict[str, Any]:
    import json
    import urllib.request

    version = "1.1" if service == "events" else "1.0"
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/",
        data=json.dumps(body).encode(),
        method="POST",
        headers={
            "X-Amz-Target": target,
            "Content-Type": f"application/x-amz-json-{version}",
            "Authorization": (
                f"AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/{service}/aws4_request, "
                "SignedHeaders=host, Signature=0"
            ),
        },
    )
    with urllib.request.urlopen(request, timeout=10) as resp:
        return dict(json.loads(resp.read() or b"{}"))


def test_aws_up_status_down(private_broker: dict[str, str]) -> None:
    """`up aws` serves EventBridge and SQS on loopback; `up` alone leaves it alone."""
    port = int(private_broker["EVENTWIRE_AWS_PORT"])
    up = _script("up", "aws", env=private_broker, timeout=120)
    assert up.returncode == 0, up.stderr
    line = next(row for row in up.stdout.splitlines() if row.startswith("aws"))
    assert f"127.0.0.1:{port}" in line
    assert f"eventbridge://default?region=us-east-1&endpoint=http://127.0.0.1:{port}" in line
    assert "moto (EventBridge + SQS)" in line

    bus = f"bus-{uuid.uuid4().hex[:8]}"
    _aws_json(port, "events", "AWSEvents.CreateEventBus", {"Name": bus})
    names = [
        b["Name"] for b in _aws_json(port, "events", "AWSEvents.ListEventBuses", {})["EventBuses"]
    ]
    assert bus in names
    _aws_json(port, "sqs", "AmazonSQS.CreateQueue", {"QueueName": bus})
    assert any(
        bus in url for url in _aws_json(port, "sqs", "AmazonSQS.ListQueues", {})["QueueUrls"]
    )

    status = _script("status", "aws", env=private_broker)
    assert status.returncode == 0, status.stdout + status.stderr
    assert "running" in status.stdout
    default_status = _script("status", env=private_broker)
    assert not any(row.startswith("aws") for row in default_status.stdout.splitlines())

    down = _script("down", "aws", env=private_broker)
    assert down.returncode == 0
    assert "aws     stopped  pid" in down.stdout
    after = _script("status", "aws", env=private_broker)
    assert after.returncode == 3
    assert "aws     stopped" in after.stdout


def test_aws_without_a_venv_names_the_make_target(
    isolated_env: dict[str, str], tmp_path: Path
) -> None:
    isolated_env["EVENTWIRE_VENV"] = str(tmp_path / "no-venv")
    result = _script("up", "aws", env=isolated_env)
    assert result.returncode == 1
    assert "aws: no project venv at" in result.stderr
    assert "make .venv/.installed" in result.stderr
    assert "Traceback" not in result.stderr


# --------------------------------------------------------------------------- bad input


def test_unknown_name_lists_valid_names(isolated_env: dict[str, str]) -> None:
    result = _script("up", "kafak", env=isolated_env)
    assert result.returncode != 0
    assert "unknown broker name(s): kafak" in result.stderr
    assert "valid names: kafka rabbit redis nats aws" in result.stderr


def test_unknown_command_prints_usage(isolated_env: dict[str, str]) -> None:
    result = _script("start", env=isolated_env)
    assert result.returncode != 0
    assert "unknown command: start" in result.stderr
    assert "brokers up [NAMES]" in result.stderr


def test_restart_of_stopped_broker_is_refused(isolated_env: dict[str, str]) -> None:
    result = _script("restart", "redis", env=isolated_env)
    assert result.returncode == 1
    assert "redis is not running" in result.stderr
    assert "up redis" in result.stderr


def test_restart_needs_a_name(isolated_env: dict[str, str]) -> None:
    result = _script("restart", env=isolated_env)
    assert result.returncode != 0
    assert "valid names" in result.stderr


def test_status_and_down_when_nothing_runs(isolated_env: dict[str, str]) -> None:
    status = _script("status", env=isolated_env)
    assert status.returncode == 3
    for name in ("kafka", "rabbit", "redis", "nats"):
        assert any(
            line.startswith(name) and "stopped" in line for line in status.stdout.splitlines()
        ), status.stdout
    down = _script("down", env=isolated_env)
    assert down.returncode == 0
    assert "was not running" in down.stdout


def test_port_taken_by_another_process_fails(isolated_env: dict[str, str]) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        isolated_env["EVENTWIRE_REDIS_PORT"] = str(squatter.getsockname()[1])
        result = _script("up", "redis", env=isolated_env)
    assert result.returncode == 1
    assert "already in use" in result.stderr
