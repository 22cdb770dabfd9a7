"""Three-node clusters from `conformance/brokers/brokers --cluster`.

The `cluster` tests start a private cluster (a temporary brokers folder, free ports), check
with the broker's own client that every node is up and joined (a replicated stream, topic,
queue or master/replica pair spans the three), SIGKILL the node that leads it, keep writing
through the survivors, start the node again and check it rejoined and caught up. They take
minutes on Kafka and RabbitMQ: `make test-clusters` runs them, `make test` does not. The
bad-input tests need no broker and run everywhere.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Awaitable, Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from tests._tools import run
from tests.brokers.conftest import run_brokers_script

REPO_ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
#: Node 1's port per variable; node N listens on port + N - 1.
CLUSTER_PORT_VARS = {
    "kafka": ("EVENTWIRE_CLUSTER_KAFKA_PORT", "EVENTWIRE_CLUSTER_KAFKA_CONTROLLER_PORT"),
    "rabbit": (
        "EVENTWIRE_CLUSTER_RABBIT_PORT",
        "EVENTWIRE_CLUSTER_RABBIT_DIST_PORT",
        "EVENTWIRE_CLUSTER_RABBIT_MANAGEMENT_PORT",
    ),
    "redis": ("EVENTWIRE_CLUSTER_REDIS_PORT", "EVENTWIRE_CLUSTER_REDIS_SENTINEL_PORT"),
    "nats": (
        "EVENTWIRE_CLUSTER_NATS_PORT",
        "EVENTWIRE_CLUSTER_NATS_ROUTE_PORT",
        "EVENTWIRE_CLUSTER_NATS_MONITOR_PORT",
    ),
}
ALL_VARS = [var for group in CLUSTER_PORT_VARS.values() for var in group]


def _script(
    *args: str, env: dict[str, str], timeout: float = 420
) -> subprocess.CompletedProcess[str]:
    return run_brokers_script(*args, env=env, timeout=timeout)


def _ok(*args: str, env: dict[str, str]) -> str:
    proc = _script(*args, env=env)
    assert proc.returncode == 0, f"brokers {' '.join(args)}:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def _free_block(taken: set[int]) -> int:
    """A port p such that p, p+1 and p+2 are free (and not handed out before)."""
    while True:
        base = random.randrange(20000, 60000)
        block = {base, base + 1, base + 2}
        if block & taken:
            continue
        try:
            for port in block:
                with socket.socket() as sock:
                    sock.bind((HOST, port))
        except OSError:
            continue
        taken |= block
        return base


def _shared_cache() -> str:
    base = os.environ.get("EVENTWIRE_BROKERS_DIR") or str(REPO_ROOT / ".brokers")
    return os.environ.get("EVENTWIRE_BROKERS_CACHE") or str(Path(base) / "cache")


@pytest.fixture
def cluster_env(tmp_path: Path) -> dict[str, str]:
    """An empty brokers folder and free port blocks for every cluster."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTWIRE_CLUSTER_")}
    env["EVENTWIRE_BROKERS_DIR"] = str(tmp_path / "brokers")
    env["EVENTWIRE_BROKERS_CACHE"] = _shared_cache()
    taken: set[int] = set()
    for var in ALL_VARS:
        env[var] = str(_free_block(taken))
    return env


def _ports(env: dict[str, str], var: str) -> list[int]:
    first = int(env[var])
    return [first, first + 1, first + 2]


