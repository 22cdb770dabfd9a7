"""docs/examples/observability_cost.py: the measurement behind docs/performance.md runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_interleaved_drain_measurement_prints_every_set_up() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "docs.examples.observability_cost",
            "--events",
            "40",
            "--rounds",
            "2",
            "--setups",
            "sdk-unexported,sdk-recording",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    rows = [line.split("|")[1].strip() for line in result.stdout.splitlines()[3:]]
    assert rows == ["off", "sdk-unexported", "sdk-recording"]
