"""A backend installed as a separate package is found through its entry point and used by URL."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parent.parent / "outside_plugin"

SCRIPT = textwrap.dedent(
    """
    import asyncio
    from eventwire import Event, EventBus

    class Pinged(Event, channel="pings", key="n"):
        n: int

    async def main():
        bus = EventBus("outside://bob:secret@box", source="t")
        got = []

        @bus.subscribe(Pinged, group="g")
        async def h(event, delivery):
            got.append((event.n, delivery.envelope.headers.get("x")))

        async with bus:
            await bus.publish(Pinged(n=7), headers={"x": "y"})
            for _ in range(500):
                if got:
                    break
                await asyncio.sleep(0.01)
        print(bus.backend.name, bus.url, got)

    asyncio.run(main())
    """
)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(PACKAGE),
        ],
        check=True,
    )
    return target


def _run(site: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(site), "COLUMNS": "200"}
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=60)


def test_outside_backend_is_usable_by_url(site: Path) -> None:
    result = _run(site, sys.executable, "-c", SCRIPT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "outside outside://box [(7, 'y')]"


def test_outside_backend_is_listed_with_its_capabilities(site: Path) -> None:
    result = _run(site, sys.executable, "-m", "eventwire.cli", "backends")
    assert result.returncode == 0, result.stderr
    assert "outside://" in result.stdout and "outside test backend" in result.stdout
    assert "memory://" in result.stdout
    rows = {line.split("│")[1].strip(): line for line in result.stdout.splitlines() if "│" in line}
    assert "from eventwire-outside 0.0.1" in rows["outside"]  # the package that provides it
    assert "built in" in rows["memory"]


def test_without_the_package_the_scheme_is_unknown() -> None:
    result = subprocess.run(
        [sys.executable, "-c", "from eventwire import EventBus; EventBus('outside://x')"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "no installed backend serves 'outside://x'" in result.stderr
    assert "memory://" in result.stderr


def test_cli_lists_every_subcommand() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "eventwire.cli", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    for name in ("asyncapi", "backends", "bench", "conformance", "contracts", "flow"):
        assert f"  {name} " in result.stdout
    assert "unavailable" not in result.stdout
