"""The TLS and credential options every backend shares, declared once.

A backend's settings class inherits `TlsOptions` and/or `CredentialOptions` next to
`BackendSettings`, so the options mean the same and are spelled the same on every broker:
``tls``, ``ca_file``, ``cert_file``, ``key_file``, ``key_password``, ``tls_verify`` and
``ssl_context``; ``username``, ``password``, ``password_env`` and ``password_file``. A
subclass that defines ``__post_init__`` calls ``super().__post_init__()`` first.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import ssl

from eventwire.backendkit._settings import BackendSettings, option
from eventwire.errors import ConfigurationError

__all__ = ["CredentialOptions", "TlsOptions"]

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
