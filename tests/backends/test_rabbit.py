"""The rabbit backend against the real RabbitMQ (``conformance/brokers/brokers up rabbit``).

The conformance suite proves the guarantees; these tests cover what is specific to this
backend: options and URLs, errors that name the problem, credentials that never leak, the
topology it creates, confirms, history streams and shard ownership.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, cast
from unittest.mock import patch
from urllib.parse import urlsplit, urlunsplit

import aiormq
import pytest
from eventwire import EventBus
from eventwire.backend import ChannelDeleter, SubscriptionSpec, WireMessage
from eventwire.errors import (
    BackendUnavailableError,
    ConfigurationError,
    InvalidURLError,
    MessageTooLargeError,
    PublishError,
)
from eventwire_rabbit import RabbitBackend
from eventwire_rabbit._topology import shard_arguments, stream_arguments
from eventwire_rabbit._wire import slot

from tests.backends._base import namer, ping_model, wait_until

pytestmark = [pytest.mark.broker, pytest.mark.anyio]

URL = os.environ.get("EVENTWIRE_RABBIT_URL") or "amqp://guest:guest@127.0.0.1:5672/"
unique = namer("rabbit", URL)
SECRET = "s3cr3t-Pa55word-" + uuid.uuid4().hex[:6]
#: Test groups expire when unused, so repeated runs leave no queues behind.
OPTIONS = {"group_expires": 600}


def with_password(url: str, password: str, path: str | None = None) -> str:
    parts = urlsplit(url)
    user = parts.username or "guest"
    netloc = f"{user}:{password}@{parts.hostname}:{parts.port or 5672}"
    return urlunsplit((parts.scheme, netloc, parts.path if path is None else path, "", ""))


async def raw(action: Callable[[aiormq.abc.AbstractChannel], Awaitable[Any]]) -> Any:
    """Run `action` on a channel of a separate, plain AMQP connection."""
    connection = await aiormq.connect(URL)
    try:
        channel = await connection.channel()
        return await action(channel)
    finally:
        await connection.close()


async def exists(kind: str, name: str) -> bool:
    async def check(channel: aiormq.abc.AbstractChannel) -> bool:
        try:
            if kind == "queue":
                await channel.queue_declare(name, passive=True)
            else:
                await channel.exchange_declare(name, passive=True)
        except aiormq.exceptions.ChannelNotFoundEntity:
            return False
        return True

    result: bool = await raw(check)
    return result


# -- round trip --------------------------------------------------------------------------


def acking(got: list[Any]) -> Callable[[Any], Awaitable[None]]:
    """A handler that keeps each delivery in `got` and acks it."""

    async def handler(inbound: Any) -> None:
        got.append(inbound)
        await inbound.ack()

    return handler


async def test_roundtrip_keeps_body_headers_key_and_order() -> None:
    backend = RabbitBackend(URL, OPTIONS)
    await backend.connect()
    channel = unique("rt")
    got: list[Any] = []
    handler = acking(got)

    try:
        await backend.subscribe(SubscriptionSpec(channel, unique("grp")), handler)
        sent = [
            WireMessage(f"body-{n}".encode(), {"h": f"v{n}", "x-tenant": "acme"}, "k1")
            for n in range(20)
        ]
        sent.append(WireMessage(b"\x00\xff binary", {}, None))
        await backend.publish(channel, sent)
        await wait_until(lambda: len(got) == len(sent), "21 deliveries")
    finally:
        await backend.close()
    keyed = [d.message for d in got if d.message.key == "k1"]
    assert [m.body for m in keyed] == [m.body for m in sent[:20]]  # key order
    assert keyed[3].headers == {"h": "v3", "x-tenant": "acme"}
    assert all(isinstance(v, str) for m in keyed for v in m.headers.values())
    unkeyed = [d.message for d in got if d.message.key is None]
    assert [m.body for m in unkeyed] == [b"\x00\xff binary"]
    assert {d.delivery_count for d in got} == {1}


async def test_delete_channel_removes_every_group_the_exchange_and_the_history() -> None:
    channel, groups = unique("delete"), [unique("g1"), unique("g2")]
    backend = RabbitBackend(URL, OPTIONS | {"shards": 2})
    await backend.connect()
    got: list[Any] = []
    handler = acking(got)

    try:
        subscriptions = [
            await backend.subscribe(SubscriptionSpec(channel, group), handler) for group in groups
        ]
        await backend.publish(channel, [WireMessage(b"x", {}, "k")])
        await wait_until(lambda: len(got) == 2, "one delivery per group")
        for subscription in subscriptions:
            await subscription.stop()
            await subscription.close()
        names = [f"{channel}:{group}:{shard}" for group in groups for shard in range(2)]
        assert all([await exists("queue", name) for name in names])
        assert isinstance(backend, ChannelDeleter)
        assert await backend.delete_channel(channel) is True
        assert not any([await exists("queue", name) for name in names])
        assert not any([await exists("exchange", f"{channel}:{group}") for group in groups])
        assert not await exists("exchange", channel)
        assert not await exists("queue", f"{channel}:history")
        assert await backend.delete_channel(channel) is False
        await backend.publish(channel, [WireMessage(b"y", {}, None)])  # declared again
        assert [m.body for m in await backend.browse(channel)] == [b"y"]
        assert await backend.delete_channel(channel) is True
    finally:
        await backend.close()


async def test_a_group_that_cannot_be_recorded_works_all_the_same(
    caplog: pytest.LogCaptureFixture,
) -> None:
    channel, group = unique("unrecorded"), unique("g")
    # a record of another type than the backend declares: declaring it fails
    await raw(lambda amqp: amqp.queue_declare(f"{channel}:groups", durable=True))
    backend = RabbitBackend(URL, OPTIONS | {"shards": 1})
    await backend.connect()
    got: list[Any] = []
    handler = acking(got)

    try:
        with caplog.at_level(logging.WARNING, logger="eventwire.rabbit"):
            await backend.subscribe(SubscriptionSpec(channel, group), handler)
        await backend.publish(channel, [WireMessage(b"x", {}, "k")])
        await wait_until(lambda: len(got) == 1, "the delivery")
        warned = [r.getMessage() for r in caplog.records if "not recorded" in r.getMessage()]
        assert len(warned) == 1 and group in warned[0], warned
    finally:
        await backend.delete_group(channel, group)
        await backend.delete_channel(channel)
        await backend.close()


async def test_bus_roundtrip_through_the_amqp_binding() -> None:
    model = ping_model(unique("bus"))
    bus = EventBus(URL, source="tests/rabbit", backend_options=OPTIONS)
    got: list[Any] = []

    @bus.subscribe(model, group=unique("grp"), concurrency=4)
    async def handle(event: Any) -> None:
        got.append(event)

    async with bus:
        await bus.publish_many(model(key=f"k{n % 3}", seq=n) for n in range(30))
        await wait_until(lambda: len(got) == 30, "30 events")
    for key in ("k0", "k1", "k2"):
        seqs = [e.seq for e in got if e.key == key]
        assert seqs == sorted(seqs), f"{key} out of order: {seqs}"


# -- several nodes ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Proxy:
    """A TCP relay on loopback to the shared broker: a "node" the test can kill."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self.server: asyncio.Server | None = None
        self.writers: list[asyncio.StreamWriter] = []

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self.writers += [writer, up_writer]

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async def kill(self) -> None:
        """Stop listening and cut every connection, as a node that died."""
        assert self.server is not None
        self.server.close()
        for writer in self.writers:
            writer.transport.abort()
        await self.server.wait_closed()


