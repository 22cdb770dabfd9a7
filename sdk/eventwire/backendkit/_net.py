"""Network settings every backend reads the same way: server addresses and TLS contexts.

- `address`: one ``host[:port]`` item of a URL or an option (``[v6]:port`` too), checked,
  with the backend's default port; `join_host` writes it back (IPv6 in brackets).
- `tls_context`: a client TLS context from a CA file, a client certificate and key, and the
  verification switches; files that cannot be loaded are a `ConfigurationError` naming
  them (never the key's password), raised when the settings are parsed.
"""

from __future__ import annotations

import ssl
from urllib.parse import urlsplit

from eventwire.errors import ConfigurationError, InvalidURLError

__all__ = ["address", "join_host", "tls_context"]


def address(item: str, default_port: int, where: str) -> tuple[str, int]:
    """``(host, port)`` of `item`, ``host[:port]`` or ``[v6addr][:port]``; `where` names its
    origin for the error ("'kafka://a,b'", "the servers option")."""
    item = item.strip()
    try:
        parts = urlsplit(f"//{item}")
        port = parts.port
    except ValueError:
        port, parts = None, None
    if parts is None or not parts.hostname or parts.path or parts.query or "@" in item:
        raise InvalidURLError(f"{where} has an invalid server address {item!r}; write host:port")
    return parts.hostname, port or default_port


def join_host(host: str, port: int) -> str:
    """``host:port``, an IPv6 host in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def tls_context(
    backend: str,
    *,
    ca_file: str | None = None,
    cert_file: str | None = None,
    key_file: str | None = None,
    password: str | None = None,
    verify: bool = True,
    check_hostname: bool = True,
    names: tuple[str, str, str] = ("ca_file", "cert_file", "key_file"),
) -> ssl.SSLContext:
    """A client TLS context trusting `ca_file` (the system's CAs without it), presenting
    `cert_file` / `key_file` (mutual TLS) if given; `verify` false accepts any certificate
    (tests only), `check_hostname` false any host name on a verified certificate. `names`
    are the backend's options for the three files, for the error message."""
    try:
        context = ssl.create_default_context(cafile=ca_file)
        if cert_file:
            context.load_cert_chain(cert_file, keyfile=key_file, password=password)
    except (OSError, ssl.SSLError) as exc:
        reason = getattr(exc, "strerror", None) or "cannot load the certificate files"
        given = ", ".join(
            f"{option}={path!r}"
            for option, path in zip(names, (ca_file, cert_file, key_file), strict=True)
            if path
        )
        raise ConfigurationError(
            f"{backend} backend TLS setup failed ({type(exc).__name__}: {reason}); check "
            f"{given or ', '.join(names)} and the key's password"
        ) from exc
    if not verify or not check_hostname:
        context.check_hostname = False
    if not verify:
        context.verify_mode = ssl.CERT_NONE
    return context
