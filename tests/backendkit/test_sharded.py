"""`ShardedSubscription` and `ShardInbound`: the member's three tasks and its shutdown hooks,
over the kit's in-process lease store and a list per shard standing in for the broker."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

import pytest
from eventwire.backend import Inbound, MessageHandler, SubscriptionSpec, WireMessage
from eventwire.backendkit import (
    MemoryLeaseStore,
    Shard,
    ShardedSubscription,
    ShardInbound,
    ShardMember,
    SubscriptionState,
    _sharded,
)

from tests.backends._base import wait_until

pytestmark = pytest.mark.anyio


class ListSubscription(ShardedSubscription[int]):
    """Hands out each shard's list once; `sent` records what reached the 'broker'."""

    def __init__(
        self,
        handler: MessageHandler,
        logs: list[list[bytes]],
        store: MemoryLeaseStore,
        max_in_flight: int = 100,
    ) -> None:
        super().__init__(
            SubscriptionSpec("orders", "billing", max_in_flight=max_in_flight),
            handler,
            store=store,
            member_id="member-1",
            shards=len(logs),
            ttl=1.0,
            scrub=str,
            backend="test",
            interval=0.01,
        )
        self.logs = logs
        self.next = [0] * len(logs)
        self.sent: list[tuple[int, int]] = []
        self.given_up: list[tuple[int, int]] = []

    async def _read(self, ready: list[Shard]) -> list[ShardInbound[int]]:
        batch: list[tuple[Shard, int]] = []
        for shard in ready:
            end = min(len(self.logs[shard.index]), self.next[shard.index] + self.room)
            new = range(self.next[shard.index], end)
            batch += [(shard, i) for i in self.mark_handed(shard, new)]
            self.next[shard.index] = end
        logs = self.logs
        return [ShardInbound(self, s, i, WireMessage(logs[s.index][i], {}), 1) for s, i in batch]

    async def _send_acks(self, batch: list[tuple[Shard, int]]) -> None:
        self.sent += [(shard.index, i) for shard, i in batch]

    async def _give_up(self, inbounds: list[ShardInbound[int]]) -> None:
        self.given_up += [(inbound.shard.index, inbound.position) for inbound in inbounds]


async def _ignore(inbound: Inbound) -> None:
    return None


async def test_start_holds_every_shard_acks_are_sent_once_and_close_gives_leases_back() -> None:
    store = MemoryLeaseStore()
    got: list[ShardInbound[int]] = []

    async def handler(inbound: Inbound) -> None:
        assert isinstance(inbound, ShardInbound)
        got.append(inbound)
        await inbound.ack()
        await inbound.ack()  # a second ack of one delivery sends nothing more

    sub = ListSubscription(handler, [[b"a", b"b"], [b"c"]], store)
    await sub.start()
    assert sub.shards == [0, 1]  # alone in the group: start returned holding its share
    await wait_until(lambda: len(sub.sent) == 3, "three acks sent", 5)
    await asyncio.sleep(0.05)
    assert sorted(sub.sent) == [(0, 0), (0, 1), (1, 0)]
    assert all(d.settled for d in got) and "position=0" in repr(got[0])
    await sub.close()
    assert sub.state is SubscriptionState.CLOSED
    # the leases were given back: another member takes every shard at once
    other = ListSubscription(_ignore, [[], []], store)
    await other.coordinator.tick()
    assert [s.index for s in other.coordinator.owned()] == [0, 1]


async def test_close_sends_the_acks_taken_after_stop_and_abort_sends_none() -> None:
    held: list[ShardInbound[int]] = []

    async def keep(inbound: Inbound) -> None:
        assert isinstance(inbound, ShardInbound)
        held.append(inbound)

    sub = ListSubscription(keep, [[b"a"], [b"b"]], MemoryLeaseStore())
    await sub.start()
    await wait_until(lambda: len(held) == 2, "two deliveries", 5)
    await sub.stop()
    await held[0].ack()  # still accepted after stop
    await sub.close()
    assert sub.sent == [(held[0].shard.index, 0)]
    await held[1].ack()  # ignored once closed
    assert len(sub.sent) == 1

    held.clear()
    crashed = ListSubscription(keep, [[b"a"]], MemoryLeaseStore())
    await crashed.start()
    await wait_until(lambda: len(held) == 1, "one delivery", 5)
    crashed._acks.add((held[0].shard, 0))  # queued, not sent yet
    await crashed.abort()
    await crashed._acks.flush()  # abort forgot the queued ack: nothing left to send
    await held[0].ack()
    assert crashed.sent == [] and crashed.state is SubscriptionState.ABORTED