async def test_connect_skips_a_node_that_is_down() -> None:
    parts = urlsplit(URL)
    url = f"amqp://guest:guest@127.0.0.1:{free_port()},{parts.hostname}:{parts.port}/"
    model = ping_model(unique("down"))
    bus = EventBus(url, source="tests/rabbit", backend_options=OPTIONS)
    got: list[Any] = []

    @bus.subscribe(model, group=unique("grp"))
    async def handle(event: Any) -> None:
        got.append(event.seq)

    async with bus:
        await bus.publish_many(model(key="k", seq=n) for n in range(5))
        await wait_until(lambda: len(got) == 5, "5 events")
    assert got == list(range(5))


async def test_the_bus_moves_to_another_node_when_its_node_dies() -> None:
    """The first node (a relay to the broker) dies: the bus reconnects to the second node
    of the URL by itself, and nothing confirmed is lost."""
    parts = urlsplit(URL)
    node = Proxy((parts.hostname or "127.0.0.1", parts.port or 5672))
    await node.start()
    url = f"amqp://guest:guest@127.0.0.1:{node.port},{parts.hostname}:{parts.port}/"
    model = ping_model(unique("failover"))
    bus = EventBus(url, source="tests/rabbit", backend_options=OPTIONS)
    got: list[int] = []

    @bus.subscribe(model, group=unique("grp"))
    async def handle(event: Any) -> None:
        got.append(event.seq)

    async with bus:
        await bus.publish_many(model(key="k", seq=n) for n in range(5))
        await wait_until(lambda: len(got) == 5, "5 events before the node dies")
        await node.kill()
        await bus.publish_many(model(key="k", seq=n) for n in range(5, 10))
        await wait_until(lambda: set(got) >= set(range(10)), "10 events after the failover")
    first = list(dict.fromkeys(got))
    assert first == list(range(10))


