"""docs/examples/drain_cpu.py: the consume-path measurement behind docs/performance.md runs."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.docs._guide import run_example


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return run_example("drain_cpu", *args, timeout=120)


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


def test_py_spy_is_looked_up_beside_the_interpreter_then_on_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from docs.examples import drain_cpu

    python = tmp_path / "venv" / "python"
    python.parent.mkdir()
    monkeypatch.setattr(sys, "executable", str(python))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert drain_cpu.py_spy() is None
    on_path = tmp_path / "empty" / "py-spy"
    on_path.parent.mkdir()
    on_path.write_text("#!/bin/sh\n")
    on_path.chmod(0o755)
    assert drain_cpu.py_spy() == str(on_path)
    beside = python.with_name("py-spy")
    beside.write_text("#!/bin/sh\n")
    assert drain_cpu.py_spy() == str(beside)
