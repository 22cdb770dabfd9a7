from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from eventwire import EventBus
from eventwire.saga import MemorySagaStore, SagaOrchestrator, SqliteSagaStore

from ._domain import (
    FAST,
    ADone,
    AFailed,
    BDone,
    BFailed,
    Go,
    Outcomes,
    Participants,
    make_saga,
    memory_url,
    wait_for,
)

pytestmark = pytest.mark.anyio


def _orchestrator(url: str, saga_timeout: float = 5.0, store: object = None) -> SagaOrchestrator:
    bus = EventBus(url, source="orchestrator")
    return SagaOrchestrator(
        bus,
        [make_saga(saga_timeout)],
        store=store,  # type: ignore[arg-type]
        retry=FAST,
    )


async def test_happy_path_carries_correlation_and_causation() -> None:
    url = memory_url()
    orch = _orchestrator(url)
    parts, seen = Participants(url), Outcomes(url, orch.sagas["abc"])
    async with parts.bus, seen.bus, orch.bus, orch:
        go = await orch.bus.publish(Go(sid="s1"), correlation_id="req-9")
        await wait_for(lambda: "s1" in seen.finished)
        await wait_for(lambda: len(seen.lifecycle) == 5)
    assert seen.finished["s1"].ok
    assert parts.names() == ["DoA", "DoB", "DoC"]
    do_a, do_b = parts.received[0], parts.received[1]
    assert do_b[0].token == "tok-s1"  # type: ignore[attr-defined]  # from ADone's reply
    assert all(env.correlationid == "s1" for _, env in parts.received)
    assert do_a[1].causationid == go.id
    state = await orch.load("s1")
    assert state is not None and state.status == "completed" and state.outbox == []
    assert state.completed == ["a", "b", "c"] and len(state.processed) == 4
    assert do_b[1].causationid == state.processed[1]  # caused by the ADone reply
    assert [t for t, _ in seen.lifecycle] == [
        "SagaStarted",
        "SagaStepCompleted",
        "SagaStepCompleted",
        "SagaStepCompleted",
        "SagaCompleted",
    ]
    assert {env.correlationid for _, env in seen.lifecycle} == {"s1"}
    assert orch.sagas["abc"].events.channel == "sagas.abc"


async def test_failed_step_compensates_completed_steps_only() -> None:
    url = memory_url()
    orch = _orchestrator(url)
    parts, seen = Participants(url), Outcomes(url, orch.sagas["abc"])
    parts.replies["DoB"] = lambda sid: BFailed(sid=sid)
    async with parts.bus, seen.bus, orch.bus, orch:
        await orch.bus.publish(Go(sid="s2"))
        await wait_for(lambda: "s2" in seen.finished)
    assert parts.names() == ["DoA", "DoB", "UndoA"]
    assert not seen.finished["s2"].ok and seen.finished["s2"].reason == "b failed: BFailed"
    types = [t for t, _ in seen.lifecycle]
    assert types[-2:] == ["SagaCompensating", "SagaFailed"]


async def test_first_step_failure_compensates_nothing() -> None:
    url = memory_url()
    orch = _orchestrator(url)
    parts, seen = Participants(url), Outcomes(url, orch.sagas["abc"])
    parts.replies["DoA"] = lambda sid: AFailed(sid=sid)
    async with parts.bus, seen.bus, orch.bus, orch:
        await orch.bus.publish(Go(sid="s3"))
        await wait_for(lambda: "s3" in seen.finished)
    assert parts.names() == ["DoA"] and not seen.finished["s3"].ok


async def test_timeout_compensates_in_reverse_order_including_the_silent_step() -> None:
    url = memory_url()
    orch = _orchestrator(url, saga_timeout=0.2)
    parts, seen = Participants(url), Outcomes(url, orch.sagas["abc"])
    parts.replies["DoC"] = None  # shipping never answers
    async with parts.bus, seen.bus, orch.bus, orch:
        await orch.bus.publish(Go(sid="s4"))
        await wait_for(lambda: "s4" in seen.finished)
    # c has no compensation; b's is not confirmed by any event; a's is awaited
    assert parts.names() == ["DoA", "DoB", "DoC", "UndoB", "UndoA"]
    assert seen.finished["s4"].reason == "c timed out after 0.2s"


async def test_duplicate_start_and_redelivered_reply_advance_once() -> None:
    url = memory_url()
    orch = _orchestrator(url)
    parts, seen = Participants(url), Outcomes(url, orch.sagas["abc"])
    parts.gate.clear()  # hold the first reply until the duplicate is in
    async with parts.bus, seen.bus, orch.bus, orch:
        await orch.bus.publish(Go(sid="s5"))
        await orch.bus.publish(Go(sid="s5"))  # same order twice, new event id
        await wait_for(lambda: len(parts.received) == 1)
        parts.gate.set()
        await wait_for(lambda: "s5" in seen.finished)
        # redeliver the ADone reply: same event id, as a broker redelivery would
        replies = await parts.bus.backend.browse("t.a", 10)
        await parts.bus.backend.publish("t.a", replies)
        await asyncio.sleep(0.2)
    assert parts.names() == ["DoA", "DoB", "DoC"]
    state = await orch.load("s5")
    assert state is not None and state.processed.count(state.processed[1]) == 1
    assert len(state.processed) == 4  # the start, three replies; duplicates not applied


