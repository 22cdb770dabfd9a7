"""The in-memory backend, driven directly through the `eventwire.backend` protocol."""

from __future__ import annotations

import asyncio
import itertools
import zlib
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pluggy
import pytest
from eventwire import hookspecs
from eventwire.backend import Backend, Inbound, SubscriptionSpec, WireMessage
from eventwire.errors import (
    BusClosedError,
    ConfigurationError,
    InvalidURLError,
    MessageTooLargeError,
)
from eventwire.plugins import available_backends, create_backend
from eventwire_memory import (
    CAPABILITIES,
    MAX_MESSAGE_BYTES,
    GroupState,
    MemoryBackend,
    MemoryInbound,
    MemorySubscription,
    get_broker,
    reset_brokers,
)
from eventwire_memory._info import plugin as memory_plugin

from tests._tools import run

_names = itertools.count()
#: A stuck test fails instead of hanging the run.
pytestmark = pytest.mark.timeout(30)


@pytest.fixture(autouse=True)
def _fresh_brokers() -> Iterator[None]:
    reset_brokers()
    yield
    reset_brokers()


async def connected(url: str = "memory://test", **options: Any) -> MemoryBackend:
    backend = MemoryBackend(url, options)
    await backend.connect()
    return backend


async def eventually(check: Callable[[], bool], within: float = 2.0) -> None:
    for _ in range(int(within / 0.001)):
        if check():
            return
        await asyncio.sleep(0.001)
    raise AssertionError(f"condition not met within {within}s")


def group_state(channel: str = "orders", group: str = "g") -> GroupState:
    state = get_broker("test").group_state(channel, group)
    assert state is not None
    return state


def msg(body: str, key: str | None = None, **headers: str) -> WireMessage:
    return WireMessage(body.encode(), headers, key)


class Collector:
    """A handler that records deliveries and acks them at once (or not at all)."""

    def __init__(self, ack: bool = True) -> None:
        self.ack = ack
        self.deliveries: list[Inbound] = []

    async def __call__(self, inbound: Inbound) -> None:
        self.deliveries.append(inbound)
        if self.ack:
            await inbound.ack()

    @property
    def bodies(self) -> list[str]:
        return [d.message.body.decode() for d in self.deliveries]


def test_backend_satisfies_protocol_and_declares_capabilities() -> None:
    backend = MemoryBackend("memory://")
    assert isinstance(backend, Backend)
    assert (backend.name, backend.binding, backend.url) == ("memory", "kafka", "memory://")
    assert MemoryBackend("memory://iso?partitions=3").url == "memory://iso"
    assert CAPABILITIES.cross_process is False
    assert set(CAPABILITIES.unsupported) == {"G16", "G22", "G23"}
    assert CAPABILITIES.max_message_bytes == MAX_MESSAGE_BYTES == 8 * 1024 * 1024


def test_plugin_hooks() -> None:
    info = memory_plugin.eventwire_backend_info()
    assert (info.name, list(info.schemes), info.binding) == ("memory", ["memory"], "kafka")
    assert info.capabilities is CAPABILITIES
    made = memory_plugin.eventwire_make_backend(
        url="memory://p", scheme="memory", options={"partitions": 2}
    )
    assert isinstance(made, MemoryBackend)
    assert made.partitions == 2
    assert memory_plugin.eventwire_make_backend(url="kafka://h", scheme="kafka", options={}) is None
    with pytest.raises(ConfigurationError, match="unknown memory backend option"):
        memory_plugin.eventwire_make_backend(url="memory://", scheme="memory", options={"x": 1})
    with pytest.raises(ConfigurationError, match="partitions"):
        MemoryBackend("memory://?partitions=0")
    with pytest.raises(InvalidURLError):
        MemoryBackend("memory://a/b")


def test_plugin_hooks_match_the_hook_specs() -> None:
    pm = pluggy.PluginManager("eventwire")
    pm.add_hookspecs(hookspecs)
    pm.register(memory_plugin)
    pm.check_pending()
    assert [info.name for info in available_backends(pm)] == ["memory"]
    backend = create_backend("memory://specs", pm=pm)
    assert isinstance(backend, MemoryBackend)
    assert backend.url == "memory://specs"