async def test_positions_handed_out_are_counted_once_and_settled_once() -> None:
    """`mark_handed` counts a position in flight once (a recovery handing it out again while
    the handler has it gets it left out); `_sent` settles only what was marked, once."""
    sub = ListSubscription(_ignore, [[], []], MemoryLeaseStore())
    one, two = sub.coordinator.shards
    assert sub.mark_handed(one, [3, 4]) == [3, 4]
    assert sub.mark_handed(one, [2, 3, 4, 5, 5]) == [2, 5]  # 3 and 4 are the handler's
    assert sub.mark_handed(two, [3]) == [3]  # a position is per shard
    assert sub.handed(one) == {2, 3, 4, 5} and sub.in_flight == 5
    assert (one.in_flight, two.in_flight) == (4, 1)
    sub._sent([(one, 3), (one, 3), (one, 9), (two, 4)])  # acked twice; never marked
    assert sub.handed(one) == {2, 4, 5} and sub.handed(two) == {3}
    assert (one.in_flight, two.in_flight, sub.in_flight) == (3, 1, 4)
    sub._sent([(one, 2), (one, 4), (one, 5), (two, 3)])
    assert (one.in_flight, two.in_flight, sub.in_flight) == (0, 0, 0)


async def test_what_a_stop_leaves_of_a_batch_is_given_up_and_settled_for_the_coordinator() -> None:
    """`hand_out` stopped while the handler blocks (backpressure) on the second of three:
    the first stays the handler's; the second and third never reached it, so they are given
    up (`_give_up`) and no longer count in flight: a draining shard is not held by them."""
    took: list[ShardInbound[int]] = []
    blocked = asyncio.Event()

    async def handler(inbound: Inbound) -> None:
        assert isinstance(inbound, ShardInbound)
        if took:
            blocked.set()
            await asyncio.Event().wait()  # no room: wait until cancelled
        took.append(inbound)

    sub = ListSubscription(handler, [[b"a", b"b", b"c"]], MemoryLeaseStore())
    await sub.start()
    await asyncio.wait_for(blocked.wait(), 5)
    shard = sub.coordinator.shards[0]
    assert sub.handed(shard) == {0, 1, 2} and sub.in_flight == 3
    await sub.stop()
    assert sub.given_up == [(0, 1), (0, 2)]
    assert sub.handed(shard) == {0} and sub.in_flight == 1 and shard.in_flight == 1
    await took[0].ack()
    await sub.close()
    assert sub.sent == [(0, 0)] and sub.in_flight == 0 and shard.in_flight == 0


class SlowRead(ListSubscription):
    """Its reads take `delay` seconds, like a read that waits on the broker for new messages;
    `started` is set when a read is under way."""

    def __init__(self, *args: Any, delay: float) -> None:
        super().__init__(*args)
        self.delay = delay
        self.started = asyncio.Event()

    async def _read(self, ready: list[Shard]) -> list[ShardInbound[int]]:
        self.started.set()
        await asyncio.sleep(self.delay)
        return await super()._read(ready)


@pytest.mark.parametrize(("patience", "given_up"), [(5.0, [(0, 0), (0, 1)]), (0.0, [])])
async def test_a_read_under_way_at_stop_comes_back_within_read_patience(
    patience: float, given_up: list[tuple[int, int]]
) -> None:
    """With `read_patience`, `stop` lets a read under way come back, and what it took is
    given up (a broker that counted it as delivered can undo that); without, the read is
    cancelled and what the broker sent for it is the broker's to deliver again."""
    sub = SlowRead(_ignore, [[b"a", b"b"]], MemoryLeaseStore(), delay=0.3)
    sub.read_patience = patience
    sub.next = [2]  # nothing to read until the test adds it
    await sub.start()
    await asyncio.wait_for(sub.started.wait(), 5)
    sub.started.clear()
    await asyncio.wait_for(sub.started.wait(), 5)  # the second read: it will find both
    sub.next = [0]
    await sub.stop()
    assert sub.given_up == given_up
    assert sub.in_flight == 0
    await sub.close()


async def test_a_delivery_whose_handler_raised_no_longer_holds_its_shard() -> None:
    async def handler(inbound: Inbound) -> None:
        assert isinstance(inbound, ShardInbound)
        if inbound.position == 1:
            raise RuntimeError("the handler failed")
        await inbound.ack()

    sub = ListSubscription(handler, [[b"a", b"b", b"c"]], MemoryLeaseStore())
    await sub.start()
    await wait_until(lambda: len(sub.sent) == 2, "two acks sent", 5)
    shard = sub.coordinator.shards[0]
    assert sorted(sub.sent) == [(0, 0), (0, 2)] and sub.given_up == []
    assert sub.in_flight == 0 and shard.in_flight == 0  # the failed one is the broker's now
    await sub.close()