# -- options and URLs ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        ({"shards": 0}, "shards"),
        ({"shards": 65}, "from 1 to 64"),
        ({"shards": "many"}, "shards"),
        ({"connect_timeout": -1}, "connect_timeout"),
        ({"tls": "maybe"}, "tls"),
        ({"history_max_age": "7 days"}, "history_max_age"),
        ({"lease_ttl": 0.5, "member_heartbeat": 1}, "lease_ttl"),
        ({"external_auth": True}, "cert_file"),
    ],
)
def test_bad_option_values_are_named(options: dict[str, Any], needle: str) -> None:
    with pytest.raises(ConfigurationError, match=needle):
        RabbitBackend(URL, options)


def test_url_forms() -> None:
    backend = RabbitBackend("amqps://u:p@broker.example:5671/prod%2Forders?shards=4&tls=true")
    assert backend.settings.tls and backend.settings.nodes == (("broker.example", 5671),)
    assert backend.settings.vhost == "prod/orders"
    assert backend.settings.shards == 4
    assert backend.url == "amqps://broker.example:5671/prod%2Forders"
    assert RabbitBackend("amqp://h").settings.vhost == "/"
    assert RabbitBackend("amqp://h", {"vhost": "v", "username": "a"}).settings.username == "a"
    with pytest.raises(InvalidURLError):
        RabbitBackend("amqp://")
    with pytest.raises(InvalidURLError):
        RabbitBackend("amqp://h:notaport/")


def test_a_cluster_url_names_every_node() -> None:
    settings = RabbitBackend("amqp://u:p@n1,n2:5673,[::1]:5674/v?quorum_size=3").settings
    assert settings.nodes == (("n1", 5672), ("n2", 5673), ("::1", 5674))
    assert settings.url == "amqp://n1:5672,n2:5673,[::1]:5674/v"
    assert settings.amqp_url(1).startswith("amqp://u:p@n2:5673/v?")
    assert shard_arguments(settings, "c")["x-quorum-initial-group-size"] == 3
    assert stream_arguments(settings)["x-initial-cluster-size"] == 3
    # without the option RabbitMQ decides (every node of the cluster)
    single = RabbitBackend("amqp://h").settings
    assert "x-quorum-initial-group-size" not in shard_arguments(single, "c")
    for bad in ("amqp://n1,,n3/", "amqp://n1,/"):
        with pytest.raises(InvalidURLError, match="empty host"):
            RabbitBackend(bad)


# -- bad input at connect ----------------------------------------------------------------


def capture_logs() -> tuple[io.StringIO, logging.Handler]:
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setLevel(logging.DEBUG)
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    return buffer, handler


async def test_wrong_password_is_named_and_never_leaks() -> None:
    url = with_password(URL, SECRET)
    buffer, handler = capture_logs()
    try:
        backend = RabbitBackend(url, OPTIONS)
        assert SECRET not in repr(backend) and SECRET not in backend.url
        assert SECRET not in repr(backend.settings)
        with pytest.raises(BackendUnavailableError) as info:
            await backend.connect()
    finally:
        logging.getLogger().removeHandler(handler)
    message = str(info.value)
    assert "wrong user name or password" in message
    assert SECRET not in message and SECRET not in repr(info.value)
    assert info.value.__cause__ is None or SECRET not in str(info.value.__cause__)
    assert SECRET not in buffer.getvalue(), "the password appeared in the logs"


async def test_password_from_options_never_leaks_either() -> None:
    backend = RabbitBackend(with_password(URL, "x"), {"password": SECRET})
    with pytest.raises(BackendUnavailableError) as info:
        await backend.connect()
    assert SECRET not in str(info.value) and SECRET not in repr(backend)


