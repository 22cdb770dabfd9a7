"""The nats backend's options: ``nats://[user:password@]host1:4222[,host2:4222][?option=value]``.

``nats://token@host:4222`` gives a token. Credentials are taken out of the URL here, so the
server addresses handed to the client library never carry them and ``url`` is safe to log.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Literal

from eventwire import backendkit
from eventwire.backendkit import CredentialOptions, Location, Seconds, TlsOptions, option
from eventwire.errors import ConfigurationError, InvalidURLError

from eventwire_nats._info import SCHEMES

__all__ = ["NatsSettings"]

DEFAULT_PORT = 4222
_BUCKET = re.compile(r"^[a-zA-Z0-9_-]+$")
_AUTH = ("token", "credentials_file", "nkey_seed_file", "nkey_seed")
_NEEDS_NKEYS = "; needs the `nkeys` package"


@dataclasses.dataclass(frozen=True, kw_only=True)
class NatsSettings(CredentialOptions, TlsOptions):
    """Everything the nats backend needs to connect and to build its topology."""

    backend = "nats"
    schemes = SCHEMES

    #: The URL's servers, ``host:port`` (the port defaulted).
    hosts: tuple[str, ...] = ()
    #: Every server to connect to (``nats://host:port``): the URL's, then ``servers``.
    addresses: tuple[str, ...] = dataclasses.field(default=(), init=False)

    servers: tuple[str, ...] = option(
        (), "more server addresses (`h2:4222,h3`), added to the URL's"
    )
    token: str | None = option(
        None, "token authentication (`nats://token@host`)", secret=True, default_doc="from the URL"
    )
    credentials_file: str | None = option(None, "a `.creds` file (JWT + NKEY seed)" + _NEEDS_NKEYS)
    nkey_seed_file: str | None = option(None, "an NKEY seed file" + _NEEDS_NKEYS)
    nkey_seed: str | None = option(None, "an NKEY seed itself" + _NEEDS_NKEYS, secret=True)
    tls_hostname: str | None = option(None, "server name to verify the certificate against")
    tls_handshake_first: bool = option(
        False, "TLS before the server's INFO (server option `handshake_first`)"
    )
    name: str = option("eventwire", "connection name shown by the server")
    connect_timeout: Seconds = option(
        5.0, "the first connect fails with `BackendUnavailableError` within this", minimum=0.1
    )
    reconnect_wait: Seconds = option(
        0.5, "pause between reconnect attempts after a lost connection", minimum=0
    )
    max_reconnect_attempts: int = option(
        -1, "reconnect attempts after a lost connection (`-1`: forever)", minimum=-1
    )
    request_timeout: Seconds = option(5.0, "one JetStream API request", minimum=0.1)
    publish_timeout: Seconds = option(
        15.0,
        "how long `publish` keeps resending until every message is confirmed, then "
        "`PublishError`; also how long `subscribe` retries the JetStream requests that set up "
        "its group when they time out",
        minimum=0.1,
    )
    shards: int = option(
        8,
        "subjects per new channel: the most members that can work at once on one group",
        minimum=1,
        maximum=1024,
    )
    ack_wait: Seconds = option(
        5.0, "an unacknowledged message is delivered again after this (see below)", minimum=1
    )
    lease_ttl: Seconds = option(
        5.0, "a member that stopped renewing its leases this long loses its shards", minimum=1
    )
    lease_bucket: str = option("eventwire_leases", "the key-value bucket of memberships and leases")
    storage: Literal["file", "memory"] = option(
        "file", "`file` or `memory`, for the streams the backend creates"
    )
    replicas: int | None = option(
        None,
        "replicas of the streams and key-value buckets the backend creates",
        minimum=1,
        maximum=5,
        default_doc="min(3, servers in the cluster): 1 on a single server",
    )
    max_age: Seconds = option(
        0.0, "retention: how long a stream keeps a message (`0`: for ever)", minimum=0
    )
    max_bytes: int = option(-1, "retention: bytes per stream (`-1`: unlimited)", minimum=-1)
    max_msgs: int = option(-1, "retention: messages per stream (`-1`: unlimited)", minimum=-1)
    duplicate_window: Seconds = option(
        120.0,
        "how long a stream remembers message ids to drop duplicates (at most `max_age`)",
        minimum=0,
    )
    fetch_count: int = option(
        256, "messages one pull request asks for at most", minimum=1, formerly=("fetch_batch",)
    )

    @classmethod
    def from_location(cls, location: Location) -> dict[str, Any]:
        example = "nats://[user:password@]host[:port][,host2[:port]][?option=value]"
        nodes = location.nodes(DEFAULT_PORT, example=example, noun="server", required=False)
        if location.path.strip("/"):
            raise InvalidURLError(f"{location.redacted!r} has a path; write {example}")
        hosts = tuple(backendkit.join_host(*node) for node in nodes)
        if location.password is None and location.username:  # nats://token@host
            return {"hosts": hosts, "token": location.username}
        return {"hosts": hosts, **location.credentials()}

    def __post_init__(self) -> None:
        if self.tls_hostname or self.tls_handshake_first:
            object.__setattr__(self, "tls", True)
        super().__post_init__()
        # derived from the fields just parsed
        hosts = [*self.hosts, *map(_host, self.servers)]
        hosts = list(dict.fromkeys(hosts)) or [f"127.0.0.1:{DEFAULT_PORT}"]
        object.__setattr__(self, "addresses", tuple(f"nats://{host}" for host in hosts))
        object.__setattr__(self, "url", "nats://" + ",".join(hosts))
        if self.max_age and self.duplicate_window > self.max_age:
            object.__setattr__(self, "duplicate_window", self.max_age)
        if not _BUCKET.match(self.lease_bucket):
            raise ConfigurationError(
                f"nats backend option lease_bucket={self.lease_bucket!r} is invalid; use "
                "letters, digits, '_' and '-'"
            )
        auth = [k for k in _AUTH if getattr(self, k)]
        if self.username or self.password:
            if not (self.username and self.password):
                raise ConfigurationError(
                    "nats backend: give both username and password (or neither)"
                )
            auth.insert(0, "user/password")
        if len(auth) > 1:
            raise ConfigurationError(
                f"nats backend: choose one way to authenticate, got {', '.join(auth)}"
            )

    def security(self) -> Any:
        """FastStream's ``security=`` object for these credentials and TLS, or ``None``."""
        from faststream.nats.security import (
            NatsCredentials,
            NatsNKey,
            NatsSecurity,
            NatsToken,
            NatsUserPassword,
        )

        tls: dict[str, Any] = {
            "ssl_context": self.tls_context() if self.tls else None,
            "use_ssl": self.tls or None,
            "tls_hostname": self.tls_hostname,
            "tls_handshake_first": self.tls_handshake_first,
        }
        try:
            if self.token:
                return NatsToken(self.token, **tls)
            if self.username and self.password is not None:
                return NatsUserPassword(self.username, self.password, **tls)
            if self.credentials_file:
                return NatsCredentials(self.credentials_file, **tls)
            if self.nkey_seed_file:
                return NatsNKey.from_file(self.nkey_seed_file, **tls)
            if self.nkey_seed:
                return NatsNKey.from_seed(self.nkey_seed, **tls)
        except ImportError as exc:
            raise ConfigurationError(
                "nats backend: NKEY and .creds authentication need the 'nkeys' package; "
                "install it with: pip install nkeys"
            ) from exc
        except (OSError, ValueError) as exc:
            raise ConfigurationError(
                f"nats backend: cannot read the NKEY / credentials given: {type(exc).__name__}"
            ) from exc
        return NatsSecurity(**tls) if self.tls else None


def _host(entry: str) -> str:
    """A ``servers`` item, ``host[:port]`` (or ``nats://host:port``), as ``host:port``."""
    entry = entry.strip()
    if "://" in entry:
        scheme, entry = entry.split("://", 1)
        if scheme.lower() not in ("nats", "tls"):
            raise InvalidURLError(
                f"server address {entry!r} in the servers option must be host:port"
            )
    if "@" in entry:
        raise InvalidURLError(
            "put credentials once, before the first host (nats://user:pass@h1,h2), or in the "
            "options username/password/token, not in a server address of the servers option"
        )
    return backendkit.join_host(*backendkit.address(entry, DEFAULT_PORT, "the servers option"))
