"""``eventwire run`` on Redis: SIGTERM mid-stream drains cleanly, then two workers finish."""

from __future__ import annotations

import asyncio
import os
import signal
import textwrap
import uuid
from pathlib import Path

import pytest
from eventwire import Event, EventBus

from ._service import get, health_port, lines, start, wait_until

pytestmark = pytest.mark.broker

URL = os.environ.get("EVENTWIRE_REDIS_URL") or "redis://127.0.0.1:6379/0"
COUNT = 300

APP = textwrap.dedent(
    """
    import asyncio
    import os

    from eventwire import Event, EventBus


    class Job(Event, channel=os.environ["RUN_CHANNEL"], key="key"):
        n: int
        key: str


    bus = EventBus("memory://", source="runner")
    trace = os.environ["RUN_TRACE"]


    def note(text: str) -> None:
        with open(trace, "a") as file:  # one short append per line: whole lines, any process
            file.write(f"{text} {os.getpid()}\\n")


    @bus.subscribe(Job, group="runner", concurrency=4)
    async def work(job: Job) -> None:
        note(f"start {job.n}")
        await asyncio.sleep(0.02)
        note(f"done {job.n}")
    """
)


def _events(trace: Path, kind: str) -> list[tuple[int, int]]:
    """(n, pid) of every ``kind`` line."""
    out = []
    for line in lines(trace):
        word, n, pid = line.split()
        if word == kind:
            out.append((int(n), int(pid)))
    return out


def test_sigterm_mid_stream_loses_nothing_and_redelivers_nothing_finished(tmp_path: Path) -> None:
    channel = f"run-{uuid.uuid4().hex[:10]}"
    trace = tmp_path / "trace.txt"
    (tmp_path / "app.py").write_text(APP)
    env = {"RUN_CHANNEL": channel, "RUN_TRACE": str(trace)}
    args = ["app.py:bus", "--url", URL, "--health-port", "0", "--drain-timeout", "20"]

    first = start(args, tmp_path, **env)
    try:
        port = wait_until(lambda: health_port(tmp_path / "err.txt"), "the first service")
        wait_until(lambda: get(port, "/readyz")[0] == 200, "the first service to be ready")
        # kept sync: the test drives the service processes with blocking waits
        asyncio.run(_publish(channel))
        wait_until(lambda: len(_events(trace, "done")) >= 60, "some events to be handled")
        first.send_signal(signal.SIGTERM)  # mid-stream: handlers are running, more are queued
        assert first.wait(timeout=60) == 0, (tmp_path / "err.txt").read_text()
    finally:
        first.kill()
    started_first = {n for n, _ in _events(trace, "start")}
    done_first = {n for n, _ in _events(trace, "done")}
    assert len(done_first) < COUNT, "the signal came too late to be mid-stream"
    assert started_first == done_first  # every handler that had started, finished
    before = len(lines(trace))

    second = start([*args, "--workers", "2"], tmp_path, **env)
    try:
        port = wait_until(lambda: health_port(tmp_path / "err.txt"), "the second service")
        workers = wait_until(
            lambda: (s := get(port, "/readyz"))[0] == 200 and s[1]["workers"], "two ready workers"
        )
        assert workers == {"worker-1": "ready", "worker-2": "ready"}
        wait_until(
            lambda: {n for n, _ in _events(trace, "done")} == set(range(COUNT)),
            "every event to be handled",
            60,
        )
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=60) == 0, (tmp_path / "err.txt").read_text()
    finally:
        second.kill()
    later = lines(trace)[before:]
    redelivered = {int(line.split()[1]) for line in later if line.startswith("start")}
    assert not redelivered & done_first  # nothing finished before SIGTERM ran again
    assert {n for n, _ in _events(trace, "done")} == set(range(COUNT))  # nothing lost


async def _publish(channel: str) -> None:
    class Job(Event, channel=channel, key="key"):
        n: int
        key: str

    async with EventBus(URL, source="feeder") as bus:
        for start_at in range(0, COUNT, 50):
            await bus.publish_many(
                [Job(n=n, key=f"k{n % 16}") for n in range(start_at, start_at + 50)]
            )
