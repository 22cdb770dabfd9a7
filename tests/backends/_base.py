"""What the backend tests share: unique names, a keyed test event, bounded waits, and the
conformance-matrix run (`run_matrix`).

Each test module names its broker once (``unique = namer("kafka")``) and keeps only what is
specific to its backend: options, URLs, the topology it creates, raw-client checks.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

from eventwire import Event
from eventwire_conformance._cleanup import delete_channels
from eventwire_conformance.guarantees import IDS

from tests._tools import run

__all__ = [
    "ROOT",
    "PingBase",
    "namer",
    "ping_model",
    "run",
    "run_matrix",
    "wait_until",
]

ROOT = Path(__file__).resolve().parents[2]


#: URL -> the names `namer` gave out for it in this process (deleted at the end of the session).
NAMED: dict[str, list[str]] = {}


def namer(backend: str, url: str | None = None) -> Callable[[str], str]:
    """``unique(what)`` for `backend`: a channel or group name no other test run uses. With
    `url`, the channels of those names (and their ``.dlq``) are deleted on that broker at the
    end of the session, when its backend can (`delete_named_channels`)."""

    def unique(what: str) -> str:
        name = f"ewt-{backend}-{what}-{uuid.uuid4().hex[:10]}"
        if url is not None:
            NAMED.setdefault(url, []).append(name)
        return name

    return unique


async def delete_named_channels(timeout: float = 5.0) -> None:
    """Delete the channels `namer` named (best effort: a broker that is gone keeps them)."""
    for url, names in NAMED.items():
        with contextlib.suppress(Exception):  # left behind; the tests have their verdicts
            await delete_channels(url, names, timeout)
    NAMED.clear()


class PingBase(Event):
    key: str
    seq: int
    data: str = ""


def ping_model(channel: str) -> type[PingBase]:
    """A `PingBase` event type on `channel`, keyed by ``key``."""

    class Ping(PingBase, channel=channel, key="key"):
        pass

    return Ping


async def wait_until(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """Poll `condition` until it holds; `AssertionError` naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.02)


def run_matrix(
    url: str,
    tmp_path: Path,
    *options: str,
    timeout: float,
    unsupported: Collection[str] = (),
) -> dict[str, Any]:
    """``eventwire conformance run URL -n 2 OPTIONS`` from the repository root, then its JSON
    report: every guarantee has a result, those in `unsupported` say so, every other one
    passed, and the run exits 0. Returns the backend's part of the report."""
    report = tmp_path / "conformance.json"
    command = [sys.executable, "-m", "eventwire.cli", "conformance", "run", url,
               "--json", str(report), "-n", "2", *options]  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, timeout=timeout, capture_output=True, text=True)
    assert report.exists(), done.stdout[-4000:] + done.stderr[-4000:]
    (backend,) = json.loads(report.read_text())["backends"].values()
    results: dict[str, Any] = backend["results"]
    assert sorted(results) == sorted(IDS)
    assert {gid: results[gid]["status"] for gid in unsupported} == dict.fromkeys(
        unsupported, "unsupported"
    )
    failed = {
        gid: r for gid, r in results.items() if gid not in unsupported and r["status"] != "passed"
    }
    assert failed == {}, done.stdout[-4000:]
    assert done.returncode == 0
    return dict(backend)