async def test_unknown_vhost_is_named() -> None:
    vhost = unique("vhost")
    backend = RabbitBackend(URL.rstrip("/") + "/" + vhost)
    with pytest.raises(BackendUnavailableError) as info:
        await backend.connect()
    assert vhost in str(info.value) and "virtual host" in str(info.value)


async def test_unreachable_broker_fails_fast_without_log_spam() -> None:
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    buffer, handler = capture_logs()
    started = time.monotonic()
    try:
        backend = RabbitBackend(f"amqp://guest:{SECRET}@127.0.0.1:{port}/", {"connect_timeout": 2})
        with pytest.raises(BackendUnavailableError) as info:
            await backend.connect()
    finally:
        logging.getLogger().removeHandler(handler)
    assert time.monotonic() - started < 10
    assert f"127.0.0.1:{port}" in str(info.value) and SECRET not in str(info.value)
    assert info.value.__cause__ is not None  # the client's error, for debugging
    assert buffer.getvalue().count("Reconnecting") <= 1
    assert SECRET not in buffer.getvalue()


# -- what the backend creates and how it publishes ------------------------------------------


async def test_topology_is_durable_and_messages_persistent() -> None:
    channel, group = unique("topo"), unique("grp")
    backend = RabbitBackend(URL, {**OPTIONS, "shards": 3})
    await backend.connect()
    try:
        await backend.subscribe(SubscriptionSpec(channel, group), _ack_all)
        await backend.publish(channel, [WireMessage(b"{}", {"a": "1"}, "k")])
    finally:
        await backend.close()
    assert await exists("exchange", channel)
    assert await exists("exchange", f"{channel}:{group}")
    assert await exists("exchange", f"{channel}.dlq")
    assert await exists("queue", f"{channel}:history")
    assert await exists("queue", f"{channel}.dlq:history")
    for shard in range(3):
        assert await exists("queue", f"{channel}:{group}:{shard}")
    assert not await exists("queue", f"{channel}:{group}:3")

    async def first_of_stream(amqp: aiormq.abc.AbstractChannel) -> Any:
        await amqp.basic_qos(prefetch_count=10)
        got: asyncio.Queue[Any] = asyncio.Queue()

        async def take(message: Any) -> None:
            got.put_nowait(message)

        await amqp.basic_consume(f"{channel}:history", take, arguments={"x-stream-offset": "first"})
        return await asyncio.wait_for(got.get(), 10)

    message = await raw(first_of_stream)
    assert message.header.properties.delivery_mode == 2  # persistent
    assert message.header.properties.headers["a"] == "1"


async def _ack_all(inbound: Any) -> None:
    await inbound.ack()


async def _drain(amqp: aiormq.abc.AbstractChannel, queue: str) -> list[Any]:
    """The header tables of the messages ready in `queue`, consumed (a single-active-consumer
    queue refuses ``basic.get``)."""
    ready = (await amqp.queue_declare(queue, passive=True)).message_count or 0
    got: list[Any] = []
    done = asyncio.Event()

    async def take(message: Any) -> None:
        got.append(message.header.properties.headers or {})
        await amqp.basic_ack(message.delivery.delivery_tag)
        if len(got) >= ready:
            done.set()

    if ready:
        await amqp.basic_consume(queue, take)
        await asyncio.wait_for(done.wait(), 10)
    return got


def test_the_slot_of_a_key_is_part_of_the_wire_format() -> None:
    """Existing groups route by it: a new version that hashed keys differently would send a
    key's next events to another shard than its waiting ones. Unkeyed events use every slot."""
    assert [slot(key) for key in ("order-1", "p0-k3", "é", "")] == ["47", "58", "62", "0"]
    assert {slot(None) for _ in range(64)} == {str(n) for n in range(64)}


