"""A three-step saga over small test messages, and a scriptable participant service."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable

from eventwire import Command, Delivery, Envelope, Event, EventBus, RetryPolicy
from eventwire.saga import Saga, Step

FAST = RetryPolicy(max_attempts=3, backoff=0.001, max_backoff=0.005, jitter=0)


class Go(Event, channel="t.start", key="sid"):
    sid: str
    amount: int = 1


class DoA(Command, channel="t.a.commands", key="sid"):
    sid: str


class UndoA(Command, channel="t.a.commands", key="sid"):
    sid: str


class ADone(Event, channel="t.a", key="sid"):
    sid: str
    token: str = ""


class AFailed(Event, channel="t.a", key="sid"):
    sid: str


class AUndone(Event, channel="t.a", key="sid"):
    sid: str


class DoB(Command, channel="t.b.commands", key="sid"):
    sid: str
    token: str


class UndoB(Command, channel="t.b.commands", key="sid"):
    sid: str


class BDone(Event, channel="t.b", key="sid"):
    sid: str


class BFailed(Event, channel="t.b", key="sid"):
    sid: str


class DoC(Command, channel="t.c.commands", key="sid"):
    sid: str


class CDone(Event, channel="t.c", key="sid"):
    sid: str


class Finished(Event, channel="t.outcome", key="sid"):
    sid: str
    ok: bool
    reason: str = ""


def make_saga(timeout: float = 5.0) -> Saga:
    return Saga(
        "abc",
        started_by=Go,
        saga_id=lambda e: e.sid,
        steps=[
            Step(
                "a",
                DoA,
                completed_by=[ADone],
                failed_by=[AFailed],
                compensation=UndoA,
                compensated_by=[AUndone],
            ),
            Step("b", DoB, completed_by=[BDone], failed_by=[BFailed], compensation=UndoB),
            Step("c", DoC, completed_by=[CDone]),
        ],
        on_completed=lambda c: Finished(sid=c.data["sid"], ok=True),
        on_failed=lambda c: Finished(sid=c.data["sid"], ok=False, reason=c.reason),
        step_timeout=timeout,
    )


def memory_url() -> str:
    return f"memory://s{uuid.uuid4().hex[:12]}"


class Participants:
    """One bus answering every command; `replies[command type]` picks the answer.

    A reply is an Event class (built from ``sid``), or ``None``: no answer (a silent service).
    """

    def __init__(self, url: str) -> None:
        self.bus = EventBus(url, source="participants")
        self.replies: dict[str, Callable[[str], Event] | None] = {
            "DoA": lambda sid: ADone(sid=sid, token="tok-" + sid),
            "UndoA": lambda sid: AUndone(sid=sid),
            "DoB": lambda sid: BDone(sid=sid),
            "UndoB": None,
            "DoC": lambda sid: CDone(sid=sid),
        }
        self.received: list[tuple[Command, Envelope]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        for model in (DoA, UndoA, DoB, UndoB, DoC):
            self.bus.subscribe(model, group="participants", retry=FAST)(self._handle)

    async def _handle(self, command: Command, delivery: Delivery) -> None:
        self.received.append((command, delivery.envelope))
        await self.gate.wait()
        make = self.replies[type(command).__name__]
        if make is not None:
            await self.bus.publish(
                make(command.sid),  # type: ignore[attr-defined]
                correlation_id=delivery.correlation_id,
                causation_id=delivery.id,
            )

    def names(self, sid: str | None = None) -> list[str]:
        return [type(c).__name__ for c, _ in self.received if sid is None or c.sid == sid]  # type: ignore[attr-defined]


class Outcomes:
    """Records `Finished` and the saga lifecycle events."""

    def __init__(self, url: str, saga: Saga) -> None:
        self.bus = EventBus(url, source="observer")
        self.finished: dict[str, Finished] = {}
        self.lifecycle: list[tuple[str, Envelope]] = []

        @self.bus.subscribe(Finished, group="observer")
        async def finished(event: Finished) -> None:
            self.finished[event.sid] = event

        for model in saga.events.all():
            self.bus.subscribe(model, group="observer")(self._life)

    async def _life(self, event: Event, delivery: Delivery) -> None:
        self.lifecycle.append((delivery.envelope.type, delivery.envelope))


async def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(0.005)
