"""The rabbit backend's options:
``amqp[s]://[user[:password]@]host[:port][,host2[:port]...][/vhost][?opt=v]``.

Several hosts name the nodes of one cluster: the backend connects to the first that answers
and, when its node dies, to the next (`eventwire_rabbit._failover`)."""

from __future__ import annotations

import dataclasses
import re
from typing import Any
from urllib.parse import quote

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
from eventwire.errors import ConfigurationError

from eventwire_rabbit._info import MAX_MESSAGE_BYTES, SCHEMES, SLOTS

__all__ = ["RabbitSettings"]

_AGE = re.compile(r"^[0-9]+[YMDhms]$")
_EXAMPLE = (
    "amqp://user:password@localhost:5672/vhost "
    "(a cluster: amqp://user:password@node1:5672,node2:5672,node3:5672/vhost)"
)


@dataclasses.dataclass(frozen=True, kw_only=True)
class RabbitSettings(CredentialOptions, TlsOptions):
    """Everything the backend needs to connect and to lay out its topology."""

    backend = "rabbit"
    schemes = SCHEMES

    scheme: str = "amqp"
    #: Every node of the URL as (host, port), the first one first; a port the URL leaves out
    #: is resolved after parsing (5671 with TLS, else 5672).
    nodes: tuple[HostPort, ...] = (("localhost", 0),)
    username: str | None = option("guest", "user name", default_doc="from the URL (`guest`)")
    vhost: str = option("/", "virtual host", default_doc="from the URL's path (`/`)")
    external_auth: bool = option(
        False, "SASL EXTERNAL: authenticate with the client certificate (needs `cert_file`)"
    )
    connect_timeout: Seconds = option(
        5.0,
        "seconds: a broker that does not answer fails `connect` with "
        "`BackendUnavailableError` within this",
        minimum=0.1,
    )
    heartbeat: int = option(
        10, "AMQP heartbeat in seconds (detects a dead broker connection)", minimum=0
    )
    reconnect_interval: Seconds = option(
        1.0,
        "seconds of pause between reconnection attempts after the connection dropped",
        minimum=0.05,
    )
    publish_timeout: Seconds = option(
        30.0,
        "seconds `publish` waits for confirms, including a reconnection, before `PublishError`; "
        "also the bound on opening a channel for declarations and on each declaration",
        minimum=0.1,
    )
    shards: int = option(
        8,
        "queues per group (at most 64); the most members that can work at once on one group",
        minimum=1,
        maximum=SLOTS,
    )
    prefetch: int | None = option(
        None,
        "unacked deliveries per shard and member",
        minimum=1,
        default_doc="from `max_in_flight`: max(16, 2 * max_in_flight / shards)",
    )
    member_heartbeat: Seconds = option(
        0.5,
        "seconds between a member's announcements to its group",
        minimum=0.05,
        below="lease_ttl",
    )
    lease_ttl: Seconds = option(
        3.0,
        "seconds: a member unheard of this long is dead: the others take its shards",
        minimum=0.2,
        formerly=("member_lease",),
    )
    release_timeout: Seconds = option(
        30.0,
        "seconds a member giving a shard up waits for its handlers before closing anyway",
        minimum=0.1,
    )
    delivery_limit: int = option(
        20,
        "broker-side backstop: a message returned this often is dead-lettered by RabbitMQ (0: off)",
        minimum=0,
    )
    group_expires: Seconds | None = option(
        None,
        "seconds: delete a group's queues after this long without any consumer (`x-expires`); for "
        "test or short-lived groups",
        minimum=1,
    )
    history: bool = option(
        True,
        "keep a history stream per channel (`from_beginning`, `browse`); `false` makes G14 "
        "unsupported",
    )
    history_max_age: str = option(
        "7D", "history retention by age, a RabbitMQ age (units `Y M D h m s`: `7D`, `12h`)"
    )
    history_max_bytes: ByteSize = option(
        1 << 30, "history retention by size, per channel", minimum=1
    )
    quorum_size: int | None = option(
        None,
        "nodes holding each queue and history stream the backend creates "
        "(`x-quorum-initial-group-size`, `x-initial-cluster-size`)",
        minimum=1,
        default_doc="RabbitMQ's: every node of the cluster",
    )
    max_message_size: ByteSize = option(
        MAX_MESSAGE_BYTES,
        "the broker's `max_message_size`; larger events fail at publish with "
        "`MessageTooLargeError`",
        minimum=1,
    )

    @classmethod
    def from_location(cls, location: Location) -> dict[str, Any]:
        return {
            "scheme": location.scheme,
            "nodes": location.nodes(0, example=_EXAMPLE),
            "vhost": location.path.removeprefix("/") or "/",
            **location.credentials(),
        }

    def __post_init__(self) -> None:
        if self.scheme == "amqps":
            object.__setattr__(self, "tls", True)
        super().__post_init__()
        object.__setattr__(self, "scheme", "amqps" if self.tls else "amqp")
        if self.external_auth and not self.cert_file:
            raise ConfigurationError(
                "rabbit backend option external_auth=true needs a client certificate (cert_file)"
            )
        if not _AGE.match(self.history_max_age):
            raise ConfigurationError(
                f"rabbit backend option history_max_age={self.history_max_age!r} must be a "
                "RabbitMQ age such as '7D', '12h', '30m' or '90s' (units Y M D h m s)"
            )
        # Derived values: the default port follows TLS, the redacted URL says amqps for TLS.
        nodes = backendkit.with_port(self.nodes, 5671 if self.tls else 5672)
        vhost = "" if self.vhost == "/" else quote(self.vhost, safe="")
        object.__setattr__(self, "nodes", nodes)
        object.__setattr__(self, "url", backendkit.server_url(self.scheme, nodes, f"/{vhost}"))

    def amqp_url(self, node: int = 0) -> str:
        """The URL of the `node`-th node handed to the client library (credentials inside,
        never logged by us)."""
        password = "guest" if self.password is None else self.password
        user = (
            ""
            if self.external_auth
            else f"{quote(self.username or 'guest', safe='')}:{quote(password, safe='')}@"
        )
        vhost = quote(self.vhost, safe="")
        host = backendkit.join_host(*self.nodes[node])
        return f"{self.scheme}://{user}{host}/{vhost}?heartbeat={self.heartbeat}"
