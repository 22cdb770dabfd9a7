"""Options of the redis backend: ``redis://[[user]:password@]host[:port][/db][?option=value&...]``.

``rediss://`` for TLS. ``redis+sentinel://[[user]:password@]sentinel1:26379[,sentinel2...]
/SERVICE[/db]`` finds the master of SERVICE through Redis Sentinel (and the master again
after a failover); the credentials are the master's, the sentinels are asked without.
Keyword options (``EventBus(..., backend_options={...})``) win over the
URL's query. `RedisConnection` holds what a connection needs (the `RedisIdempotencyStore`
takes those); `RedisSettings` adds how the backend uses streams.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from eventwire import backendkit
from eventwire.backendkit import (
    ByteSize,
    CredentialOptions,
    HostPort,
    Location,
    Seconds,
    TlsOptions,
    option,
)
from eventwire.errors import ConfigurationError, InvalidURLError

from eventwire_redis._info import MAX_MESSAGE_BYTES, SCHEMES

__all__ = ["RedisConnection", "RedisSettings"]

_EXAMPLE = "redis://host:6379/0"
_SENTINEL_EXAMPLE = (
    "redis+sentinel://sentinel1:26379,sentinel2:26379/SERVICE[/db] (the sentinels and the "
    "name of the master they watch)"
)


@dataclasses.dataclass(frozen=True, kw_only=True)
class RedisConnection(CredentialOptions, TlsOptions):
    """How to reach the server: location, credentials, TLS, timeouts."""

    backend = "redis"
    schemes = SCHEMES

    scheme: str = "redis"
    host: str = "127.0.0.1"
    port: int = 6379
    #: ``redis+sentinel://``: the sentinels (host, port) and the master's service name.
    sentinels: tuple[HostPort, ...] = ()
    service: str = ""
    username: str | None = option(
        None, "ACL user (`AUTH user pass`); none: the default user", default_doc="from the URL"
    )
    db: int = option(0, "database number", minimum=0, default_doc="from the URL path, else 0")
    client_name: str | None = option(None, "`CLIENT SETNAME` of the connections")
    connect_timeout: Seconds = option(
        5.0, "connecting fails with `BackendUnavailableError` within this", minimum=0.01
    )
    socket_timeout: Seconds = option(
        10.0,
        "one command's reply (of a pipelined publish: the replies of one round trip, up to "
        "1,000 commands); must exceed `block`",
        minimum=0.5,
    )
    reconnect_timeout: Seconds = option(
        30.0,
        "how long `publish` (and a closing member's last acks) retry while the server is "
        "away, then `PublishError`",
        minimum=0,
    )

    @classmethod
    def from_location(cls, location: Location) -> dict[str, Any]:
        parts = [p for p in location.path.split("/") if p]
        values: dict[str, Any] = {"scheme": location.scheme, **location.credentials()}
        if location.scheme.endswith("+sentinel"):
            values["sentinels"] = location.nodes(26379, example=_SENTINEL_EXAMPLE, noun="sentinel")
            if len(parts) not in (1, 2) or not all(p.isdigit() for p in parts[1:]):
                raise InvalidURLError(
                    f"{location.redacted!r} needs the master's service name as its path (then "
                    f"at most a database number); write {_SENTINEL_EXAMPLE}"
                )
            values["service"] = parts.pop(0)
        elif nodes := location.nodes(6379, example=_EXAMPLE, required=False):
            if len(nodes) > 1:
                raise InvalidURLError(
                    f"{location.redacted!r} names several hosts; the redis backend connects "
                    f"to one: write {_EXAMPLE}"
                )
            values["host"], values["port"] = nodes[0]
        if parts:
            db = "/".join(parts)
            if not db.isdigit():
                raise ConfigurationError(
                    f"{location.redacted!r}: the database {db!r} is not a number; write "
                    f"{_EXAMPLE} (databases are numbered from 0)"
                )
            values["db"] = int(db)
        return values

    def __post_init__(self) -> None:
        if self.scheme == "rediss":
            object.__setattr__(self, "tls", True)
        super().__post_init__()
        if self.sentinels and self.tls:
            raise ConfigurationError(
                "the redis backend does not speak TLS through Sentinel; use redis+sentinel:// "
                "on a trusted network, or rediss://host:6380 to one server"
            )
        # rediss:// and the TLS options mean the same: the redacted URL says which.
        scheme = ("rediss" if self.tls else "redis") + ("+sentinel" if self.sentinels else "")
        object.__setattr__(self, "scheme", scheme)
        if self.sentinels:
            url = backendkit.server_url(scheme, self.sentinels, f"/{self.service}/{self.db}")
        else:
            url = backendkit.server_url(scheme, [(self.host, self.port)], f"/{self.db}")
        object.__setattr__(self, "url", url)


@dataclasses.dataclass(frozen=True, kw_only=True)
class RedisSettings(RedisConnection):
    """Everything the backend needs: the connection, and how it uses streams."""

    shards: int = option(
        8,
        "streams per new channel: the most members that can work at once on one group. "
        "Fixed when the channel is first used (stored in `<channel>:meta`)",
        minimum=1,
    )
    maxlen: int = option(
        100_000,
        "retention: entries kept per shard stream (`XADD ... MAXLEN ~`, approximate: Redis "
        "trims whole nodes); `0` keeps everything",
        minimum=0,
    )
    retention: Seconds | None = option(
        None, "retention by age in seconds instead (`XADD ... MINID ~`)", minimum=1
    )
    lease_ttl: Seconds = option(
        5.0,
        "a member that stops renewing its shard leases this long loses them: how fast a "
        "crashed member's events come back",
        minimum=0.5,
    )
    claim_min_idle: Seconds = option(
        0.0, "also wait until pending entries are idle this long before claiming them", minimum=0
    )
    fetch_count: int = option(
        200,
        "entries one read takes per shard (at most the subscription's `max_in_flight`)",
        minimum=1,
    )
    block: Seconds = option(
        0.2,
        "how long a read waits on the server for new entries; also how fast a member "
        "notices a rebalance",
        minimum=0.01,
        below="socket_timeout",
    )
    prefix: str = option("", "prefix of every key the backend creates")
    replica_acks: int | None = option(
        None,
        "replicas that must have a publish before it is confirmed (`WAIT`); fewer within "
        "`replica_timeout` fail it with `PublishError`",
        minimum=0,
        default_doc="1 with `redis+sentinel://`, else 0",
    )
    replica_timeout: Seconds = option(
        2.0, "how long a publish waits for `replica_acks` replicas", minimum=0.01
    )
    max_message_bytes: ByteSize = option(
        MAX_MESSAGE_BYTES,
        "largest event (body, key and headers); lowered to the server's "
        "`proto-max-bulk-len` if smaller",
        minimum=1024,
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.replica_acks is None:
            object.__setattr__(self, "replica_acks", 1 if self.sentinels else 0)
        if any(c.isspace() for c in self.prefix):
            raise ConfigurationError(
                f"redis backend option prefix={self.prefix!r} is invalid; give a key prefix "
                "without spaces, e.g. 'shop:'"
            )
