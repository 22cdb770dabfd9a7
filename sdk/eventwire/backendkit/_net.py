"""Server addresses, read the same way by every backend (TLS: `eventwire.backendkit.TlsOptions`).

- `address`: one ``host[:port]`` item of a URL or an option (``[v6]:port`` too), checked,
  with the backend's default port; `join_host` writes it back (IPv6 in brackets).
- `HostPort` nodes (``Location.nodes`` reads them from a URL): `with_port` gives the ones
  without a port the default known only after parsing (one that follows TLS), `join_hosts`
  writes them as a network location (``a:1,b:2``, what messages name), `server_url` as the
  redacted URL (no credentials, no query).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeAlias
from urllib.parse import urlsplit

from eventwire.errors import InvalidURLError

__all__ = ["HostPort", "address", "join_host", "join_hosts", "server_url", "with_port"]

#: One server of a backend: ``(host, port)``, the host without brackets.
HostPort: TypeAlias = tuple[str, int]


def address(item: str, default_port: int, where: str) -> HostPort:
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


def with_port(nodes: Iterable[HostPort], port: int) -> tuple[HostPort, ...]:
    """`nodes` with `port` where a node has none (``0``): a default that depends on other
    options, such as 5671 with TLS and 5672 without."""
    return tuple((host, node_port or port) for host, node_port in nodes)


def join_hosts(nodes: Iterable[HostPort]) -> str:
    """``host:port,host2:port``: the nodes as a network location, and as messages name them."""
    return ",".join(join_host(host, port) for host, port in nodes)


def server_url(scheme: str, nodes: Iterable[HostPort], path: str = "") -> str:
    """The redacted URL of `nodes`: ``scheme://host:port[,host2:port]path``, every port
    written, no credentials and no query (a backend's ``settings.url``)."""
    return f"{scheme}://{join_hosts(nodes)}{path}"