async def _retry(action: Callable[[], Awaitable[Any]], seconds: float = 60.0) -> Any:
    """Run `action` until it succeeds (a failover takes a few seconds)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while True:
        try:
            return await action()
        except Exception:
            if loop.time() > deadline:
                raise
            await asyncio.sleep(0.5)


def _leader(url: str, channel: str, *options: str) -> str:
    """What ``python -m eventwire_conformance.leader`` (G23's helper) names."""
    done = subprocess.run(
        [sys.executable, "-m", "eventwire_conformance.leader", url, channel, *options],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def _assert_formed(name: str, env: dict[str, str]) -> str:
    status = _script("status", "--cluster", name, env=env)
    assert status.returncode == 0, status.stdout + status.stderr
    assert f"{name} cluster running" in status.stdout
    assert len(re.findall(r"^  node\d running ", status.stdout, re.M)) == 3, status.stdout
    return status.stdout


def _assert_degraded(name: str, env: dict[str, str], node: int) -> None:
    status = _script("status", "--cluster", name, env=env)
    assert status.returncode == 3, status.stdout + status.stderr
    assert f"{name} cluster degraded" in status.stdout
    assert re.search(rf"^  node{node} stopped ", status.stdout, re.M), status.stdout


@pytest.fixture
def started(
    cluster_env: dict[str, str], request: pytest.FixtureRequest
) -> Iterator[dict[str, str]]:
    name = request.param
    try:
        out = _ok("up", "--cluster", name, env=cluster_env)
        assert "3 nodes joined" in out
        yield cluster_env
    finally:
        _script("down", "--cluster", name, env=cluster_env, timeout=180)


# --------------------------------------------------------------------------- NATS


@pytest.mark.broker
@pytest.mark.cluster
@pytest.mark.parametrize("started", ["nats"], indirect=True)
def test_nats_cluster_survives_and_rejoins(started: dict[str, str]) -> None:
    import nats

    env = started
    ports = _ports(env, "EVENTWIRE_CLUSTER_NATS_PORT")
    monitors = _ports(env, "EVENTWIRE_CLUSTER_NATS_MONITOR_PORT")
    stream = f"cl{uuid.uuid4().hex[:8]}"
    status = _assert_formed("nats", env)
    assert "nats://" + ",".join(f"{HOST}:{p}" for p in ports) in status

    async def connect() -> Any:
        return await nats.connect(servers=[f"nats://{HOST}:{p}" for p in ports])

    async def create() -> int:
        nc = await connect()
        js = nc.jetstream()
        await js.add_stream(name=stream, subjects=[f"{stream}.>"], num_replicas=3)
        for i in range(5):
            await js.publish(f"{stream}.a", str(i).encode())
        info = await js.stream_info(stream)
        await nc.close()
        assert info.cluster is not None and info.cluster.leader
        assert len(info.cluster.replicas or []) == 2
        return int(info.cluster.leader.removeprefix("eventwire-c"))

    leader = run(create)
    _ok("kill", "nats", "--node", str(leader), env=env)
    _assert_degraded("nats", env, leader)

    async def publish_more() -> None:
        nc = await connect()
        js = nc.jetstream()
        for i in range(5, 10):
            await _retry(partial(js.publish, f"{stream}.a", str(i).encode(), timeout=2))
        await nc.close()

    run(publish_more)
    _ok("up", "nats", "--node", str(leader), env=env)
    _assert_formed("nats", env)
    # The restarted server catches its replica up, with the messages written while it was down.
    assert _caught_up([monitors[leader - 1]], stream, 10) == [10]
    # A graceful restart of the whole cluster keeps the stream on every node.
    _ok("restart", "--cluster", "nats", env=env)
    _assert_formed("nats", env)
    assert _caught_up(monitors, stream, 10) == [10, 10, 10]


def _caught_up(monitors: list[int], stream: str, expected: int, seconds: float = 30.0) -> list[int]:
    """The stream's message count on each server, read until every one holds `expected` or
    `seconds` pass: a server that rejoins answers on its monitoring port before its replica has
    caught up with the stream leader."""
    deadline = time.monotonic() + seconds
    while True:
        counts = [_stream_messages(port, stream) for port in monitors]
        if all(n == expected for n in counts) or time.monotonic() > deadline:
            return counts
        time.sleep(0.5)


def _stream_messages(monitor: int, stream: str) -> int:
    """How many messages the server on this monitoring port holds for the stream (0 while it
    holds no replica of it)."""
    url = f"http://{HOST}:{monitor}/jsz?streams=true"
    with urllib.request.urlopen(url, timeout=5) as resp:
        jsz = json.loads(resp.read())
    details = [s for a in jsz["account_details"] for s in a["stream_detail"] if s["name"] == stream]
    return int(details[0]["state"]["messages"]) if details else 0


# --------------------------------------------------------------------------- Kafka


@pytest.mark.broker
@pytest.mark.cluster
@pytest.mark.parametrize("started", ["kafka"], indirect=True)
def test_kafka_cluster_survives_and_rejoins(started: dict[str, str]) -> None:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    env = started
    ports = _ports(env, "EVENTWIRE_CLUSTER_KAFKA_PORT")
    boot = ",".join(f"{HOST}:{p}" for p in ports)
    topic = f"cl{uuid.uuid4().hex[:8]}"
    assert f"kafka://{boot}" in _assert_formed("kafka", env)

    async def describe(bootstrap: str) -> dict[str, Any]:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            found = await admin.describe_topics([topic])
        finally:
            await admin.close()
        partition: dict[str, Any] = found[0]["partitions"][0]
        return partition

    async def produce(values: range) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=boot, acks="all")
        await producer.start()
        try:
            for i in values:
                await _retry(partial(producer.send_and_wait, topic, str(i).encode()))
        finally:
            await producer.stop()

    async def create() -> int:
        admin = AIOKafkaAdminClient(bootstrap_servers=boot)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(topic, 1, 3)])
        finally:
            await admin.close()
        await produce(range(5))
        partition = await describe(boot)
        assert sorted(partition["isr"]) == [1, 2, 3]
        return int(partition["leader"])

    leader = run(create)
    _ok("kill", "kafka", "--node", str(leader), env=env)
    _assert_degraded("kafka", env, leader)
    run(lambda: produce(range(5, 10)), timeout=180)
    _ok("up", "kafka", "--node", str(leader), env=env)
    _assert_formed("kafka", env)

    async def after() -> list[bytes]:
        partition = await describe(f"{HOST}:{ports[leader - 1]}")
        assert sorted(partition["isr"]) == [1, 2, 3]
        consumer = AIOKafkaConsumer(
            topic, bootstrap_servers=f"{HOST}:{ports[leader - 1]}", auto_offset_reset="earliest"
        )
        await consumer.start()
        try:
            got: list[bytes] = []
            while len(got) < 10:
                batch = await consumer.getmany(timeout_ms=2000)
                got += [r.value for records in batch.values() for r in records if r.value]
            return got
        finally:
            await consumer.stop()

    assert run(after) == [str(i).encode() for i in range(10)]

    # While the node was down the survivors took over its partitions; once it is in sync
    # again the controller gives each back to its preferred leader (its first replica).
    async def rebalanced() -> None:
        partition = await describe(boot)
        assert partition["leader"] == partition["replicas"][0], partition

    run(lambda: _retry(rebalanced, seconds=90), timeout=150)
    status = _assert_formed("kafka", env)
    assert re.search(rf"^  node{leader} running .*preferred leader of [1-9]", status, re.M), status
    assert f"{topic}-0 on node {leader}" in status, status


