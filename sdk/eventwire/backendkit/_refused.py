"""`connect_failure`: why a first connection failed, as one line that says what to do.

A client library reports a failed connect in its own words (a timeout, ``ACCESS_REFUSED``, an
``ssl.SSLError`` three causes deep). A backend's ``_connect`` catches what the connect raised
and raises ``connect_failure(...)`` from it instead; the checks run in a fixed order, so the
same problem reads the same on every backend:

1. a TLS problem (`describe_tls_failure` of the exception, or of the client's last error
   behind a timeout): ``cannot connect to <where>: TLS: ...``;
2. a timeout: ``cannot connect to <where> within <n>s (last error: ...); is it running ...``;
3. a refused login (one of the `login` markers in the exception's type or text):
   ``<where> refused the login (<detail>); <login_advice>``;
4. another refusal the backend knows (`refusals`: marker → what it means and what to do);
5. anything else: ``cannot connect to <where>: <ExcType>: <detail>``.

Details are scrubbed of the settings' secrets and of any URL's user info, on one line.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Protocol

from eventwire.backendkit._errors import scrub
from eventwire.backendkit._security import describe_tls_failure
from eventwire.errors import BackendUnavailableError

__all__ = ["Connecting", "connect_failure", "describe_exception"]


class Connecting(Protocol):
    """What `connect_failure` reads of a backend's settings (`TlsOptions` subclasses with a
    ``connect_timeout`` option have it)."""

    @property
    def tls(self) -> bool: ...
    @property
    def connect_timeout(self) -> float: ...
    def secrets(self) -> tuple[str, ...]: ...


def describe_exception(exc: BaseException, secrets: Iterable[str] = ()) -> str:
    """``ExcType: text`` on one line, secrets scrubbed (the type once, even when the client's
    text already starts with it)."""
    name = type(exc).__name__
    text = " ".join(str(exc).split()) or name
    text = scrub(text, secrets)
    return text if name in text else f"{name}: {text}"


def connect_failure(
    exc: BaseException,
    where: str,
    settings: Connecting,
    *,
    cause: BaseException | None = None,
    login: Iterable[str] = ("authentication", "authorization"),
    login_advice: str = "check the user name and password",
    refusals: Mapping[str, str] | None = None,
) -> BackendUnavailableError:
    """The `BackendUnavailableError` for a first connect that failed with `exc`.

    :param where: the broker as the message names it (``"RabbitMQ at host:5672"``).
    :param settings: the backend's settings: whether TLS was asked for (a plain client on a
        TLS port reads differently), the ``connect_timeout`` that ran out, the secrets never
        shown.
    :param cause: the client's last error, when `exc` is only the timeout that followed it.
    :param login: lower-case markers of a refused login, looked for in ``ExcType: text``.
    :param login_advice: what to do about a refused login.
    :param refusals: marker (case-sensitive, in the text) → what the broker refused and what
        to do, for refusals particular to the broker.

    Raise it ``from exc`` so the cause is kept.
    """
    tls, timeout, secrets = settings.tls, settings.connect_timeout, settings.secrets()
    for error in (exc, cause):
        problem = describe_tls_failure(error, tls=tls) if error is not None else None
        if problem is not None:
            return BackendUnavailableError(f"cannot connect to {where}: {problem}")
    if isinstance(exc, TimeoutError):
        detail = f" (last error: {describe_exception(cause, secrets)})" if cause else ""
        return BackendUnavailableError(
            f"cannot connect to {where} within {timeout:g}s{detail}; is it running and "
            "reachable? Raise connect_timeout if the network is slow"
        )
    detail = describe_exception(exc, secrets)
    if any(marker in detail.lower() for marker in login):
        return BackendUnavailableError(f"{where} refused the login ({detail}); {login_advice}")
    for marker, meaning in (refusals or {}).items():
        if marker in detail:
            return BackendUnavailableError(f"{where} {meaning}")
    return BackendUnavailableError(f"cannot connect to {where}: {detail}")