@pytest.mark.anyio
async def test_roundtrip_keeps_body_headers_and_key() -> None:
    backend = await connected()
    got = Collector()
    await backend.subscribe(SubscriptionSpec("orders", "billing"), got)
    headers = {"ce_id": "1", "ce_type": "OrderPlaced", "x-tenant": "acme"}
    await backend.publish("orders", [WireMessage(b'{"n":1}', headers, "o-1")])
    await eventually(lambda: len(got.deliveries) == 1)
    (delivery,) = got.deliveries
    assert delivery.message == WireMessage(b'{"n":1}', headers, "o-1")
    assert delivery.delivery_count == 1
    assert isinstance(delivery, MemoryInbound)
    assert delivery.partition == zlib.crc32(b"o-1") % 8
    assert delivery.offset == 0
    await backend.close()


@pytest.mark.anyio
async def test_channels_are_isolated() -> None:
    backend = await connected()
    got = Collector()
    await backend.subscribe(SubscriptionSpec("orders", "g"), got)
    await backend.publish("orders.dlq", [msg("dlq")])
    await backend.publish("orders-v2", [msg("v2")])
    await backend.publish("orders", [msg("mine")])
    await eventually(lambda: len(got.deliveries) >= 1)
    await asyncio.sleep(0.01)
    assert got.bodies == ["mine"]
    await backend.close()


@pytest.mark.anyio
async def test_fan_out_every_group_gets_every_message_in_order() -> None:
    backend = await connected()
    first, second = Collector(), Collector()
    await backend.subscribe(SubscriptionSpec("orders", "billing"), first)
    await backend.subscribe(SubscriptionSpec("orders", "shipping"), second)
    await backend.publish("orders", [msg(str(i), key="same") for i in range(20)])
    await eventually(lambda: len(first.deliveries) == len(second.deliveries) == 20)
    assert first.bodies == second.bodies == [str(i) for i in range(20)]
    await backend.close()


@pytest.mark.anyio
async def test_competing_members_share_the_work_each_message_once() -> None:
    one, two = await connected(), await connected()
    a, b = Collector(), Collector()
    await one.subscribe(SubscriptionSpec("orders", "billing", member_prefix="a"), a)
    await two.subscribe(SubscriptionSpec("orders", "billing", member_prefix="b"), b)
    await one.publish("orders", [msg(str(i), key=f"k{i % 40}") for i in range(400)])
    await eventually(lambda: len(a.deliveries) + len(b.deliveries) == 400)
    await asyncio.sleep(0.01)
    assert sorted(a.bodies + b.bodies, key=int) == [str(i) for i in range(400)]
    assert len(a.deliveries) + len(b.deliveries) == 400
    assert a.deliveries
    assert b.deliveries
    keys_a = {d.message.key for d in a.deliveries}
    keys_b = {d.message.key for d in b.deliveries}
    assert not keys_a & keys_b  # a key lives on one partition, owned by one member
    await one.close()
    await two.close()


@pytest.mark.anyio
async def test_key_order_holds_and_no_key_runs_on_two_members_across_a_rebalance() -> None:
    """Acks lag behind deliveries; a second member joins mid-stream and takes partitions."""
    async with asyncio.timeout(5):
        keys = [f"key-{i}" for i in range(16)]
        per_key = 30
        unacked: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        seen: dict[str, list[int]] = defaultdict(list)
        members: dict[str, set[str]] = defaultdict(set)
        violations: list[str] = []
        background: set[asyncio.Task[None]] = set()

        def handler_for(name: str) -> Callable[[Inbound], Awaitable[None]]:
            async def settle_later(inbound: Inbound, key: str) -> None:
                for _ in range(3):
                    await asyncio.sleep(0)
                unacked[key][name] -= 1
                await inbound.ack()

            async def handler(inbound: Inbound) -> None:
                key = inbound.message.key
                assert key is not None
                others = {m for m, n in unacked[key].items() if n and m != name}
                if others:
                    violations.append(f"{key} on {name} while {others} hold it")
                unacked[key][name] += 1
                seen[key].append(int(inbound.message.body))
                members[name].add(key)
                task = asyncio.create_task(settle_later(inbound, key))
                background.add(task)
                task.add_done_callback(background.discard)

            return handler

        one, two = await connected(), await connected()
        await one.subscribe(SubscriptionSpec("orders", "g", member_prefix="a"), handler_for("a"))
        for seq in range(per_key):
            await one.publish("orders", [msg(str(seq), key=key) for key in keys])
            await asyncio.sleep(0)
            if seq == per_key // 3:
                await two.subscribe(
                    SubscriptionSpec("orders", "g", member_prefix="b"), handler_for("b")
                )
        total = len(keys) * per_key
        await eventually(lambda: sum(map(len, seen.values())) >= total)
        await eventually(lambda: not background)
        assert violations == []
        assert {key: seen[key] for key in keys} == {key: list(range(per_key)) for key in keys}
        assert members["b"], "the member that joined got no partition"
        assert members["a"]
        assert (group_state().lag, group_state().pending) == (0, 0)
        await one.close()
        await two.close()


