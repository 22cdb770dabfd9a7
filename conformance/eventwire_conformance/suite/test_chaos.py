"""G21-G23: members joining, leaving and crashing, the broker crashing, and a cluster node
failing, under load.

All check the same three things on the runs every member recorded (`_members.Run`): nothing
confirmed is lost, the first deliveries of each key come in publish order, and (G21) a key
is never handled by two members at the same time. Consumer processes (the crash consumer
with ``--handle``) stand for members that can be SIGKILLed; on a backend that cannot be shared
by processes, an aborted bus stands in for the killed process.
"""

from __future__ import annotations

import asyncio
import itertools
import shlex
import time
from collections import Counter
from pathlib import Path

from eventwire import EventBus

from eventwire_conformance._events import Ping, ping_model
from eventwire_conformance._members import (
    LocalMember,
    MemberProcess,
    Run,
    interleaved,
    out_of_order,
    overlapping,
)
from eventwire_conformance._support import (
    Harness,
    publish_confirmed,
    run_command_while,
    unsupported,
)

#: How long a member leaving gracefully may take to close.
LEAVE_TIMEOUT = 30.0
#: How long the load waits after the members started (the group's topology created), so
#: that a broker or node kill comes no sooner. A broker may keep its newest metadata in
#: memory for a moment: RabbitMQ 3.10 writes its quorum queues' directory every 500 ms, and
#: a queue declared just before a SIGKILL comes back without a leader, its publishes never
#: confirmed. G22 and G23 test the events, not the broker's last half second of metadata.
TOPOLOGY_SETTLE = 2.0


class Members:
    """The members of one group: local buses and consumer processes, and all their runs."""

    def __init__(
        self, harness: Harness, channel: str, model: type[Ping], group: str, tmp_path: Path
    ) -> None:
        self.harness = harness
        self.channel = channel
        self.model = model
        self.group = group
        self.tmp_path = tmp_path
        self.local_runs: list[Run] = []
        self.processes: list[MemberProcess] = []

    def local(self, name: str) -> LocalMember:
        bus = self.harness.bus()
        return LocalMember(bus, self.model, self.group, name, self.local_runs)

    async def crashable(self, name: str, scale: float = 1.0) -> LocalMember | MemberProcess:
        """A member the test can SIGKILL: a process if the backend is shared by processes."""
        if not self.harness.capabilities.cross_process:
            member = self.local(name)
            await member.bus.start()
            return member
        process = await MemberProcess.start(
            self.harness.url,
            self.channel,
            self.group,
            self.tmp_path / f"{name}.runs",
            name=name,
            patience=self.harness.patience * scale,
            handle=True,
        )
        self.processes.append(process)
        return process

    def runs(self) -> list[Run]:
        return [*self.local_runs, *(r for p in self.processes for r in p.runs())]

    def handled(self) -> set[tuple[str, int]]:
        return {(run.key, run.seq) for run in self.runs()}

    async def all_handled(self, load: Load, back: float, after: str) -> None:
        """Wait until every publish `load` confirmed is handled; `back` is when the broker
        was back (`after` says how)."""
        confirmed = load.confirmed
        await self.harness.wait_for(
            lambda: self.handled() >= confirmed,
            lambda: (
                f"stalled: {not_handled(confirmed, self.handled())} "
                f"{time.monotonic() - back:.0f}s after {after} "
                f"({len(load.refused)} publish attempts were refused during {load.during})"
            ),
            scale=4.0,
            interval=0.05,
        )

    async def aclose(self) -> None:
        for process in self.processes:
            await process.kill()

    async def start_load(
        self, load: Load, names: tuple[str, str], first: int
    ) -> list[LocalMember | MemberProcess]:
        """Two crashable members (returned), then `PUBLISHERS` buses each publishing its
        keys' events (`load`), `TOPOLOGY_SETTLE` after the members started (the group
        exists); returns once `first` publishes are confirmed."""
        started = [await self.crashable(name) for name in names]
        await asyncio.sleep(TOPOLOGY_SETTLE)
        publishers = [self.harness.bus() for _ in range(PUBLISHERS)]
        for bus in publishers:
            await bus.start()
        for n, bus in enumerate(publishers):
            load.start(bus, [f"p{n}-k{k}" for k in range(KEYS_PER_PUBLISHER)])
        await load.reached(first, f"before {load.during}")
        return started


