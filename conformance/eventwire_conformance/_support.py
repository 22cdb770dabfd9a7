"""What every conformance test gets: the backend under test, unique names, buses that are
cleaned up, and waiting with a deadline.

Tests never sleep and hope: `Harness.wait_for` polls a condition until a deadline and fails
with a description of what was still missing. The only fixed waits are `Harness.quiet`
windows, used for negative checks ("nothing else arrives").
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn

import pytest
from eventwire import (
    Capabilities,
    EventBus,
    EventwireError,
    IdempotencyStore,
    MemoryIdempotencyStore,
)
from eventwire.backend import IdempotencyStoreProvider
from eventwire.plugins import create_backend, open_idempotency_store

from eventwire_conformance._cleanup import delete_channels
from eventwire_conformance._events import Ping
from eventwire_conformance._within import within
from eventwire_conformance.guarantees import UNSUPPORTED_PREFIX

__all__ = [
    "NOTE_PROPERTY",
    "RESTART_CWD",
    "UNSUPPORTED_PREFIX",
    "Harness",
    "PingHandler",
    "Target",
    "missing",
    "run_command_while",
    "unsupported",
]

#: Environment variable naming the folder the broker restart command runs in (the runner
#: sets it to its own working directory; it starts pytest in a scratch folder).
RESTART_CWD = "EVENTWIRE_RESTART_CWD"

#: The ``user_properties`` name of what a passing test has to say (`Harness.note`).
NOTE_PROPERTY = "eventwire_note"

#: How long closing one bus may take when a test ends.
CLOSE_TIMEOUT = 10.0

Condition = Callable[[], bool]
#: A subscription handler taking a `Ping`.
PingHandler = Callable[[Ping], Awaitable[None]]
Describe = str | Callable[[], str]


def unsupported(reason: str) -> NoReturn:
    """Report the current guarantee as unsupported by this backend, with `reason`."""
    pytest.skip(f"{UNSUPPORTED_PREFIX} {reason}")


@dataclasses.dataclass(frozen=True, slots=True)
class Target:
    """A backend under test: its id in test names, URL and declared capabilities."""

    id: str
    url: str
    capabilities: Capabilities


class Harness:
    """Per-test helper around one backend URL. Create buses with `bus`; they are closed
    (or aborted, if closing hangs) when the test ends."""

    def __init__(
        self,
        target: Target,
        *,
        patience: float,
        restart_cmd: str | None = None,
        kill_cmd: str | None = None,
        node_kill_cmd: str | None = None,
        node_start_cmd: str | None = None,
        load: int = 1,
        test_name: str = "test",
        properties: list[tuple[str, object]] | None = None,
        idempotency_store: str | None = None,
    ) -> None:
        self.target = target
        self.url = target.url
        self.capabilities = target.capabilities
        self.patience = patience
        self.restart_cmd = restart_cmd
        self.kill_cmd = kill_cmd
        #: G23: kill the node leading a channel; start it again (``{node}``).
        self.node_kill_cmd = node_kill_cmd
        self.node_start_cmd = node_start_cmd
        #: How many times the default number of events the chaos tests (G21-G23) use.
        self.load = load
        self._properties = properties if properties is not None else []
        self._token = uuid.uuid4().hex[:10]
        self._test = test_name
        self._count = 0
        self._buses: list[EventBus] = []
        self._names: list[str] = []
        #: The idempotency store URL every bus uses (``None``: the backend's default).
        self.idempotency_store = idempotency_store
        self._stores: list[IdempotencyStore] = []
        self._in_process_store: MemoryIdempotencyStore | None = None

    # -- names ----------------------------------------------------------------------------

    def name(self, what: str) -> str:
        """A channel or group name no other test (or run) uses: ``ewc-<what>-<uuid>-<n>``."""
        self._count += 1
        name = f"ewc-{what}-{self._token}-{self._count}"
        self._names.append(name)
        return name

    def channel(self, name: str) -> str:
        """Record `name`, a channel the test built from a `name()` of its own (such as
        ``f"{base}.orders"``), so it is deleted with the others at the end; returns it."""
        self._names.append(name)
        return name

    def note(self, text: str) -> None:
        """Something the report shows even when the test passes (e.g. duplicates counted)."""
        self._properties.append((NOTE_PROPERTY, text))

    # -- buses ----------------------------------------------------------------------------

    def bus(self, **kwargs: Any) -> EventBus:
        """A new `EventBus` on the backend under test (not started yet)."""
        kwargs.setdefault("source", f"conformance/{self._test}")
        if self.idempotency_store is not None:
            kwargs.setdefault("idempotency_store", self.idempotency_store)
        bus = EventBus(self.url, **kwargs)
        self._buses.append(bus)
        return bus

    # -- idempotency stores ---------------------------------------------------------------

    def store(self) -> IdempotencyStore:
        """A new connection to the idempotency store under test, as one member process would
        open it: the configured one, else the backend's own. A backend without one gets a
        single in-process store for every call (its members here share one process)."""
        store: IdempotencyStore
        if self.idempotency_store is not None:
            store = open_idempotency_store(self.idempotency_store)
        else:
            backend = create_backend(self.url)
            if not isinstance(backend, IdempotencyStoreProvider):
                if self._in_process_store is None:
                    self._in_process_store = MemoryIdempotencyStore()
                return self._in_process_store
            store = backend.shared_idempotency_store()
        self._stores.append(store)
        return store

    def no_shared_store(self) -> str | None:
        """Why members in other processes cannot share an idempotency store here, or
        ``None`` when they can (a store is configured, or the backend has its own)."""
        if self.idempotency_store is not None:
            return None
        backend = create_backend(self.url)
        if isinstance(backend, IdempotencyStoreProvider):
            return None
        return (
            f"the {backend.name} backend has no idempotency store its members share: each "
            "member process remembers handled event ids on its own (MemoryIdempotencyStore), "
            "so a duplicate that reaches another member runs the handler again; run with "
            "--idempotency-store URL (redis://, nats://, sqlite:///path, postgresql://...) to "
            "check a shared one"
        )

    async def aclose(self) -> list[str]:
        """Close every bus this test made, aborting the ones that do not close in time.

        Returns what went wrong (a ``close()`` that raised or hung), for the test's report.
        """
        problems: list[str] = []
        for bus in reversed(self._buses):
            problem = await _bounded(bus.close(), CLOSE_TIMEOUT)
            if problem is not None:
                problems.append(f"closing {bus.url} {problem}")
                if await _bounded(bus.abort(), CLOSE_TIMEOUT / 2) is not None:
                    problems.append(f"aborting {bus.url} did not help either")
        self._buses.clear()
        stores, self._stores = self._stores, []
        for store in stores:
            close = getattr(store, "close", None)
            if close is not None:
                problem = await _bounded(close(), CLOSE_TIMEOUT)
                if problem is not None:
                    problems.append(f"closing the idempotency store {store!r} {problem}")
        await self._delete_channels()
        return problems

    async def _delete_channels(self) -> None:
        """Delete the channels this test named, and their dead-letter channels, when the
        backend can (`eventwire.backend.ChannelDeleter`); best effort, never a failure."""
        names, self._names = self._names, []
        with contextlib.suppress(Exception):  # left behind: the run still counts
            await delete_channels(self.url, names, CLOSE_TIMEOUT)

    # -- waiting --------------------------------------------------------------------------

    async def wait_for(
        self,
        condition: Condition,
        what: Describe,
        *,
        scale: float = 1.0,
        extra: float = 0.0,
        interval: float = 0.005,
    ) -> None:
        """Poll `condition` until it holds, for ``patience * scale + extra`` seconds at most.

        ``scale`` gives slow broker operations (noticing a dead consumer, a restart) a
        multiple of the patience; ``extra`` adds time the test itself needs (backoffs).
        On timeout the test fails with `what` (a text, or a function giving the current
        state, e.g. ``lambda: f"received {len(got)}/100"``).
        """
        timeout = self.patience * scale + extra
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                text = what() if callable(what) else what
                raise AssertionError(f"timed out after {timeout:.1f}s waiting: {text}")
            await asyncio.sleep(interval)

    async def wait_call(
        self,
        probe: Callable[[], Awaitable[bool]],
        what: Describe,
        *,
        scale: float = 1.0,
        extra: float = 0.0,
    ) -> None:
        """Like `wait_for`, for a condition that has to await (e.g. reading a DLQ)."""
        timeout = self.patience * scale + extra
        deadline = time.monotonic() + timeout
        while not await probe():
            if time.monotonic() > deadline:
                text = what() if callable(what) else what
                raise AssertionError(f"timed out after {timeout:.1f}s waiting: {text}")
            await asyncio.sleep(0.02)

    async def quiet(self, seconds: float = 0.3) -> None:
        """A window in which nothing more is expected to happen (before a negative check)."""
        await asyncio.sleep(seconds)


async def publish_confirmed(
    bus: EventBus, event: Any, deadline: float, refused: list[str], after: str
) -> None:
    """Publish `event` until the broker confirms it: a refused publish is noted in `refused`
    and tried again every 0.2 s until `deadline` (``time.monotonic()``), then an
    AssertionError says publishing has not recovered from `after` (e.g. "the restart")."""
    while True:
        try:
            await asyncio.wait_for(bus.publish(event), 30)
            return
        except (EventwireError, ConnectionError, OSError, TimeoutError) as exc:
            refused.append(f"{type(exc).__name__}: {exc}")
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"publishing has not recovered from {after}: {refused[-1]}"
                ) from None
            await asyncio.sleep(0.2)


async def run_command_while(
    command: str, step: Callable[[], Awaitable[None]], deadline: float
) -> tuple[int, str]:
    """Run a broker command (G16's restart, G22's kill) in the shell, calling `step` (e.g.
    publishing one event) over and over until it exits; returns (exit status, output).

    The output goes to a file, not a pipe: a broker started in the background would keep a
    pipe open, and the command would never seem to finish.
    """
    with tempfile.TemporaryFile() as out:
        process = await asyncio.create_subprocess_shell(
            command,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            # the runner starts pytest in a scratch folder: run the command where the user
            # typed it, so a relative path such as conformance/brokers/brokers works
            cwd=os.environ.get(RESTART_CWD) or None,
        )
        try:
            exited = asyncio.ensure_future(process.wait())
            while not exited.done():
                if time.monotonic() > deadline:
                    raise AssertionError(f"the command {command!r} did not finish in time")
                await step()
                await asyncio.sleep(0.02)
        finally:
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        out.seek(0)
        return int(process.returncode or 0), out.read().decode(errors="replace")


async def _bounded(step: Awaitable[None], seconds: float) -> str | None:
    """Run `step` for `seconds` at most (`within`); ``None`` if it returned, else what
    happened."""
    finished = await within(step, seconds)
    if finished is None:
        return f"did not return within {seconds:g}s"
    error = finished.exception()
    if error is not None:
        return f"raised {type(error).__name__}: {error}"
    return None


def missing(expected: set[Any] | list[Any], got: set[Any] | list[Any], limit: int = 8) -> str:
    """``"3 missing, e.g. [4, 9, 17]"``: a short account of what has not arrived."""
    gone = sorted(set(expected) - set(got), key=repr)
    if not gone:
        return "nothing missing"
    shown = ", ".join(repr(x) for x in gone[:limit])
    more = ", ..." if len(gone) > limit else ""
    return f"{len(gone)} of {len(set(expected))} missing, e.g. [{shown}{more}]"
