"""`StartPositions`: `subscribe` returns only once a new group's starting positions are
committed.

A newly assigned partition without a committed offset gets its starting position (the end,
or the beginning with ``from_beginning``) committed before `subscribe` returns, so a later
member of the group resumes there and nothing published after `subscribe` returns is
missed. When that commit fails (the group rebalanced meanwhile, or the member was dropped
from it), the member rejoins and `subscribe` waits for the next assignment to commit them,
within its bound.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from eventwire.backend import SubscriptionSpec
from eventwire.errors import BackendUnavailableError

from eventwire_kafka._log import log_group

__all__ = ["StartPositions"]


class StartPositions:
    """Whether the first assignment's starting positions are committed (`wait`)."""

    def __init__(self, consumer: Any, spec: SubscriptionSpec) -> None:
        self._consumer = consumer
        self._spec = spec
        self._committed = asyncio.Event()
        #: Why the last try to commit them failed.
        self._failure: Exception | None = None

    def committed(self) -> None:
        """The assignment is tracked and its starting positions are committed."""
        self._committed.set()

    def failed(self, exc: Exception) -> bool:
        """Committing the starting positions failed with `exc`. Before `wait` returned,
        rejoin the group to commit them on the next assignment (``True``); after it, the
        committer retries them (``False``: the assignment stands)."""
        spec = self._spec
        if self._committed.is_set():
            log_group(spec, logging.WARNING, "starting positions not committed yet (%s)", _why(exc))
            return False
        self._failure = exc
        # aiokafka has no public call for a rejoin (its own commit failure path uses this
        # one); pinned with the aiokafka version in pyproject.toml.
        self._consumer._coordinator.request_rejoin()
        log_group(
            spec,
            logging.INFO,
            "starting positions not committed (%s); rejoining the group to commit them",
            _why(exc),
        )
        return True

    async def wait(self, limit: float) -> None:
        """Return once they are committed; `BackendUnavailableError` naming the last
        failure if that takes over `limit` seconds."""
        try:
            await asyncio.wait_for(self._committed.wait(), limit)
        except TimeoutError:
            failure = self._failure
            if failure is None:
                raise
            raise BackendUnavailableError(
                f"Kafka group {self._spec.group!r} on topic {self._spec.channel!r}: its "
                f"starting positions were not committed within {limit:.0f} s, across "
                f"rebalances (last failure: {_why(failure)}); check that the brokers and the "
                "group coordinator are healthy, then subscribe again"
            ) from failure


def _why(exc: BaseException) -> str:
    """The exception's name and text, or its cause's (aiokafka's ``CommitFailedError``
    tells what failed only through its cause)."""
    cause = exc.__cause__
    if cause is not None:
        return f"{type(exc).__name__} ({type(cause).__name__}: {cause})"
    return f"{type(exc).__name__}: {exc}"