class Load:
    """Events published under load: each bus sends its keys' events in order, one at a time
    (`per_key` of each, or until `finish`); a refused publish is tried again until
    `deadline`. The same buses from start to end: none is restarted or recreated."""

    def __init__(
        self, harness: Harness, model: type[Ping], during: str, per_key: int | None = None
    ) -> None:
        self.harness = harness
        self.model = model
        self.during = during
        self.per_key = per_key
        self.deadline = time.monotonic() + harness.patience * 6
        self.confirmed: set[tuple[str, int]] = set()
        self.confirmed_at: list[float] = []
        self.refused: list[str] = []
        self._tasks: list[asyncio.Future[None]] = []
        self._stop = asyncio.Event()

    def start(self, bus: EventBus, keys: list[str]) -> None:
        self._tasks.append(asyncio.ensure_future(self._publish(bus, keys)))

    async def _publish(self, bus: EventBus, keys: list[str]) -> None:
        seqs = range(self.per_key) if self.per_key is not None else itertools.count()
        for seq in seqs:
            if self._stop.is_set():
                return
            for key in keys:
                event = self.model(key=key, seq=seq)
                await publish_confirmed(bus, event, self.deadline, self.refused, self.during)
                self.confirmed.add((key, seq))
                self.confirmed_at.append(time.monotonic())
                await asyncio.sleep(0.005)

    async def reached(self, count: int, when: str, scale: float | None = None) -> None:
        """Wait until `count` publishes are confirmed (or a publisher has ended)."""
        await self.harness.wait_for(
            lambda: len(self.confirmed) >= count or any(t.done() for t in self._tasks),
            lambda: (
                f"{len(self.confirmed)} of {count} publishes confirmed {when} "
                f"({len(self.refused)} "
                "refused" + (f", the last: {self.refused[-1]}" if self.refused else "") + ")"
            ),
            scale=self.harness.load if scale is None else scale,
        )

    async def finish(self) -> None:
        """Wait for every publisher to end: after its `per_key` events, or at once (after
        the event it is publishing) when there is no `per_key`."""
        if self.per_key is None:
            self._stop.set()
        await asyncio.gather(*self._tasks)

    def cancel(self) -> None:
        for task in self._tasks:
            task.cancel()


async def crash(member: LocalMember | MemberProcess) -> None:
    await member.crash() if isinstance(member, LocalMember) else await member.kill()


def not_handled(expected: set[tuple[str, int]], handled: set[tuple[str, int]]) -> str:
    gone = sorted(expected - handled)
    keys = Counter(key for key, _ in gone)
    shown = ", ".join(f"{key} ({n}, from seq {min(s for k, s in gone if k == key)})"
                      for key, n in sorted(keys.items())[:8])  # fmt: skip
    return f"{len(gone)} of {len(expected)} not handled, on {len(keys)} keys: {shown}"


# -- G21 membership change -------------------------------------------------------------------

MEMBERSHIP_KEYS = 12
MEMBERSHIP_PER_KEY = 25  # 12 x 25 = 300 events, published in 6 slices
SLICES = 6


