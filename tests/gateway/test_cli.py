"""``eventwire serve``: bad input is one line and exit 2; a real server answers."""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from eventwire.cli import main

from tests.gateway._domain import TOKEN

ROOT = Path(__file__).resolve().parents[2]
CONTRACT = ROOT / "contracts" / "order-service.v1.yaml"


def _fails(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(["serve", *args])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1, err
    return err


def test_no_token(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EVENTWIRE_GATEWAY_TOKEN", raising=False)
    err = _fails(capsys, "memory://", "--contracts", str(CONTRACT))
    assert "--token-file" in err and "EVENTWIRE_GATEWAY_TOKEN" in err and "--read-only" in err


def test_a_short_or_unreadable_token(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    short = tmp_path / "token"
    short.write_text("secret\n")
    err = _fails(capsys, "memory://", "--contracts", str(CONTRACT), "--token-file", str(short))
    assert "at least 16" in err and "secret" not in err
    err = _fails(
        capsys, "memory://", "--contracts", str(CONTRACT), "--token-file", str(tmp_path / "none")
    )
    assert "cannot read the token file" in err
    monkeypatch.setenv("EVENTWIRE_GATEWAY_TOKEN", "tiny")
    err = _fails(capsys, "memory://", "--contracts", str(CONTRACT))
    assert "$EVENTWIRE_GATEWAY_TOKEN" in err and "tiny" not in err


def test_the_token_is_no_command_line_argument(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["serve", "memory://", "--contracts", str(CONTRACT), "--token", TOKEN])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "No such option '--token'" in err and TOKEN not in err


def test_bad_contract_and_url(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("asyncapi: 2.6.0\ninfo: {title: x, version: '1'}\n")
    err = _fails(capsys, "memory://", "--contracts", str(broken), "--read-only")
    assert "AsyncAPI 3.0.0" in err
    err = _fails(capsys, "nope://x", "--contracts", str(CONTRACT), "--read-only")
    assert "nope" in err


def test_a_missing_extra_is_named(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    real = importlib.util.find_spec

    def without_starlette(name: str, *args: object) -> object:
        return None if name == "starlette" else real(name, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(importlib.util, "find_spec", without_starlette)
    err = _fails(capsys, "memory://", "--contracts", str(CONTRACT), "--read-only")
    assert err == "Error: the eventwire gateway needs starlette: pip install 'eventwire[serve]'"


def test_serve_runs_uvicorn(tmp_path: Path) -> None:
    """The real command on a free port: ready, accepts an event with the token from a file."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    token = tmp_path / "token"
    token.write_text(TOKEN + "\n")
    command = [
        sys.executable,
        "-m",
        "eventwire.cli",
        "serve",
        "memory://",
        "--contracts",
        str(CONTRACT),
        "--port",
        str(port),
        "--token-file",
        str(token),
    ]
    env = {k: v for k, v in os.environ.items() if k != "EVENTWIRE_GATEWAY_TOKEN"}
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/health/ready").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, "serve did not start"
            time.sleep(0.1)
        accepted = httpx.post(
            f"{base}/events/OrderCancelled",
            json={"order_id": "ord-1", "reason": "out-of-stock"},
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
        assert accepted.status_code == 202, accepted.text
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=30)
    assert TOKEN not in output.decode()
    assert "server" not in {k.lower() for k in accepted.headers}


def test_the_api_names_the_missing_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import eventwire.gateway
    from eventwire.errors import ConfigurationError

    real = importlib.util.find_spec

    def without_uvicorn(name: str, *args: object) -> object:
        return None if name == "uvicorn" else real(name, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(importlib.util, "find_spec", without_uvicorn)
    with pytest.raises(ConfigurationError, match=r"pip install 'eventwire\[serve\]'"):
        eventwire.gateway.create_app  # noqa: B018
