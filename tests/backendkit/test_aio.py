"""The kit's asyncio pieces: `Memo` (single flight per key), `retrying`, `wait_event`,
`quietly`, `retrieve`, and `AckBatcher` (batched acks, kept in order through failures)."""

from __future__ import annotations

import asyncio
import gc
import logging
from typing import Any

import pytest
from eventwire.backendkit import AckBatcher, Memo, quietly, retrieve, retrying, wait_event

pytestmark = pytest.mark.anyio


async def test_memo_runs_one_attempt_for_concurrent_callers_and_remembers_it() -> None:
    memo: Memo[str, int] = Memo()
    calls = 0
    gate = asyncio.Event()

    async def work() -> int:
        nonlocal calls
        calls += 1
        await gate.wait()
        return 8

    waiters = [asyncio.ensure_future(memo.get("orders", work)) for _ in range(5)]
    await asyncio.sleep(0)
    gate.set()
    assert await asyncio.gather(*waiters) == [8] * 5
    assert await memo.get("orders", work) == 8
    assert calls == 1 and "orders" in memo and memo.known("orders") == 8
    memo.forget("orders")
    assert memo.known("orders") is None
    assert await memo.get("orders", work) == 8 and calls == 2


async def test_memo_forgets_a_failure_and_what_keep_refuses() -> None:
    memo: Memo[str, int | None] = Memo()
    answers: list[int | None] = [None, 3]

    async def failing() -> int | None:
        raise ConnectionError("broker away")

    async def lookup() -> int | None:
        return answers.pop(0)

    with pytest.raises(ConnectionError):
        await memo.get("c", failing)
    assert "c" not in memo
    assert await memo.get("c", lookup, keep=lambda v: v is not None) is None
    assert "c" not in memo  # not kept: asked again
    assert await memo.get("c", lookup, keep=lambda v: v is not None) == 3
    assert memo.known("c") == 3


async def test_retrying_retries_what_is_retryable_until_the_limit() -> None:
    failures = [ConnectionError("down"), ConnectionError("down")]

    async def flaky() -> str:
        if failures:
            raise failures.pop()
        return "ok"

    assert await retrying(flaky, "test call", 5.0, (ConnectionError,)) == "ok"

    async def refused() -> str:
        raise ValueError("not retryable")

    with pytest.raises(ValueError, match="not retryable"):
        await retrying(refused, "test call", 5.0, (ConnectionError,))

    async def down() -> str:
        raise ConnectionError("down for good")

    with pytest.raises(ConnectionError, match="down for good"):
        await retrying(down, "test call", 0.2, (ConnectionError,))


async def test_wait_event_and_quietly() -> None:
    event = asyncio.Event()
    assert not await wait_event(event, 0.01)
    asyncio.get_running_loop().call_soon(event.set)
    assert await wait_event(event, 5)

    async def broken() -> None:
        raise RuntimeError("close failed")

    async def hangs() -> None:
        await asyncio.sleep(60)

    await quietly(broken(), "closing a test client")  # logged, not raised
    await quietly(hangs(), "closing a stuck client", timeout=0.01)


@pytest.mark.parametrize("collected", [True, False])
async def test_retrieve_keeps_an_unawaited_failure_from_being_reported(collected: bool) -> None:
    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    try:
        failed: asyncio.Future[None] = loop.create_future()
        cancelled: asyncio.Future[None] = loop.create_future()
        if collected:
            failed.add_done_callback(retrieve)
            cancelled.add_done_callback(retrieve)
        failed.set_exception(RuntimeError("nobody awaits this"))
        cancelled.cancel()
        await asyncio.sleep(0)  # the done callbacks run
        del failed, cancelled
        gc.collect()
    finally:
        loop.set_exception_handler(previous)
    messages = [context["message"] for context in reported]
    assert messages == ([] if collected else ["Future exception was never retrieved"])


async def test_ack_batcher_sends_in_order_and_keeps_a_failed_batch(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sent: list[list[int]] = []
    settled: list[int] = []
    fail = [True]

    async def send(batch: list[int]) -> None:
        if fail and fail.pop():
            raise ConnectionError("broker away")
        sent.append(batch)

    batcher = AckBatcher(send, settled.extend, what="test ack", patience=5.0)
    for item in (1, 2, 3):
        batcher.add(item)
    assert len(batcher) == 3
    await batcher.flush()  # the first try fails, the batch is kept and sent again
    assert sent == [[1, 2, 3]] and settled == [1, 2, 3] and len(batcher) == 0

    runner = asyncio.ensure_future(batcher.run())
    batcher.add(4)
    batcher.add(5)
    for _ in range(5):
        await asyncio.sleep(0)
    assert sent[-1] == [4, 5] and settled == [1, 2, 3, 4, 5]
    runner.cancel()
    await asyncio.gather(runner, return_exceptions=True)

    batcher.add(6)
    batcher.drop()
    assert len(batcher) == 0


async def test_ack_batcher_gives_up_after_its_patience_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def down(batch: list[int]) -> None:
        raise ConnectionError("broker away")

    settled: list[int] = []
    batcher = AckBatcher(down, settled.extend, what="test ack", patience=0.0)
    batcher.add(1)
    with caplog.at_level(logging.WARNING):
        await batcher.flush()
    assert settled == [] and len(batcher) == 1
    assert "1 test ack(s) could not be sent" in caplog.text