# --------------------------------------------------------------------------- Redis


@pytest.mark.broker
@pytest.mark.cluster
@pytest.mark.parametrize("started", ["redis"], indirect=True)
def test_redis_sentinel_fails_over_and_the_old_master_rejoins(started: dict[str, str]) -> None:
    from redis.asyncio import Redis
    from redis.asyncio.sentinel import Sentinel

    env = started
    data_ports = _ports(env, "EVENTWIRE_CLUSTER_REDIS_PORT")
    sentinels = [(HOST, p) for p in _ports(env, "EVENTWIRE_CLUSTER_REDIS_SENTINEL_PORT")]
    key = f"cl{uuid.uuid4().hex[:8]}"
    hosts = ",".join(f"{h}:{p}" for h, p in sentinels)
    assert f"redis+sentinel://{hosts}/mymaster" in _assert_formed("redis", env)

    async def first_write() -> int:
        sentinel = Sentinel(sentinels, socket_timeout=2)  # type: ignore[no-untyped-call]
        _host, port = await sentinel.discover_master("mymaster")
        async with sentinel.master_for("mymaster") as master:
            await master.set(key, "before")
            assert await master.wait(2, 2000) == 2  # both replicas have it
        return data_ports.index(port) + 1

    old = run(first_write)
    url = f"redis+sentinel://{hosts}/mymaster"
    assert _leader(url, "orders") == f"{HOST}:{data_ports[old - 1]}"
    _ok("kill", "redis", "--node", str(old), env=env)
    _assert_degraded("redis", env, old)

    async def failover_write() -> int:
        sentinel = Sentinel(sentinels, socket_timeout=2)  # type: ignore[no-untyped-call]

        async def promoted() -> int:
            _host, port = await sentinel.discover_master("mymaster")
            assert port != data_ports[old - 1]
            return int(port)

        port = await _retry(promoted)
        async with Redis(host=HOST, port=port) as master:
            await master.set(key, "after")
        return data_ports.index(port) + 1

    new = run(failover_write)
    assert new != old
    assert _leader(url, "orders") == f"{HOST}:{data_ports[new - 1]}"
    _ok("up", "redis", "--node", str(old), env=env)
    _assert_formed("redis", env)

    async def rejoined() -> None:
        async with Redis(host=HOST, port=data_ports[old - 1], decode_responses=True) as node:
            info = await node.info("replication")
            assert info["role"] == "slave"
            assert int(info["master_port"]) == data_ports[new - 1]
            assert await node.get(key) == "after"

    run(lambda: _retry(rejoined, 30))
    # After down and up, the master is still the one the sentinels promoted.
    _ok("down", "--cluster", "redis", env=env)
    _ok("up", "--cluster", "redis", env=env)
    assert f"master (per the sentinels): {HOST}:{data_ports[new - 1]}" in _assert_formed(
        "redis", env
    )


