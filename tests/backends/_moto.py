"""A local AWS endpoint (moto_server, from the dev extra) of a test's own, on a free port.

moto routes every event a rule matches through an input template whose JSON paths it
parses again, with a new parser, for each event and target (about 4 ms each on this
machine). The server here memoizes that parse (the same path always gives the same
expression): the emulator's behaviour is unchanged, its CPU time per routed event halves,
which keeps the conformance run of ``eventbridge://`` within seconds per guarantee.
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

_LAUNCH = """
import functools, sys
import jsonpath_ng.ext
jsonpath_ng.ext.parse = functools.lru_cache(maxsize=256)(jsonpath_ng.ext.parse)
from moto.server import main
main(sys.argv[1:])
"""


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
        [sys.executable, "-c", _LAUNCH, "-H", "127.0.0.1", "-p", str(port)],
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


def bus_url(endpoint: str, bus: str = "default", extra: str = "") -> str:
    """The ``eventbridge://`` URL of `bus` on the local `endpoint`."""
    return f"eventbridge://{bus}?region={REGION}&endpoint={endpoint}&wait_time=1s{extra}"


def set_credentials(env: dict[str, str] | None = None) -> dict[str, str]:
    """`env` (default: a copy of ``os.environ``) with the dummy credentials set."""
    result = dict(os.environ if env is None else env)
    result.update(CREDENTIALS)
    return result
