"""The secure brokers (`conformance/brokers/brokers up --secure`): events flow over TLS with
authentication on all four, and every way a connection or a user is refused is one line of
an eventwire error that names the broker and the problem, within the connect timeout.

The URLs come from the brokers script (`secure_urls`), with the ports of the environment
(``EVENTWIRE_REDIS_TLS_PORT``...) and the certificates under ``$EVENTWIRE_BROKERS_DIR``.
"""

from __future__ import annotations

import asyncio
import re
import socket
import subprocess
import uuid
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest
from eventwire import Event, EventBus
from eventwire.errors import EventwireError

from tests.brokers.conftest import BROKERS_SCRIPT, load_brokers_script

pytestmark = pytest.mark.broker

BROKERS = load_brokers_script()
CONNECT_TIMEOUT = 3.0
#: How each broker is named in its errors.
NAMED = {"redis": "redis", "nats": "nats", "rabbit": "rabbit", "kafka": "kafka"}
#: The secure listeners: (broker, index into secure_urls) - NATS and Kafka have two each.
LISTENERS = {
    "redis": ("redis", 0),
    "nats": ("nats", 0),
    "nats-nkey": ("nats", 1),
    "rabbit": ("rabbit", 0),
    "kafka-scram": ("kafka", 0),
    "kafka-mtls": ("kafka", 1),
}


class SecurePing(Event):
    key: str
    seq: int


def ping_model(channel: str) -> type[SecurePing]:
    class Ping(SecurePing, channel=channel, key="key"):
        pass

    return Ping


def secure_url(listener: str) -> str:
    broker, index = LISTENERS[listener]
    ports = BROKERS.secure_ports(broker)
    url: str = BROKERS.secure_urls(broker, ports)[index]
    host, port = "127.0.0.1", ports["mtls" if listener == "kafka-mtls" else "port"]
    try:
        with socket.create_connection((host, port), timeout=3):
            pass
    except OSError as exc:
        pytest.fail(
            f"secure {broker} unreachable at {host}:{port} ({exc}). Start it with: "
            f"conformance/brokers/brokers up --secure {broker}",
            pytrace=False,
        )
    return url


def certs(name: str) -> str:
    return str(BROKERS.secure_file(name))


def with_query(url: str, drop: tuple[str, ...] = (), **changes: str) -> str:
    parts = urlsplit(url)
    query = {k: v for k, v in parse_qsl(parts.query) if k not in drop}
    query.update(changes)
    return urlunsplit(parts._replace(query=urlencode(query, safe="/:")))


def with_netloc(url: str, netloc: str, scheme: str | None = None) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=netloc, scheme=scheme or parts.scheme))


def channel_name(what: str) -> str:
    return f"ewt-secure-{what}-{uuid.uuid4().hex[:10]}"


# --------------------------------------------------------------------------- events flow


@pytest.mark.anyio
@pytest.mark.parametrize("listener", sorted(LISTENERS))
async def test_an_event_flows_over_tls_with_authentication(listener: str) -> None:
    url = secure_url(listener)
    model = ping_model(channel_name(listener))
    got: list[int] = []
    bus = EventBus(url, source="secure-test")
    arrived = asyncio.Event()

    @bus.subscribe(model, group=channel_name("group"), from_beginning=True)
    async def handle(event: SecurePing) -> None:
        got.append(event.seq)
        arrived.set()

    async with asyncio.timeout(60), bus:
        await bus.publish(model(key="k", seq=7))
        await arrived.wait()
    assert got == [7]


# --------------------------------------------------------------------------- refusals


def _wrong_password(tmp: Path) -> Path:
    path = tmp / "wrong.password"
    path.write_text("not-the-password-" + uuid.uuid4().hex)
    return path


