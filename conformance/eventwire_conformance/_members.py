"""Group members the suite starts, stops and kills, and the handler runs they record.

A member is either a bus in the test's own process (`local_member`) or a consumer process
(`MemberProcess`, running `eventwire_conformance._crash_consumer`) that the test can SIGKILL.
Both record every finished handler run as a `Run` with times from the monotonic clock,
which on Linux is one clock for every process of the host, so the runs of all members can be
merged and checked together: a key handled by two members at once (`overlapping`) and keys
whose first deliveries are out of publish order (`out_of_order`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import os
import random
import signal
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import IO

from eventwire import Delivery, EventBus

from eventwire_conformance._crash_consumer import PLUGINS_VARIABLE, STORE_VARIABLE, URL_VARIABLE
from eventwire_conformance._events import Ping

__all__ = [
    "LocalMember",
    "MemberProcess",
    "Run",
    "first_deliveries",
    "interleaved",
    "out_of_order",
    "overlapping",
    "plugins",
]


@dataclasses.dataclass(frozen=True, slots=True, order=True)
class Run:
    """One finished handler run: event `key`/`seq` from `begin` to `end` on `member`."""

    begin: float
    end: float
    key: str
    seq: int
    member: str
    attempt: int = 1


def interleaved(keys: list[str], per_key: int, seed: int) -> list[tuple[str, int]]:
    """(key, seq) pairs, each key's seqs in order, the keys in a shuffled (not rotating)
    order: a partitioner that ignores the key cannot keep a key together by accident."""
    order = [key for key in keys for _ in range(per_key)]
    random.Random(seed).shuffle(order)
    next_seq: Counter[str] = Counter()
    pairs = []
    for key in order:
        pairs.append((key, next_seq[key]))
        next_seq[key] += 1
    return pairs


def overlapping(runs: Iterable[Run]) -> list[str]:
    """Same-key handler runs that overlap in time: ``"key-03#12 on a / #13 on c"``."""
    by_key: defaultdict[str, list[Run]] = defaultdict(list)
    for run in runs:
        by_key[run.key].append(run)
    found = []
    for key, key_runs in by_key.items():
        for one, two in itertools.pairwise(sorted(key_runs)):
            if two.begin < one.end:
                found.append(f"{key}#{one.seq} on {one.member} / #{two.seq} on {two.member}")
    return found


def first_deliveries(runs: Iterable[Run]) -> dict[str, list[int]]:
    """Per key, the seqs in the order their first run began (later runs are duplicates)."""
    by_key: defaultdict[str, list[int]] = defaultdict(list)
    for run in sorted(runs):
        by_key[run.key].append(run.seq)
    return {key: list(dict.fromkeys(seqs)) for key, seqs in by_key.items()}


def out_of_order(runs: Iterable[Run]) -> dict[str, str]:
    """Keys whose first deliveries are not in publish (seq) order, each with where it broke:
    ``{"k3": "seq 12 after 14 (first deliveries ... 11, 14, 12, 13 ...)"}``."""
    wrong = {}
    for key, seqs in sorted(first_deliveries(runs).items()):
        for at, (before, after) in enumerate(itertools.pairwise(seqs)):
            if after < before:
                around = ", ".join(map(str, seqs[max(0, at - 2) : at + 4]))
                wrong[key] = f"seq {after} after {before} (first deliveries ... {around} ...)"
                break
    return wrong


class LocalMember:
    """A group member on a bus of the test's own process, recording its runs into `runs`.

    `crash` is the in-process stand-in for SIGKILL: the bus is aborted (nothing more is
    settled) and a handler still running counts as killed (its run is not recorded).
    """

    def __init__(
        self, bus: EventBus, model: type[Ping], group: str, name: str, runs: list[Run]
    ) -> None:
        self.bus = bus
        self.name = name
        self.dead = False

        @bus.subscribe(model, group=group, concurrency=4)
        async def handle(event: Ping, delivery: Delivery) -> None:
            begin = time.monotonic()
            # Uneven (keys overtake each other), and long enough that a membership change
            # finds same-key events still running on the member that held them.
            await asyncio.sleep(0.01 * (event.seq % 3))
            if not self.dead:
                runs.append(
                    Run(begin, time.monotonic(), event.key, event.seq, name, delivery.attempt)
                )

    async def crash(self) -> None:
        self.dead = True
        await self.bus.abort()


def plugins() -> str:
    """The ``-p`` modules of this run (the runner's ``--plugin``s), for a consumer process."""
    given = os.environ.get(PLUGINS_VARIABLE, "").split(",")
    return ",".join(module for module in given if module)


def _open_files(out: Path) -> IO[bytes]:
    """Create the member's record file `out`; open the file its stderr goes to. A file, not
    a pipe: a pipe nobody reads would block a member that logs a lot (a broker outage makes
    clients log every reconnect attempt)."""
    out.touch()
    return out.with_name(out.name + ".stderr").open("wb")


class MemberProcess:
    """A group member in a process of its own (`eventwire_conformance._crash_consumer`).

    ``await MemberProcess.start(...)`` returns once it is subscribed. `kill` is a crash
    (SIGKILL), `leave` a graceful close (SIGTERM); `runs` reads what it recorded (with
    ``handle=True``) and `held` what it took (without: it holds every event forever).
    """

    def __init__(self, process: asyncio.subprocess.Process, out: Path, name: str) -> None:
        self.process = process
        self.out = out
        self.name = name

    @classmethod
    async def start(
        cls,
        url: str,
        channel: str,
        group: str,
        out: Path,
        *,
        name: str,
        patience: float,
        concurrency: int = 4,
        handle: bool = False,
        idempotent: bool = False,
        store: str | None = None,
    ) -> MemberProcess:
        """Start a member; `handle` and `idempotent` pick its role (`_crash_consumer`),
        `store` is the idempotency store URL it uses (default: the backend's own)."""
        with _open_files(out) as stderr:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "eventwire_conformance._crash_consumer",
                "--channel",
                channel,
                "--group",
                group,
                "--out",
                str(out),
                "--concurrency",
                str(concurrency),
                *(["--handle"] if handle else []),
                *(["--idempotent"] if idempotent else []),
                stdout=asyncio.subprocess.PIPE,
                stderr=stderr,
                env={
                    **os.environ,
                    URL_VARIABLE: url,
                    PLUGINS_VARIABLE: plugins(),
                    STORE_VARIABLE: store or "",
                },
            )
        member = cls(process, out, name)
        assert process.stdout is not None
        try:
            line = await asyncio.wait_for(process.stdout.readline(), patience)
        except TimeoutError:
            line = b""
        if line.strip() != b"ready":
            why = await member._did_not_start(line, patience)
            await member.kill()
            raise AssertionError(why)
        return member

    def held(self) -> set[int]:
        return {int(x) for x in self.out.read_text().split()}

    def runs(self) -> list[Run]:
        found = []
        for line in self.out.read_text().splitlines():
            parts = line.split()
            if len(parts) != 5:  # a line cut short by SIGKILL
                continue
            key, seq, begin, end, attempt = parts
            found.append(Run(float(begin), float(end), key, int(seq), self.name, int(attempt)))
        return found

    async def kill(self) -> None:
        """A crash: SIGKILL, nothing it holds is settled."""
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGKILL)
        await self.process.wait()

    async def leave(self, timeout: float) -> None:
        """A graceful leave: the bus closes (in-flight handlers finish); SIGKILL after
        `timeout` seconds."""
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.process.wait(), timeout)
        except TimeoutError:
            await self.kill()
            raise AssertionError(
                f"member {self.name} did not close within {timeout:g}s of SIGTERM"
            ) from None

    async def _did_not_start(self, line: bytes, patience: float) -> str:
        """Why the consumer process did not say ``ready``: its exit code (after waiting for
        it; still running after `patience` seconds is said as such) and the end of its
        stderr."""
        process = self.process
        try:
            await asyncio.wait_for(process.wait(), patience)
        except TimeoutError:
            code = "still running"
        else:
            code = f"exit code {process.returncode}"
        return (
            f"the consumer process did not start ({code}, said {line!r}; "
            f"stderr: {self.stderr_tail()!r})"
        )

    def stderr_tail(self) -> str:
        """The last line the process wrote to its stderr."""
        said = self.out.with_name(self.out.name + ".stderr").read_text(errors="replace")
        return (said.strip().splitlines()[-1:] or [""])[0]