class Flaky(ConnectionError):
    """A broker client's error that the loop treats as transient."""


class ReadFailingTwice(ListSubscription):
    """Its reads raise a transient error twice; then they work. It records what the kit's
    loop calls: `_failed`, and each shard's recoveries."""

    transient = (Flaky,)
    poll_interval = 30.0  # longer than the test: only `wake()` ends an idle wait

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.reads = 0
        self.failed: list[str] = []
        self.recovered: list[int] = []

    async def _recover(self, shard: Shard) -> Sequence[ShardInbound[int]]:
        self.recovered.append(shard.index)
        return await super()._recover(shard)

    async def _read(self, ready: list[Shard]) -> list[ShardInbound[int]]:
        self.reads += 1
        if self.reads <= 2:
            raise Flaky(f"read {self.reads} lost")
        return await super()._read(ready)

    async def _failed(self, exc: Exception) -> None:
        self.failed.append(str(exc))


async def test_the_kit_fetch_loop_recovers_every_shard_again_after_a_transient_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A transient read error: `_failed` sees it, every owned shard recovers again (the lost
    reply may have taken messages) before the next read, one warning for the outage and no
    traceback; a pass that found nothing waits until `wake()`."""
    got: list[bytes] = []

    async def handler(inbound: Inbound) -> None:
        got.append(bytes(inbound.message.body))
        await inbound.ack()

    logs: list[list[bytes]] = [[b"a"], [b"b"]]
    sub = ReadFailingTwice(handler, logs, MemoryLeaseStore())
    await sub.start()
    await wait_until(lambda: sorted(got) == [b"a", b"b"], "both messages", 5)
    assert sub.failed == ["read 1 lost", "read 2 lost"]
    assert sorted(sub.recovered) == [0, 0, 0, 1, 1, 1]  # taken, then after each failure
    warned = [
        r
        for r in caplog.records
        if "test read of orders/billing" in r.message and r.levelno >= logging.WARNING
    ]
    assert [r.message.split(" (")[0].split(" after")[0] for r in warned] == [
        "eventwire: test read of orders/billing failed",  # once for the outage
        "eventwire: test read of orders/billing works again",
    ]
    assert not warned[0].exc_info
    logs[1].append(b"c")  # the loop waits (30 s) for a change: wake() ends the wait
    await asyncio.sleep(0.05)
    assert b"c" not in got
    sub.wake()
    await wait_until(lambda: b"c" in got, "the message after wake()", 5)
    await sub.close()


class LeftBehind(ListSubscription):
    """An earlier owner left position 0 of shard 0 unsettled; the reads start at 1."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.next[0] = 1

    async def _recover(self, shard: Shard) -> Sequence[ShardInbound[int]]:
        if shard.index or 0 in self.handed(shard):
            return []
        self.mark_handed(shard, [0])
        return [ShardInbound(self, shard, 0, WireMessage(self.logs[0][0], {}), 2)]


async def test_what_recover_returns_comes_first_then_the_shard_is_read() -> None:
    got: list[tuple[bytes, int]] = []

    async def handler(inbound: Inbound) -> None:
        got.append((bytes(inbound.message.body), inbound.delivery_count))
        await inbound.ack()

    sub = LeftBehind(handler, [[b"a", b"b"]], MemoryLeaseStore())
    await sub.start()
    await wait_until(lambda: len(got) == 2, "both messages", 5)
    assert got == [(b"a", 2), (b"b", 1)]  # delivered again (count 2) before the new one
    await wait_until(lambda: len(sub.sent) == 2, "both acks", 5)
    assert sub.in_flight == 0
    await sub.close()


async def test_a_full_window_reads_nothing_until_an_ack_makes_room() -> None:
    """With ``max_in_flight=1`` a `_read` takes at most `room`; the loop then waits (30 s
    here), and the ack that makes room wakes it at once."""
    held: list[Inbound] = []

    async def keep(inbound: Inbound) -> None:
        held.append(inbound)

    sub = ListSubscription(keep, [[b"a", b"b", b"c"]], MemoryLeaseStore(), max_in_flight=1)
    sub.poll_interval = 30.0
    await sub.start()
    await wait_until(lambda: len(held) == 1, "the first delivery", 5)
    await asyncio.sleep(0.05)
    assert len(held) == 1 and sub.room == 0
    await held[0].ack()
    await wait_until(lambda: len(held) == 2, "the second delivery, after the ack", 5)
    assert [bytes(d.message.body) for d in held] == [b"a", b"b"]
    await sub.close()


