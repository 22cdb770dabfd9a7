"""Where saga instances live between messages: `SagaStore`, in memory or in SQLite."""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import sqlite3
import time
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

from eventwire.errors import EventwireError

__all__ = [
    "ACTIVE",
    "MemorySagaStore",
    "SagaConflictError",
    "SagaState",
    "SagaStatus",
    "SagaStore",
    "SqliteSagaStore",
]

SagaStatus = Literal["running", "compensating", "completed", "failed"]
ACTIVE: frozenset[str] = frozenset({"running", "compensating"})


class SagaConflictError(EventwireError):
    """Someone else saved the saga since it was loaded; load it again and retry."""


@dataclasses.dataclass
class SagaState:
    """One saga instance, as stored.

    - ``step``: the index of the step awaited (``running``) or being undone
      (``compensating``).
    - ``data``: the starting payload; ``replies``: the completing reply per step name.
    - ``completed``: names of the steps completed, in order.
    - ``to_compensate``: names of the steps still to undo, next first.
    - ``processed``: ids of the messages already applied (a redelivered reply is ignored).
    - ``deadline``: when the awaited reply times out (Unix time), if a reply is awaited.
    - ``outbox``: messages decided but not yet confirmed sent; sent again after a crash.
    - ``version``: bumped by every save (optimistic concurrency).
    - ``traceparent``: the W3C trace context of the span that started the saga ("" when
      not traced): what the saga sends on a timeout or after a restart joins that trace.
    """

    saga: str
    saga_id: str
    status: SagaStatus = "running"
    step: int = 0
    data: dict[str, Any] = dataclasses.field(default_factory=dict)
    replies: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    completed: list[str] = dataclasses.field(default_factory=list)
    to_compensate: list[str] = dataclasses.field(default_factory=list)
    processed: list[str] = dataclasses.field(default_factory=list)
    deadline: float | None = None
    attempts: int = 0
    reason: str = ""
    failed_step: str = ""
    outbox: list[dict[str, str]] = dataclasses.field(default_factory=list)
    version: int = 0
    created: float = dataclasses.field(default_factory=time.time)
    updated: float = dataclasses.field(default_factory=time.time)
    traceparent: str = ""

    @property
    def active(self) -> bool:
        """Whether the saga still waits for something."""
        return self.status in ACTIVE

    def to_json(self) -> str:
        """The state as JSON."""
        return json.dumps(dataclasses.asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> SagaState:
        """Read a state written by `to_json`."""
        return cls(**json.loads(text))


@runtime_checkable
class SagaStore(Protocol):
    """Persistence of saga instances. ``save`` must be atomic per saga id."""

    async def load(self, saga_id: str) -> SagaState | None:
        """The saga `saga_id`, or ``None`` if there is none."""
        ...

    async def save(self, state: SagaState) -> None:
        """Store `state` if the stored version is still ``state.version``, then bump it.

        A new saga has version 0 and must not exist yet. Raise `SagaConflictError` when
        the stored version differs (another writer saved in between).
        """
        ...

    async def active(self) -> list[SagaState]:
        """Every saga that is running or compensating (resumed after a restart)."""
        ...


class MemorySagaStore:
    """Saga states in a dict: for tests and single-process use (lost on exit)."""

    def __init__(self) -> None:
        self._states: dict[str, SagaState] = {}

    def __len__(self) -> int:
        return len(self._states)

    async def load(self, saga_id: str) -> SagaState | None:
        state = self._states.get(saga_id)
        return copy.deepcopy(state) if state is not None else None

    async def save(self, state: SagaState) -> None:
        stored = self._states.get(state.saga_id)
        current = stored.version if stored is not None else 0
        if current != state.version:
            raise SagaConflictError(
                f"saga {state.saga_id!r} is at version {current}, not {state.version}"
            )
        state.version += 1
        state.updated = time.time()
        self._states[state.saga_id] = copy.deepcopy(state)

    async def active(self) -> list[SagaState]:
        return [copy.deepcopy(s) for s in self._states.values() if s.active]


_SCHEMA = """
CREATE TABLE IF NOT EXISTS eventwire_sagas (
    saga_id  TEXT PRIMARY KEY,
    saga     TEXT NOT NULL,
    status   TEXT NOT NULL,
    version  INTEGER NOT NULL,
    deadline REAL,
    updated  REAL NOT NULL,
    state    TEXT NOT NULL
)
"""


class SqliteSagaStore:
    """Saga states in a SQLite file (stdlib ``sqlite3``): they survive a restart.

    Every save is one committed transaction, guarded by the version, so several
    orchestrator processes may share the file. Calls are short and run on the event loop.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._db = sqlite3.connect(self.path, isolation_level=None, timeout=30.0)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(_SCHEMA)
        self._db.execute(
            "CREATE INDEX IF NOT EXISTS eventwire_sagas_status ON eventwire_sagas(status)"
        )

    def close(self) -> None:
        """Close the database connection."""
        self._db.close()

    async def load(self, saga_id: str) -> SagaState | None:
        row = self._db.execute(
            "SELECT state FROM eventwire_sagas WHERE saga_id = ?", (saga_id,)
        ).fetchone()
        return SagaState.from_json(row[0]) if row is not None else None

    async def save(self, state: SagaState) -> None:
        expected = state.version
        state.version += 1
        state.updated = time.time()
        params = (state.status, state.version, state.deadline, state.updated, state.to_json())
        try:
            if expected == 0:
                self._db.execute(
                    "INSERT INTO eventwire_sagas "
                    "(saga_id, saga, status, version, deadline, updated, state) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (state.saga_id, state.saga, *params),
                )
                return
            cursor = self._db.execute(
                "UPDATE eventwire_sagas SET status = ?, version = ?, deadline = ?, "
                "updated = ?, state = ? WHERE saga_id = ? AND version = ?",
                (*params, state.saga_id, expected),
            )
        except sqlite3.IntegrityError:
            state.version = expected
            raise SagaConflictError(f"saga {state.saga_id!r} exists already") from None
        if cursor.rowcount != 1:
            state.version = expected
            raise SagaConflictError(
                f"saga {state.saga_id!r} was saved by someone else since version {expected}"
            )

    async def active(self) -> list[SagaState]:
        rows = self._db.execute(
            "SELECT state FROM eventwire_sagas WHERE status IN ('running', 'compensating') "
            "ORDER BY updated"
        ).fetchall()
        return [SagaState.from_json(row[0]) for row in rows]