# --------------------------------------------------------------------------- RabbitMQ


@pytest.mark.broker
@pytest.mark.cluster
@pytest.mark.parametrize("started", ["rabbit"], indirect=True)
def test_rabbit_quorum_queue_survives_and_the_node_rejoins(started: dict[str, str]) -> None:
    import aio_pika

    env = started
    ports = _ports(env, "EVENTWIRE_CLUSTER_RABBIT_PORT")
    managements = [
        f"http://{HOST}:{p}" for p in _ports(env, "EVENTWIRE_CLUSTER_RABBIT_MANAGEMENT_PORT")
    ]
    channel = f"cl{uuid.uuid4().hex[:8]}"
    queue = f"{channel}:grp:0"  # named like a group's shard queue of `channel`
    url = "amqp://guest:guest@" + ",".join(f"{HOST}:{p}" for p in ports) + "/"
    assert url in _assert_formed("rabbit", env)

    async def publish(port: int, values: range) -> int:
        connection = await aio_pika.connect(f"amqp://guest:guest@{HOST}:{port}/")
        async with connection:
            channel = await connection.channel()  # publisher confirms on
            declared = await channel.declare_queue(
                queue, durable=True, arguments={"x-queue-type": "quorum"}
            )
            for i in values:
                message = aio_pika.Message(str(i).encode(), delivery_mode=2)
                await channel.default_exchange.publish(message, routing_key=queue)
            return int(declared.declaration_result.message_count or 0)

    run(lambda: publish(ports[0], range(5)))
    leaders = re.search(rf"{queue} on eventwire-c(\d)-", _assert_formed("rabbit", env))
    assert leaders, "status names no leader for the quorum queue"
    leader = int(leaders.group(1))
    assert _leader(url, channel, "--management", managements[1]).startswith(f"eventwire-c{leader}-")
    _ok("kill", "rabbit", "--node", str(leader), env=env)
    _assert_degraded("rabbit", env, leader)
    survivor = ports[leader % 3]
    run(lambda: _retry(lambda: publish(survivor, range(5, 10))), timeout=180)
    # a survivor leads the queue now
    new = _leader(url, channel, "--management", managements[leader % 3])
    assert new.startswith("eventwire-c") and not new.startswith(f"eventwire-c{leader}-")
    _ok("up", "rabbit", "--node", str(leader), env=env)
    status = _assert_formed("rabbit", env)
    assert status.count("3 nodes running in its cluster") == 3

    async def count_on_restarted() -> int:
        return await publish(ports[leader - 1], range(0))

    assert run(count_on_restarted) == 10


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["kill", "nats", "--node", "4"], "--node takes a node number, 1 to 3; got '4'"),
        (["kill", "nats", "--node"], "--node takes a node number"),
        (["up", "nats", "kafka", "--node", "1"], "--node needs exactly one cluster name"),
        (["up", "--cluster", "aws"], "valid names with --cluster: kafka rabbit redis nats"),
        (["up", "--cluster", "--secure"], "--secure and --cluster do not combine"),
        (["kill", "--cluster"], "kill --cluster needs a cluster name"),
        (["restart", "--cluster"], "restart --cluster needs a cluster name"),
        (["status", "nats", "--node", "1"], "status shows every node; drop --node"),
        (["start", "--cluster", "nats"], "unknown command: start"),
        (["wipe", "--cluster"], "wipe --cluster needs a cluster name"),
        (["wipe", "nats", "--node", "1"], "wipe deletes whole clusters; drop --node"),
        (["wipe", "nats"], "wipe deletes the three-node clusters only: brokers wipe --cluster"),
    ],
)
def test_bad_cluster_input_exits_2(cluster_env: dict[str, str], args: list[str], says: str) -> None:
    proc = _script(*args, env=cluster_env)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert says in proc.stderr
    assert "Traceback" not in proc.stderr