def case_url(broker: str, case: str, tmp: Path) -> str:
    """The secure URL of `broker` changed to exercise `case`."""
    listener = {"kafka": "kafka-mtls" if case == "expired_cert" else "kafka-scram"}.get(
        broker, broker
    )
    url = secure_url(listener)
    port = urlsplit(url).port
    user = urlsplit(url).username
    login = f"{user}@" if user else ""
    if case == "wrong_password":
        return with_query(url, password_file=str(_wrong_password(tmp)))
    if case == "unknown_user":
        return with_query(url, username="nobody")
    if case == "other_ca":
        return with_query(url, ca_file=certs("other-ca.pem"))
    if case == "expired_cert":
        return with_query(
            url, cert_file=certs("expired-client.pem"), key_file=certs("expired-client.key")
        )
    if case == "hostname_mismatch":
        return with_netloc(url, f"{login}localhost:{port}")
    if case == "plaintext":
        plain = with_query(url, drop=("ca_file", "cert_file", "key_file"))
        if broker == "kafka":
            return with_query(plain, security_protocol="SASL_PLAINTEXT")
        scheme = {"redis": "redis", "rabbit": "amqp", "nats": "nats"}[broker]
        return with_netloc(plain, urlsplit(plain).netloc, scheme)
    if case == "denied":
        return with_query(url, username="denied", password_file=certs("denied.password"))
    raise KeyError(case)


PROBLEM = {
    "wrong_password": r"password|authenticat|credentials|login",
    "unknown_user": r"password|authenticat|credentials|login",
    "other_ca": r"certificate",
    "expired_cert": r"certificate",
    "hostname_mismatch": r"certificate|host name",
    "plaintext": r"TLS",
}
CONNECT_CASES = sorted(PROBLEM)


def assert_one_line_error(exc: BaseException, broker: str, problem: str) -> None:
    text = str(exc)
    assert isinstance(exc, EventwireError), f"{type(exc).__name__}: {text}"
    assert "\n" not in text, text
    assert NAMED[broker] in text.lower(), text
    assert re.search(problem, text, re.I), text
    assert "Traceback" not in text


@pytest.mark.anyio
@pytest.mark.parametrize("case", CONNECT_CASES)
@pytest.mark.parametrize("broker", sorted(NAMED))
async def test_a_refused_connection_is_one_clear_line(
    broker: str, case: str, tmp_path: Path
) -> None:
    bus = EventBus(
        case_url(broker, case, tmp_path), backend_options={"connect_timeout": CONNECT_TIMEOUT}
    )
    async with asyncio.timeout(CONNECT_TIMEOUT + 20):
        try:
            with pytest.raises(EventwireError) as refused:
                await bus.start()
        finally:
            await bus.close()
    assert_one_line_error(refused.value, broker, PROBLEM[case])


@pytest.mark.anyio
@pytest.mark.parametrize("operation", ["publish", "subscribe"])
@pytest.mark.parametrize("broker", sorted(NAMED))
async def test_a_user_without_permission_on_the_channel_is_refused(
    broker: str, operation: str, tmp_path: Path
) -> None:
    model = ping_model(channel_name("denied"))
    bus = EventBus(
        case_url(broker, "denied", tmp_path), backend_options={"connect_timeout": CONNECT_TIMEOUT}
    )
    if operation == "subscribe":

        @bus.subscribe(model, group=channel_name("group"))
        async def handle(event: SecurePing) -> None:
            pass

    async def attempt() -> None:
        await bus.start()
        if operation == "publish":
            await bus.publish(model(key="k", seq=1))

    async with asyncio.timeout(CONNECT_TIMEOUT + 30):
        try:
            with pytest.raises(EventwireError) as refused:
                await attempt()
        finally:
            await bus.close()
    assert_one_line_error(refused.value, broker, r"permission|not allowed|denied|authori[sz]")


def test_status_prints_the_secure_urls_and_the_ca_without_secrets() -> None:
    done = subprocess.run(
        [str(BROKERS_SCRIPT), "status", "--secure"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"CA file: {certs('ca.pem')}" in done.stdout
    for broker in NAMED:
        for url in BROKERS.secure_urls(broker, BROKERS.secure_ports(broker)):
            assert url in done.stdout
    for secret in secrets():
        assert secret not in done.stdout + done.stderr


def secrets() -> list[str]:
    """The passwords and the NKEY seed of the secure setup."""
    found = [BROKERS.secure_password(user) for user in ("eventwire", "denied")]
    return [*found, Path(certs("nkey.seed")).read_text().strip()]


def test_aws_has_no_secure_mode() -> None:
    done = subprocess.run(
        [str(BROKERS_SCRIPT), "up", "--secure", "aws"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert done.stderr.strip() == "--secure starts redis nats rabbit kafka; aws has no secure mode"
