"""The redis backend against a real Redis (``conformance/brokers/brokers up redis``).

The conformance suite proves the guarantees; these tests cover what is specific to this
backend: URLs and options, errors that name the problem (unreachable host, wrong password,
missing database, too large), credentials that never leak, what it creates on the server
(shard streams, consumer groups, the dead-letter stream), shard take-over after a crash, and
trimming reported instead of silently skipped. TLS runs against a private ``redis-server``
on a free port, so the shared broker is never reconfigured or restarted.
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import shutil
import socket
import subprocess
import time
import uuid
import zlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from eventwire import Delivery, EventBus, RetryPolicy
from eventwire.backend import SubscriptionSpec, WireMessage
from eventwire.errors import (
    BackendUnavailableError,
    ConfigurationError,
    InvalidURLError,
    MessageTooLargeError,
    PublishError,
)
from eventwire_redis import ChannelKeys, RedisBackend, RedisLeaseStore, RedisSettings
from eventwire_redis._leases import Scripts

from tests.backendkit._lease_contract import check_lease_store
from tests.backends._base import PingBase, namer, ping_model, wait_until

pytestmark = [pytest.mark.broker, pytest.mark.anyio]

URL = os.environ.get("EVENTWIRE_REDIS_URL") or "redis://127.0.0.1:6379/0"
unique = namer("redis", URL)
REPO_ROOT = Path(__file__).resolve().parents[2]
BROKERS_SCRIPT = REPO_ROOT / "conformance" / "brokers" / "brokers"
SECRET = "s3cr3t-Pa55-" + uuid.uuid4().hex[:8]
FAST = RetryPolicy(max_attempts=1, backoff=0.01, max_backoff=0.01, jitter=0)


def raw_client(url: str = URL) -> aioredis.Redis:
    return aioredis.Redis.from_url(url, protocol=2)


async def delete_channel(channel: str) -> None:
    client = raw_client()
    try:
        keys = [k async for k in client.scan_iter(f"{channel}:*")]
        keys += [k async for k in client.scan_iter(f"{channel}.dlq:*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def log_text() -> Iterator[io.StringIO]:
    """Everything logged (any logger, DEBUG and up) while the test runs."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setLevel(logging.DEBUG)
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


# -- options -----------------------------------------------------------------------------


def test_options_from_url_and_keywords() -> None:
    settings = RedisSettings.parse(
        f"rediss://app:{SECRET}@cache.internal:6380/3?shards=4&lease_ttl=2.5&maxlen=500",
        {"fetch_count": 50, "shards": 16, "tls_verify": "false"},
    )
    assert (settings.host, settings.port, settings.db) == ("cache.internal", 6380, 3)
    assert (settings.username, settings.password, settings.tls) == ("app", SECRET, True)
    assert settings.shards == 16  # keyword options win over the URL
    assert (settings.lease_ttl, settings.maxlen, settings.fetch_count) == (2.5, 500, 50)
    assert settings.url == "rediss://cache.internal:6380/3"
    assert SECRET not in repr(settings)


def test_a_sentinel_url_names_the_sentinels_and_the_service() -> None:
    settings = RedisSettings.parse(f"redis+sentinel://:{SECRET}@s1,s2:26380,[::1]/orders/2")
    assert settings.sentinels == (("s1", 26379), ("s2", 26380), ("::1", 26379))
    assert (settings.service, settings.db, settings.password) == ("orders", 2, SECRET)
    assert settings.url == "redis+sentinel://s1:26379,s2:26380,[::1]:26379/orders/2"
    assert settings.replica_acks == 1  # through Sentinel a publish waits for one replica
    assert RedisSettings.parse("redis+sentinel://s1/orders?replica_acks=2").replica_acks == 2
    assert RedisSettings.parse(URL).replica_acks == 0  # one server: unchanged
    for bad in ("redis+sentinel://s1", "redis+sentinel://s1/orders/x", "redis+sentinel:///o"):
        with pytest.raises(InvalidURLError, match="SERVICE"):
            RedisSettings.parse(bad)
    with pytest.raises(ConfigurationError, match="TLS through Sentinel"):
        RedisSettings.parse("redis+sentinel://s1/orders?tls=true")


