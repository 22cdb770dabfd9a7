"""The nats backend against a real NATS server (``conformance/brokers/brokers up nats``).

The conformance suite proves the guarantees; these tests cover what is specific to this
backend: URLs and options, errors that name the problem (no server, no JetStream, too
large), credentials that never leak, the topology it creates, message ids and the duplicate
window, headers NATS cannot carry as they are, shard ownership and crash take-over.
Servers with authentication or without JetStream are private ``nats-server`` processes on
free ports, so the shared broker is never touched.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import logging
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from eventwire import Delivery, EventBus, RetryPolicy
from eventwire.backend import SubscriptionSpec, WireMessage
from eventwire.errors import (
    BackendUnavailableError,
    ConfigurationError,
    InvalidURLError,
    MessageTooLargeError,
)
from eventwire_nats import NatsBackend, NatsSettings, NatsSubscription, stream_name
from eventwire_nats._topology import cluster_replicas
from nats.js.api import ClusterInfo

from tests.backends._base import PingBase, namer, ping_model, run, wait_until

pytestmark = [pytest.mark.broker, pytest.mark.anyio]

URL = os.environ.get("EVENTWIRE_NATS_URL") or "nats://127.0.0.1:4222"
unique = namer("nats", URL)
SECRET = "s3cr3t-Pa55-" + uuid.uuid4().hex[:8]
FAST = RetryPolicy(max_attempts=2, backoff=0.01, max_backoff=0.01, jitter=0)


async def connected(url: str = URL, **options: Any) -> NatsBackend:
    backend = NatsBackend(url, options)
    await backend.connect()
    return backend


async def drop_stream(backend: Any, channel: str) -> None:
    """Delete the stream of `channel` (through a fresh connection if `backend` is closed)."""
    fresh = None
    if backend.nc is None or backend.nc.is_closed:
        backend = fresh = await connected()
    try:
        await backend.js.delete_stream(stream_name(channel))
    except Exception:
        pass
    finally:
        if fresh is not None:
            await fresh.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def private_server(tmp_path: Path) -> Iterator[Callable[[str], str]]:
    """Start private nats-servers from a config snippet; yields a function returning the URL."""
    binary = shutil.which("nats-server") or "/usr/sbin/nats-server"
    if not Path(binary).exists():
        pytest.fail("nats-server is not installed; run conformance/brokers/brokers up nats")
    processes: list[subprocess.Popen[bytes]] = []

    def start(config: str) -> str:
        port = free_port()
        conf = tmp_path / f"nats-{port}.conf"
        conf.write_text(f"listen: 127.0.0.1:{port}\n{config}\n")
        process = subprocess.Popen(
            [binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        processes.append(process)
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise AssertionError(f"private nats-server on {port} did not start") from None
                time.sleep(0.05)
        return f"nats://127.0.0.1:{port}"

    yield start
    for process in processes:
        process.terminate()
        process.wait(timeout=10)


def captured_logs() -> tuple[io.StringIO, logging.Handler]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setLevel(logging.DEBUG)
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    return stream, handler


# --------------------------------------------------------------------------- URLs and options


def test_url_hosts_credentials_and_options_are_parsed() -> None:
    settings = NatsSettings.parse(
        f"nats://alice:{SECRET}@h1:4333?shards=4&ack_wait=2500ms&max_age=1h",
        {"servers": "h2,h3:4444", "lease_ttl": 3},
    )
    assert settings.addresses == ("nats://h1:4333", "nats://h2:4222", "nats://h3:4444")
    assert settings.url == "nats://h1:4333,h2:4222,h3:4444"
    assert (settings.username, settings.password) == ("alice", SECRET)
    assert (settings.shards, settings.ack_wait, settings.lease_ttl) == (4, 2.5, 3.0)
    assert settings.max_age == 3600.0
    assert settings.duplicate_window == 120.0
    assert SECRET not in repr(settings)
    token = NatsSettings.parse(f"nats://{SECRET}@localhost")
    assert token.token == SECRET
    assert token.url == "nats://localhost:4222"


def test_servers_option_as_a_list_tls_implied_and_a_context_object() -> None:
    import ssl

    context = ssl.create_default_context()
    settings = NatsSettings.parse(
        "nats://h1?tls_verify=false", {"servers": ["tls://h2:4223", "h1:4222"]}
    )
    assert settings.addresses == ("nats://h1:4222", "nats://h2:4223")
    assert settings.tls and settings.tls_context() is not None
    assert NatsSettings.parse("nats://", {"ssl_context": context}).tls_context() is context
    assert NatsSettings.parse("nats://").addresses == ("nats://127.0.0.1:4222",)
    with pytest.raises(ConfigurationError, match="ssl_context='yes'"):
        NatsSettings.parse("nats://?ssl_context=yes")


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        ({"shards": 0}, "shards=0"),
        ({"replicas": 0}, "replicas=0"),
        ({"replicas": 7}, "replicas=7"),
        ({"ack_wait": "soon"}, "ack_wait='soon'"),
        ({"storage": "disk"}, "storage='disk'"),
        ({"tls": "maybe"}, "tls='maybe'"),
        ({"lease_bucket": "a.b"}, "lease_bucket='a.b'"),
        ({"key_file": "/k.pem"}, "without cert_file"),
        ({"username": "bob"}, "both username and password"),
        ({"token": SECRET, "nkey_seed_file": "/x"}, "one way to authenticate"),
    ],
)
def test_bad_options_name_the_problem(options: dict[str, Any], needle: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        NatsBackend(URL, options)
    assert needle in str(info.value)
    assert SECRET not in str(info.value)


def test_bad_secret_value_is_not_echoed() -> None:
    with pytest.raises(ConfigurationError) as info:
        NatsBackend(URL, {"password": 12345, "username": "u"})
    assert "12345" not in str(info.value)
    assert "<hidden>" in str(info.value)


def test_malformed_urls_are_refused() -> None:
    for url in ("nats://h1:notaport", "nats://h1:4222/path", "nats://h1,,h2", "nats://h1#x"):
        with pytest.raises(InvalidURLError):
            NatsBackend(url)


# --------------------------------------------------------------------------- bad servers


def test_unreachable_server_fails_fast_without_log_spam() -> None:
    port = free_port()  # nothing listens there
    logs, handler = captured_logs()
    try:
        started = time.monotonic()
        with pytest.raises(BackendUnavailableError) as info:
            run(lambda: connected(f"nats://127.0.0.1:{port}", connect_timeout=2))
        elapsed = time.monotonic() - started
    finally:
        logging.getLogger().removeHandler(handler)
    assert elapsed < 8, f"connecting to a closed port took {elapsed:.1f}s"
    assert f"127.0.0.1:{port}" in str(info.value)
    assert "within 2s" in str(info.value)
    assert isinstance(info.value.__cause__, TimeoutError), "the cause is kept"
    noisy = [line for line in logs.getvalue().splitlines() if "WARNING" in line or "ERROR" in line]
    assert len(noisy) <= 2, noisy


async def test_server_without_jetstream_says_jetstream_is_required(
    private_server: Callable[[str], str],
) -> None:
    url = private_server("")  # no jetstream block
    with pytest.raises(BackendUnavailableError) as info:
        async with asyncio.timeout(60):
            await connected(url)
    assert "JetStream is required" in str(info.value)
    assert "-js" in str(info.value)
    assert info.value.__cause__ is not None, "the client's error is kept as the cause"


async def test_credentials_never_leak(private_server: Callable[[str], str], tmp_path: Path) -> None:
    url = private_server(
        f'jetstream {{ store_dir: "{tmp_path / "js"}" }}\n'
        f'authorization {{ user: alice, password: "{SECRET}" }}'
    )
    host = url.split("://", 1)[1]
    wrong = "wr0ng-" + SECRET

    logs, handler = captured_logs()
    try:
        with pytest.raises(BackendUnavailableError) as info:
            async with asyncio.timeout(60):
                await connected(f"nats://alice:{wrong}@{host}", connect_timeout=3)
        backend = NatsBackend(f"nats://alice:{SECRET}@{host}")
        assert backend.url == url
        assert SECRET not in repr(backend)

        async with asyncio.timeout(60):
            await backend.connect()
            channel = unique("auth")
            try:
                model = ping_model(channel)
                bus = EventBus(f"nats://alice:{SECRET}@{host}", source="t")
                assert SECRET not in repr(bus) and SECRET not in bus.url
                async with bus:
                    await bus.publish(model(key="k", seq=1))
                stored = await backend.browse(channel)
            finally:
                await drop_stream(backend, channel)
                await backend.close()

        assert len(stored) == 1
    finally:
        logging.getLogger().removeHandler(handler)
    text = str(info.value)
    assert "Authorization" in text or "authorization" in text
    assert wrong not in text and SECRET not in text
    assert SECRET not in logs.getvalue() and wrong not in logs.getvalue()


async def test_token_authentication(private_server: Callable[[str], str], tmp_path: Path) -> None:
    url = private_server(
        f'jetstream {{ store_dir: "{tmp_path / "js"}" }}\nauthorization {{ token: "{SECRET}" }}'
    )

    async with asyncio.timeout(60):
        backend = await connected(url, token=SECRET)
        assert SECRET not in repr(backend) and SECRET not in backend.url
        await backend.close()

    with pytest.raises(BackendUnavailableError) as info:
        async with asyncio.timeout(60):
            await connected(url, token="nope-" + SECRET, connect_timeout=3)
    assert SECRET not in str(info.value)


# --------------------------------------------------------------------------- topology


async def test_topology_stream_consumers_and_leases() -> None:
    channel = f"{unique('topo')}.orders"
    group = "shop.billing"

    async with asyncio.timeout(60):
        backend = await connected(URL, shards=4, ack_wait=7)
        try:
            seen: list[WireMessage] = []

            async def handler(inbound: Any) -> None:
                seen.append(inbound.message)
                await inbound.ack()

            spec = SubscriptionSpec(channel=channel, group=group, max_in_flight=32)
            sub = await backend.subscribe(spec, handler)
            name = stream_name(channel)
            assert name.startswith("EW_ewt-nats-topo-") and "." not in name
            info = await backend.js.stream_info(name)
            assert info.config.subjects == [f"{channel}.*"]
            assert info.config.description == f"eventwire channel {channel} shards=4"
            assert getattr(info.config.storage, "value", info.config.storage) == "file"
            assert info.config.num_replicas == 1  # a single server: min(3, cluster size)
            consumers = sorted(c.name for c in await backend.js.consumers_info(name))
            assert len(consumers) == 4 and all(c.startswith("shop_billing_") for c in consumers)
            for consumer in consumers:
                ci = await backend.js.consumer_info(name, consumer)
                policy = ci.config.ack_policy
                assert getattr(policy, "value", policy) == "explicit"
                assert ci.config.ack_wait == 7
                assert ci.config.max_ack_pending == 32
                assert ci.config.filter_subject == f"{channel}.{consumer.rsplit('_', 1)[1]}"
            assert sorted(sub.shards) == [0, 1, 2, 3]
            await sub.stop()
            await sub.close()
        finally:
            await drop_stream(backend, channel)
            await backend.close()


async def test_existing_stream_keeps_its_shard_count() -> None:
    channel = unique("shards")

    async with asyncio.timeout(60):
        first = await connected(URL, shards=3)
        second = await connected(URL, shards=11)
        try:
            assert (await first.topology.channel(channel)).shards == 3  # type: ignore[union-attr]
            assert (await second.topology.channel(channel)).shards == 3  # type: ignore[union-attr]
        finally:
            await drop_stream(first, channel)
            await first.close()
            await second.close()


async def test_delete_channel_removes_the_stream_and_its_consumers() -> None:
    channel = unique("delete")

    async with asyncio.timeout(60):
        backend = await connected()
        try:
            await backend.publish(channel, [WireMessage(b"x", {}, None)])
            assert len(await backend.browse(channel)) == 1
            assert await backend.delete_channel(channel) is True
            assert await backend.browse(channel) == []
            assert await backend.delete_channel(channel) is False
            await backend.publish(channel, [WireMessage(b"y", {}, None)])  # made again
            assert [m.body for m in await backend.browse(channel)] == [b"y"]
        finally:
            await drop_stream(backend, channel)
            await backend.close()


# --------------------------------------------------------------------------- messages


async def test_headers_and_keys_survive_even_when_nats_could_not_carry_them() -> None:
    channel = unique("hdr")
    tricky = {
        "ce-id": str(uuid.uuid4()),
        "multi-line": "first line\nsecond line\r\nthird",
        "padded": "  spaces around  ",
        "looks-encoded": "ew64:not really",
        "unicode": "Grüße ✓",
        "empty": "",
    }
    messages = [
        WireMessage(b"one", tricky, "key with spaces "),
        WireMessage(b"two", {"ce-subject": "subj"}, None),
        WireMessage(b"three", {"ce-subject": "subj"}, "other-key"),
        WireMessage(b"four", {}, None),
    ]

    async with asyncio.timeout(60):
        backend = await connected()
        try:
            await backend.publish(channel, messages)
            stored = await backend.browse(channel)
        finally:
            await drop_stream(backend, channel)
            await backend.close()

    assert stored == messages


async def test_duplicate_event_ids_are_dropped_by_the_stream_but_dlq_and_replays_are_not() -> None:
    channel = unique("dup")
    event_id = str(uuid.uuid4())
    original = WireMessage(b"x", {"ce-id": event_id}, "k")
    dead = WireMessage(b"x", {"ce-id": event_id, "eventwire-dlq-group": "g"}, "k")
    replay = WireMessage(b"x", {"ce-id": event_id, "eventwire-replay": "r1"}, "k")

    async with asyncio.timeout(60):
        backend = await connected()
        try:
            await backend.publish(channel, [original])
            await backend.publish(channel, [original, original])
            await backend.publish(channel, [replay])
            await backend.publish(channel, [replay])
            await backend.publish(channel + ".dlq", [dead])
            await backend.publish(channel + ".dlq", [dead])
            counts = len(await backend.browse(channel)), len(await backend.browse(channel + ".dlq"))
        finally:
            await drop_stream(backend, channel)
            await drop_stream(backend, channel + ".dlq")
            await backend.close()

    assert counts == (2, 1)


async def test_dead_letter_then_replay_runs_again() -> None:
    channel = unique("dlq")
    model = ping_model(channel)
    attempts: list[int] = []

    async with asyncio.timeout(60):
        bus = EventBus(URL, source="t")

        @bus.subscribe(model, group="g", retry=FAST)
        async def fail(event: PingBase, delivery: Delivery) -> None:
            attempts.append(delivery.attempt)
            raise RuntimeError("always")

        try:
            async with bus:
                await bus.publish(model(key="k", seq=1))
                await wait_until(lambda: len(attempts) == 2, "two attempts")
                letters: list[Any] = []

                async def dead() -> bool:
                    letters[:] = await bus.dead_letters(channel)
                    return bool(letters)

                deadline = time.monotonic() + 20
                while not await dead():
                    assert time.monotonic() < deadline, "no dead letter"
                    await asyncio.sleep(0.05)
                assert await bus.replay_dead_letters(channel) == 1
                await wait_until(lambda: len(attempts) == 4, "the replayed event to run again")
                deadline = time.monotonic() + 20
                while len(await bus.dead_letters(channel)) < 2:
                    assert time.monotonic() < deadline, "the replay was not dead-lettered again"
                    await asyncio.sleep(0.05)
                outcome = len(await bus.dead_letters(channel)), [d.reason for d in letters]
        finally:
            await drop_stream(bus.backend, channel)
            await drop_stream(bus.backend, channel + ".dlq")

    assert outcome == (2, ["max-attempts"])
    assert attempts == [1, 2, 1, 2]


async def test_message_over_max_payload_fails_at_publish_naming_the_limit() -> None:
    channel = unique("big")

    async with asyncio.timeout(60):
        backend = await connected()
        limit = backend.nc.max_payload
        try:
            with pytest.raises(MessageTooLargeError) as info:
                await backend.publish(
                    channel, [WireMessage(b"ok", {}, None), WireMessage(b"x" * limit, {}, None)]
                )
            text, stored = str(info.value), await backend.browse(channel)
        finally:
            await drop_stream(backend, channel)
            await backend.close()

    assert str(limit) in text and "max_payload" in text
    assert stored == [], "nothing of a refused batch may be sent"


async def test_capabilities_carry_the_servers_limit() -> None:
    async with asyncio.timeout(60):
        backend = await connected()
        try:
            declared, announced = backend.capabilities.max_message_bytes, backend.nc.max_payload
        finally:
            await backend.close()

    assert declared == announced


# --------------------------------------------------------------------------- members


async def test_lease_store_on_key_value_revisions() -> None:
    from eventwire.backendkit import Grant, LeaseRequest
    from eventwire_nats._leases import NatsLeaseStore

    bucket = f"ewt_leases_{uuid.uuid4().hex[:8]}"
    take, renew = [LeaseRequest(0, True)], [LeaseRequest(0, False)]

    async with asyncio.timeout(60):
        backend = await connected(URL, lease_bucket=bucket, lease_ttl=1)
        try:
            kv = await backend.topology.lease_bucket()
            store = NatsLeaseStore(backend.js, kv, backend.nc, bucket, "group")
            assert await store.heartbeat("a", 1, alive=True) == ["a"]
            assert await store.heartbeat("b", 1, alive=True) == ["a", "b"]
            assert await store.leases("a", 1, take) == [Grant.ACQUIRED]
            assert await store.leases("b", 1, take) == [Grant.DENIED]  # held by a
            assert await store.leases("a", 1, take) == [Grant.RENEWED]
            await store.release("a", [0])
            assert await store.leases("b", 1, take) == [Grant.ACQUIRED]  # given back
            assert await store.leases("a", 1, renew) == [Grant.DENIED]
            assert await store.heartbeat("b", 1, alive=False) == ["a"]
            await asyncio.sleep(1.5)  # b stops renewing: the server expires its lease
            assert await store.leases("b", 1, renew) == [Grant.DENIED]
            assert await store.leases("a", 1, take) == [Grant.ACQUIRED]
            assert await store.heartbeat("a", 1, alive=True) == ["a"]
        finally:
            await backend.js.delete_key_value(bucket)
            await backend.close()


async def test_two_members_split_the_shards_and_keep_key_order() -> None:
    channel = unique("share")
    model = ping_model(channel)
    handled: dict[str, list[tuple[str, int]]] = {"a": [], "b": []}

    async with asyncio.timeout(60):
        buses = {name: EventBus(URL, source=name) for name in handled}
        for name, bus in buses.items():

            @bus.subscribe(model, group="g", concurrency=4)
            async def handle(event: PingBase, _name: str = name) -> None:
                handled[_name].append((event.key, event.seq))
                await asyncio.sleep(0.001)

        try:
            async with buses["a"], buses["b"]:
                subs = [cast(NatsSubscription, bus._running[0]) for bus in buses.values()]
                await wait_until(
                    lambda: (
                        sorted(s for sub in subs for s in sub.shards) == list(range(8))
                        and all(len(sub.shards) == 4 for sub in subs)
                    ),
                    "the shards to be split 4/4",
                )
                publisher = EventBus(URL, source="p")
                async with publisher:
                    await publisher.publish_many(model(key=f"k{i % 10}", seq=i) for i in range(300))
                await wait_until(lambda: sum(map(len, handled.values())) >= 300, "300 events")
        finally:
            await drop_stream(buses["a"].backend, channel)

    assert handled["a"] and handled["b"], "both members must do work"
    for name, events in handled.items():
        for key in {k for k, _ in events}:
            seqs = [s for k, s in events if k == key]
            assert seqs == sorted(seqs), f"member {name} handled {key} out of order"
    keys_a = {k for k, _ in handled["a"]}
    keys_b = {k for k, _ in handled["b"]}
    assert not keys_a & keys_b, "a key ran on two members"


async def test_crashed_members_messages_come_back_first_to_the_next_owner() -> None:
    channel = unique("crash")
    model = ping_model(channel)
    bucket = f"ewt_leases_{uuid.uuid4().hex[:8]}"
    options = {"lease_ttl": 1.5, "ack_wait": 2, "lease_bucket": bucket, "shards": 1}
    first_seen: list[int] = []
    later: list[tuple[int, int]] = []

    async with asyncio.timeout(90):
        first = EventBus(URL, source="a", backend_options=options)
        second = EventBus(URL, source="b", backend_options=options)
        publisher = EventBus(URL, source="p", backend_options=options)
        block = asyncio.Event()

        @first.subscribe(model, group="g")
        async def stuck(event: PingBase) -> None:
            first_seen.append(event.seq)
            await block.wait()

        @second.subscribe(model, group="g")
        async def fine(event: PingBase, delivery: Delivery) -> None:
            later.append((event.seq, delivery.attempt))

        try:
            async with publisher:
                await first.start()
                await publisher.publish_many(model(key="same", seq=i) for i in range(5))
                await wait_until(lambda: first_seen == [0], "the first member to be stuck")
                await first.abort()  # crash: nothing acked, leases left to expire
                await publisher.publish_many(model(key="same", seq=i) for i in range(5, 8))
                async with second:
                    await wait_until(lambda: len(later) >= 8, "every event on the next owner")
        finally:
            cleanup = await connected()
            try:
                await drop_stream(cleanup, channel)
                await cleanup.js.delete_key_value(bucket)
            finally:
                await cleanup.close()

    # Nothing is lost and the crashed member's event comes back as a redelivery. Order across
    # the crash is not asserted: a pull request of the crashed client can outlive it on the
    # server (nats-server 2.9) and take newer messages, which then come back out of order
    # (seen once in CI: 6 before 0); see "Known limits" in docs/backends/nats.md.
    assert sorted({seq for seq, _ in later}) == list(range(8)), later
    assert dict(later)[0] >= 2, "the crashed member's event comes back as a redelivery"


@pytest.mark.parametrize(
    ("info", "replicas"),
    [
        ({}, 1),  # a single server
        ({"cluster": "c", "connect_urls": ["a:4222", "b:4222"]}, 2),
        ({"cluster": "c", "connect_urls": ["a:4222", "b:4222", "c:4222", "d:4222"]}, 3),
        ({"cluster": "c"}, 1),  # a cluster that does not advertise its servers
    ],
)
def test_default_replicas_follow_the_cluster_size(info: dict[str, Any], replicas: int) -> None:
    assert cluster_replicas(info) == replicas


async def test_a_shard_moves_on_although_its_fetch_was_waiting_for_room() -> None:
    """The handler blocks a fetch (the member's ``max_in_flight`` window is full) when the
    shard must go to a member that joins. Ending the fetch cancels the blocked call: the
    delivery it carried was never handled, so it must not count as in flight, or the shard
    is never given back (its lease renewed and the message kept alive for ever)."""
    channel = unique("blocked")
    bucket = f"ewt_leases_{uuid.uuid4().hex[:8]}"
    options: dict[str, Any] = {"lease_ttl": 1.5, "ack_wait": 1, "lease_bucket": bucket, "shards": 1}
    taken: list[Any] = []
    cancelled = asyncio.Event()
    later: list[int] = []

    async def full_window(inbound: Any) -> None:
        taken.append(inbound)
        if len(taken) > 1:  # the window is full: wait for room, as the pipeline does
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                cancelled.set()
                raise

    async def next_owner(inbound: Any) -> None:
        later.append(int(inbound.message.body))
        await inbound.ack()

    async with asyncio.timeout(90):
        first, second = await connected(**options), await connected(**options)
        try:
            # member ids sort by prefix: the joiner ("a-…") takes the only shard
            spec = SubscriptionSpec(channel, "g", max_in_flight=2, member_prefix="b")
            await first.subscribe(spec, full_window)
            await first.publish(channel, [WireMessage(b"%d" % i, {}, "k") for i in range(5)])
            await wait_until(lambda: len(taken) == 2, "the second delivery to wait for room")
            joiner = SubscriptionSpec(channel, "g", max_in_flight=2, member_prefix="a")
            await second.subscribe(joiner, next_owner)
            await asyncio.wait_for(cancelled.wait(), 30)
            await taken[0].ack()  # the first one is handled: nothing is in flight any more
            await wait_until(lambda: len(later) >= 4, "the next owner to handle the rest")
        finally:
            await first.close()
            await second.close()
            cleanup = await connected()
            try:
                await drop_stream(cleanup, channel)
                await cleanup.js.delete_key_value(bucket)
            finally:
                await cleanup.close()

    assert list(dict.fromkeys(later)) == [1, 2, 3, 4], later


async def _take_over_after_a_crash(
    name: str,
    alter: Callable[[Any, float], Any] = lambda info, _: info,
    ack_wait: float = 1,
    max_in_flight: int = 3,
    *,
    progress_on_first: bool = False,
) -> list[int]:
    """A member takes three messages of one shard and is aborted without acking them; three
    more are published; a second member takes the shard over (once the lease of 1.5 s
    expired), each consumer info it reads passed through ``alter(info, seconds since it
    subscribed)``. With `progress_on_first`, a progress signal (``+WPI``) for the first of
    the three reaches the server a second after the crash, as one the crashed member sent
    last would: the server then redelivers it after the other two. What the second member
    handled, in order."""
    channel = unique(name)
    bucket = f"ewt_leases_{uuid.uuid4().hex[:8]}"
    options: dict[str, Any] = {
        "lease_ttl": 1.5,
        "ack_wait": ack_wait,
        "lease_bucket": bucket,
        "shards": 1,
    }
    taken: list[Any] = []
    later: list[int] = []

    async def crashes(inbound: Any) -> None:
        taken.append(inbound)

    async def next_owner(inbound: Any) -> None:
        later.append(int(inbound.message.body))
        await inbound.ack()

    async with asyncio.timeout(90):
        first, second = await connected(**options), await connected(**options)
        real = second.js.consumer_info
        joined = 0.0  # set when the second member subscribes

        async def altered(*args: Any, **kwargs: Any) -> Any:
            return alter(await real(*args, **kwargs), time.monotonic() - joined)

        second.js.consumer_info = altered
        try:
            spec = SubscriptionSpec(channel, "g", max_in_flight=max_in_flight)
            await first.subscribe(spec, crashes)
            await first.publish(channel, [WireMessage(b"%d" % i, {}, "k") for i in range(3)])
            await wait_until(lambda: len(taken) == 3, "the first member to take three")
            await first.abort()  # nothing acked: they come back after ack_wait
            if progress_on_first:
                await asyncio.sleep(1.0)
                oldest = next(i for i in taken if i.message.body == b"0")
                await second.nc.publish(oldest.position, b"+WPI")
                await second.nc.flush()
            await second.publish(channel, [WireMessage(b"%d" % i, {}, "k") for i in range(3, 6)])
            joined = time.monotonic()
            await second.subscribe(spec, next_owner)
            await wait_until(lambda: len(set(later)) >= 6, "the next owner to handle all six")
        finally:
            await second.close()
            cleanup = await connected()
            try:
                await drop_stream(cleanup, channel)
                await cleanup.js.delete_key_value(bucket)
            finally:
                await cleanup.close()

    return list(dict.fromkeys(later))


async def test_a_take_over_goes_on_when_the_ack_floor_stays_behind() -> None:
    """After a broker crash nats-server 2.9 can leave a consumer's ack floor behind for good
    (here the server's answer is altered to say so): the next owner must go on once every
    message still pending is one it holds back itself."""

    def floor_behind(info: Any, _: float) -> Any:
        return dataclasses.replace(
            info, ack_floor=dataclasses.replace(info.ack_floor, stream_seq=0)
        )

    assert await _take_over_after_a_crash("floor", floor_behind) == list(range(6))


async def test_a_take_over_waits_for_the_consumer_to_have_a_leader() -> None:
    """After a whole cluster was SIGKILLed, a consumer replica answers while no leader is
    elected, and its counts can be stale: here, for 3 s (the take-over comes after 1.5 s),
    nothing pending and no leader. The next owner must not trust it, or the three new
    messages overtake the three the crashed member left unacked (redelivered only after
    ``ack_wait``, 5 s; the consumer's ``max_ack_pending`` leaves room for them)."""

    def leaderless(info: Any, elapsed: float) -> Any:
        if elapsed > 3.0:
            return info
        return dataclasses.replace(info, num_ack_pending=0, cluster=ClusterInfo(leader=None))

    handled = await _take_over_after_a_crash("leaderless", leaderless, ack_wait=5, max_in_flight=10)
    assert handled == list(range(6))


async def test_a_take_over_waits_when_nothing_is_counted_pending_behind_the_ack_floor() -> None:
    """After a whole cluster was SIGKILLed, even a consumer's leader can count nothing pending
    while its ack floor is behind what it delivered, and redeliver those messages later: the
    next owner must wait for them (``ack_wait`` after the take-over), not hand out the new
    ones first."""

    def uncounted(info: Any, _: float) -> Any:
        return dataclasses.replace(info, num_ack_pending=0)

    handled = await _take_over_after_a_crash("uncounted", uncounted, ack_wait=3, max_in_flight=10)
    assert handled == list(range(6))


async def test_a_take_over_waits_when_fewer_are_counted_pending_than_were_left_unacked() -> None:
    """After a whole cluster was SIGKILLed, a consumer's leader can count fewer messages
    pending than the ones between its ack floor and its last delivery (here: once the new
    owner holds the three new messages, only those), and redeliver the others later: the
    next owner must wait a redelivery round for them, not hand out the new ones first."""

    def undercounted(info: Any, _: float) -> Any:
        if info.num_ack_pending <= 3:  # the take-over itself sees the three left unacked
            return info
        return dataclasses.replace(info, num_ack_pending=info.num_ack_pending - 3)

    handled = await _take_over_after_a_crash(
        "undercounted", undercounted, ack_wait=3, max_in_flight=10
    )
    assert handled == list(range(6))


async def test_after_a_reconnection_newer_messages_wait_for_deliveries_lost_on_the_way(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Deliveries on their way when the connection broke count as delivered on the server
    and never arrive (here the member drops the first three as they come in); after the
    reconnection the server would hand out newer messages at once and redeliver those three
    only after ``ack_wait``. The member must check the consumer's state again, hold what it
    receives (newer and redelivered alike) until nothing older can still come, and hand it
    out in stream order."""
    from eventwire_nats._fetch import ShardFetch

    channel = unique("lost")
    receive = ShardFetch.on_message
    lost: list[int] = []
    handled: list[int] = []

    async def lossy(fetch: ShardFetch, msg: Any) -> None:
        if msg.reply and len(lost) < 3:
            lost.append(int(msg.data))
            return
        await receive(fetch, msg)

    async def handler(inbound: Any) -> None:
        handled.append(int(inbound.message.body))
        await inbound.ack()

    monkeypatch.setattr(ShardFetch, "on_message", lossy)
    async with asyncio.timeout(60):
        backend = await connected(ack_wait=2, shards=1)
        try:
            await backend.subscribe(SubscriptionSpec(channel, "g", max_in_flight=10), handler)
            await backend.publish(channel, [WireMessage(b"%d" % i, {}, "k") for i in range(3)])
            await wait_until(lambda: len(lost) == 3, "three deliveries lost on the way")
            await backend._on_reconnected()
            await backend.publish(channel, [WireMessage(b"%d" % i, {}, "k") for i in range(3, 6)])
            await wait_until(lambda: len(set(handled)) >= 6, "all six handled")
        finally:
            await drop_stream(backend, channel)
            await backend.close()
    assert lost == [0, 1, 2]
    assert list(dict.fromkeys(handled)) == list(range(6))


async def test_a_take_over_hands_out_redeliveries_in_stream_order() -> None:
    """The server redelivers a message when its own ack deadline passes, and the crashed
    member's last progress signal moved the oldest one's deadline past the others': it
    comes back last. The next owner must hold what comes back until all of it is there and
    hand it out in stream order."""
    handled = await _take_over_after_a_crash(
        "reordered", ack_wait=3, max_in_flight=10, progress_on_first=True
    )
    assert handled == list(range(6))
