"""``eventwire conformance soak``: a bounded chaos run against one broker.

Publishers send keyed events, in order per key, for the whole duration while competing
consumers (processes of `eventwire_conformance._crash_consumer`, or buses of this process
for a backend that cannot be shared by processes) handle them. At random moments a
consumer is SIGKILLed and started again, and, when the commands are given, the broker is
killed (``--kill-cmd``) or restarted (``--restart-cmd``). Then the run waits for every
confirmed event and reports: confirmed, handled, lost, duplicates, keys whose first
deliveries broke publish order, the longest a redelivered event waited, and the memory (RSS)
of each process over time. The same checks as G21/G22 (`eventwire_conformance._members`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import random
import re
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from eventwire import EventBus, EventwireError, create_backend

from eventwire_conformance._events import ping_model
from eventwire_conformance._members import LocalMember, MemberProcess, Run, out_of_order
from eventwire_conformance._support import run_command_while

__all__ = ["SoakOptions", "SoakResult", "parse_duration", "soak", "sparkline"]

_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0}
_BARS = "▁▂▃▄▅▆▇█"


def parse_duration(text: str) -> float:
    """``"90"``, ``"90s"``, ``"10m"``, ``"1h"`` -> seconds; `ValueError` otherwise."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", text.lower())
    if match is None or float(match.group(1)) <= 0:
        raise ValueError(f"{text!r} is not a duration; give e.g. 30s, 10m or 1h")
    return float(match.group(1)) * _UNITS[match.group(2)]


def sparkline(values: list[float]) -> str:
    """A small text plot: one bar per value, scaled between the smallest and largest."""
    if not values:
        return ""
    low, high = min(values), max(values)
    span = (high - low) or 1.0
    return "".join(_BARS[round((v - low) / span * (len(_BARS) - 1))] for v in values)


@dataclasses.dataclass(frozen=True)
class SoakOptions:
    url: str
    duration: float
    kill_cmd: str | None = None
    restart_cmd: str | None = None
    publishers: int = 4
    keys: int = 32
    consumers: int = 2
    seed: int | None = None
    #: How long, after the run, the confirmed events may take to be handled.
    patience: float = 120.0


@dataclasses.dataclass
class SoakResult:
    confirmed: int = 0
    handled: int = 0
    lost: int = 0
    duplicates: int = 0
    order_violations: dict[str, str] = dataclasses.field(default_factory=dict)
    max_redelivery_latency: float = 0.0
    chaos: list[str] = dataclasses.field(default_factory=list)
    rss: dict[str, list[float]] = dataclasses.field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.lost and not self.order_violations

    def lines(self) -> list[str]:
        out = [
            f"confirmed {self.confirmed}, handled {self.handled}, lost {self.lost}, "
            f"duplicates {self.duplicates}, order violations {len(self.order_violations)}",
            f"max redelivery latency {self.max_redelivery_latency:.2f}s",
            f"chaos: {', '.join(self.chaos) or 'none'}",
        ]
        out += [f"  {k}: {w}" for k, w in list(self.order_violations.items())[:5]]
        for name, series in self.rss.items():
            if series:
                out.append(
                    f"RSS {name:<10} {sparkline(series)} {series[0]:.0f} -> {series[-1]:.0f} "
                    f"MiB (max {max(series):.0f})"
                )
        return out


def _rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