def test_status_of_stopped_clusters(cluster_env: dict[str, str]) -> None:
    proc = _script("status", "--cluster", env=cluster_env)
    assert proc.returncode == 3
    for name in ("kafka", "rabbit", "redis", "nats"):
        assert f"{name} cluster stopped" in proc.stdout
    nats = _ports(cluster_env, "EVENTWIRE_CLUSTER_NATS_PORT")
    assert "nats://" + ",".join(f"{HOST}:{p}" for p in nats) in proc.stdout


def test_kill_and_restart_of_a_stopped_cluster_are_refused(cluster_env: dict[str, str]) -> None:
    killed = _script("kill", "redis", "--node", "2", env=cluster_env)
    assert killed.returncode == 1
    assert "node 2 is not running" in killed.stderr
    assert "brokers up redis --node 2" in killed.stderr
    restarted = _script("restart", "--cluster", "nats", env=cluster_env)
    assert restarted.returncode == 1
    assert "nats cluster is not running" in restarted.stderr


def test_wipe_deletes_a_stopped_clusters_data_and_only_that(cluster_env: dict[str, str]) -> None:
    clusters = Path(cluster_env["EVENTWIRE_BROKERS_DIR"]) / "cluster"
    for name in ("kafka", "nats"):
        (clusters / name / "node1" / "data").mkdir(parents=True)
        (clusters / name / "node1" / "data" / "segment").write_text("old")
    out = _ok("wipe", "--cluster", "kafka", "redis", env=cluster_env)
    assert f"kafka cluster wiped: {clusters / 'kafka'} deleted" in out
    assert "redis cluster wiped (had no data)" in out
    assert not (clusters / "kafka").exists()
    assert (clusters / "nats" / "node1" / "data" / "segment").read_text() == "old"


@pytest.mark.broker
@pytest.mark.cluster
def test_wipe_stops_a_running_cluster_and_up_starts_it_blank(cluster_env: dict[str, str]) -> None:
    store = Path(cluster_env["EVENTWIRE_BROKERS_DIR"]) / "cluster" / "nats"
    try:
        _ok("up", "--cluster", "nats", env=cluster_env)
        (store / "node1" / "earlier-run").write_text("old")
        out = _ok("wipe", "--cluster", "nats", env=cluster_env)
        assert "nats node1 stopped" in out and f"nats cluster wiped: {store} deleted" in out
        assert (
            "nats cluster stopped" in _script("status", "--cluster", "nats", env=cluster_env).stdout
        )
        assert "3 nodes joined" in _ok("up", "--cluster", "nats", env=cluster_env)
        assert not (store / "node1" / "earlier-run").exists()
    finally:
        _script("down", "--cluster", "nats", env=cluster_env, timeout=180)


def test_a_taken_port_stops_up_before_anything_starts(cluster_env: dict[str, str]) -> None:
    port = int(cluster_env["EVENTWIRE_CLUSTER_NATS_ROUTE_PORT"]) + 1
    with socket.socket() as holder:
        holder.bind((HOST, port))
        holder.listen()
        proc = _script("up", "--cluster", "nats", env=cluster_env)
    assert proc.returncode == 1
    assert f"node2 route port {port}" in proc.stderr
    assert "EVENTWIRE_CLUSTER_" in proc.stderr
    assert not list((Path(cluster_env["EVENTWIRE_BROKERS_DIR"]) / "cluster").glob("*/node*/*.pid"))
