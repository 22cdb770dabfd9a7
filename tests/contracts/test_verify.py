"""``eventwire contracts verify``: a foreign producer's valid and invalid messages, counted
exactly, on the embedded broker and on real Kafka and NATS."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from xml.etree import ElementTree

import pytest
from click.testing import Result
from eventwire.backend import WireMessage
from eventwire.contracts._load import load_document
from eventwire.contracts._verify import Seen, VerifyReport, verify_live
from eventwire.plugins import create_backend
from eventwire_memory._broker import get_broker

from tests.contracts._live import contract, foreign_mix, headers

KAFKA = os.environ.get("EVENTWIRE_KAFKA_URL") or "kafka://127.0.0.1:9092"
NATS = os.environ.get("EVENTWIRE_NATS_URL") or "nats://127.0.0.1:4222"


def _expect(report: VerifyReport, mix: Sequence[tuple[str, object, str | None]]) -> None:
    """Exactly the planted violations, each for its reason; the valid ones pass."""
    assert len(report.seen) == len(mix)
    expected = sorted(rule for _, _, rule in mix if rule is not None)
    found = sorted(s.problems[0].rule for s in report.violations)
    assert found == expected, [(s.type, s.problems) for s in report.violations]
    assert all(len(s.problems) == 1 for s in report.violations)
    assert report.exit_code() == 1


async def _publish_memory(
    url: str, mix: list[tuple[str, tuple[bytes, dict[str, str], str | None], str | None]]
) -> None:
    backend = create_backend(url)
    await backend.connect()
    try:
        for channel, (body, headers, key), _ in mix:
            await backend.publish(channel, [WireMessage(body, headers, key)])
    finally:
        await backend.close()


@pytest.mark.anyio
async def test_memory_counts_every_violation_and_removes_its_group(tmp_path: Path) -> None:
    path, orders, payments = contract(tmp_path)
    url = f"memory://verify-{uuid.uuid4().hex[:8]}"
    mix = foreign_mix("kafka", orders, payments)
    await _publish_memory(url, mix)
    report = await verify_live(
        load_document(path),
        url,
        source=str(path),
        from_beginning=True,
        count=len(mix),
        duration=30,
    )
    _expect(report, mix)
    assert report.group_removed is True
    broker = get_broker(url.removeprefix("memory://"))
    assert broker.group_state(orders, report.group) is None
    assert broker.group_state(payments, report.group) is None


def test_cli_reports_and_exit_codes(tmp_path: Path, run: Callable[..., Result]) -> None:
    path, orders, payments = contract(tmp_path)
    url = f"memory://verify-{uuid.uuid4().hex[:8]}"
    # nothing published yet: exit 3
    empty = run("contracts", "verify", path, url, "--duration", "0.2")
    assert empty.exit_code == 3, empty.output
    assert "no message seen" in empty.output

    mix = foreign_mix("kafka", orders, payments)
    # kept sync: the CLI starts its own event loop, which cannot run inside a running one
    asyncio.run(_publish_memory(url, mix[:3]))
    good = run("contracts", "verify", path, url, "--from-beginning", "--count", "3")
    assert good.exit_code == 0, good.output
    assert "all 3 message(s) conform" in good.output

    asyncio.run(_publish_memory(url, mix[3:]))
    report_json, report_xml = tmp_path / "verify.json", tmp_path / "verify.xml"
    bad = run(
        "contracts",
        "verify",
        path,
        url,
        "--from-beginning",
        "--count",
        str(len(mix)),
        "--json",
        report_json,
        "--junit",
        report_xml,
    )
    assert bad.exit_code == 1, bad.output
    assert bad.output.count("VIOLATION") == 5
    assert "OrderShipped" in bad.output and "is not a message of channel" in bad.output
    assert "body: amount=12.5" in bad.output  # the non-JSON body, as it arrived
    data = json.loads(report_json.read_text())
    assert (data["seen"], data["violations"]) == (8, 5)
    assert data["channels"][orders] == {"seen": 6, "violations": 4}
    assert data["group_removed"] is True
    assert {m["excerpt"] for m in data["messages"]} >= {"amount=12.5"}
    suites = ElementTree.parse(report_xml).getroot()
    assert suites.get("tests") == "8" and suites.get("failures") == "5"

    only = run(
        "contracts",
        "verify",
        path,
        url,
        "--from-beginning",
        "--channel",
        "payments",
        "--count",
        "2",
    )
    assert only.exit_code == 1 and only.output.count("VIOLATION") == 1, only.output


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["verify", "{swagger}", "memory://"], "asyncapi"),
        (["verify", "{doc}", "kafka://127.0.0.1:1", "--duration", "1"], "kafka"),
        (["verify", "{doc}", "memory://", "--channel", "nope"], "channel 'nope' is not in"),
        (["verify", "{doc}", "nope://x"], "no installed backend"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    tmp_path: Path, run: Callable[..., Result], args: list[str], says: str
) -> None:
    path, _, _ = contract(tmp_path)
    swagger = tmp_path / "swagger.yaml"
    swagger.write_text("swagger: '2.0'\ninfo: {title: x, version: '1'}\npaths: {}\n")
    argv = [a.format(doc=path, swagger=swagger) for a in args]
    result = run("contracts", *argv)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert says.lower() in result.output.lower()
    assert len([line for line in result.output.splitlines() if line.strip()]) == 1, result.output


# -- real brokers: a foreign producer with the broker's own client ---------------------------


async def _verify_while(
    url: str, path: Path, produce: Callable[[], object], n: int
) -> VerifyReport:
    ready = asyncio.Event()
    task = asyncio.create_task(
        verify_live(
            load_document(path),
            url,
            source=str(path),
            count=n,
            duration=60,
            on_ready=lambda _: ready.set(),
        )
    )
    await asyncio.wait_for(ready.wait(), 60)
    await produce()  # type: ignore[misc]
    return await task


@pytest.mark.broker
@pytest.mark.anyio
async def test_kafka_foreign_producer(tmp_path: Path) -> None:
    from aiokafka import AIOKafkaProducer

    path, orders, payments = contract(tmp_path)
    mix = foreign_mix("kafka", orders, payments)

    async def produce() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=KAFKA.removeprefix("kafka://"))
        await producer.start()
        try:
            for channel, (body, headers, key), _ in mix:
                await producer.send_and_wait(
                    channel,
                    body,
                    key=key.encode() if key else None,
                    headers=[(k, v.encode()) for k, v in headers.items()],
                )
        finally:
            await producer.stop()

    async def groups() -> list[str]:
        from aiokafka.admin import AIOKafkaAdminClient

        admin = AIOKafkaAdminClient(bootstrap_servers=KAFKA.removeprefix("kafka://"))
        await admin.start()
        try:
            return [g[0] for g in await admin.list_consumer_groups()]
        finally:
            await admin.close()

    report = await _verify_while(KAFKA, path, produce, len(mix))
    _expect(report, mix)
    assert report.group_removed is True
    assert report.group not in await groups()


@pytest.mark.broker
@pytest.mark.anyio
async def test_nats_foreign_producer(tmp_path: Path) -> None:
    import nats

    path, orders, payments = contract(tmp_path)
    mix = foreign_mix("nats", orders, payments)

    async def produce() -> None:
        nc = await nats.connect(NATS)
        try:
            js = nc.jetstream()
            for channel, (body, headers, key), _ in mix:
                # eventwire's NATS layout: subjects <channel>.<shard>; the key travels in
                # ce-subject
                if key:
                    headers = {**headers, "ce-subject": key}
                await js.publish(f"{channel}.0", body, headers=headers)
        finally:
            await nc.close()

    async def consumers() -> list[str]:
        from eventwire_nats._topology import stream_name

        nc = await nats.connect(NATS)
        try:
            js = nc.jetstream()
            return [
                c.name
                for channel in (orders, payments)
                for c in await js.consumers_info(stream_name(channel))
            ]
        finally:
            await nc.close()

    report = await _verify_while(NATS, path, produce, len(mix))
    _expect(report, mix)
    assert report.group_removed is True
    assert not [c for c in await consumers() if c.startswith(report.group)]


# -- every backend removes the throw-away group --------------------------------------------

REDIS = os.environ.get("EVENTWIRE_REDIS_URL") or "redis://127.0.0.1:6379/0"
RABBIT = os.environ.get("EVENTWIRE_RABBIT_URL") or "amqp://guest:guest@127.0.0.1:5672/"


async def _redis_groups(channel: str) -> list[str]:
    from redis.asyncio import Redis

    client = Redis.from_url(REDIS)
    try:
        names: list[str] = []
        for n in range(int(await client.hget(f"{channel}:meta", "shards") or 0)):
            names += [g["name"].decode() for g in await client.xinfo_groups(f"{channel}:{n}")]
        return names
    finally:
        await client.aclose()


async def _rabbit_has_queue(name: str) -> bool:
    import aio_pika

    connection = await aio_pika.connect_robust(RABBIT)
    try:
        channel = await connection.channel()
        try:
            await channel.declare_queue(name, passive=True)
            return True
        except aio_pika.exceptions.ChannelClosed:
            return False
    finally:
        await connection.close()


@pytest.mark.broker
@pytest.mark.parametrize("url", [REDIS, RABBIT], ids=["redis", "rabbit"])
@pytest.mark.anyio
async def test_redis_and_rabbit_remove_the_group(tmp_path: Path, url: str) -> None:
    from eventwire.contracts._mock import run_mock

    path, orders, _ = contract(tmp_path)
    document = load_document(path)

    ready = asyncio.Event()
    task = asyncio.create_task(
        verify_live(document, url, count=2, duration=60, on_ready=lambda _: ready.set())
    )
    await asyncio.wait_for(ready.wait(), 60)
    await run_mock(document, url)
    report = await task
    assert (len(report.seen), report.violations, report.group_removed) == (2, [], True)
    if url == REDIS:
        assert report.group not in await _redis_groups(orders)
    else:
        assert not await _rabbit_has_queue(f"{orders}:{report.group}:0")


def test_ctrl_c_stops_watching_and_reports(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys

    path, _, _ = contract(tmp_path)
    report = tmp_path / "report.json"
    eventwire = str(Path(sys.executable).with_name("eventwire"))
    proc = subprocess.Popen(
        [
            eventwire,
            "contracts",
            "verify",
            str(path),
            "memory://",
            "--duration",
            "600",
            "--json",
            str(report),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    first = proc.stdout.readline()
    assert first.startswith("watching"), first
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 3, out
    assert "Traceback" not in out and "no message seen" in out
    assert json.loads(report.read_text())["group_removed"] is True


@pytest.mark.anyio
async def test_every_rule_on_its_own(tmp_path: Path) -> None:
    """Each planted fault is reported by its rule, and only that one."""
    path, orders, _ = contract(tmp_path)
    url = f"memory://verify-{uuid.uuid4().hex[:8]}"
    good = json.dumps({"order_id": "ord-1", "total": 1, "currency": "EUR"}).encode()

    def h(n: int, **changes: str | None) -> dict[str, str]:
        out = headers("kafka", "OrderPlaced", n)
        for name, value in changes.items():
            name = name.replace("_", "-") if name == "content_type" else f"ce_{name}"
            if value is None:
                out.pop(name)
            else:
                out[name] = value
        return out

    planted = [
        (good, h(1), "ok-1", None),
        (good, h(2, time=None), "ok-2", None),  # time is optional in CloudEvents
        (good, h(3, specversion="0.3"), "k3", "cloudevents"),
        (good, h(4, time="yesterday"), "k4", "cloudevents"),
        (good, h(5, id=""), "k5", "cloudevents"),
        (good, h(6, type=None), "k6", "cloudevents"),
        (good, h(7, content_type="text/plain"), "k7", "headers"),
        (json.dumps({"order_id": "", "total": -1}).encode(), h(8), "k8", "payload"),
        (good, h(9), None, "key"),
    ]
    mix = [(orders, (body, hdrs, key), rule) for body, hdrs, key, rule in planted]
    await _publish_memory(url, mix)
    report = await verify_live(
        load_document(path), url, from_beginning=True, count=len(mix), duration=30
    )
    assert len(report.seen) == len(planted)

    by_key: dict[str | None, Seen] = {s.key: s for s in report.seen}
    for _body, _headers, key, rule in planted:
        seen = by_key[key]
        assert {p.rule for p in seen.problems} == ({rule} if rule else set()), seen.problems
    assert len(report.violations) == 7
