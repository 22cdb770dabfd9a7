"""Server addresses, read the same way by every backend (TLS: `eventwire.backendkit.TlsOptions`).

- `address`: one ``host[:port]`` item of a URL or an option (``[v6]:port`` too), checked,
  with the backend's default port; `join_host` writes it back (IPv6 in brackets).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from eventwire.errors import InvalidURLError

__all__ = ["address", "join_host"]


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