async def test_reply_for_unknown_saga_is_dead_lettered_at_once() -> None:
    url = memory_url()
    orch = _orchestrator(url)
    async with orch.bus, orch:
        sent = await orch.bus.publish(ADone(sid="x"), correlation_id="no-such-saga")
        await orch.bus.publish(ADone(sid="y"))  # no correlation id at all
        letters: list[object] = []

        async def two() -> None:
            while len(letters) < 2:
                letters[:] = await orch.bus.dead_letters(ADone)
                await asyncio.sleep(0.01)

        await asyncio.wait_for(two(), 5)
    first = letters[0]
    assert first.reason == "unknown-saga"  # type: ignore[attr-defined]
    assert first.attempts == 1  # type: ignore[attr-defined]
    assert first.error_type == "UnknownSagaError"  # type: ignore[attr-defined]
    assert "no-such-saga" in first.error  # type: ignore[attr-defined]
    assert first.group == "orchestrator.sagas"  # type: ignore[attr-defined]
    assert sent.id in first.original.headers.values()  # type: ignore[attr-defined]


async def test_restarted_orchestrator_resumes_from_sqlite(tmp_path: Path) -> None:
    url, db = memory_url(), tmp_path / "sagas.db"
    first = _orchestrator(url, store=SqliteSagaStore(db))
    parts, seen = Participants(url), Outcomes(url, first.sagas["abc"])
    async with parts.bus, seen.bus:
        async with first.bus, first:
            parts.replies["DoB"] = None  # b answers only after the restart
            await first.bus.publish(Go(sid="s6"))
            await wait_for(lambda: parts.names() == ["DoA", "DoB"])
            await asyncio.sleep(0.05)
        # the orchestrator is gone; a new one on the same file takes over
        second = _orchestrator(url, store=SqliteSagaStore(db))
        async with second.bus, second:
            state = await second.load("s6")
            assert state is not None and state.status == "running" and state.step == 1
            await parts.bus.publish(BDone(sid="s6"), correlation_id="s6")  # b answers
            await wait_for(lambda: "s6" in seen.finished)
    assert seen.finished["s6"].ok and parts.names() == ["DoA", "DoB", "DoC"]


async def test_restarted_orchestrator_rearms_timeouts(tmp_path: Path) -> None:
    url, db = memory_url(), tmp_path / "sagas.db"
    first = _orchestrator(url, saga_timeout=0.4, store=SqliteSagaStore(db))
    parts, seen = Participants(url), Outcomes(url, first.sagas["abc"])
    parts.replies["DoB"] = None
    async with parts.bus, seen.bus:
        async with first.bus, first:
            await first.bus.publish(Go(sid="s7"))
            await wait_for(lambda: parts.names() == ["DoA", "DoB"])
        second = _orchestrator(url, saga_timeout=0.4, store=SqliteSagaStore(db))
        async with second.bus, second:
            await wait_for(lambda: "s7" in seen.finished)
    assert parts.names() == ["DoA", "DoB", "UndoB", "UndoA"]
    assert seen.finished["s7"].reason == "b timed out after 0.4s"


async def test_failed_send_is_sent_again_when_the_reply_is_retried() -> None:
    url = memory_url()
    orch = _orchestrator(url)
    parts, seen = Participants(url), Outcomes(url, orch.sagas["abc"])
    real_send, failures = orch.bus.send, list[object]()

    async def flaky_send(command, **kw):  # type: ignore[no-untyped-def]
        if type(command).__name__ == "DoB" and not failures:
            failures.append(command)
            raise ConnectionError("broker hiccup")
        return await real_send(command, **kw)

    orch.bus.send = flaky_send  # type: ignore[method-assign]
    async with parts.bus, seen.bus, orch.bus, orch:
        await orch.bus.publish(Go(sid="s8"))
        await wait_for(lambda: "s8" in seen.finished)
    assert failures and parts.names() == ["DoA", "DoB", "DoC"]


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
async def test_store_rejects_a_stale_write(kind: str, tmp_path: Path) -> None:
    from eventwire.saga import SagaConflictError, SagaState

    store = MemorySagaStore() if kind == "memory" else SqliteSagaStore(tmp_path / "s.db")
    await store.save(SagaState(saga="abc", saga_id="k"))
    with pytest.raises(SagaConflictError):
        await store.save(SagaState(saga="abc", saga_id="k"))  # exists already
    a, b = await store.load("k"), await store.load("k")
    assert a is not None and b is not None
    a.step = 1
    await store.save(a)
    with pytest.raises(SagaConflictError):
        await store.save(b)
    loaded = await store.load("k")
    assert loaded is not None and loaded.step == 1 and loaded.version == 2
    assert [s.saga_id for s in await store.active()] == ["k"]
