"""docs/examples/drain_cpu.py: the consume-path measurement behind docs/performance.md runs."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "docs.examples.drain_cpu", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(("flags", "handler"), [((), "per-event"), (("--batch",), "batch")])
def test_the_drain_measurement_drains_every_event(flags: tuple[str, ...], handler: str) -> None:
    result = run("memory://", "--events", "300", *flags)
    assert result.returncode == 0, result.stderr
    line = result.stdout.strip()
    assert line.startswith(f"{handler} handler: 300 events, "), line
    assert re.search(r"CPU \d+\.\d µs/event, of which garbage collection \d+\.\d µs", line), line


def test_a_drain_of_no_events_is_refused() -> None:
    result = run("memory://", "--events", "0")
    assert result.returncode == 2
    assert "--events must be >= 1" in result.stderr