async def test_a_key_lands_on_the_shard_its_slot_names() -> None:
    """Routing is a fixed table (slot s -> shard s mod shards) kept in the broker's durable
    bindings, not a hash ring rebuilt in memory at boot: the shard of every key is known from
    the key alone. A message without the slot header (another publisher) still lands on a
    shard, through the group's alternate exchange."""
    channel, group, shards = unique("slots"), unique("grp"), 3
    backend = RabbitBackend(URL, {**OPTIONS, "shards": shards})
    await backend.connect()
    keys = [f"key-{n}" for n in range(40)]
    try:
        subscription = await backend.subscribe(SubscriptionSpec(channel, group), _ack_all)
        await subscription.close()  # the group exists; nobody consumes its shards now
        await backend.publish(channel, [WireMessage(b"{}", {}, key) for key in keys])
    finally:
        await backend.close()

    async def foreign_and_drain(amqp: aiormq.abc.AbstractChannel) -> dict[int, list[Any]]:
        await amqp.confirm_delivery()
        await amqp.basic_publish(b"{}", exchange=channel, routing_key="foreign")
        return {shard: await _drain(amqp, f"{channel}:{group}:{shard}") for shard in range(shards)}

    found = await raw(foreign_and_drain)
    placed = {
        str(headers["eventwire-key"]): shard
        for shard, messages in found.items()
        for headers in messages
        if "eventwire-key" in headers
    }
    assert placed == {key: int(slot(key)) % shards for key in keys}
    assert sum(len(messages) for messages in found.values()) == len(keys) + 1  # + the foreign
    assert len(set(placed.values())) == shards  # 40 keys spread over every shard


async def test_confirm_nack_raises_publish_error() -> None:
    channel = unique("nack")
    backend = RabbitBackend(URL, OPTIONS)
    await backend.connect()
    full = unique("full")
    try:
        await backend.publish(channel, [WireMessage(b"{}", {}, "k")])  # creates it

        async def full_queue(amqp: aiormq.abc.AbstractChannel) -> None:
            await amqp.queue_declare(
                full,
                durable=True,
                arguments={
                    "x-queue-type": "classic",
                    "x-max-length": 0,
                    "x-overflow": "reject-publish",
                    "x-expires": 600_000,
                },
            )
            await amqp.queue_bind(full, channel, routing_key="#")

        await raw(full_queue)
        with pytest.raises(PublishError, match="refused"):
            await backend.publish(channel, [WireMessage(b"{}", {}, "k")])
    finally:
        await backend.close()


class SilentChannel:
    """A publisher channel that takes publishes and never answers (no confirm, no error),
    as one left behind by a broker crash can."""

    is_closed = False
    closed = False

    async def basic_publish(self, *args: Any, **kwargs: Any) -> None:
        await asyncio.Event().wait()

    async def close(self) -> None:
        self.closed = True


async def test_a_publish_nobody_confirms_fails_in_time_and_the_next_opens_a_new_channel() -> None:
    channel = unique("silent")
    backend = RabbitBackend(URL, {**OPTIONS, "publish_timeout": "0.5"})
    await backend.connect()
    try:
        await backend.publish(channel, [WireMessage(b"{}", {}, "k")])  # creates it
        silent = SilentChannel()
        backend.publisher._channel = cast(Any, silent)
        async with asyncio.timeout(10):
            with pytest.raises(PublishError, match=r"did not confirm 1 message.*publish_timeout"):
                await backend.publish(channel, [WireMessage(b"{}", {}, "k")])
            await backend.publish(channel, [WireMessage(b"{}", {}, "k")])  # a new channel
        assert backend.publisher._channel is not silent
        await asyncio.sleep(0)
        assert silent.closed
    finally:
        await backend.close()


def silent_broker(timeouts: list[float | None]) -> Callable[..., Awaitable[None]]:
    """A stand-in for an aiormq call the broker never answers: it records the timeout it
    was given and, like aiormq, raises `TimeoutError` once that passes (without one: never)."""

    async def never_answers(*args: Any, **options: Any) -> None:
        timeouts.append(options.get("timeout"))
        await asyncio.sleep(options.get("timeout") or 3600)
        raise TimeoutError

    return never_answers


async def test_a_channel_the_broker_never_opens_fails_the_declaration_in_time() -> None:
    backend = RabbitBackend(URL, {**OPTIONS, "publish_timeout": "0.5"})
    await backend.connect()
    try:
        amqp = await backend.amqp()
        opened: list[float | None] = []
        with patch.object(amqp, "channel", silent_broker(opened)):
            async with asyncio.timeout(10):
                with pytest.raises(BackendUnavailableError, match=r"no channel.*publish_timeout"):
                    await backend.publish(unique("unopened"), [WireMessage(b"{}", {}, "k")])
        assert opened == [0.5]
    finally:
        await backend.close()


