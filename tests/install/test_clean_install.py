"""The wheel, installed without extras in a fresh venv, says what to install for each missing
piece; the distributions carry the license, project URLs and a README with absolute links."""

from __future__ import annotations

import email
import json
import os
import subprocess
import sys
import tarfile
import textwrap
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _sh(*args: str | Path, cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env={**os.environ, "COLUMNS": "200", "PIP_DISABLE_PIP_VERSION_CHECK": "1", **env},
    )


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    built = _sh(sys.executable, "-m", "build", "--no-isolation", "-o", out, ROOT)
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]
    return out


@pytest.fixture(scope="module")
def venv(dists: Path, request: pytest.FixtureRequest) -> Path:
    """A fresh venv with the wheel and its core dependencies only (no extras)."""
    [wheel] = dists.glob("*.whl")
    metadata = email.message_from_bytes(
        zipfile.ZipFile(wheel).read("eventwire-0.1.0.dist-info/METADATA")
    )
    core = [r for r in metadata.get_all("Requires-Dist") or [] if "extra ==" not in r]
    # The core wheels are downloaded once (pip's HTTP cache, then this folder) and the venv
    # installs from that folder only, so no extra can slip in.
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")  # no two downloads into one folder
    wheels = request.config.cache.mkdir(f"eventwire-core-wheels-{worker}")
    fetched = _sh(sys.executable, "-m", "pip", "download", "-q", "-d", wheels, *core)
    assert fetched.returncode == 0, fetched.stderr[-2000:]
    home = dists / "venv"
    assert _sh(sys.executable, "-m", "venv", home).returncode == 0
    done = _sh(home / "bin/pip", "install", "-q", "--no-index", "--find-links", wheels, wheel)
    assert done.returncode == 0, done.stderr[-2000:]
    listed = _sh(home / "bin/pip", "list", "--format", "json").stdout
    installed = {p["name"].lower() for p in json.loads(listed)}
    assert not installed & {"aiokafka", "redis", "aio-pika", "nats-py", "faststream", "pytest"}
    return home


def test_the_api_names_the_extra_for_each_missing_client(venv: Path, tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import asyncio, json
        from eventwire import ConfigurationError, EventBus

        out = {}
        for url in ["kafka://127.0.0.1:9092", "redis://127.0.0.1:6379/0",
                    "amqp://127.0.0.1:5672/", "nats://127.0.0.1:4222",
                    "eventbridge://default?region=us-east-1", "foo://x"]:
            try:
                asyncio.run(EventBus(url).start())  # some clients load on connect
                out[url] = "started"
            except ConfigurationError as exc:
                out[url] = f"{type(exc).__name__}: {exc}"
        print(json.dumps(out))
        """
    )
    result = _sh(venv / "bin/python", "-c", script, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    errors = json.loads(result.stdout)
    for url, extra in [
        ("kafka://127.0.0.1:9092", "kafka"),
        ("redis://127.0.0.1:6379/0", "redis"),
        ("amqp://127.0.0.1:5672/", "rabbit"),
        ("nats://127.0.0.1:4222", "nats"),
        ("eventbridge://default?region=us-east-1", "aws"),
    ]:
        scheme = url.split(":")[0]
        assert errors[url].startswith(f"ConfigurationError: the {scheme}:// backend needs ")
        assert errors[url].endswith(f"which is not installed: pip install 'eventwire[{extra}]'")
    assert "UnknownBackendError" in errors["foo://x"]
    assert "eventwire[" not in errors["foo://x"]  # no extra serves foo://
    assert "plugin that registers the scheme" in errors["foo://x"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["conformance", "run", "memory://"], "pip install 'eventwire[conformance]'"),
        (["run", "app.py:bus", "--reload"], "pip install 'eventwire[reload]'"),
        (["run", "app.py:bus", "--url", "kafka://127.0.0.1:9092"], "eventwire[kafka]'"),
        (["bench", "redis://127.0.0.1:6379/0"], "pip install 'eventwire[redis]'"),
    ],
)
def test_the_cli_names_the_extra_in_one_line_and_exits_2(
    venv: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    (tmp_path / "app.py").write_text("from eventwire import EventBus\nbus = EventBus()\n")
    result = _sh(venv / "bin/eventwire", *args, cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    [line] = [line for line in result.stderr.splitlines() if "pip install" in line]
    assert line.lower().startswith("error: ")  # (click's usage lines may come before it)


def test_backends_shows_each_client_installed_or_missing(venv: Path) -> None:
    result = _sh(venv / "bin/eventwire", "backends")
    assert result.returncode == 0, result.stderr
    rows = {
        line.split("│")[1].strip(): line for line in result.stdout.splitlines() if "://" in line
    }
    assert "built in" in rows["memory"]
    for name, extra in (
        ("kafka", "kafka"),
        ("nats", "nats"),
        ("rabbit", "rabbit"),
        ("redis", "redis"),
        ("eventbridge", "aws"),
    ):
        assert f"missing: pip install 'eventwire[{extra}]'" in rows[name]


def test_the_testing_kit_works_without_pytest(venv: Path, tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import asyncio
        from eventwire import Event, EventBus
        from eventwire.testing import TestBus

        class Pinged(Event, channel="pings"):
            n: int

        bus = EventBus(source="s")
        seen = []

        @bus.subscribe(Pinged, group="g")
        async def ping(event: Pinged) -> None:
            seen.append(event.n)

        async def main() -> None:
            async with TestBus(bus, raise_handler_errors=True) as tb:
                await tb.publish(Pinged(n=1))
                assert seen == [1] and tb.calls(ping)[0].outcome == "ack"

        asyncio.run(main())
        print("ok")
        """
    )
    result = _sh(venv / "bin/python", "-c", script, cwd=tmp_path)
    assert result.stdout.strip() == "ok", result.stderr


def test_wheel_and_sdist_carry_license_urls_and_an_absolute_readme(dists: Path) -> None:
    [wheel] = dists.glob("*.whl")
    [sdist] = dists.glob("*.tar.gz")
    names = zipfile.ZipFile(wheel).namelist()
    assert "eventwire-0.1.0.dist-info/licenses/LICENSE" in names
    with tarfile.open(sdist) as archive:
        assert "eventwire-0.1.0/LICENSE" in archive.getnames()
    license_text = zipfile.ZipFile(wheel).read("eventwire-0.1.0.dist-info/licenses/LICENSE")
    assert b"Apache License" in license_text and b"Version 2.0, January 2004" in license_text
    metadata = email.message_from_bytes(
        zipfile.ZipFile(wheel).read("eventwire-0.1.0.dist-info/METADATA")
    )
    urls = dict(u.split(", ", 1) for u in metadata.get_all("Project-URL") or [])
    assert {"Homepage", "Documentation", "Repository", "Issues"} <= set(urls)
    readme = metadata.get_payload()
    assert "pip install 'eventwire[conformance]'" in readme
    assert "](docs/" not in readme  # relative links would be dead on PyPI
    assert f"]({urls['Repository']}/blob/main/docs/testing.md)" in readme
