"""`within`: a step bounded in time that never waits on its own cancellation, and the
benchmark's `bounded` built on it."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import pytest
from eventwire_conformance._within import within
from eventwire_conformance.bench.model import BenchError, bounded

pytestmark = pytest.mark.anyio


async def test_a_step_that_returns_in_time_gives_its_finished_task() -> None:
    async def step() -> int:
        return 7

    finished = await within(step(), 1.0)
    assert finished is not None
    assert finished.result() == 7


async def test_a_step_that_raises_in_time_keeps_its_error() -> None:
    async def step() -> None:
        raise ValueError("broken")

    finished = await within(step(), 1.0)
    assert finished is not None
    assert isinstance(finished.exception(), ValueError)


def _slow() -> tuple[asyncio.Event, Coroutine[Any, Any, None]]:
    """A step that would take a minute, and an event set once it was cancelled."""
    cancelled = asyncio.Event()

    async def step() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    return cancelled, step()


async def test_a_slow_step_is_cancelled_and_gives_none() -> None:
    cancelled, step = _slow()
    assert await within(step, 0.05) is None
    await asyncio.wait_for(cancelled.wait(), 1.0)


async def test_a_step_that_ignores_its_cancellation_does_not_hold_the_caller() -> None:
    release = asyncio.Event()

    async def stubborn() -> None:
        while not release.is_set():
            try:
                await release.wait()
            except asyncio.CancelledError:
                continue  # ignores the cancellation

    assert await asyncio.wait_for(within(stubborn(), 0.05), 5.0) is None  # not held
    release.set()


async def test_a_cancelled_caller_cancels_its_step() -> None:
    cancelled, step = _slow()
    caller = asyncio.create_task(within(step, None))
    await asyncio.sleep(0.01)
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    await asyncio.wait_for(cancelled.wait(), 1.0)


async def test_bounded_names_what_did_not_finish() -> None:
    with pytest.raises(BenchError, match="stopping the consumer did not finish within 0s"):
        await bounded(asyncio.sleep(60), 0.05, "stopping the consumer")


async def test_bounded_returns_the_result_or_raises_the_error() -> None:
    async def value() -> str:
        return "ok"

    async def broken() -> None:
        raise RuntimeError("client failed")

    assert await bounded(value(), 1.0, "x") == "ok"
    with pytest.raises(RuntimeError, match="client failed"):
        await bounded(broken(), 1.0, "x")