async def test_G21_membership_change(harness: Harness, tmp_path: Path) -> None:
    channel = harness.name("g21")
    model = ping_model(channel)
    members = Members(harness, channel, model, harness.name("grp"), tmp_path)
    publisher = harness.bus()
    keys = [f"key-{k:02d}" for k in range(MEMBERSHIP_KEYS)]
    events = interleaved(keys, MEMBERSHIP_PER_KEY * harness.load, seed=21)
    size = len(events) // SLICES
    published: set[tuple[str, int]] = set()
    log: list[str] = []

    async def flow(slice_no: int) -> None:
        """Publish the next slice, then wait until a quarter of it is handled: the membership
        change that follows happens while same-key events are in flight."""
        chunk = events[slice_no * size : (slice_no + 1) * size]
        await publisher.publish_many(model(key=key, seq=seq) for key, seq in chunk)
        published.update(chunk)
        await harness.wait_for(
            lambda: len(members.handled()) >= len(published) - (size * 3) // 4,
            lambda: f"{not_handled(published, members.handled())} (after: {', '.join(log)})",
            interval=0.02,
        )

    a, b = members.local("a"), members.local("b")
    try:
        async with publisher, a.bus:
            victim = await members.crashable("v")
            log.append("a, v running")
            await flow(0)
            await b.bus.start()
            log.append("b joined")
            await flow(1)
            await crash(victim)
            log.append("v SIGKILLed")
            await flow(2)
            joiner = await members.crashable("c")
            log.append("c joined")
            await flow(3)
            await asyncio.wait_for(a.bus.close(), LEAVE_TIMEOUT)
            log.append("a left")
            await flow(4)
            await crash(joiner)
            log.append("c SIGKILLed")
            await flow(5)
            expected = set(events)
            await harness.wait_for(
                lambda: members.handled() >= expected,
                lambda: f"{not_handled(expected, members.handled())} (after: {', '.join(log)})",
                scale=3.0 if harness.capabilities.cross_process else 1.0,
                interval=0.02,
            )
            await b.bus.close()
    finally:
        await members.aclose()

    runs = members.runs()
    two_at_once = overlapping(runs)
    assert not two_at_once, (
        f"{len(two_at_once)} times a key was handled by two runs at the same time while "
        f"members changed ({', '.join(log)}), e.g. {two_at_once[:5]}"
    )
    wrong = out_of_order(runs)
    assert not wrong, (
        f"{len(wrong)} of {len(keys)} keys out of publish order while members changed "
        f"({', '.join(log)}): " + "; ".join(f"{k}: {w}" for k, w in list(wrong.items())[:3])
    )
    duplicates = len(runs) - len({(r.key, r.seq) for r in runs})
    harness.note(f"{duplicates} duplicate runs of {len(events)} events")


test_G21_membership_change.TIME_FACTOR = 2  # type: ignore[attr-defined]


# -- G22 broker crash under load -------------------------------------------------------------

PUBLISHERS = 4
KEYS_PER_PUBLISHER = 4
CRASH_PER_KEY = 25  # 4 publishers x 4 keys x 25 = 400 events (times --load)
#: Published events (of all publishers, times --load) before the broker is killed.
KILL_AFTER = 120


async def test_G22_broker_crash_under_load(harness: Harness, tmp_path: Path) -> None:
    command = harness.kill_cmd
    if not command:
        unsupported(
            "not run: no broker kill command given (--kill-cmd / --eventwire-kill-cmd); "
            "G22 needs a way to SIGKILL the broker and start it again"
        )
    command = command.replace("{backend}", harness.target.id)
    channel = harness.name("g22")
    model = ping_model(channel)
    members = Members(harness, channel, model, harness.name("grp"), tmp_path)
    load = Load(harness, model, "the broker crash", per_key=CRASH_PER_KEY * harness.load)
    confirmed, refused = load.confirmed, load.refused
    try:
        try:
            _, victim = await members.start_load(load, ("p1", "p2"), KILL_AFTER * harness.load)
            kill = asyncio.ensure_future(run_command_while(command, _pause, load.deadline))
            await crash(victim)  # a member dies with the broker
            code, output = await kill
            assert code == 0, f"the kill command exited with {code}: {output[-500:]}"
            back = time.monotonic()
            # and is started again (its first connection may wait for the broker's recovery)
            await members.crashable("p2-again", scale=3.0)
            await load.finish()
        finally:
            load.cancel()
        bound = harness.patience * 4
        await members.all_handled(load, back, "the broker was back")
        settled_after = time.monotonic() - back
    finally:
        await members.aclose()

    runs = members.runs()
    wrong = out_of_order(runs)
    assert not wrong, (
        f"{len(wrong)} of {PUBLISHERS * KEYS_PER_PUBLISHER} keys out of publish order after "
        "the broker crash: " + "; ".join(f"{k}: {w}" for k, w in list(wrong.items())[:3])
    )
    duplicates = len(runs) - len({(r.key, r.seq) for r in runs})
    harness.note(
        f"{duplicates} duplicate runs of {len(confirmed)} confirmed events; all handled "
        f"{settled_after:.1f}s (bound {bound:g}s) after the broker was back; "
        f"{len(refused)} publish attempts refused during the crash"
    )


