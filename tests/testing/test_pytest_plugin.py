"""The ``eventwire_testbus`` fixture, used by a test suite run with pytest-xdist."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

# A user's suite of synchronous tests, run in a subprocess: its asyncio.run calls stay.
SUITE = textwrap.dedent(
    """
    import asyncio

    import pytest

    from eventwire import Event, EventBus


    class Pinged(Event, channel="pings", key="n"):
        n: str


    class Ponged(Event, channel="pongs", key="n"):
        n: str


    bus = EventBus(source="pinger")  # one module-level bus for every test


    @bus.subscribe(Pinged, group="ponger")
    async def pong(event: Pinged) -> None:
        await bus.publish(Ponged(n=event.n))


    def test_a_session_left_open_fails_the_test(eventwire_testbus) -> None:
        async def main() -> None:
            await eventwire_testbus(bus).__aenter__()

        asyncio.run(main())


    @pytest.mark.parametrize("n", [str(i) for i in range(8)])
    def test_each_test_sees_only_its_own_messages(eventwire_testbus, n) -> None:
        async def main() -> None:
            async with eventwire_testbus(bus, raise_handler_errors=True) as tb:
                await tb.publish(Pinged(n=n))
                assert [p.payload for p in tb.published] == [{"n": n}, {"n": n}]
                assert [c.outcome for c in tb.calls(pong)] == ["ack"]

        asyncio.run(main())

    """
)


def test_fixture_isolates_tests_under_xdist(tmp_path: Path) -> None:
    (tmp_path / "test_suite.py").write_text(SUITE)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-n", "2", "-p", "no:cacheprovider", "-q"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    out = result.stdout
    # The left-open test (collected first) passes, then fails at teardown; the tests that
    # follow it on the same worker still get the bus back.
    assert "9 passed, 1 error" in out, out + result.stderr
    assert "still active at the end of the test" in out, out
