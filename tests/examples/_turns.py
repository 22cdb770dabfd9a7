"""Runs of the order-processing services on one broker take turns.

The services subscribe with fixed channel and group names (``orders``, ``inventory``...), so
two runs on the same broker at once (pytest-xdist workers) would be members of the same
groups and take each other's events. A file lock per broker (its URL's host and port, so
``redis://localhost:6379`` and ``redis://127.0.0.1:6379/0`` are one), shared by the workers
of one machine, makes them wait for each other instead.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

__all__ = ["lock_file", "one_run_at_a_time"]


def lock_file(url: str) -> Path:
    """The lock of the broker at `url`: one per scheme, host and port."""
    parts = urlsplit(url)
    where = parts.netloc.rpartition("@")[2].replace("localhost", "127.0.0.1")
    name = hashlib.sha256(f"{parts.scheme}://{where}".encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"eventwire-order-services-{name}.lock"


@contextlib.contextmanager
def one_run_at_a_time(url: str) -> Iterator[None]:
    """Hold the broker at `url` for one run of the services."""
    with lock_file(url).open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