@pytest.mark.anyio
async def test_abort_redelivers_unacked_to_a_survivor_and_ignores_later_acks() -> None:
    crashed, survivor = await connected(), await connected()
    held = Collector(ack=False)
    await crashed.subscribe(SubscriptionSpec("orders", "g", member_prefix="a"), held)
    await crashed.publish("orders", [msg(str(i), key=f"k{i}") for i in range(10)])
    await eventually(lambda: len(held.deliveries) == 10)
    settled = held.deliveries[3]
    await settled.ack()  # settled before the crash: never comes back
    got = Collector(ack=False)
    await survivor.subscribe(SubscriptionSpec("orders", "g", member_prefix="b"), got)
    await asyncio.sleep(0.01)
    assert got.deliveries == []  # the partitions it took are still held by "a"

    await crashed.abort()
    await eventually(lambda: len(got.deliveries) == 9)
    await asyncio.sleep(0.01)
    expected = {str(i) for i in range(10)} - {settled.message.body.decode()}
    assert sorted(got.bodies) == sorted(expected)
    assert [d.delivery_count for d in got.deliveries] == [2] * 9
    for late in held.deliveries:
        await late.ack()  # a crashed process cannot ack
    assert (group_state().pending, group_state().lag) == (9, 9)
    for delivery in got.deliveries:
        await delivery.ack()
    assert (group_state().pending, group_state().lag) == (0, 0)
    with pytest.raises(BusClosedError):
        await crashed.publish("orders", [msg("x")])
    await survivor.close()


@pytest.mark.anyio
async def test_an_offset_settled_during_recovery_is_skipped_and_the_rest_delivered() -> None:
    """The partition's holder loses its lease (as when it expires) while its handler still
    runs; the new holder hands the unsettled offsets again, and the old holder acks one of
    them meanwhile: that one is not handed again, the ones after it are."""
    first, second = await connected(partitions="1"), await connected(partitions="1")
    held = Collector(ack=False)
    old = await first.subscribe(SubscriptionSpec("orders", "g", member_prefix="a"), held)
    await first.publish("orders", [msg(str(i), key="k") for i in range(3)])
    await eventually(lambda: len(held.deliveries) == 3)
    gate = asyncio.Event()
    got: list[Inbound] = []

    async def slow(inbound: Inbound) -> None:
        got.append(inbound)
        await gate.wait()
        await inbound.ack()

    await second.subscribe(SubscriptionSpec("orders", "g", member_prefix="b"), slow)
    assert isinstance(old, MemorySubscription)
    old.group.leases.drop(old.member_id)  # its lease is gone; its deliveries are still out
    await eventually(lambda: len(got) == 1)
    await held.deliveries[1].ack()  # the late ack, while "0" is handled again
    gate.set()
    await eventually(lambda: len(got) == 2)
    await asyncio.sleep(0.01)
    assert [d.message.body for d in got] == [b"0", b"2"]
    assert [d.delivery_count for d in got] == [2, 2]
    assert (group_state().pending, group_state().lag) == (0, 0)
    await first.close()
    await second.close()


@pytest.mark.anyio
async def test_a_recovery_in_a_new_epoch_skips_what_the_member_still_has_in_flight() -> None:
    """A member recovers its own shards again (its lease taken back after a stall, or its
    fetch loop restarted): the offsets its handler still holds are not handed out twice."""
    backend = await connected(partitions="1")
    held = Collector(ack=False)
    sub = await backend.subscribe(SubscriptionSpec("orders", "g"), held)
    await backend.publish("orders", [msg("a", key="k"), msg("b", key="k")])
    await eventually(lambda: len(held.deliveries) == 2)
    assert isinstance(sub, MemorySubscription)
    coordinator = sub.coordinator
    epoch = coordinator.owned()[0].epoch
    coordinator.recover_again()
    coordinator.changed.set()
    await eventually(lambda: coordinator.owned()[0].recovered)
    assert coordinator.owned()[0].epoch > epoch
    await backend.publish("orders", [msg("c", key="k")])
    await eventually(lambda: "c" in held.bodies)
    await asyncio.sleep(0.01)
    assert held.bodies == ["a", "b", "c"]
    assert [d.delivery_count for d in held.deliveries] == [1, 1, 1]
    for delivery in held.deliveries:
        await delivery.ack()
    assert (group_state().pending, group_state().lag) == (0, 0)
    await backend.close()