async def _pause() -> None:
    await asyncio.sleep(0.05)


# Killing the broker, starting it again and clients reconnecting can take minutes.
test_G22_broker_crash_under_load.TIME_FACTOR = 3  # type: ignore[attr-defined]


# -- G23 cluster node failure ----------------------------------------------------------------

#: Confirmed events (of all publishers, times --load) before the leading node is killed,
#: while it is down, and after it is back, at least.
NODE_PHASE = 120


def _node_command(template: str, **values: str) -> str:
    """`template` with each ``{name}`` replaced by its value, quoted for the shell."""
    for name, value in values.items():
        template = template.replace("{" + name + "}", shlex.quote(value))
    return template


def _command_deadline(harness: Harness) -> float:
    return time.monotonic() + harness.patience * 6


async def test_G23_node_failure(harness: Harness, tmp_path: Path) -> None:
    kill_cmd, start_cmd = harness.node_kill_cmd, harness.node_start_cmd
    if not kill_cmd or not start_cmd:
        unsupported(
            "not run: no cluster node commands given (--node-kill-cmd and --node-start-cmd / "
            "--eventwire-node-kill-cmd and --eventwire-node-start-cmd); G23 needs a cluster "
            "and a way to SIGKILL the node leading a channel and start it again"
        )
    backend = harness.target.id
    channel = harness.name("g23")
    model = ping_model(channel)
    members = Members(harness, channel, model, harness.name("grp"), tmp_path)
    load = Load(harness, model, "the node failure")
    confirmed, refused = load.confirmed, load.refused
    phase = NODE_PHASE * harness.load
    try:
        try:
            await members.start_load(load, ("m1", "m2"), phase)
            kill = _node_command(kill_cmd, channel=channel, url=harness.url, backend=backend)
            # each command gets its own bound: starting a node can take a minute or more
            code, output = await run_command_while(kill, _pause, _command_deadline(harness))
            killed = time.monotonic()
            assert code == 0, f"the node kill command exited with {code}: {output[-500:]}"
            lines = [line.strip() for line in output.splitlines() if line.strip()]
            assert lines, "the node kill command printed no node name (its last line)"
            node = lines[-1]
            before = set(confirmed)
            # The rest of the cluster serves alone: what was confirmed before the failure is
            # handled while the node is down, and publishing goes on.
            await harness.wait_for(
                lambda: members.handled() >= before,
                lambda: (
                    f"with node {node} down: {not_handled(before, members.handled())} "
                    "(confirmed before it was killed)"
                ),
                scale=2.0,
                interval=0.05,
            )
            handled_after = time.monotonic() - killed
            await load.reached(len(before) + phase, f"with node {node} down", scale=2.0)
            start = _node_command(start_cmd, node=node, backend=backend)
            code, output = await run_command_while(start, _pause, _command_deadline(harness))
            assert code == 0, f"the node start command exited with {code}: {output[-500:]}"
            back = time.monotonic()
            await load.reached(
                len(confirmed) + phase, f"since node {node} was started again", scale=2.0
            )
            await load.finish()
        finally:
            load.cancel()
        await members.all_handled(load, back, f"node {node} was started again")
    finally:
        await members.aclose()

    runs = members.runs()
    wrong = out_of_order(runs)
    assert not wrong, (
        f"{len(wrong)} of {PUBLISHERS * KEYS_PER_PUBLISHER} keys out of publish order when "
        f"node {node} failed: " + "; ".join(f"{k}: {w}" for k, w in list(wrong.items())[:3])
    )
    duplicates = len(runs) - len({(r.key, r.seq) for r in runs})
    paused = max((b - a for a, b in itertools.pairwise(sorted(load.confirmed_at))), default=0.0)
    harness.note(
        f"node {node} killed: {duplicates} duplicate runs of {len(confirmed)} confirmed events; "
        f"longest pause between confirmed publishes {paused:.1f}s; everything confirmed "
        f"before the kill handled {handled_after:.1f}s after it; {len(refused)} publish attempts "
        "refused"
    )


# A leader election, clients moving to other nodes and the node rejoining can take a while.
test_G23_node_failure.TIME_FACTOR = 3  # type: ignore[attr-defined]
