"""docs/examples/observability_cost.py: the measurement behind docs/performance.md runs."""

from __future__ import annotations

from tests.docs._guide import run_example


def test_the_interleaved_drain_measurement_prints_every_set_up() -> None:
    result = run_example(
        "observability_cost",
        "--events",
        "40",
        "--rounds",
        "2",
        "--setups",
        "sdk-unexported,sdk-recording",
    )
    assert result.returncode == 0, result.stderr
    rows = [line.split("|")[1].strip() for line in result.stdout.splitlines()[3:]]
    assert rows == ["off", "sdk-unexported", "sdk-recording"]
