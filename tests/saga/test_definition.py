from __future__ import annotations

import pytest
from eventwire import ConfigurationError, EventBus
from eventwire.saga import Saga, SagaOrchestrator, Step

from ._domain import ADone, AFailed, BDone, CDone, DoA, DoB, DoC, Go, UndoA, UndoB, memory_url


def _a(**kw: object) -> Step:
    return Step("a", DoA, completed_by=[ADone], **kw)  # type: ignore[arg-type]


def test_a_saga_without_steps_is_rejected() -> None:
    with pytest.raises(ConfigurationError, match="has no steps"):
        Saga("empty", [])


def test_duplicate_step_names_are_rejected() -> None:
    with pytest.raises(ConfigurationError, match="step name 'a' twice"):
        Saga("dup", [_a(compensation=UndoA), Step("a", DoB, completed_by=[BDone])])


def test_a_step_before_the_last_needs_a_compensation() -> None:
    with pytest.raises(ConfigurationError, match="'a' has no compensation"):
        Saga("nocomp", [_a(), Step("b", DoB, completed_by=[BDone])])


def test_compensation_none_says_no_undo_is_needed() -> None:
    saga = Saga("ok", [_a(compensation=None), Step("b", DoB, completed_by=[BDone])])
    assert [s.compensates for s in saga.steps] == [False, False]
    assert saga.commands() == [DoA, DoB]


def test_the_last_step_needs_no_compensation() -> None:
    saga = Saga("last", [_a(compensation=UndoA), Step("c", DoC, completed_by=[CDone])])
    assert saga.commands() == [DoA, UndoA, DoC]


@pytest.mark.parametrize(
    ("steps", "match"),
    [
        ([Step("a", DoA, completed_by=[])], "completed_by names no event"),
        ([Step("a", Go, completed_by=[ADone])], "not a Command subclass"),  # type: ignore[arg-type]
        ([Step("a", DoA, completed_by=[DoB])], "not a Event subclass"),  # type: ignore[list-item]
        ([Step("a", DoA, completed_by=[ADone], failed_by=[ADone])], "already answers"),
        ([_a(compensation=UndoA), Step("b", DoB, completed_by=[ADone])], "already answers"),
        ([Step("a", DoA, completed_by=[ADone], timeout=0)], "timeout must be > 0"),
        ([Step("bad name", DoA, completed_by=[ADone])], "step name"),
        (
            [Step("a", DoA, completed_by=[ADone], compensation=None, compensated_by=[AFailed])],
            "compensated_by without a compensation",
        ),
        (
            [Step("a", DoA, completed_by=[ADone], compensation=Go)],  # type: ignore[arg-type]
            "not a Command subclass",
        ),
    ],
)
def test_bad_steps_are_rejected(steps: list[Step], match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        Saga("bad", steps)


def test_bad_saga_options_are_rejected() -> None:
    one = [Step("c", DoC, completed_by=[CDone])]
    with pytest.raises(ConfigurationError, match="saga name"):
        Saga("no spaces", one)
    with pytest.raises(ConfigurationError, match="step_timeout"):
        Saga("t", one, step_timeout=0)
    with pytest.raises(ConfigurationError, match="started_by"):
        Saga("t", one, started_by=DoA)  # type: ignore[arg-type]


@pytest.mark.anyio
async def test_orchestrator_checks_its_sagas_and_the_bus_state() -> None:
    saga = Saga("one", [Step("c", DoC, completed_by=[CDone])])
    bus = EventBus(memory_url(), source="o")
    with pytest.raises(ConfigurationError, match="at least one Saga"):
        SagaOrchestrator(bus, [])
    with pytest.raises(ConfigurationError, match="two sagas are named 'one'"):
        SagaOrchestrator(bus, [saga, saga])

    async def started() -> None:
        running = EventBus(memory_url(), source="o")
        async with running:
            with pytest.raises(ConfigurationError, match="subscribe before the bus starts"):
                SagaOrchestrator(running, [saga])

    await started()


def test_lifecycle_events_travel_on_the_saga_channel() -> None:
    saga = Saga(
        "order-flow",
        [_a(compensation=UndoA), Step("b", DoB, completed_by=[BDone], compensation=UndoB)],
    )
    events = saga.events
    assert {m.__eventwire__.channel for m in events.all()} == {"sagas.order-flow"}
    assert [m.__eventwire__.type for m in events.all()] == [
        "SagaStarted",
        "SagaStepCompleted",
        "SagaCompensating",
        "SagaCompleted",
        "SagaFailed",
    ]
    assert events.by_type("SagaFailed") is events.failed