async def test_a_publish_no_replica_acknowledged_is_not_confirmed() -> None:
    """``replica_acks=1`` on a server without replicas: ``WAIT`` counts none, so the publish
    fails with `PublishError` instead of being confirmed."""

    async with asyncio.timeout(60):
        backend = RedisBackend(URL, {"replica_acks": 1, "replica_timeout": 0.1})
        await backend.connect()
        try:
            with pytest.raises(PublishError, match="0 of the 1 replicas"):
                await backend.publish(unique("wait"), [WireMessage(b"{}", {}, "k")])
        finally:
            await backend.close()


@pytest.mark.parametrize(
    ("url", "options", "needle"),
    [
        (URL, {"shard": 4}, "unknown redis backend option(s) 'shard'"),
        (URL + "?colour=blue", {}, "'colour'"),
        (URL, {"shards": 0}, "shards=0"),
        (URL, {"lease_ttl": "soon"}, "lease_ttl='soon'"),
        (URL, {"tls_verify": "maybe"}, "tls_verify='maybe'"),
        (URL, {"block": 30, "socket_timeout": 10}, "shorter than socket_timeout"),
        ("redis://127.0.0.1:6379/zero", {}, "not a number"),
        (URL, {"ca_file": "/nonexistent/ca.pem"}, "ca_file='/nonexistent/ca.pem' cannot be loaded"),
    ],
)
def test_bad_options_name_the_problem(url: str, options: dict[str, Any], needle: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        RedisBackend(url, options)
    assert needle in str(info.value)


def test_bad_scheme_and_port() -> None:
    with pytest.raises(InvalidURLError):
        RedisBackend("redis://127.0.0.1:port/0", {})
    with pytest.raises(InvalidURLError):
        RedisBackend("http://127.0.0.1:6379/0", {})


# -- round trip and topology ---------------------------------------------------------------


async def test_roundtrip_and_what_is_created_on_the_server() -> None:
    channel = unique("rt")
    model = ping_model(channel)
    group = unique("grp")
    got: list[tuple[PingBase, Delivery]] = []

    async with asyncio.timeout(60):
        bus = EventBus(URL, source="tests/redis", backend_options={"shards": 4})

        @bus.subscribe(model, group=group, concurrency=4)
        async def handle(event: PingBase, delivery: Delivery) -> None:
            got.append((event, delivery))

        async with bus:
            await bus.publish(model(key="a", seq=0), headers={"$weird": "dollar", "x": "1"})
            await bus.publish_many(model(key=f"k{i % 3}", seq=i) for i in range(1, 30))
            await wait_until(lambda: len(got) >= 30, "30 deliveries")
        client = raw_client()
        try:
            assert await client.hget(f"{channel}:meta", "shards") == b"4"
            lengths = [await client.xlen(f"{channel}:{n}") for n in range(4)]
            assert sum(lengths) == 30
            assert not await client.exists(f"{channel}:4")
            for n in range(4):
                groups = await client.xinfo_groups(f"{channel}:{n}")
                assert [g["name"] for g in groups] == [group.encode()]
                assert groups[0]["pending"] == 0  # everything acked
            shard = zlib.crc32(b"a") % 4
            entries = await client.xrange(f"{channel}:{shard}", count=100) or []
            first = next(f for _, f in entries if f and b'"seq":0' in f[b"$body"])
            assert first is not None
            assert first[b"$key"] == b"a"
            assert first[b"ce_type"] and first[b"ce_id"]
            assert first[b"$$weird"] == b"dollar"  # a header starting with $ is escaped
            # The group leaves no consumer behind once closed.
            consumers = await client.xinfo_consumers(f"{channel}:{shard}", group)
            assert consumers == []
        finally:
            await client.aclose()
            await delete_channel(channel)

    by_seq = {event.seq: delivery for event, delivery in got}
    assert sorted(by_seq) == list(range(30))
    assert by_seq[0].headers["$weird"] == "dollar"
    assert by_seq[0].headers["x"] == "1"
    assert all(d.attempt == 1 for d in by_seq.values())
    per_key: dict[str, list[int]] = {}
    for event, _ in got:
        per_key.setdefault(event.key, []).append(event.seq)
    assert all(seqs == sorted(seqs) for seqs in per_key.values())


async def test_dead_letters_go_to_the_dlq_stream_and_replay() -> None:
    channel = unique("dlq")
    model = ping_model(channel)
    attempts: list[int] = []

    async with asyncio.timeout(60):
        bus = EventBus(URL, source="tests/redis")

        @bus.subscribe(model, group=unique("grp"), retry=FAST)
        async def fail(event: PingBase, delivery: Delivery) -> None:
            attempts.append(event.seq)
            if delivery.attempt == 1 and event.seq == 1:
                raise RuntimeError("boom")

        try:
            async with bus:
                await bus.publish(model(key="k", seq=1))
                await wait_until(lambda: len(attempts) >= 1, "the failing attempt")
                letters: list[Any] = []

                async def listed() -> bool:
                    letters[:] = await bus.dead_letters(model)
                    return bool(letters)

                deadline = time.monotonic() + 20
                while not await listed():
                    assert time.monotonic() < deadline, "no dead letter listed"
                    await asyncio.sleep(0.05)
                assert letters[0].reason == "max-attempts"
                assert letters[0].error_type == "RuntimeError"
                client = raw_client()
                try:
                    meta = await client.hget(f"{channel}.dlq:meta", "shards")
                    assert meta is not None
                finally:
                    await client.aclose()
                assert await bus.replay_dead_letters(model) == 1
                await wait_until(lambda: len(attempts) >= 2, "the replayed event")
        finally:
            await delete_channel(channel)

    assert attempts == [1, 1]


async def test_message_too_large_is_refused_before_sending() -> None:
    channel = unique("big")
    ping_model(channel)

    async with asyncio.timeout(60):
        backend = RedisBackend(URL, {"max_message_bytes": 4096})
        assert backend.capabilities.max_message_bytes == 4096
        await backend.connect()
        try:
            big = WireMessage(body=b"x" * 5000, headers={"ce_id": "1"}, key="k")
            with pytest.raises(MessageTooLargeError) as info:
                await backend.publish(channel, [WireMessage(b"{}", {}, "k"), big])
            assert "message 1" in str(info.value) and "4096" in str(info.value)
            assert await backend.browse(channel) == []  # nothing of the batch was sent
        finally:
            await backend.close()
            await delete_channel(channel)


async def test_default_limit_follows_the_server() -> None:
    async with asyncio.timeout(60):
        backend = RedisBackend(URL, {"max_message_bytes": 10**10})
        await backend.connect()
        try:
            # proto-max-bulk-len is 512 MiB unless the server says otherwise
            assert backend.capabilities.max_message_bytes == 512 * 1024 * 1024
        finally:
            await backend.close()


async def test_browse_lists_a_dead_letter_channel_in_order_and_merges_shards() -> None:
    channel = unique("browse")

    async with asyncio.timeout(60):
        backend = RedisBackend(URL, {})
        await backend.connect()
        try:
            for i in range(20):
                message = WireMessage(str(i).encode(), {}, f"k{i}")
                await backend.publish(channel + ".dlq", [message])
                await backend.publish(channel, [message])
            # A dead-letter channel is one stream: exact order.
            browsed = await backend.browse(channel + ".dlq", limit=15)
            assert [int(m.body) for m in browsed] == list(range(15))
            # Other channels merge their shards by entry id (millisecond order).
            merged = await backend.browse(channel)
            assert sorted(int(m.body) for m in merged) == list(range(20))
            assert len(await backend.browse(channel, limit=5)) == 5
            assert await backend.browse(unique("none")) == []
            client = raw_client()
            try:
                assert await client.hget(f"{channel}.dlq:meta", "shards") == b"1"
            finally:
                await client.aclose()
        finally:
            await backend.close()
            await delete_channel(channel)


async def test_delete_channel_removes_every_key_of_the_channel_only() -> None:
    channel, other = unique("del"), unique("keep")

    async with asyncio.timeout(60):
        backend = RedisBackend(URL, {"shards": 2})
        await backend.connect()
        try:
            spec = SubscriptionSpec(channel=channel, group="g")
            subscription = await backend.subscribe(spec, lambda inbound: inbound.ack())
            await backend.publish(channel, [WireMessage(b"1", {}, "k")])
            await backend.publish(other, [WireMessage(b"2", {}, "k")])
            await subscription.close()
            client = raw_client()
            try:
                assert [k async for k in client.scan_iter(f"{channel}:*")]  # streams, leases...
                assert await backend.delete_channel(channel) is True
                assert [k async for k in client.scan_iter(f"{channel}:*")] == []
                assert await backend.delete_channel(channel) is False
                assert await backend.browse(other) != []  # another channel is left alone
                await backend.publish(channel, [WireMessage(b"3", {}, "k")])  # usable again
                assert [m.body for m in await backend.browse(channel)] == [b"3"]
            finally:
                await client.aclose()
        finally:
            await backend.close()
            await delete_channel(channel)
            await delete_channel(other)


# -- failures that must be clear -----------------------------------------------------------


async def test_unreachable_host_fails_fast_without_secrets(log_text: io.StringIO) -> None:
    url = f"redis://app:{SECRET}@127.0.0.1:{closed_port()}/0"

    async with asyncio.timeout(60):
        bus = EventBus(url, backend_options={"connect_timeout": 2})
        assert SECRET not in repr(bus) and SECRET not in bus.url
        assert SECRET not in repr(bus.backend)
        started = time.monotonic()
        with pytest.raises(BackendUnavailableError) as info:
            await bus.start()
        assert time.monotonic() - started < 10
        text = str(info.value)
        assert "cannot connect to redis at redis://127.0.0.1:" in text
        assert SECRET not in text and SECRET not in repr(info.value)

    assert SECRET not in log_text.getvalue()


@pytest.fixture
async def acl_user() -> AsyncIterator[str]:
    """A Redis ACL user with password SECRET, removed afterwards."""
    name = unique("user")

    async def setup(create: bool) -> None:
        client = raw_client()
        try:
            if create:
                await client.acl_setuser(
                    name,
                    enabled=True,
                    passwords=[f"+{SECRET}"],
                    keys=["*"],
                    channels=["*"],
                    commands=["+@all"],
                )
            else:
                await client.acl_deluser(name)
        finally:
            await client.aclose()

    async with asyncio.timeout(60):
        await setup(True)
    try:
        yield name
    finally:
        async with asyncio.timeout(60):
            await setup(False)


def _with_credentials(user: str, password: str, db: int = 0) -> str:
    host = URL.split("://", 1)[1].split("/", 1)[0].rsplit("@", 1)[-1]
    return f"redis://{user}:{password}@{host}/{db}"


async def test_acl_user_and_wrong_password(acl_user: str, log_text: io.StringIO) -> None:
    channel = unique("acl")
    model = ping_model(channel)
    wrong = "Wr0ng-" + SECRET

    async with asyncio.timeout(60):
        with pytest.raises(BackendUnavailableError) as info:
            await RedisBackend(_with_credentials(acl_user, wrong), {}).connect()
        text = str(info.value)
        assert "refused the login" in text and f"password of user {acl_user!r}" in text
        assert wrong not in text and SECRET not in text
        # The same user with the right password works (through backend_options here).
        got: list[int] = []
        bus = EventBus(
            _with_credentials(acl_user, "placeholder"), backend_options={"password": SECRET}
        )

        @bus.subscribe(model, group=unique("grp"))
        async def handle(event: PingBase) -> None:
            got.append(event.seq)

        try:
            async with bus:
                assert SECRET not in repr(bus.backend)
                await bus.publish(model(key="k", seq=7))
                await wait_until(lambda: got == [7], "the event")
        finally:
            await delete_channel(channel)

    assert SECRET not in log_text.getvalue() and wrong not in log_text.getvalue()


async def test_missing_database_is_named() -> None:
    async with asyncio.timeout(60):
        host = URL.split("://", 1)[1].split("/", 1)[0].rsplit("@", 1)[-1]
        with pytest.raises(BackendUnavailableError) as info:
            await RedisBackend(f"redis://{host}/4000", {}).connect()
        assert "has no database 4000" in str(info.value)


# -- groups, shards and crashes ------------------------------------------------------------


async def test_members_share_shards_and_a_crashed_member_is_taken_over() -> None:
    channel = unique("crash")
    model = ping_model(channel)
    group = unique("grp")
    options = {"lease_ttl": 1.0}
    held: list[int] = []
    survivor_got: dict[int, int] = {}
    never = asyncio.Event()

    async with asyncio.timeout(60):
        victim = EventBus(URL, backend_options=options)
        survivor = EventBus(URL, backend_options=options)
        publisher = EventBus(URL)

        @victim.subscribe(model, group=group, concurrency=2)
        async def hold(event: PingBase) -> None:
            held.append(event.seq)
            await never.wait()

        @survivor.subscribe(model, group=group, concurrency=2)
        async def take(event: PingBase, delivery: Delivery) -> None:
            survivor_got[event.seq] = delivery.attempt

        try:
            async with publisher:
                await victim.start()
                await publisher.publish_many(model(key=f"k{i}", seq=i) for i in range(16))
                await wait_until(lambda: len(held) >= 2, "the victim to hold events")
                await survivor.start()
                # The victim cannot give its shards back (its events never finish).
                victim_sub = victim.backend._subscriptions[0]  # type: ignore[attr-defined]
                assert len(victim_sub.shards) == 8
                await victim.abort()
                await wait_until(lambda: len(survivor_got) >= 16, "the take-over", 30)
                survivor_sub = survivor.backend._subscriptions[0]  # type: ignore[attr-defined]
                assert len(survivor_sub.shards) == 8
        finally:
            await survivor.close()
            await delete_channel(channel)

    assert sorted(survivor_got) == list(range(16))
    # What the victim held comes back with a higher delivery count.
    assert all(survivor_got[seq] >= 2 for seq in held), (held, survivor_got)


async def test_second_member_gets_half_of_the_shards() -> None:
    channel = unique("share")
    model = ping_model(channel)
    group = unique("grp")

    async with asyncio.timeout(60):
        a, b = EventBus(URL), EventBus(URL)
        for bus in (a, b):

            @bus.subscribe(model, group=group)
            async def handle(event: PingBase) -> None:
                pass

        try:
            async with a:
                sub_a = a.backend._subscriptions[0]  # type: ignore[attr-defined]
                assert len(sub_a.shards) == 8
                async with b:
                    sub_b = b.backend._subscriptions[0]  # type: ignore[attr-defined]
                    await wait_until(
                        lambda: len(sub_a.shards) == 4 and len(sub_b.shards) == 4,
                        "an even split",
                    )
                    assert not set(sub_a.shards) & set(sub_b.shards)
                await wait_until(lambda: len(sub_a.shards) == 8, "a to take all back")
        finally:
            await delete_channel(channel)


async def test_the_lease_store_answers_as_the_shard_coordinator_expects() -> None:
    """`RedisLeaseStore` on the real server: renew, acquire, deny, release, leave, and a
    lease that expired while nobody took it is acquired again by its old holder."""
    channel = unique("lease")

    async with asyncio.timeout(60):
        client = raw_client()
        try:
            keys = ChannelKeys("", channel, 3)
            store = RedisLeaseStore(Scripts(client), keys, "g")
            gen = store.gen
            await check_lease_store(store)
            assert store.gen != gen  # every join, leave and give-back bumps the counter
        finally:
            await client.aclose()
            await delete_channel(channel)


async def _trim_shard(channel: str, key: str, maxlen: int) -> None:
    """Trim the stream of the shard `key` goes to (8 shards) to its last `maxlen` entries."""
    client = raw_client()
    try:
        shard = zlib.crc32(key.encode()) % 8
        await client.xtrim(f"{channel}:{shard}", maxlen=maxlen, approximate=False)
    finally:
        await client.aclose()


async def test_unread_entries_trimmed_away_are_reported(caplog: pytest.LogCaptureFixture) -> None:
    channel = unique("trim")
    model = ping_model(channel)
    group = unique("grp")
    got: list[int] = []

    with caplog.at_level(logging.ERROR, logger="eventwire.redis"):
        async with asyncio.timeout(60):
            bus = EventBus(URL)

            @bus.subscribe(model, group=group)
            async def handle(event: PingBase) -> None:
                got.append(event.seq)

            async with bus:  # creates the group, then leaves
                pass
            publisher = EventBus(URL)
            async with publisher:
                await publisher.publish_many(model(key="same", seq=i) for i in range(10))
            await _trim_shard(channel, "same", 3)
            again = EventBus(URL)
            again.subscribe(model, group=group)(handle)
            try:
                async with again:
                    await wait_until(lambda: len(got) >= 3, "the retained events")
                    assert again.backend.trimmed_entries == 7  # type: ignore[attr-defined]
            finally:
                await delete_channel(channel)
    assert got == [7, 8, 9]
    assert any("7 never read event(s)" in r.getMessage() for r in caplog.records)


async def test_pending_entries_trimmed_away_are_reported(caplog: pytest.LogCaptureFixture) -> None:
    channel = unique("trimp")
    group = unique("grp")
    handed: list[bytes] = []

    with caplog.at_level(logging.ERROR, logger="eventwire.redis"):
        async with asyncio.timeout(60):
            first = RedisBackend(URL, {"lease_ttl": 1.0})
            await first.connect()
            spec = SubscriptionSpec(channel=channel, group=group, member_prefix="first")

            async def take(inbound: Any) -> None:
                handed.append(inbound.message.body)

            await first.subscribe(spec, take)
            await first.publish(channel, [WireMessage(b"%d" % i, {}, "same") for i in range(5)])
            await wait_until(lambda: len(handed) >= 5, "five deliveries")
            await first.abort()  # nothing acked
            await _trim_shard(channel, "same", 0)
            second = RedisBackend(URL, {"lease_ttl": 1.0})
            await second.connect()
            try:
                await second.subscribe(
                    SubscriptionSpec(channel=channel, group=group, member_prefix="second"), take
                )
                await wait_until(lambda: second.trimmed_entries == 5, "the report", 20)
            finally:
                await second.close()
                await delete_channel(channel)
    assert len(handed) == 5  # nothing was delivered a second time: it is gone
    assert any("5 pending" in r.getMessage() for r in caplog.records)


# -- TLS (a private server) ----------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    """A private redis-server speaking only TLS on a free port; yields (port, CA file)."""
    server = shutil.which("redis-server")
    openssl = shutil.which("openssl")
    assert server and openssl, "redis-server and openssl are needed for the TLS test"
    home = tmp_path_factory.mktemp("redis-tls")
    key, cert = home / "key.pem", home / "cert.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    port = closed_port()
    process = subprocess.Popen(
        [server, "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
         "--tls-cert-file", str(cert), "--tls-key-file", str(key), "--tls-ca-cert-file",
         str(cert), "--tls-auth-clients", "no", "--save", "", "--appendonly", "no",
         "--dir", str(home)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert process.poll() is None, "redis-server with TLS did not start"
                assert time.monotonic() < deadline, "redis-server with TLS did not listen"
                time.sleep(0.05)
        yield port, cert
    finally:
        process.terminate()
        process.wait(timeout=10)


async def test_tls_roundtrip_and_untrusted_certificate(tls_server: tuple[int, Path]) -> None:
    port, ca = tls_server
    channel = unique("tls")
    model = ping_model(channel)
    got: list[int] = []

    async with asyncio.timeout(60):
        with pytest.raises(BackendUnavailableError) as info:
            await RedisBackend(f"rediss://127.0.0.1:{port}/0", {"connect_timeout": 3}).connect()
        assert "rediss://127.0.0.1" in str(info.value)
        bus = EventBus(f"rediss://127.0.0.1:{port}/0?ca_file={ca}")

        @bus.subscribe(model, group=unique("grp"))
        async def handle(event: PingBase) -> None:
            got.append(event.seq)

        async with bus:
            await bus.publish(model(key="k", seq=3))
            await wait_until(lambda: got == [3], "the event over TLS")


async def test_a_lone_member_takes_its_shards_back_after_a_blocked_loop() -> None:
    """A member whose leases expired while nobody else took its shards (its event loop was
    blocked longer than ``lease_ttl``) takes them back and delivers everything, per key in
    order."""
    channel = unique("stall")
    model = ping_model(channel)
    group = unique("grp")
    lease_ttl = 1.0
    got: list[tuple[str, int]] = []

    async with asyncio.timeout(60):
        bus = EventBus(URL, backend_options={"lease_ttl": lease_ttl, "shards": 4})

        @bus.subscribe(model, group=group, concurrency=4)
        async def handle(event: PingBase) -> None:
            if event.seq == 5:
                time.sleep(lease_ttl * 2)  # noqa: ASYNC251 - blocks the whole event loop
            got.append((event.key, event.seq))

        try:
            async with bus:
                await bus.publish_many(model(key=f"k{i % 3}", seq=i) for i in range(20))
                await wait_until(lambda: len(got) >= 20, "the first events", 10 * lease_ttl)
                await asyncio.sleep(lease_ttl)  # the heartbeat notices the expired leases
                await bus.publish_many(model(key=f"k{i % 3}", seq=i) for i in range(20, 40))
                await wait_until(
                    lambda: {s for _, s in got} >= set(range(40)),
                    "the events published after the stall",
                    5 * lease_ttl,
                )
                sub = bus.backend._subscriptions[0]  # type: ignore[attr-defined]
                await wait_until(lambda: len(sub.shards) == 4, "all shards held", lease_ttl)
        finally:
            await delete_channel(channel)

    assert {s for _, s in got} == set(range(40))
    per_key: dict[str, list[int]] = {}
    for key, seq in got:
        seqs = per_key.setdefault(key, [])
        if seq not in seqs:  # an event delivered again after the stall comes back in order
            seqs.append(seq)
    assert all(seqs == sorted(seqs) for seqs in per_key.values()), per_key
