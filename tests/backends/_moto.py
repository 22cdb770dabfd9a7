"""A local AWS endpoint (moto_server, from the dev extra) of a test's own, on a free port.

It runs conformance/brokers/moto_server.py, moto_server with its costliest steps cut and
its deletion race fixed, as `conformance/brokers/brokers up aws` does.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

__all__ = ["CREDENTIALS", "REGION", "bus_url", "moto_server", "set_credentials"]

REGION = "us-east-1"
#: moto accepts any credentials; the AWS SDK needs some to sign its requests.
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_EC2_METADATA_DISABLED": "true",
}

LAUNCHER = Path(__file__).resolve().parents[2] / "conformance" / "brokers" / "moto_server.py"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def moto_server(log: Path | None = None) -> Iterator[str]:
    """Start moto_server on a free loopback port; yields its endpoint URL."""
    if not (Path(sys.prefix) / "bin" / "moto_server").exists():
        pytest.fail("moto_server is missing: pip install -e '.[dev]' (moto[server])")
    port = _free_port()
    out = log.open("ab") if log is not None else subprocess.DEVNULL
    proc = subprocess.Popen(
        [sys.executable, str(LAUNCHER), "-H", "127.0.0.1", "-p", str(port)],
        stdout=out,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/moto-api/", timeout=1):
                    break
            except OSError:
                assert proc.poll() is None, "moto_server exited"
                assert time.monotonic() < deadline, "moto_server did not answer in 60 s"
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if log is not None and not isinstance(out, int):
            out.close()


def bus_url(endpoint: str, bus: str = "default", extra: str = "", wait_time: str = "1s") -> str:
    """The ``eventbridge://`` URL of `bus` on the local `endpoint`."""
    return f"eventbridge://{bus}?region={REGION}&endpoint={endpoint}&wait_time={wait_time}{extra}"


def set_credentials(env: dict[str, str] | None = None) -> dict[str, str]:
    """`env` (default: a copy of ``os.environ``) with the dummy credentials set."""
    result = dict(os.environ if env is None else env)
    result.update(CREDENTIALS)
    return result