async def test_a_declaration_the_broker_never_answers_fails_in_time() -> None:
    backend = RabbitBackend(URL, {**OPTIONS, "publish_timeout": "0.5"})
    await backend.connect()
    try:
        amqp = await backend.amqp()
        opened = amqp.channel
        waited: list[float | None] = []

        async def channel(**options: Any) -> Any:
            made = await opened(**options)
            made.exchange_declare = silent_broker(waited)  # type: ignore[method-assign,assignment]
            return made

        with patch.object(amqp, "channel", channel):
            async with asyncio.timeout(10):
                with pytest.raises(BackendUnavailableError, match=r"declaration.*publish_timeout"):
                    await backend.publish(unique("unanswered"), [WireMessage(b"{}", {}, "k")])
        assert waited == [0.5]
    finally:
        await backend.close()


async def test_message_too_large_is_refused_before_sending() -> None:
    model = ping_model(unique("large"))
    bus = EventBus(URL, backend_options={**OPTIONS, "max_message_size": 200})
    assert bus.backend.capabilities.max_message_bytes == 200
    async with bus:
        with pytest.raises(MessageTooLargeError, match="200"):
            await bus.publish(model(key="k" * 300, seq=1))
        with pytest.raises(MessageTooLargeError, match="limit of 200 bytes"):
            await bus.backend.publish(
                model.__eventwire__.channel or "", [WireMessage(b"x" * 201, {}, None)]
            )


# -- history: browse and from_beginning ------------------------------------------------------


async def test_browse_reads_history_without_consuming() -> None:
    channel = unique("browse")
    backend = RabbitBackend(URL, OPTIONS)
    await backend.connect()
    try:
        assert await backend.browse(channel) == []  # nothing declared yet
        await backend.publish(
            channel, [WireMessage(str(n).encode(), {"n": str(n)}, f"k{n}") for n in range(5)]
        )
        first = await backend.browse(channel)
        again = await backend.browse(channel, limit=3)
    finally:
        await backend.close()
    assert [m.body for m in first] == [b"0", b"1", b"2", b"3", b"4"]
    assert [m.key for m in first] == [f"k{n}" for n in range(5)]
    assert [m.body for m in again] == [b"0", b"1", b"2"]


async def test_new_group_from_beginning_gets_old_events_once_and_in_order() -> None:
    channel = unique("fb")
    backend = RabbitBackend(URL, OPTIONS)
    await backend.connect()
    got: list[WireMessage] = []

    async def handler(inbound: Any) -> None:
        got.append(inbound.message)
        await inbound.ack()

    try:
        await backend.publish(
            channel, [WireMessage(str(n).encode(), {}, f"k{n % 2}") for n in range(40)]
        )
        await backend.subscribe(
            SubscriptionSpec(channel, unique("grp"), from_beginning=True), handler
        )
        await backend.subscribe(SubscriptionSpec(channel, unique("late")), _ack_all)
        await backend.publish(channel, [WireMessage(b"40", {}, "k0")])
        await wait_until(lambda: len(got) >= 41, "41 deliveries")
        await asyncio.sleep(0.3)
    finally:
        await backend.close()
    bodies = [int(m.body) for m in got]
    assert sorted(bodies) == list(range(41)), bodies
    for key in ("k0", "k1"):
        seqs = [int(m.body) for m in got if m.key == key]
        assert seqs == sorted(seqs)


# -- group members and shards ---------------------------------------------------------------


async def test_members_split_the_shards_and_take_over_a_crashed_one() -> None:
    channel, group = unique("share"), unique("grp")
    options = {**OPTIONS, "member_heartbeat": 0.1, "lease_ttl": 1.0}
    a, b = RabbitBackend(URL, options), RabbitBackend(URL, options)
    await a.connect()
    await b.connect()
    try:
        sub_a = await a.subscribe(SubscriptionSpec(channel, group, member_prefix="a"), _ack_all)
        sub_b = await b.subscribe(SubscriptionSpec(channel, group, member_prefix="b"), _ack_all)

        def split() -> bool:
            owned_a, owned_b = set(sub_a.shards), set(sub_b.shards)
            return not owned_a & owned_b and len(owned_a | owned_b) == 8 and len(owned_a) == 4

        await wait_until(split, "two members owning 4 shards each")
        await b.abort()  # crash: a takes every shard after the lease
        await wait_until(lambda: sub_a.shards == list(range(8)), "takeover of all shards")
    finally:
        await a.close()
        await b.close()


