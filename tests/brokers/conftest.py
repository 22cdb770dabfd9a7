"""Broker URLs for tests that talk to the real brokers.

Each URL comes from its environment variable, else the default that
``conformance/brokers/brokers up`` serves. A fixture never skips: when the broker does
not answer on its port the test fails, naming the command that starts it.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import socket
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from urllib.parse import urlsplit

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
BROKERS_SCRIPT = REPO_ROOT / "conformance" / "brokers" / "brokers"

DEFAULT_URLS = {
    "kafka": "kafka://127.0.0.1:9092",
    "rabbit": "amqp://guest:guest@127.0.0.1:5672/",
    "redis": "redis://127.0.0.1:6379/0",
    "nats": "nats://127.0.0.1:4222",
}
DEFAULT_PORTS = {"kafka": 9092, "rabbit": 5672, "redis": 6379, "nats": 4222}


def broker_url(name: str) -> str:
    """The URL of broker ``name``: ``EVENTWIRE_<NAME>_URL`` or the local default."""
    return os.environ.get(f"EVENTWIRE_{name.upper()}_URL") or DEFAULT_URLS[name]


def host_port(url: str, default_port: int) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or default_port


def _require(name: str) -> str:
    url = broker_url(name)
    host, port = host_port(url, DEFAULT_PORTS[name])
    try:
        with socket.create_connection((host, port), timeout=3):
            pass
    except OSError as exc:
        pytest.fail(
            f"{name} broker unreachable at {url} ({exc}). "
            f"Start it with: conformance/brokers/brokers up {name}",
            pytrace=False,
        )
    return url


@pytest.fixture
def kafka_url() -> str:
    return _require("kafka")


@pytest.fixture
def rabbit_url() -> str:
    return _require("rabbit")


@pytest.fixture
def redis_url() -> str:
    return _require("redis")


@pytest.fixture
def nats_url() -> str:
    return _require("nats")


def load_brokers_script() -> ModuleType:
    """Import conformance/brokers/brokers (a script without .py) for its wire probes."""
    name = "eventwire_brokers_script"
    if name in sys.modules:
        return sys.modules[name]
    loader = importlib.machinery.SourceFileLoader(name, str(BROKERS_SCRIPT))
    spec = importlib.util.spec_from_loader(name, loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def brokers_script() -> ModuleType:
    return load_brokers_script()


def run_brokers_script(
    *args: str, env: dict[str, str], timeout: float
) -> subprocess.CompletedProcess[str]:
    """``conformance/brokers/brokers ARGS`` with `env`; its output captured, never checked."""
    return subprocess.run(
        [sys.executable, str(BROKERS_SCRIPT), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
