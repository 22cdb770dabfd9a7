"""Nothing of the secure setup leaks: on every secure listener, with the password (or NKEY
seed) written into the URL itself, no password, seed or private-key line shows in any
output: exception messages and reprs (with their causes), log records at every level, the
bus's and backend's reprs, the generated AsyncAPI document, the gateway's responses,
``eventwire backends`` and ``eventwire bench``. (The conformance reports are swept by
``tests/backends/test_secure_matrix.py``.)
"""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import httpx
import pytest
import yaml
from eventwire import EventBus
from eventwire.contracts import generate_asyncapi
from eventwire.gateway import GatewaySettings, create_app

from tests.backends.test_secure_matrix import secret_texts
from tests.brokers.test_secure import (
    BROKERS,
    LISTENERS,
    SecurePing,
    certs,
    channel_name,
    ping_model,
    secure_url,
    with_query,
)
from tests.gateway._domain import make_domain

pytestmark = pytest.mark.broker

ROOT = Path(__file__).resolve().parents[2]
WRONG = "Wr0ng-secret-for-the-sweep-7d1f"


def inline(url: str, listener: str, password: str) -> str:
    """`url` with the secret in the URL itself rather than in a file."""
    if listener == "nats-nkey":
        seed = Path(certs("nkey.seed")).read_text().strip()
        return with_query(url, drop=("nkey_seed_file",), nkey_seed=seed)
    if listener == "kafka-mtls":
        return url
    plain = with_query(url, drop=("password_file",))
    if listener == "nats":
        return with_query(plain, password=password)
    parts = urlsplit(plain)
    netloc = f"{parts.username}:{quote(password, safe='')}@{parts.hostname}:{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def texts_of(exc: BaseException) -> Iterator[str]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and not any(current is s for s in seen):
        seen.append(current)
        yield str(current)
        yield repr(current)
        current = current.__cause__ or current.__context__


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            text += " " + " ".join(texts_of(record.exc_info[1]))
        self.lines.append(f"{record.name} {record.levelname} {text}")


@pytest.fixture
def records() -> Iterator[Records]:
    handler = Records()
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


async def library_outputs(url: str, wrong_url: str, tmp_path: Path) -> list[str]:
    out: list[str] = []
    model = ping_model(channel_name("leak"))
    bus = EventBus(url, source="leak-sweep")
    out += [repr(bus), bus.url, repr(bus.backend), repr(getattr(bus.backend, "settings", None))]
    arrived = asyncio.Event()

    @bus.subscribe(model, group=channel_name("group"), from_beginning=True)
    async def handle(event: SecurePing) -> None:
        arrived.set()

    async with bus:
        await bus.publish(model(key="k", seq=1))
        await arrived.wait()
        document = generate_asyncapi(bus, title="Leak sweep")
        out += [yaml.safe_dump(document), json.dumps(document)]
    failing = EventBus(wrong_url, backend_options={"connect_timeout": 3})
    out += [repr(failing), failing.url, repr(failing.backend)]
    try:
        await failing.start()
    except Exception as exc:
        out += list(texts_of(exc))
    else:
        raise AssertionError("the wrong password was accepted")
    finally:
        await failing.close()
    domain = make_domain(tmp_path)
    app = create_app(url, [domain.contract], GatewaySettings(read_only=True))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            for _ in range(200):
                ready = await client.get("/health/ready")
                if ready.status_code == 200:
                    break
                await asyncio.sleep(0.05)
            for path in (
                "/health/ready",
                "/health/live",
                "/openapi.json",
                "/dead-letters",
                f"/dead-letters/{domain.orders}",
                "/",
            ):
                response = await client.get(path)
                out += [response.text, json.dumps(dict(response.headers))]
    return out


def cli_outputs(url: str) -> list[str]:
    out: list[str] = []
    # The bench's FastStream and raw-client runners take no TLS options: eventwire's only.
    commands: list[list[str]] = [
        ["backends"],
        ["bench", url, "--quick", "-n", "10", "--rounds", "1", "--only", "publish", "--runners",
         "eventwire"],
    ]  # fmt: skip
    for args in commands:
        done = subprocess.run(
            [sys.executable, "-m", "eventwire.cli", *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )
        out += [done.stdout, done.stderr]
        if args[0] == "bench":  # only eventwire's rows ran: their channel goes through it
            report = " ".join(done.stdout.split())
            assert done.returncode == 0 and "cleanup: deleted 1 broker object(s)" in report, (
                done.stdout[-2000:],
                done.stderr[-2000:],
            )
    return out


@pytest.mark.anyio
@pytest.mark.parametrize("listener", sorted(LISTENERS))
async def test_no_secret_in_any_output(listener: str, tmp_path: Path, records: Records) -> None:
    url = secure_url(listener)
    password = BROKERS.secure_password("eventwire")
    secret_url = inline(url, listener, password)
    wrong_url = (
        with_query(url, cert_file=certs("expired-client.pem"), key_file=certs("expired-client.key"))
        if listener in ("kafka-mtls", "nats-nkey")
        else inline(url, listener, WRONG)
    )
    outputs: dict[str, list[str]] = {}
    async with asyncio.timeout(120):
        outputs["library"] = await library_outputs(secret_url, wrong_url, tmp_path)
    outputs["cli"] = cli_outputs(secret_url)  # blocking: the library's buses are closed by now
    outputs["logs"] = records.lines
    assert records.lines, "nothing was logged: the sweep would prove nothing"
    secrets: list[Any] = [*secret_texts(), WRONG]
    for where, texts in outputs.items():
        blob = "\n".join(texts)
        found = [i for i, secret in enumerate(secrets) if secret in blob]
        assert found == [], f"{listener}: secret #{found} is in the {where} output"