@pytest.mark.anyio
async def test_close_redelivers_what_is_unsettled_and_keeps_what_was_acked() -> None:
    first = await connected()
    held = Collector(ack=False)
    sub = await first.subscribe(SubscriptionSpec("orders", "g"), held)
    await first.publish("orders", [msg(str(i), key="k") for i in range(5)])
    await eventually(lambda: len(held.deliveries) == 5)
    await sub.stop()
    await first.publish("orders", [msg("5", key="k")])
    await held.deliveries[0].ack()  # still possible after stop(), until close()
    await held.deliveries[1].ack()
    await held.deliveries[1].ack()  # idempotent
    await asyncio.sleep(0.01)
    assert len(held.deliveries) == 5
    await first.close()

    second = await connected()
    got = Collector()
    await second.subscribe(SubscriptionSpec("orders", "g"), got)
    await eventually(lambda: len(got.deliveries) == 4)
    await asyncio.sleep(0.01)
    assert got.bodies == ["2", "3", "4", "5"]
    assert [d.delivery_count for d in got.deliveries] == [2, 2, 2, 1]
    await second.close()


@pytest.mark.anyio
async def test_max_in_flight_caps_unacked_deliveries_of_a_member() -> None:
    backend = await connected()
    held = Collector(ack=False)
    await backend.subscribe(SubscriptionSpec("orders", "g", max_in_flight=5), held)
    await backend.publish("orders", [msg(str(i)) for i in range(20)])
    await eventually(lambda: len(held.deliveries) == 5)
    await asyncio.sleep(0.01)
    assert len(held.deliveries) == 5
    await held.deliveries[0].ack()
    await held.deliveries[1].ack()
    await eventually(lambda: len(held.deliveries) == 7)
    await asyncio.sleep(0.01)
    assert len(held.deliveries) == 7
    await backend.close()


@pytest.mark.anyio
async def test_partitions_are_served_round_robin() -> None:
    backend = await connected(partitions=2)
    hot, cold = "d", "a"  # partitions 0 and 1
    parts = {zlib.crc32(k.encode()) % 2 for k in (hot, cold)}
    assert parts == {0, 1}
    await backend.publish("orders", [msg(f"hot{i}", key=hot) for i in range(50)])
    await backend.publish("orders", [msg("cold", key=cold)])
    got = Collector()
    await backend.subscribe(SubscriptionSpec("orders", "g", from_beginning=True), got)
    await eventually(lambda: len(got.deliveries) == 51)
    assert "cold" in got.bodies[:2]
    await backend.close()


@pytest.mark.anyio
async def test_from_beginning_only_for_a_new_group() -> None:
    backend = await connected()
    await backend.publish("orders", [msg(f"old{i}", key=f"k{i}") for i in range(5)])
    late, replay = Collector(), Collector()
    await backend.subscribe(SubscriptionSpec("orders", "late"), late)
    await backend.subscribe(SubscriptionSpec("orders", "replay", from_beginning=True), replay)
    await backend.publish("orders", [msg("new", key="k0")])
    await eventually(lambda: len(replay.deliveries) == 6 and len(late.deliveries) == 1)
    await asyncio.sleep(0.01)
    assert late.bodies == ["new"]
    assert sorted(replay.bodies) == ["new", "old0", "old1", "old2", "old3", "old4"]
    assert replay.bodies.index("old0") < replay.bodies.index("new")
    await backend.close()


@pytest.mark.anyio
async def test_existing_group_gets_what_was_published_while_no_member_ran() -> None:
    first = await connected()
    got = Collector()
    await first.subscribe(SubscriptionSpec("orders", "g"), got)
    await first.publish("orders", [msg(f"a{i}", key="k") for i in range(3)])
    await eventually(lambda: len(got.deliveries) == 3)
    await first.close()

    publisher = await connected()
    await publisher.publish("orders", [msg(f"b{i}", key="k") for i in range(4)])
    second = await connected()
    again = Collector()
    # from_beginning does not rewind a group that exists
    await second.subscribe(SubscriptionSpec("orders", "g", from_beginning=True), again)
    await eventually(lambda: len(again.deliveries) == 4)
    await asyncio.sleep(0.01)
    assert again.bodies == ["b0", "b1", "b2", "b3"]
    assert {d.delivery_count for d in again.deliveries} == {1}
    await second.close()
    await publisher.close()


