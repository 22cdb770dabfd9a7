"""``eventwire conformance soak``: a bounded chaos run that counts loss, duplicates and order."""

from __future__ import annotations

import pytest
from eventwire_conformance.soak import parse_duration, sparkline

from tests.conformance._runner import FAULTY, run_cli


def test_soak_on_memory_reports_and_passes() -> None:
    done = run_cli("conformance", "soak", "memory://", "--duration", "10s", "--seed", "7")
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert "s left  confirmed" in out  # the live count
    assert ", lost 0, " in out and "order violations 0" in out
    assert "consumer SIGKILL at" in out  # the chaos happened
    assert "max redelivery latency" in out
    assert "RSS runner" in out and "MiB" in out
    assert "no loss, no order violation" in out


def test_soak_fails_on_a_backend_that_reorders() -> None:
    done = run_cli(
        "conformance", "soak", "reorder://", "--duration", "3s", "--plugin", FAULTY, "--keys", "4"
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "FAILED" in done.stdout
    assert "order violations 0" not in done.stdout


@pytest.mark.parametrize("text", ["0s", "ten minutes", "-5m"])
def test_soak_rejects_a_bad_duration(text: str) -> None:
    done = run_cli("conformance", "soak", "memory://", "--duration", text)
    assert done.returncode == 2
    assert "--duration:" in done.stderr and "give e.g. 30s, 10m or 1h" in done.stderr
    assert "Traceback" not in done.stderr


def test_durations_and_plot() -> None:
    assert parse_duration("90") == 90 and parse_duration("10m") == 600
    assert parse_duration("1.5h") == 5400
    assert sparkline([1, 2, 3]) == "▁▅█" and sparkline([]) == ""