class _Soak:
    def __init__(self, options: SoakOptions, say: Callable[[str], None], work: Path) -> None:
        self.o = options
        self.say = say
        self.work = work
        self.random = random.Random(options.seed)
        tag = uuid.uuid4().hex[:8]
        self.channel, self.group = f"ews-soak-{tag}", f"ews-soak-grp-{tag}"
        self.model = ping_model(self.channel)
        self.cross = create_backend(options.url).capabilities.cross_process
        self.members: list[LocalMember | MemberProcess] = []
        self.local_runs: list[Run] = []
        self.gone: list[MemberProcess] = []  # killed processes: their runs still count
        self.confirmed: dict[tuple[str, int], float] = {}
        self.result = SoakResult()
        self.started = 0

    async def member(self) -> LocalMember | MemberProcess:
        self.started += 1
        name = f"c{self.started}"
        member: LocalMember | MemberProcess
        if not self.cross:
            bus = EventBus(self.o.url)
            member = LocalMember(bus, self.model, self.group, name, self.local_runs)
            await member.bus.start()
        else:
            member = await MemberProcess.start(
                self.o.url, self.channel, self.group, self.work / name, name=name,
                patience=self.o.patience, handle=True,
            )  # fmt: skip
        self.members.append(member)
        return member

    def runs(self) -> list[Run]:
        processes = [m for m in self.members if isinstance(m, MemberProcess)] + self.gone
        return [*self.local_runs, *(r for p in processes for r in p.runs())]

    async def publish(self, bus: EventBus, keys: list[str], until: float) -> None:
        seq = 0
        while time.monotonic() < until:
            for key in keys:
                while True:
                    try:
                        await asyncio.wait_for(bus.publish(self.model(key=key, seq=seq)), 30)
                    except (EventwireError, ConnectionError, OSError, TimeoutError):
                        await asyncio.sleep(0.2)
                        continue
                    self.confirmed[(key, seq)] = time.monotonic()
                    break
            seq += 1
            await asyncio.sleep(0.005)

    async def chaos(self, until: float) -> None:
        actions = ["consumer"] + (["kill"] if self.o.kill_cmd else [])
        actions += ["restart"] if self.o.restart_cmd else []
        while True:
            pause = self.random.uniform(0.1, 0.3) * self.o.duration
            if time.monotonic() + pause > until:
                return
            await asyncio.sleep(pause)
            action = self.random.choice(actions)
            at = f"{self.o.duration - (until - time.monotonic()):.0f}s"
            if action == "consumer":
                victim = self.members.pop(self.random.randrange(len(self.members)))
                if isinstance(victim, LocalMember):
                    await victim.crash()
                else:
                    await victim.kill()
                    self.gone.append(victim)
                await self.member()
                self.result.chaos.append(f"consumer SIGKILL at {at}")
            else:
                command = self.o.kill_cmd if action == "kill" else self.o.restart_cmd
                assert command is not None
                code, output = await run_command_while(
                    command, lambda: asyncio.sleep(0.05), time.monotonic() + 600
                )
                if code != 0:
                    raise RuntimeError(f"the {action} command exited with {code}: {output[-300:]}")
                self.result.chaos.append(f"broker {action} at {at}")

    async def watch(self, until: float) -> None:
        next_line = 0.0
        while True:
            pids = {"runner": os.getpid()}
            for m in self.members:
                if isinstance(m, MemberProcess) and m.process.returncode is None:
                    pids[m.name] = m.process.pid
            for name, pid in pids.items():
                rss = _rss_mib(pid)
                if rss is not None:
                    self.result.rss.setdefault(name, []).append(rss)
            now = time.monotonic()
            if now >= next_line:
                handled = len({(r.key, r.seq) for r in self.runs()})
                left = max(0.0, until - now)
                self.say(f"{left:5.0f}s left  confirmed {len(self.confirmed)}  handled {handled}")
                next_line = now + max(1.0, self.o.duration / 20)
            await asyncio.sleep(max(0.5, self.o.duration / 60))

    async def run(self) -> SoakResult:
        for _ in range(self.o.consumers):
            await self.member()
        publishers = [EventBus(self.o.url) for _ in range(self.o.publishers)]
        watcher = asyncio.ensure_future(self.watch(time.monotonic() + self.o.duration))
        try:
            for bus in publishers:
                await bus.start()
            until = time.monotonic() + self.o.duration
            keys = [f"k{k:03d}" for k in range(self.o.keys)]
            await asyncio.gather(
                self.chaos(until),
                *(self.publish(bus, keys[i :: self.o.publishers], until)
                  for i, bus in enumerate(publishers)),
            )  # fmt: skip
            deadline = time.monotonic() + self.o.patience
            while time.monotonic() < deadline:
                if {(r.key, r.seq) for r in self.runs()} >= set(self.confirmed):
                    break
                await asyncio.sleep(0.5)
        finally:
            watcher.cancel()
            for bus in publishers:
                await bus.close()
            for member in self.members:
                if isinstance(member, LocalMember):
                    await member.bus.close()
                else:
                    await member.kill()
        return self.summarize()

    def summarize(self) -> SoakResult:
        runs = self.runs()
        result = self.result
        handled = {(r.key, r.seq) for r in runs}
        result.confirmed = len(self.confirmed)
        result.handled = len(handled & set(self.confirmed))
        result.lost = result.confirmed - result.handled
        result.duplicates = len(runs) - len(handled)
        result.order_violations = out_of_order(runs)
        first: dict[tuple[str, int], Run] = {}
        for run in sorted(runs):
            first.setdefault((run.key, run.seq), run)
        waits = [
            run.begin - self.confirmed[event]
            for event, run in first.items()
            if run.attempt > 1 and event in self.confirmed
        ]
        result.max_redelivery_latency = max(waits, default=0.0)
        return result


async def soak(options: SoakOptions, say: Callable[[str], None]) -> SoakResult:
    """Run the chaos for `options.duration` seconds and return what was counted."""
    with tempfile.TemporaryDirectory(prefix="eventwire-soak-") as work:
        return await _Soak(options, say, Path(work)).run()
