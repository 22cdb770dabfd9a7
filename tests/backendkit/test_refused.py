"""`connect_failure`: a failed first connect as one line, checked in one order."""

from __future__ import annotations

import dataclasses
import ssl

from eventwire.backendkit import connect_failure, describe_exception
from eventwire.errors import BackendUnavailableError

WHERE = "Example at broker:7000"


@dataclasses.dataclass
class Settings:
    """What `connect_failure` reads of a backend's settings."""

    tls: bool = False
    connect_timeout: float = 5.0
    hidden: tuple[str, ...] = ()

    def secrets(self) -> tuple[str, ...]:
        return self.hidden


def _untrusted() -> ssl.SSLCertVerificationError:
    error = ssl.SSLCertVerificationError(1, "certificate verify failed")
    error.verify_message = "self-signed certificate in certificate chain"
    return error


def test_a_timeout_names_the_limit_and_the_last_error() -> None:
    error = connect_failure(
        TimeoutError(), WHERE, Settings(connect_timeout=2), cause=ConnectionRefusedError("refused")
    )
    assert isinstance(error, BackendUnavailableError)
    text = str(error)
    assert text.startswith(f"cannot connect to {WHERE} within 2s (last error: ")
    assert "ConnectionRefusedError: refused" in text
    assert "connect_timeout" in text


def test_a_tls_problem_behind_a_timeout_is_named_before_the_timeout() -> None:
    error = connect_failure(TimeoutError(), WHERE, Settings(tls=True), cause=_untrusted())
    assert str(error).startswith(f"cannot connect to {WHERE}: TLS: the broker's certificate")


def test_a_refused_login_is_recognised_by_its_markers_and_keeps_secrets_out() -> None:
    exc = RuntimeError("ACCESS_REFUSED - login refused\nfor amqp://app:s3cret@h/ (s3cret)")
    error = connect_failure(
        exc,
        WHERE,
        Settings(hidden=("s3cret",)),
        login=("access_refused",),
        login_advice="check the credentials",
    )
    text = str(error)
    assert text.startswith(f"{WHERE} refused the login (RuntimeError: ACCESS_REFUSED")
    assert text.endswith("; check the credentials")
    assert "s3cret" not in text and "\n" not in text


def test_a_broker_refusal_gets_the_backend_s_own_words() -> None:
    exc = RuntimeError("Connection.Close: NOT_ALLOWED - vhost missing")
    error = connect_failure(
        exc, WHERE, Settings(), refusals={"NOT_ALLOWED": "refused the virtual host"}
    )
    assert str(error) == f"{WHERE} refused the virtual host"


def test_anything_else_says_what_failed() -> None:
    error = connect_failure(OSError("no route to host"), WHERE, Settings())
    assert str(error) == f"cannot connect to {WHERE}: OSError: no route to host"


def test_describe_exception_names_the_type_once() -> None:
    assert describe_exception(ValueError("bad")) == "ValueError: bad"
    assert describe_exception(ValueError("ValueError: bad")) == "ValueError: bad"
    assert describe_exception(ValueError()) == "ValueError"


def test_a_server_that_refuses_to_start_tls_is_a_tls_problem() -> None:
    """asyncpg's words for a plain PostgreSQL server asked for TLS; without TLS asked for,
    the same text is no TLS problem."""
    refused = ConnectionError('PostgreSQL server at "h:5432" rejected SSL upgrade')
    error = connect_failure(refused, WHERE, Settings(tls=True))
    assert str(error) == (
        f"cannot connect to {WHERE}: TLS: the server does not accept TLS on this port; "
        "connect without TLS (tls=false) or enable TLS on the server"
    )
    plain = connect_failure(refused, WHERE, Settings(tls=False))
    assert "TLS:" not in str(plain)
