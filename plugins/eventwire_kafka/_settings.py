"""The kafka backend's options: ``kafka://[user[:password]@]host[:port][,host[:port]...]``.

Options may be given in the query or as ``EventBus(..., backend_options={...})`` (which win).
The security protocol is inferred from credentials and TLS options unless given; the TLS
context is built here, so a missing certificate file fails at construction.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from eventwire import backendkit
from eventwire.backendkit import (
    ByteSize,
    CredentialOptions,
    Location,
    Seconds,
    TlsOptions,
    option,
)
from eventwire.errors import ConfigurationError, InvalidURLError

from eventwire_kafka._info import DEFAULT_MAX_MESSAGE_BYTES, SCHEMES

__all__ = ["KafkaSettings"]

DEFAULT_PORT = 9092

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
_CREDENTIALS = (
    "(URL kafka://user:password@host:9092, or the options username and password, "
    "password_env or password_file)"
)


@dataclasses.dataclass(frozen=True, kw_only=True)
class KafkaSettings(CredentialOptions, TlsOptions):
    """Everything the backend needs to connect, from the URL and options."""

    backend = "kafka"
    schemes = SCHEMES

    #: ``host:port`` of every bootstrap broker (port defaulted to 9092).
    hosts: tuple[str, ...] = ()
    partitions: int = option(
        8, "partitions of the topics the backend creates (channel and `<channel>.dlq`)", minimum=1
    )
    replication_factor: int | None = option(
        None,
        "replication of created topics; `-1` = the broker's `default.replication.factor`",
        minimum=-1,
        default_doc="min(3, brokers in the cluster)",
    )
    min_insync_replicas: int | None = option(
        None,
        "`min.insync.replicas` of created topics: replicas that must have a publish before "
        "it is confirmed (`acks=all`)",
        minimum=1,
        default_doc="2 when the replication factor is 3 or more, else the broker's",
    )
    max_message_bytes: ByteSize = option(
        DEFAULT_MAX_MESSAGE_BYTES,
        "`max.message.bytes` of created topics; the bus refuses bigger events at publish",
        minimum=1024,
    )
    username: str | None = option(
        None, "SASL user name (kept out of logs too)", secret=True, default_doc="from the URL"
    )
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = option(
        None,
        "`PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512`",
        default_doc="from the credentials: `PLAIN`",
    )
    security_protocol: SecurityProtocol | None = option(
        None,
        "`PLAINTEXT`, `SSL`, `SASL_PLAINTEXT` or `SASL_SSL`",
        default_doc="from the credentials and TLS options",
    )
    client_id: str = option("eventwire", "Kafka client id (consumers add the member name)")
    connect_timeout: Seconds = option(
        10.0,
        "seconds: bound on connecting and joining; past it `BackendUnavailableError`",
        minimum=0.001,
    )
    request_timeout_ms: int = option(
        30_000,
        "how long a publish may wait for the broker (e.g. during a restart) before `PublishError`",
        minimum=1000,
    )
    session_timeout_ms: int = option(
        10_000, "how long a silent (crashed) member keeps its partitions", minimum=1000
    )
    heartbeat_interval_ms: int = option(
        1_000,
        "heartbeat period; at most a third of the session timeout; members learn about "
        "rebalances through it",
        minimum=100,
    )
    max_poll_interval_ms: int = option(
        300_000,
        "Kafka's rebalance timeout; a member blocked longer (backpressure) leaves the group",
        minimum=1000,
    )
    revoke_timeout_ms: int = option(
        30_000,
        "how long a member losing partitions waits for their in-flight events",
        minimum=0,
        below="max_poll_interval_ms",
    )
    commit_interval_ms: int = option(
        200,
        "how often finished offsets are committed (also on revoke and close)",
        minimum=10,
    )
    fetch_count: int = option(
        250,
        "records per `getmany`; up to 16 times as many wait fetched ahead of the handlers",
        minimum=1,
        formerly=("fetch_max_records",),
    )
    fetch_max_wait_ms: int = option(
        100,
        "how long the broker holds a fetch for partitions with nothing new; aiokafka sends no "
        "other fetch to that broker meanwhile, so a drain can stall this long",
        minimum=0,
    )
    max_partition_fetch_bytes: ByteSize = option(
        1024 * 1024,
        "prefetch per partition (bounds memory while a handler is slow)",
        minimum=1024,
    )
    linger_ms: int = option(0, "producer batching delay", minimum=0)
    max_batch_bytes: ByteSize = option(
        1024 * 1024,
        "producer record batch per partition (at most `max_message_bytes`): concurrent "
        "publishes beyond one full batch wait for it to be sent, and that wait counts against "
        "`request_timeout_ms`",
        minimum=1024,
    )
    compression_type: Literal["gzip", "snappy", "lz4", "zstd"] | None = option(
        None, "`gzip`, `snappy`, `lz4` or `zstd` (the codec's library must be installed)"
    )

    @classmethod
    def from_location(cls, location: Location) -> dict[str, Any]:
        example = "kafka://host:9092 (several: host1:9092,host2:9092)"
        if location.path not in ("", "/"):
            raise InvalidURLError(f"{location.redacted!r} has a path; write {example}")
        nodes = location.nodes(DEFAULT_PORT, example=example, noun="broker")
        return {
            "hosts": tuple(backendkit.join_host(*node) for node in nodes),
            "url": backendkit.server_url("kafka", nodes),
            **location.credentials(),
        }

    def __post_init__(self) -> None:
        if self.security_protocol in ("SSL", "SASL_SSL"):
            object.__setattr__(self, "tls", True)
        super().__post_init__()
        if self.replication_factor == 0:
            raise ConfigurationError(
                "kafka backend option replication_factor=0 is invalid; give -1 (the broker's "
                "default) or a whole number >= 1"
            )
        if (
            self.min_insync_replicas is not None
            and self.replication_factor is not None
            and self.replication_factor > 0
            and self.min_insync_replicas > self.replication_factor
        ):
            raise ConfigurationError(
                f"kafka backend option min_insync_replicas={self.min_insync_replicas} is above "
                f"replication_factor={self.replication_factor}; every publish would be refused"
            )
        if (self.username is None) != (self.password is None):
            raise ConfigurationError(
                f"kafka backend authentication needs both a user name and a password {_CREDENTIALS}"
            )
        protocol = self.security_protocol or self._inferred_protocol()
        sasl = protocol.startswith("SASL_")
        if sasl and self.username is None:
            raise ConfigurationError(
                f"security_protocol={protocol} needs a user name and password {_CREDENTIALS}"
            )
        if not sasl and self.username is not None:
            raise ConfigurationError(
                f"credentials were given but security_protocol={protocol} does not use SASL; "
                "use SASL_PLAINTEXT or SASL_SSL"
            )
        if not sasl and self.sasl_mechanism is not None:
            raise ConfigurationError(
                f"sasl_mechanism={self.sasl_mechanism} needs security_protocol SASL_PLAINTEXT "
                "or SASL_SSL"
            )
        if self.heartbeat_interval_ms * 3 > self.session_timeout_ms:
            raise ConfigurationError(
                f"heartbeat_interval_ms={self.heartbeat_interval_ms} must be at most a third "
                f"of session_timeout_ms={self.session_timeout_ms}"
            )
        # Derived values: the resolved protocol and mechanism, and the TLS context.
        object.__setattr__(self, "security_protocol", protocol)
        if sasl and self.sasl_mechanism is None:
            object.__setattr__(self, "sasl_mechanism", "PLAIN")
        if self.uses_ssl:
            object.__setattr__(self, "ssl_context", self.tls_context())
        elif self.tls:
            raise ConfigurationError(
                f"TLS options were given but security_protocol={protocol} does not use TLS; "
                "use SSL or SASL_SSL"
            )

    def _inferred_protocol(self) -> SecurityProtocol:
        if self.username is not None:
            return "SASL_SSL" if self.tls else "SASL_PLAINTEXT"
        return "SSL" if self.tls else "PLAINTEXT"

    @property
    def uses_ssl(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    @property
    def uses_sasl(self) -> bool:
        return bool(self.security_protocol and self.security_protocol.startswith("SASL_"))