class Unread(ShardedSubscription[int]):
    """Implements neither `_read` nor `_fetch`."""

    async def _send_acks(self, batch: list[tuple[Shard, int]]) -> None:
        return None


async def test_a_subscription_with_neither_read_nor_fetch_names_what_is_missing() -> None:
    sub = Unread(
        SubscriptionSpec("orders", "billing"), _ignore, store=MemoryLeaseStore(),
        member_id="m", shards=1, ttl=1.0, scrub=str, backend="test",
    )  # fmt: skip
    with pytest.raises(NotImplementedError, match="Unread implements neither _read nor _fetch"):
        await sub._read([])


class FailingOnce(ListSubscription):
    """Its fetch loop raises an error of a class it did not expect, once, before reading."""

    failures = 0

    async def _fetch(self) -> None:
        if not self.failures:
            self.failures += 1
            raise RuntimeError("connection pool handed back a broken connection")
        await super()._fetch()


async def test_a_fetch_loop_that_raises_is_started_again_after_every_shard_recovers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    got: list[bytes] = []

    async def handler(inbound: Inbound) -> None:
        got.append(bytes(inbound.message.body))
        await inbound.ack()

    sub = FailingOnce(handler, [[b"a", b"b"], [b"c"]], MemoryLeaseStore())
    await sub.start()
    await wait_until(lambda: sorted(got) == [b"a", b"b", b"c"], "every message", 5)
    assert sub.failures == 1
    failed = [r for r in caplog.records if "fetch loop of orders/billing failed" in r.message]
    assert len(failed) == 1 and failed[0].levelname == "WARNING"
    assert "broken connection" in failed[0].message and failed[0].exc_info  # the traceback
    await sub.close()


class FailingInBursts(ListSubscription):
    """Its fetch loop fails three times in a row, runs, then fails once more."""

    starts = 0

    async def _fetch(self) -> None:
        self.starts += 1
        if self.starts <= 3:
            raise RuntimeError(f"failure {self.starts}")
        if self.starts == 4:
            await asyncio.sleep(0.3)  # longer than FETCH_HEALTHY here
            raise RuntimeError("a new outage")
        await super()._fetch()


async def test_a_fetch_loop_that_ran_well_for_a_while_starts_its_back_off_over(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_sharded, "FETCH_HEALTHY", 0.1)

    async def handler(inbound: Inbound) -> None:
        await inbound.ack()

    sub = FailingInBursts(handler, [[b"a"]], MemoryLeaseStore())
    delays: list[float] = []
    failed = sub._fetch_outage.failed

    def record(exc: BaseException, *, traceback: bool = False) -> float:
        delays.append(failed(exc, traceback=traceback))
        return delays[-1]

    monkeypatch.setattr(sub._fetch_outage, "failed", record)
    await sub.start()
    await wait_until(lambda: sub.starts == 5, "the fifth start", 5)
    await sub.close()
    assert delays == [0.05, 0.1, 0.2, 0.05]  # the fourth failure is a new outage
    warnings = [r.message for r in caplog.records if r.levelname == "WARNING"]
    assert [w.split(" (")[0].split(" after")[0] for w in warnings if "fetch loop" in w] == [
        "eventwire: test fetch loop of orders/billing failed",
        "eventwire: test fetch loop of orders/billing works again",
        "eventwire: test fetch loop of orders/billing failed",
    ]


class AckLog:
    """A `ShardMember` that is no `ShardedSubscription`: what a backend's fetch helper is."""

    def __init__(self) -> None:
        self.spec = SubscriptionSpec("orders", "billing")
        self.acks: list[tuple[int, str]] = []

    def ack(self, shard: Shard, position: str) -> None:
        self.acks.append((shard.index, position))


async def test_an_inbound_acks_once_through_any_shard_member() -> None:
    member = AckLog()
    typed: ShardMember[str] = member
    inbound = ShardInbound(typed, Shard(2), "$JS.ACK.x", WireMessage(b"a", {}), 1)
    await inbound.ack()
    await inbound.ack()
    assert member.acks == [(2, "$JS.ACK.x")]
    assert inbound.settled
    assert inbound.subscription.spec.channel == "orders"


async def test_ack_many_acks_each_inbound_once_like_ack_in_turn() -> None:
    member = AckLog()
    typed: ShardMember[str] = member
    first, second, third = (
        ShardInbound(typed, Shard(i), f"p{i}", WireMessage(b"a", {}), 1) for i in range(3)
    )
    await second.ack()
    await ShardInbound.ack_many([first, second, third])
    await ShardInbound.ack_many([first, third])  # a retried call acks nothing again
    assert member.acks == [(1, "p1"), (0, "p0"), (2, "p2")]
    assert first.settled and third.settled
