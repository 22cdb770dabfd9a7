"""``--workers N``: N worker processes, each a member of the bus's groups, supervised.

The supervisor starts the workers (``eventwire run`` without ``--workers``) in their own
process groups, restarts one that dies, forwards SIGTERM/SIGINT to all of them so each
drains, and exits 0 when every worker drained cleanly. With ``--health-port`` it answers
for all of them: ready when every worker reported ready.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from eventwire.runner._health import HealthServer

__all__ = ["STATUS_FD", "WORKER", "supervise"]

log = logging.getLogger("eventwire.run")

#: Environment of a worker: the pipe it reports its state on, and its name.
STATUS_FD = "EVENTWIRE_STATUS_FD"
WORKER = "EVENTWIRE_WORKER"
RESTART_DELAY = 1.0


class _Worker:
    def __init__(self, index: int) -> None:
        self.name = f"worker-{index}"
        self.state = "starting"
        self.process: asyncio.subprocess.Process | None = None


async def supervise(
    command: Sequence[str],
    workers: int,
    *,
    health_port: int | None = None,
    health_host: str = "0.0.0.0",
) -> int:
    """Run `workers` copies of `command` until a signal; 0 when all drained cleanly."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    signals = 0
    pool = [_Worker(i) for i in range(1, workers + 1)]

    def on_signal(sig: signal.Signals) -> None:
        nonlocal signals
        signals += 1
        if signals == 1:
            log.info("%s: draining %d worker(s)", sig.name, workers)
            stop.set()
        for worker in pool:
            if worker.process is not None and worker.process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    worker.process.send_signal(signal.SIGTERM if signals == 1 else signal.SIGKILL)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)

    def status() -> Mapping[str, Any]:
        return {
            "ready": not stop.is_set() and all(w.state == "ready" for w in pool),
            "state": "draining" if stop.is_set() else "running",
            "workers": {w.name: w.state for w in pool},
        }

    health = None
    if health_port is not None:
        health = HealthServer(status, health_host, health_port)
        await health.start()
        log.info("health: http://%s:%d/livez and /readyz", health_host, health.port)
    try:
        codes = await asyncio.gather(*(_keep(w, command, stop) for w in pool))
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        if health is not None:
            await health.close()
    failed = [f"{w.name}: {code}" for w, code in zip(pool, codes, strict=True) if code != 0]
    if failed:
        log.error("worker(s) did not stop cleanly: %s", ", ".join(failed))
        return 1
    log.info("stopped: every worker drained")
    return 0


async def _keep(worker: _Worker, command: Sequence[str], stop: asyncio.Event) -> int:
    """Run `worker` until `stop`, restarting it when it dies; its last exit status."""
    while True:
        code = await _run_once(worker, command, stop)
        if stop.is_set():
            return code
        log.warning("%s exited with %s; restarting it in %gs", worker.name, code, RESTART_DELAY)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), RESTART_DELAY)
        if stop.is_set():
            return code


async def _run_once(worker: _Worker, command: Sequence[str], stop: asyncio.Event) -> int:
    read_fd, write_fd = os.pipe()
    env = {**os.environ, STATUS_FD: str(write_fd), WORKER: worker.name}
    try:
        worker.state = "starting"
        worker.process = await asyncio.create_subprocess_exec(
            *command, env=env, pass_fds=(write_fd,), start_new_session=True
        )
    finally:
        os.close(write_fd)
    if stop.is_set():  # a signal came while it was starting
        with contextlib.suppress(ProcessLookupError):
            worker.process.send_signal(signal.SIGTERM)
    reader = asyncio.create_task(_read_states(worker, read_fd))
    code = await worker.process.wait()
    await reader
    worker.state = "stopped"
    return code


async def _read_states(worker: _Worker, fd: int) -> None:
    loop = asyncio.get_running_loop()
    stream = asyncio.StreamReader()
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(stream), os.fdopen(fd, "rb")
    )
    try:
        while line := await stream.readline():
            worker.state = line.decode().strip()
    finally:
        transport.close()


def worker_command(argv: Sequence[str]) -> list[str]:
    """The command line of one worker: this ``eventwire run`` without ``--workers``."""
    return [sys.executable, "-m", "eventwire.cli", *argv]