@pytest.mark.anyio
async def test_browse_lists_retained_messages_in_publish_order_without_consuming() -> None:
    backend = await connected()
    assert await backend.browse("orders") == []
    sent = [msg(str(i), key=f"k{i % 7}", h=str(i)) for i in range(30)]
    for i in range(0, 30, 4):
        await backend.publish("orders", sent[i : i + 4])
    listed = await backend.browse("orders")
    assert listed == sent
    assert await backend.browse("orders", limit=3) == sent[:3]
    got = Collector()
    await backend.subscribe(SubscriptionSpec("orders", "g", from_beginning=True), got)
    await eventually(lambda: len(got.deliveries) == 30)
    assert await backend.browse("orders") == sent
    await backend.close()


@pytest.mark.anyio
async def test_too_large_message_is_refused_and_nothing_is_stored() -> None:
    backend = await connected()
    big = WireMessage(b"x" * (MAX_MESSAGE_BYTES + 1), {})
    with pytest.raises(MessageTooLargeError, match=str(MAX_MESSAGE_BYTES)):
        await backend.publish("orders", [msg("ok"), big])
    assert await backend.browse("orders") == []
    one_mib = WireMessage(b"y" * (1024 * 1024), {"ce_id": "1"})
    await backend.publish("orders", [one_mib])
    assert await backend.browse("orders") == [one_mib]
    await backend.close()


@pytest.mark.anyio
async def test_publish_and_delete_need_an_open_backend_and_a_valid_channel() -> None:
    backend = MemoryBackend("memory://test")
    with pytest.raises(BusClosedError, match="connect"):
        await backend.publish("orders", [msg("x")])
    await backend.connect()
    with pytest.raises(ConfigurationError, match="orders two"):
        await backend.publish("orders two", [msg("x")])
    with pytest.raises(ConfigurationError):
        await backend.subscribe(SubscriptionSpec("orders", "bad group"), Collector())
    with pytest.raises(ConfigurationError, match="orders two"):
        await backend.delete_channel("orders two")
    await backend.publish("orders", [msg("x")])
    await backend.close()
    with pytest.raises(BusClosedError, match="closed"):
        await backend.publish("orders", [msg("y")])
    with pytest.raises(BusClosedError, match="closed"):
        await backend.delete_channel("orders")
    with pytest.raises(BusClosedError):
        await backend.subscribe(SubscriptionSpec("orders", "g"), Collector())
    assert get_broker("test").browse("orders") == [msg("x")]


@pytest.mark.anyio
async def test_brokers_are_shared_by_url_and_isolated_by_name_and_reset() -> None:
    a1, a2, b = (
        await connected("memory://a"),
        await connected("memory://a"),
        await connected("memory://b"),
    )
    default = await connected("memory://")
    await a1.publish("orders", [msg("1")])
    assert await a2.browse("orders") == [msg("1")]
    assert await b.browse("orders") == []
    assert await default.browse("orders") == []
    assert get_broker("a") is a1.broker is a2.broker
    assert get_broker() is default.broker
    reset_brokers()
    fresh = await connected("memory://a")
    assert fresh.broker is not a1.broker
    assert await fresh.browse("orders") == []
    for backend in (a1, a2, b, default, fresh):
        await backend.close()


def test_member_cancelled_by_its_event_loop_leaves_the_group() -> None:
    """A loop that ends without close() behaves as a crash: the next run gets the work."""
    held = Collector(ack=False)

    async def first() -> None:
        backend = await connected()
        await backend.subscribe(SubscriptionSpec("orders", "g"), held)
        await backend.publish("orders", [msg("a", key="k"), msg("b", key="k")])
        await eventually(lambda: len(held.deliveries) == 2)

    async def second() -> None:
        backend = await connected()
        got = Collector()
        await backend.subscribe(SubscriptionSpec("orders", "g"), got)
        await eventually(lambda: len(got.deliveries) == 2)
        assert got.bodies == ["a", "b"]
        assert [d.delivery_count for d in got.deliveries] == [2, 2]
        await backend.close()

    run(first, timeout=5)
    run(second, timeout=5)


def test_delete_channel_forgets_messages() -> None:
    from eventwire_memory import get_broker, reset_brokers

    reset_brokers()
    broker = get_broker("deletion")
    broker.publish("gone", [WireMessage(b"x", {}, None)])
    assert broker.channel_names() == ["gone"]
    assert broker.delete_channel("gone") is True
    assert broker.delete_channel("gone") is False
    assert broker.channel_names() == []
    assert broker.browse("gone") == []