async def test_shard_count_mismatch_is_a_clear_error() -> None:
    channel, group = unique("mismatch"), unique("grp")
    first = RabbitBackend(URL, {**OPTIONS, "shards": 2})
    second = RabbitBackend(URL, {**OPTIONS, "shards": 3})
    await first.connect()
    await second.connect()
    try:
        await first.subscribe(SubscriptionSpec(channel, group), _ack_all)
        with pytest.raises(ConfigurationError, match="shards"):
            await second.subscribe(SubscriptionSpec(channel, group), _ack_all)
    finally:
        await first.close()
        await second.close()


async def test_a_topology_declared_with_other_settings_is_a_clear_error() -> None:
    channel = unique("other")
    first = RabbitBackend(URL, {**OPTIONS, "history_max_bytes": 1 << 20})
    second = RabbitBackend(URL, {**OPTIONS, "history_max_bytes": 2 << 20})
    await first.connect()
    await second.connect()
    try:
        await first.publish(channel, [WireMessage(b"1", {}, None)])
        with pytest.raises(ConfigurationError, match="exists with other settings") as info:
            await second.publish(channel, [WireMessage(b"2", {}, None)])
        assert "\n" not in str(info.value)
    finally:
        await first.close()
        await second.close()


class _Member:
    """A member on a one-shard group that keeps what it gets, acking only when told."""

    def __init__(self, prefix: str, options: dict[str, Any]) -> None:
        self.prefix = prefix
        self.backend = RabbitBackend(URL, {**OPTIONS, "shards": 1, **options})
        self.got: list[Any] = []

    async def take(self, inbound: Any) -> None:
        self.got.append(inbound)

    async def join(self, channel: str, group: str) -> Any:
        await self.backend.connect()
        spec = SubscriptionSpec(channel, group, member_prefix=self.prefix)
        return await self.backend.subscribe(spec, self.take)

    def bodies(self) -> list[bytes]:
        return [inbound.message.body for inbound in self.got]


FAST = {"member_heartbeat": 0.1, "lease_ttl": 1.0}


@contextlib.asynccontextmanager
async def hand_over(what: str, **a_options: Any) -> AsyncIterator[tuple[_Member, _Member, Any]]:
    """Members ``a`` and ``b`` of a one-shard group on a new channel ``what``: ``a`` holds
    the shard and event ``1`` unsettled when ``b`` joins; members sorted by id own the shards
    round-robin, so ``b`` wants the only shard. Yields ``a``, ``b`` and ``a``'s subscription;
    both leave at the end."""
    channel, group = unique(what), unique("grp")
    a, b = _Member("z", {**FAST, **a_options}), _Member("b", FAST)
    try:
        sub_a = await a.join(channel, group)
        await a.backend.publish(channel, [WireMessage(b"1", {}, "k")])
        await wait_until(lambda: a.bodies() == [b"1"], "the first event at a")
        await b.join(channel, group)
        yield a, b, sub_a
    finally:
        await a.backend.close()
        await b.backend.close()


async def draining(sub: Any) -> None:
    lease = sub.coordinator.shards[0]
    await wait_until(lambda: lease.state.value == "draining", "a draining its shard")


async def test_a_shard_is_handed_over_only_once_its_deliveries_are_settled() -> None:
    async with hand_over("handover") as (a, b, sub_a):
        await draining(sub_a)
        await a.got[0].ack()  # settled: now a gives the shard up, b takes it
        await a.backend.publish(sub_a.spec.channel, [WireMessage(b"2", {}, "k")])
        await wait_until(lambda: b.bodies() == [b"2"], "the next event at b")
        assert a.bodies() == [b"1"]  # had a let go earlier, b would get 1 again first


async def test_a_draining_shard_gives_up_after_release_timeout(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with hand_over("stuck", release_timeout=0.5) as (_, b, _):
        # a never settles it: b gets it once a gives up
        await wait_until(lambda: b.bodies() == [b"1"], "the event at b")
        assert b.got[0].delivery_count == 2
        assert "handing the shard over anyway" in caplog.text


async def test_a_shard_wanted_again_while_draining_hands_over_what_it_held() -> None:
    async with hand_over("flap") as (a, b, sub_a):
        await draining(sub_a)
        await a.backend.publish(sub_a.spec.channel, [WireMessage(b"2", {}, "k")])
        await wait_until(lambda: bool(sub_a.queues[0].held), "the second event held")
        assert a.bodies() == [b"1"]  # not handed to the handler while draining
        await b.backend.close()  # b leaves before a gave the shard up
        await wait_until(lambda: a.bodies() == [b"1", b"2"], "the held event at a")
        assert b.got == []
