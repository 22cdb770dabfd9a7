"""Runs of the order-processing services on one broker take turns.

The services subscribe with fixed channel and group names (``orders``, ``inventory``...), so
two runs on the same broker at once (pytest-xdist workers) would be members of the same
groups and take each other's events. A file lock per broker URL, shared by the workers of
one machine, makes them wait for each other instead.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["one_run_at_a_time"]


@contextlib.contextmanager
def one_run_at_a_time(url: str) -> Iterator[None]:
    """Hold the broker at `url` for one run of the services."""
    name = hashlib.sha256(url.encode()).hexdigest()[:16]
    path = Path(tempfile.gettempdir()) / f"eventwire-order-services-{name}.lock"
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
