"""`GroupCommit`: a submit with nothing under way writes at once in its own task, what
queues during a write goes in the next batch, batches respect the limit, and each caller gets
the outcome of its own item."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from eventwire.backendkit import GroupCommit

pytestmark = pytest.mark.anyio


class Store:
    """Records each batch; the first write waits on `gate` so others queue up meanwhile."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.gate = asyncio.Event()

    async def write(self, batch: list[str]) -> Sequence[BaseException | None] | None:
        self.batches.append(batch)
        if len(self.batches) == 1:
            await self.gate.wait()
        if "boom" in batch:
            raise ConnectionError("the broker went away")
        return [ValueError(item) if item.startswith("bad") else None for item in batch]


async def test_items_queued_during_a_write_go_together_in_the_next_batch() -> None:
    store = Store()
    commits: GroupCommit[str] = GroupCommit(store.write, name="test")
    first = asyncio.ensure_future(commits.submit("a"))
    await asyncio.sleep(0)
    rest = [asyncio.ensure_future(commits.submit(x)) for x in ("b", "bad-c", "d")]
    await asyncio.sleep(0)
    store.gate.set()
    await first
    outcomes = await asyncio.gather(*rest, return_exceptions=True)
    assert store.batches == [["a"], ["b", "bad-c", "d"]]
    assert outcomes[0] is None and outcomes[2] is None
    assert isinstance(outcomes[1], ValueError)  # only the failing item's caller sees it


async def test_the_limit_splits_batches_and_a_failed_write_fails_its_whole_batch() -> None:
    store = Store()
    commits: GroupCommit[str] = GroupCommit(store.write, name="test", size=len, limit=4)
    first = asyncio.ensure_future(commits.submit("x"))
    await asyncio.sleep(0)
    calls = [asyncio.ensure_future(commits.submit(x)) for x in ("aa", "bb", "cccccc", "boom", "d")]
    await asyncio.sleep(0)  # all five queued behind "x"
    store.gate.set()
    outcomes = await asyncio.gather(*calls, return_exceptions=True)
    await first
    assert store.batches == [["x"], ["aa", "bb"], ["cccccc"], ["boom"], ["d"]]
    assert outcomes[:3] == [None, None, None] and outcomes[4] is None
    assert isinstance(outcomes[3], ConnectionError)


async def test_a_submit_with_nothing_under_way_writes_in_its_own_task() -> None:
    writers: list[asyncio.Task[object] | None] = []

    async def write(batch: list[str]) -> None:
        writers.append(asyncio.current_task())

    commits: GroupCommit[str] = GroupCommit(write, name="test")
    await commits.submit("a")
    await commits.submit("b")
    me = asyncio.current_task()
    assert writers == [me, me]  # no hand-over to a background task and back


async def test_a_writer_cancelled_by_its_caller_still_leaves_the_queue_written() -> None:
    store = Store()
    commits: GroupCommit[str] = GroupCommit(store.write, name="test")
    first = asyncio.ensure_future(commits.submit("a"))
    await asyncio.sleep(0)
    second = asyncio.ensure_future(commits.submit("b"))
    await asyncio.sleep(0)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    store.gate.set()
    async with asyncio.timeout(5):
        await second
    assert store.batches == [["a"], ["b"]]


async def test_close_fails_what_could_not_be_written_within_its_patience() -> None:
    store = Store()  # the first write never ends: the gate stays shut
    commits: GroupCommit[str] = GroupCommit(store.write, name="test")
    waiting = [asyncio.ensure_future(commits.submit(x)) for x in ("a", "b")]
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    waiting.append(asyncio.ensure_future(commits.submit("c")))  # queued behind the write
    await asyncio.sleep(0)
    await commits.close(0.05, RuntimeError("closed"))
    async with asyncio.timeout(5):  # a caller left waiting would hang here
        outcomes = await asyncio.gather(*waiting, return_exceptions=True)
    assert store.batches == [["a"]]  # "a" written at once, "b" and "c" queued behind it
    # the write cut short fails too: no caller waits for ever
    assert [str(o) for o in outcomes] == ["closed", "closed", "closed"]
