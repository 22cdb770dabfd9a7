"""The TLS and credential options every backend shares, declared once.

A backend's settings class inherits `TlsOptions` and/or `CredentialOptions` next to
`BackendSettings`, so the options mean the same and are spelled the same on every broker:
``tls``, ``ca_file``, ``cert_file``, ``key_file``, ``key_password``, ``tls_verify`` and
``ssl_context``; ``username``, ``password``, ``password_env`` and ``password_file``. A
subclass that defines ``__post_init__`` calls ``super().__post_init__()`` first.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import ssl

from eventwire.backendkit._settings import BackendSettings, option
from eventwire.errors import ConfigurationError

__all__ = [
    "CredentialOptions",
    "TlsOptions",
    "describe_permission_failure",
    "describe_tls_failure",
    "diagnose_tls",
]

log = logging.getLogger("eventwire.backendkit")


@dataclasses.dataclass(frozen=True, kw_only=True)
class TlsOptions(BackendSettings):
    """TLS to the broker: CA, client certificate (mutual TLS), verification."""

    tls: bool = option(
        False,
        "TLS; implied by the scheme's TLS form and by every other TLS option",
        default_doc="from the scheme, else `false`",
    )
    ca_file: str | None = option(
        None, "CA bundle that signs the broker's certificate", default_doc="— (the system's CAs)"
    )
    cert_file: str | None = option(None, "client certificate (mutual TLS)")
    key_file: str | None = option(
        None, "the client certificate's private key", default_doc="— (in `cert_file`)"
    )
    key_password: str | None = option(None, "password of an encrypted `key_file`", secret=True)
    tls_verify: bool = option(
        True,
        "`false` accepts any broker certificate and host name (logs a warning; tests only)",
    )
    ssl_context: ssl.SSLContext | None = option(
        None, "a ready TLS context (`backend_options` only; wins over the options above)"
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.key_file and not self.cert_file:
            raise ConfigurationError(
                f"{self.backend} backend option key_file is given without cert_file; give both"
            )
        if self.tls_wanted() and not self.tls:
            object.__setattr__(self, "tls", True)
        if self.tls:
            self.tls_context()  # a file that cannot be loaded fails here, not at connect
        if self.tls and not self.tls_verify:
            log.warning(
                "%s backend: TLS certificate verification is OFF (tls_verify=false): any "
                "server can pose as the broker and read the traffic; use it only in tests",
                self.backend,
            )

    def tls_wanted(self) -> bool:
        """Whether any option asks for TLS (``tls`` itself or an option that only TLS uses)."""
        return bool(
            self.tls
            or self.ca_file
            or self.cert_file
            or self.ssl_context is not None
            or not self.tls_verify
        )

    def tls_context(self) -> ssl.SSLContext:
        """The TLS context these options describe (``ssl_context`` itself when given).

        A file that cannot be loaded is a `ConfigurationError` naming the option and the file
        (never the key's password). Parsing builds it once, so a bad file fails there, and
        logs the warning of ``tls_verify=false``.
        """
        if self.ssl_context is not None:
            return self.ssl_context
        option_name, path = "ca_file", self.ca_file
        try:
            context = ssl.create_default_context(cafile=self.ca_file)
            if self.cert_file:
                option_name, path = "cert_file", self.cert_file
                context.load_cert_chain(self.cert_file, self.key_file, self.key_password)
        except (OSError, ssl.SSLError) as exc:
            reason = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or "unreadable"
            raise ConfigurationError(
                f"{self.backend} backend option {option_name}={path!r} cannot be loaded "
                f"({reason}); give a readable PEM file"
                + (" (and key_file / key_password that match it)" if self.cert_file else "")
            ) from None
        if not self.tls_verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context


@dataclasses.dataclass(frozen=True, kw_only=True)
class CredentialOptions(BackendSettings):
    """A user name and a password, the password from the URL, an option, a variable or a file."""

    username: str | None = option(None, "user name", default_doc="from the URL")
    password: str | None = option(
        None,
        "password; prefer `password_env` or `password_file` to a password in the URL",
        secret=True,
        default_doc="from the URL",
    )
    password_env: str | None = option(
        None, "name of the environment variable that holds the password"
    )
    password_file: str | None = option(
        None, "file that holds the password (a trailing newline is dropped)"
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        given = [
            name for name in ("password", "password_env", "password_file") if getattr(self, name)
        ]
        if len(given) > 1:
            raise ConfigurationError(
                f"{self.backend} backend: the password comes from {' and '.join(given)}; "
                "give it one way"
            )
        if self.password_env:
            value = os.environ.get(self.password_env)
            if not value:
                raise ConfigurationError(
                    f"{self.backend} backend option password_env={self.password_env!r}: that "
                    "environment variable is not set or empty; export it or use password_file"
                )
            object.__setattr__(self, "password", value)
        elif self.password_file:
            try:
                with open(self.password_file, encoding="utf-8") as fh:
                    value = fh.read().rstrip("\r\n")
            except (OSError, UnicodeDecodeError) as exc:
                reason = getattr(exc, "strerror", None) or "not UTF-8 text"
                raise ConfigurationError(
                    f"{self.backend} backend option password_file={self.password_file!r} "
                    f"cannot be read ({reason}); give a readable file"
                ) from None
            if not value:
                raise ConfigurationError(
                    f"{self.backend} backend option password_file={self.password_file!r} is "
                    "empty; write the password into it"
                )
            object.__setattr__(self, "password", value)


#: OpenSSL alert reasons a broker sends when it refuses the client's certificate.
_CLIENT_CERT_ALERTS = (
    "CERTIFICATE_EXPIRED",
    "CERTIFICATE_UNKNOWN",
    "UNKNOWN_CA",
    "CERTIFICATE_REQUIRED",
    "BAD_CERT",
)


def _chain(exc: BaseException) -> list[BaseException]:
    """`exc`, its causes and contexts, and the errors it groups (first seen first)."""
    seen: list[BaseException] = []
    todo = [exc]
    while todo:
        current = todo.pop(0)
        if any(current is s for s in seen):
            continue
        seen.append(current)
        todo += [e for e in (current.__cause__, current.__context__) if e is not None]
        todo += [a for a in current.args if isinstance(a, BaseException)]
        todo += list(getattr(current, "exceptions", ()))
    return seen


#: What brokers say when a user may not do something (Redis, NATS, RabbitMQ, Kafka).
_PERMISSION_WORDS = (
    "noperm",
    "no permissions",
    "permissions violation",
    "access_refused",
    "access refused",
    "authorizationfailed",
    "authorization failed",
    "not authorized",
)


def describe_permission_failure(exc: BaseException) -> str | None:
    """One line saying the broker refused the user permission, or ``None`` if it did not."""
    for error in _chain(exc):
        text = " ".join(str(error).split())
        words = f"{type(error).__name__} {text}".lower()
        if any(word in words for word in _PERMISSION_WORDS):
            return (
                f"the user has no permission for it ({type(error).__name__}: {text[:300]}); "
                "grant the user access to this channel, or connect as a user that has it"
            )
    return None


#: How a client says the server refused to start TLS (asyncpg: "... rejected SSL upgrade").
_TLS_REFUSED = ("rejected ssl upgrade", "server does not support ssl", "ssl not supported")


def describe_tls_failure(exc: BaseException, *, tls: bool) -> str | None:
    """One line saying which TLS problem made a connection fail, or ``None`` if none did.

    Recognises an untrusted or mismatched broker certificate, a client certificate the
    broker refused (expired, from another CA, missing), a TLS client on a plain port (a
    garbled reply, or a server that refuses to start TLS), and a plain client on a TLS port
    (the broker drops it: reset, closed, or a garbled reply).
    """
    for error in _chain(exc):
        if isinstance(error, ssl.SSLCertVerificationError):
            reason = error.verify_message or error.reason or "verification failed"
            hint = (
                "connect with a host name the certificate names"
                if "hostname" in str(reason).lower() or "ip address mismatch" in str(reason).lower()
                else "give the CA that signed it in ca_file"
            )
            return f"TLS: the broker's certificate was not accepted ({reason}); {hint}"
        if isinstance(error, ssl.SSLError):
            reason = str(error.reason or error)
            if any(alert in reason.upper() for alert in _CLIENT_CERT_ALERTS):
                return (
                    f"TLS: the broker refused the client certificate ({reason}); give in "
                    "cert_file / key_file a valid certificate signed by the broker's CA"
                )
            if "WRONG_VERSION_NUMBER" in reason.upper() or "RECORD_LAYER" in reason.upper():
                return "TLS: the port does not speak TLS; connect without TLS or to the TLS port"
            return f"TLS handshake failed ({reason}); check ca_file, cert_file and key_file"
    for error in _chain(exc):
        text = str(error).lower()
        if tls and any(hint in text for hint in _TLS_REFUSED):
            return (
                "TLS: the server does not accept TLS on this port; connect without TLS "
                "(tls=false) or enable TLS on the server"
            )
        dropped = ConnectionResetError | BrokenPipeError | EOFError | ssl.SSLEOFError
        if isinstance(error, dropped) or any(
            hint in text
            for hint in (
                "connection reset",
                "broken pipe",
                "closed by",
                "connection lost",
                "unexpected eof",
            )
        ):
            if tls:
                # TLS 1.3: the broker checks the client certificate after the client's side
                # of the handshake is done, so a refusal shows as a dropped connection.
                return (
                    "TLS: the broker closed the connection right after the handshake; it may "
                    "refuse the client certificate (cert_file: expired, or not signed by its CA)"
                )
            return (
                "the broker closed the connection at once; if the port serves TLS, "
                "connect with TLS (the TLS scheme or tls=true)"
            )
    return None


async def diagnose_tls(
    host: str, port: int, context: ssl.SSLContext | None, timeout: float
) -> str | None:
    """Why a broker's port refuses this client at the TLS level, found by connecting once.

    For a client library that reports only "cannot connect": with `context`, a TLS handshake
    (and a short read, where TLS 1.3 brings a refused client certificate) as the client
    would make it; without, whether the port answers a TLS handshake, i.e. serves TLS. The
    answer is a line of `describe_tls_failure`, or ``None`` when TLS is not the problem.
    """
    probe = context
    if probe is None:
        probe = ssl.create_default_context()
        probe.check_hostname = False
        probe.verify_mode = ssl.CERT_NONE
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(host, port, ssl=probe)
            try:
                if context is None:
                    return "TLS: the port serves TLS; connect with TLS (the TLS scheme or tls=true)"
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(min(1.0, timeout)):
                        await reader.read(1)
                # A refused client certificate shows as an alert or a dropped connection.
                if reader.at_eof():
                    return describe_tls_failure(ConnectionResetError(), tls=True)
            finally:
                writer.close()
                with contextlib.suppress(Exception):
                    await writer.wait_closed()
    except (OSError, TimeoutError) as exc:
        return describe_tls_failure(exc, tls=context is not None) if context is not None else None
    return None
