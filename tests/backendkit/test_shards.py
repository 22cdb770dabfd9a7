"""The shard coordinator on the in-memory lease store, with a fake clock.

Heartbeats are driven by hand (`tick`), so every interleaving is chosen by the test: join,
leave, crash (lease expiry), hand-over only after in-flight deliveries are settled, and a
member whose event loop stalls past its lease. A randomized state machine then checks the
two safety rules under any interleaving, and a coordinator with a planted bug (it hands a
shard over before its deliveries are settled) shows that the check has teeth.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest
from eventwire.backendkit import (
    Grant,
    LeaseRequest,
    MemoryLeaseStore,
    ShardCoordinator,
    ShardState,
)
from hypothesis import Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from tests.backendkit._lease_contract import check_lease_store

pytestmark = pytest.mark.anyio

T = TypeVar("T")
TTL = 5.0
UNOWNED, RECOVERING, READY, DRAINING = (
    ShardState.UNOWNED,
    ShardState.RECOVERING,
    ShardState.READY,
    ShardState.DRAINING,
)


def drive(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine that never waits (the in-memory store answers at once)."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    coro.close()
    raise AssertionError("the coroutine waited")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(clock: Clock) -> MemoryLeaseStore:
    return MemoryLeaseStore(clock)


def member(store: MemoryLeaseStore, name: str, shards: int = 4) -> ShardCoordinator:
    return ShardCoordinator(store, name, shards, ttl=TTL, clock=store.clock)


def states(coordinator: ShardCoordinator) -> list[ShardState]:
    return [s.state for s in coordinator.shards]


def recover_all(coordinator: ShardCoordinator) -> None:
    for shard in coordinator.to_recover():
        assert coordinator.mark_recovered(shard, shard.epoch)


def test_a_lone_member_takes_every_shard_recovers_then_reads(store: MemoryLeaseStore) -> None:
    a = member(store, "a")
    assert a.readable() == [] and not a.balanced.is_set()
    drive(a.tick())
    assert states(a) == [RECOVERING] * 4
    assert a.balanced.is_set() and a.changed.is_set()
    assert a.readable() == []  # nothing new is read before the old owners' leftovers
    recover_all(a)
    assert [s.index for s in a.readable()] == [0, 1, 2, 3]
    assert [store.holder(i) for i in range(4)] == ["a"] * 4


def test_a_joining_member_gets_its_share_after_the_owner_gives_it_back(
    store: MemoryLeaseStore,
) -> None:
    a, b = member(store, "a"), member(store, "b")
    drive(a.tick())
    recover_all(a)
    drive(b.tick())  # b sees {a, b}: it wants 1 and 3, which a still holds
    assert b.wanted() == {1, 3}
    assert states(b) == [UNOWNED] * 4 and not b.balanced.is_set()
    drive(a.tick())  # a sees b: gives back 1 and 3 (nothing in flight there)
    assert states(a) == [READY, UNOWNED, READY, UNOWNED]
    drive(b.tick())
    assert states(b) == [UNOWNED, RECOVERING, UNOWNED, RECOVERING]
    assert b.balanced.is_set()


def test_a_shard_is_handed_over_only_after_its_deliveries_are_settled(
    store: MemoryLeaseStore,
) -> None:
    a, b = member(store, "a", shards=2), member(store, "b", shards=2)
    drive(a.tick())
    recover_all(a)
    one = a.shards[1]
    with a.reading([one]):
        a.delivered(one, 2)
    drive(b.tick())
    drive(a.tick())
    assert one.state is DRAINING
    assert [s.index for s in a.readable()] == [0]  # nothing more is read from it
    drive(b.tick())
    assert b.shards[1].state is UNOWNED and store.holder(1) == "a"
    a.settled(one)
    drive(a.tick())
    assert one.state is DRAINING  # one delivery is still unsettled
    a._wake.clear()
    a.settled(one)
    assert a._wake.is_set()  # the last settlement asks for a heartbeat at once
    drive(a.tick())
    assert one.state is UNOWNED and store.holder(1) is None
    drive(b.tick())
    assert b.shards[1].state is RECOVERING


def test_a_read_under_way_holds_the_shard_until_it_ends(store: MemoryLeaseStore) -> None:
    a, b = member(store, "a", shards=2), member(store, "b", shards=2)
    drive(a.tick())
    recover_all(a)
    one = a.shards[1]
    drive(b.tick())
    with a.reading([one]):
        drive(a.tick())
        assert one.state is DRAINING and store.holder(1) == "a"
        a.delivered(one)  # what the read returned
    drive(a.tick())
    assert one.state is DRAINING
    a.settled(one)
    drive(a.tick())
    assert one.state is UNOWNED


def test_a_shard_wanted_again_while_draining_is_kept_and_read_on(store: MemoryLeaseStore) -> None:
    a, b = member(store, "a", shards=2), member(store, "b", shards=2)
    drive(a.tick())
    recover_all(a)
    a.delivered(a.shards[1])
    drive(b.tick())
    drive(a.tick())
    assert a.shards[1].state is DRAINING
    drive(b.leave())  # b goes away before the hand-over happened
    drive(a.tick())
    assert states(a) == [READY, READY]  # already recovered: no second recovery
    assert a.shards[1].epoch == 1


def test_a_stopped_member_drains_then_leaves_and_the_other_takes_over(
    store: MemoryLeaseStore,
) -> None:
    a, b = member(store, "a", shards=2), member(store, "b", shards=2)
    drive(a.tick())
    drive(b.tick())
    drive(a.tick())
    drive(b.tick())
    recover_all(a)
    recover_all(b)
    a.delivered(a.shards[0])
    a.stop()
    drive(a.tick())
    assert a.members == ("b",) and states(a) == [DRAINING, UNOWNED]
    drive(b.tick())
    assert b.wanted() == {0, 1} and b.shards[0].state is UNOWNED  # a still drains it
    a.settled(a.shards[0])
    drive(a.tick())
    drive(b.tick())
    assert states(b) == [RECOVERING, READY]


def test_leave_gives_every_lease_back_at_once(store: MemoryLeaseStore) -> None:
    a, b = member(store, "a", shards=2), member(store, "b", shards=2)
    drive(a.tick())
    drive(b.tick())
    a.delivered(a.shards[1])  # unsettled: delivered again by the next owner
    drive(a.leave())
    assert states(a) == [UNOWNED, UNOWNED] and store.holders == {}
    drive(b.tick())
    assert b.members == ("b",) and states(b) == [RECOVERING, RECOVERING]


def test_a_crashed_members_shards_are_taken_once_its_leases_expire(
    store: MemoryLeaseStore, clock: Clock
) -> None:
    a, b = member(store, "a", shards=2), member(store, "b", shards=2)
    drive(a.tick())
    drive(b.tick())
    drive(a.tick())
    drive(b.tick())
    assert states(b) == [UNOWNED, RECOVERING]
    # a crashes: it never ticks again
    clock.now += TTL / 2
    drive(b.tick())
    assert b.members == ("a", "b") and b.shards[0].state is UNOWNED
    clock.now += TTL / 2 + 0.01
    drive(b.tick())
    assert list(b.members) == ["b"]
    assert states(b) == [RECOVERING, RECOVERING]


def test_a_stalled_member_reads_nothing_past_its_lease_and_yields_to_the_taker(
    store: MemoryLeaseStore, clock: Clock
) -> None:
    a, b = member(store, "a", shards=2), member(store, "b", shards=2)
    drive(a.tick())
    recover_all(a)
    assert len(a.readable()) == 2
    clock.now += TTL + 1  # a's event loop is blocked: no heartbeat
    a._wake.clear()
    assert a.readable() == []  # never read a shard past its lease's expiry
    assert a._wake.is_set()
    drive(b.tick())  # b sees only itself and takes both
    assert states(b) == [RECOVERING, RECOVERING]
    recover_all(b)
    drive(a.tick())  # a wakes up: both leases are b's now
    assert states(a) == [UNOWNED, UNOWNED]
    assert a.members == ("a", "b")
    drive(b.tick())
    drive(a.tick())
    assert states(a) == [RECOVERING, UNOWNED] and a.shards[0].epoch == 2


def test_an_expired_but_free_lease_is_taken_back_in_the_same_heartbeat(
    store: MemoryLeaseStore, clock: Clock
) -> None:
    a = member(store, "a", shards=1)
    drive(a.tick())
    shard = a.shards[0]
    old_epoch = shard.epoch
    recover_all(a)
    clock.now += TTL + 1  # late heartbeat; nobody took the shard meanwhile
    drive(a.tick())
    assert store.holder(0) == "a"
    # someone may have read it meanwhile, so it is recovered again, in a new epoch
    assert shard.state is RECOVERING and shard.epoch == old_epoch + 1
    assert not a.mark_recovered(shard, old_epoch)  # a recovery of the old epoch does not count
    assert a.mark_recovered(shard, shard.epoch) and shard.state is READY


def test_a_recovery_that_outlived_its_lease_does_not_make_the_shard_ready(
    store: MemoryLeaseStore, clock: Clock
) -> None:
    a, b = member(store, "a", shards=1), member(store, "b", shards=1)
    drive(a.tick())
    shard = a.shards[0]
    epoch = shard.epoch
    clock.now += TTL + 1
    drive(b.tick())  # a's leases and registration expired: b takes the shard
    drive(a.tick())
    assert shard.state is UNOWNED
    assert not a.mark_recovered(shard, epoch)
    assert a.readable() == []


def test_recover_again_sends_every_owned_shard_back_to_recovery(store: MemoryLeaseStore) -> None:
    a, b = member(store, "a", shards=2), member(store, "b", shards=2)
    drive(a.tick())
    recover_all(a)
    a.delivered(a.shards[1])
    drive(b.tick())
    drive(a.tick())  # shard 1 drains (one delivery in flight), shard 0 stays ready
    assert states(a) == [READY, DRAINING]
    epoch = a.shards[0].epoch
    a.changed.clear()
    a.recover_again()  # a read's reply was lost: what it handed out may be pending again
    assert states(a) == [RECOVERING, DRAINING] and a.changed.is_set()
    assert a.readable() == [] and a.shards[0].epoch == epoch + 1
    assert not a.mark_recovered(a.shards[0], epoch)
    drive(b.leave())
    drive(a.tick())  # wanted again: not recovered since, so it recovers first
    assert states(a) == [RECOVERING, RECOVERING]


async def test_the_run_loop_retries_a_failing_store_and_logs_without_secrets(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Flaky(MemoryLeaseStore):
        failures = 2

        async def heartbeat(self, member: str, ttl: float, *, alive: bool) -> list[str]:
            if self.failures:
                self.failures -= 1
                raise ConnectionError("redis://user:hunter2@host refused")
            return list(await super().heartbeat(member, ttl, alive=alive))

    store = Flaky()
    a = ShardCoordinator(
        store, "a", 2, ttl=1.0, interval=0.001, scrub=lambda t: t.replace("hunter2", "***")
    )
    task = asyncio.create_task(a.run())
    await asyncio.wait_for(a.balanced.wait(), 5)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert states(a) == [RECOVERING, RECOVERING]
    text = caplog.text
    assert "the lease heartbeat of a failed (ConnectionError" in text and "hunter2" not in text
    assert text.count("failed (") == 1  # once per outage, not once per try
    assert "the lease heartbeat of a works again" in text


async def test_the_run_loop_ends_when_cancelled_just_as_it_is_woken(
    store: MemoryLeaseStore,
) -> None:
    a = ShardCoordinator(store, "a", 2, ttl=1.0, interval=60)
    task = asyncio.create_task(a.run())
    await asyncio.wait_for(a.balanced.wait(), 5)
    await asyncio.sleep(0)
    a.wake()  # the wait ends in the next step of the loop ...
    await asyncio.sleep(0)
    task.cancel()  # ... and the cancellation arrives meanwhile: it must not be lost
    done, _ = await asyncio.wait([task], timeout=5)
    assert done and task.cancelled()


def test_the_in_memory_store_answers_requests_in_order(store: MemoryLeaseStore) -> None:
    grants = drive(store.leases("a", TTL, [LeaseRequest(0, True), LeaseRequest(1, False)]))
    assert list(grants) == [Grant.ACQUIRED, Grant.DENIED]
    grants = drive(store.leases("b", TTL, [LeaseRequest(0, True), LeaseRequest(1, True)]))
    assert list(grants) == [Grant.DENIED, Grant.ACQUIRED]
    assert list(drive(store.leases("a", TTL, [LeaseRequest(0, False)]))) == [Grant.RENEWED]
    drive(store.release("b", [0, 1]))  # 0 is a's: left alone
    assert store.holder(0) == "a" and store.holder(1) is None


def test_a_channel_has_at_least_one_shard(store: MemoryLeaseStore) -> None:
    with pytest.raises(ValueError, match="at least one shard"):
        ShardCoordinator(store, "a", 0, ttl=TTL)


# -- safety under any interleaving ----------------------------------------------------------


class EagerCoordinator(ShardCoordinator):
    """A planted bug: gives a draining shard back without waiting for its deliveries."""

    async def _hand_over(self, mine: set[int]) -> bool:
        parked = [shard.in_flight for shard in self.shards]
        for shard in self.shards:
            shard.in_flight = 0
        try:
            return await super()._hand_over(mine)
        finally:
            for shard, count in zip(self.shards, parked, strict=True):
                shard.in_flight = count


class Group(RuleBasedStateMachine):
    """Members join, tick, read, settle, stop, leave, crash and stall, in any order.

    Safety, checked after every step:

    - a shard is readable (or being recovered) by at most one member at a time;
    - a member never reads or recovers a shard while another member still has deliveries of
      it in flight under a lease it can still trust (hand-over waits for settlement).
    """

    coordinator = ShardCoordinator
    SHARDS = 3

    def __init__(self) -> None:
        super().__init__()
        self.clock = Clock()
        self.store = MemoryLeaseStore(self.clock)
        self.members: dict[str, ShardCoordinator] = {}
        self.crashed: set[str] = set()
        self.names = iter(f"m{i}" for i in range(1000))

    def _live(self) -> list[ShardCoordinator]:
        return [m for name, m in self.members.items() if name not in self.crashed]

    @precondition(lambda self: len(self.members) < 4)
    @rule()
    def join(self) -> None:
        name = next(self.names)
        self.members[name] = self.coordinator(
            self.store, name, self.SHARDS, ttl=TTL, clock=self.clock
        )

    @precondition(lambda self: bool(self._live()))
    @rule(data=st.data())
    def tick(self, data: st.DataObject) -> None:
        drive(data.draw(st.sampled_from(self._live())).tick())

    @precondition(lambda self: bool(self._live()))
    @rule(data=st.data())
    def recover(self, data: st.DataObject) -> None:
        m = data.draw(st.sampled_from(self._live()))
        for shard in m.to_recover():
            with m.reading([shard]):
                m.delivered(shard, data.draw(st.integers(1, 2)))
            m.mark_recovered(shard, shard.epoch)

    @precondition(lambda self: bool(self._live()))
    @rule(data=st.data())
    def read(self, data: st.DataObject) -> None:
        m = data.draw(st.sampled_from(self._live()))
        shards = m.readable()
        with m.reading(shards):
            for shard in shards:
                m.delivered(shard, data.draw(st.integers(1, 2)))

    @precondition(lambda self: bool(self._live()))
    @rule(data=st.data())
    def settle(self, data: st.DataObject) -> None:
        m = data.draw(st.sampled_from(self._live()))
        busy = [s for s in m.shards if s.in_flight]
        if busy:
            m.settled(data.draw(st.sampled_from(busy)))

    @precondition(lambda self: bool(self._live()))
    @rule(data=st.data())
    def stop(self, data: st.DataObject) -> None:
        data.draw(st.sampled_from(self._live())).stop()

    @precondition(lambda self: bool(self._live()))
    @rule(data=st.data())
    def crash(self, data: st.DataObject) -> None:
        # a crash forgets nothing in the store; the member simply never acts again
        self.crashed.add(data.draw(st.sampled_from(self._live())).member)

    @rule(seconds=st.sampled_from([0.5, TTL / 2, TTL + 0.1]))
    def time_passes(self, seconds: float) -> None:
        self.clock.now += seconds

    def _active(self, m: ShardCoordinator) -> set[int]:
        now = self.clock.now
        return {s.index for s in m.shards if s.state in (READY, RECOVERING) and s.expires > now}

    def _busy(self, m: ShardCoordinator) -> set[int]:
        now = self.clock.now
        return {
            s.index
            for s in m.shards
            # a shard given back keeps the expiry of its last renewal; one lost to a taker
            # after expiry (the stalled-member case, which leases cannot prevent) does not
            if s.expires > now and (s.in_flight or s.reads)
        }

    @invariant()
    def one_reader_per_shard_and_hand_over_after_settlement(self) -> None:
        live = self._live()
        for m in live:
            for other in live:
                if other is m:
                    continue
                assert not (self._active(m) & self._active(other)), "two members read a shard"
                assert not (self._active(m) & self._busy(other)), (
                    "a shard was handed over before its deliveries were settled"
                )


Group.TestCase.settings = settings(
    max_examples=100, stateful_step_count=30, deadline=None, derandomize=True
)
TestGroup = Group.TestCase


class EagerGroup(Group):
    coordinator = EagerCoordinator


def test_the_safety_check_catches_a_hand_over_before_settlement() -> None:
    state = EagerGroup()
    a, b = "a", "b"
    state.members[a] = ma = EagerCoordinator(state.store, a, 2, ttl=TTL, clock=state.clock)
    state.members[b] = mb = EagerCoordinator(state.store, b, 2, ttl=TTL, clock=state.clock)
    drive(ma.tick())
    recover_all(ma)
    ma.delivered(ma.shards[1])
    drive(mb.tick())
    drive(ma.tick())  # the bug: shard 1 goes back with a delivery in flight
    drive(mb.tick())
    recover_all(mb)
    with pytest.raises(AssertionError, match="before its deliveries were settled"):
        state.one_reader_per_shard_and_hand_over_after_settlement()


def test_the_state_machine_finds_the_planted_bug_on_its_own() -> None:
    runner = EagerGroup.TestCase("runTest")
    runner.settings = settings(  # type: ignore[misc]  # this runner only
        max_examples=100,
        stateful_step_count=30,
        deadline=None,
        derandomize=True,
        phases=(Phase.generate,),
        report_multiple_bugs=False,
    )
    with pytest.raises(AssertionError, match="before its deliveries were settled"):
        runner.runTest()


@pytest.mark.anyio
async def test_the_memory_lease_store_keeps_the_lease_store_promises() -> None:
    await check_lease_store(MemoryLeaseStore())
