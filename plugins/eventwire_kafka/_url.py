"""Parsing ``kafka://`` URLs and backend options into `KafkaSettings`.

``kafka://[user[:password]@]host[:port][,host[:port]...][?option=value&...]``; options may
also be given as ``EventBus(..., backend_options={...})``, which win over the URL. Secrets
(``password``, ``ssl_password``) are kept out of every repr and of `KafkaSettings.url`.
"""

from __future__ import annotations

import dataclasses
import ssl
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from eventwire.errors import ConfigurationError, InvalidURLError

from eventwire_kafka._info import DEFAULT_MAX_MESSAGE_BYTES

__all__ = ["DEFAULTS", "OPTIONS", "KafkaSettings", "parse_settings"]

DEFAULT_PORT = 9092
SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
COMPRESSION_TYPES = ("gzip", "snappy", "lz4", "zstd")

#: Default of every tunable option (see docs/backends/kafka.md for what each one costs).
DEFAULTS: Mapping[str, Any] = {
    "partitions": 8,
    "replication_factor": -1,
    "max_message_bytes": DEFAULT_MAX_MESSAGE_BYTES,
    "client_id": "eventwire",
    "connect_timeout": 10.0,
    "request_timeout_ms": 30_000,
    "session_timeout_ms": 10_000,
    "heartbeat_interval_ms": 1_000,
    "max_poll_interval_ms": 300_000,
    "revoke_timeout_ms": 30_000,
    "commit_interval_ms": 200,
    "fetch_max_records": 1000,
    "max_partition_fetch_bytes": 1024 * 1024,
    "linger_ms": 0,
}

_SECRETS = ("password", "ssl_password")


def _shown(value: object) -> str:
    """An option value for an error message: numbers as they are, any other text by its
    length only (a secret given to the wrong option is never echoed)."""
    if isinstance(value, bool | int | float):
        return repr(value)
    text = str(value)
    if len(text) <= 20 and text.strip().lstrip("-").replace(".", "", 1).isdigit():
        return repr(value)
    return f"<{type(value).__name__} of {len(text)} characters>"


def _int(low: int, *, allow: tuple[int, ...] = ()) -> Callable[[str, object], int]:
    def convert(name: str, value: object) -> int:
        if isinstance(value, bool):
            number = None
        elif isinstance(value, int):
            number = value
        elif isinstance(value, str) and value.strip().lstrip("-").isdigit():
            number = int(value.strip())
        else:
            number = None
        if number is None or (number < low and number not in allow):
            extra = f" (or {', '.join(map(str, allow))})" if allow else ""
            raise ConfigurationError(
                f"kafka backend option {name}={_shown(value)} is invalid; give a whole number "
                f">= {low}{extra}"
            )
        return number

    return convert


def _float(low: float) -> Callable[[str, object], float]:
    def convert(name: str, value: object) -> float:
        try:
            number = float(value) if not isinstance(value, bool) else None  # type: ignore[arg-type]
        except (TypeError, ValueError):
            number = None
        if number is None or not number > low:
            raise ConfigurationError(
                f"kafka backend option {name}={_shown(value)} is invalid; give a number > {low}"
            )
        return number

    return convert


def _bool(name: str, value: object) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ConfigurationError(
        f"kafka backend option {name}={_shown(value)} is invalid; give true or false"
    )


def _choice(choices: tuple[str, ...], *, upper: bool = True) -> Callable[[str, object], str]:
    def convert(name: str, value: object) -> str:
        text = str(value).strip()
        text = text.upper() if upper else text.lower()
        if text not in choices:
            raise ConfigurationError(
                f"kafka backend option {name}={_shown(value)} is invalid; choose one of "
                f"{', '.join(choices)}"
            )
        return text

    return convert


def _text(name: str, value: object) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigurationError(f"kafka backend option {name} must be a non-empty string")
    return value


def _ssl_context(name: str, value: object) -> ssl.SSLContext:
    if not isinstance(value, ssl.SSLContext):
        raise ConfigurationError(
            f"kafka backend option {name} must be an ssl.SSLContext (give it in "
            f"backend_options), got {type(value).__name__}"
        )
    return value


_CONVERTERS: dict[str, Callable[[str, object], Any]] = {
    # topics the backend creates
    "partitions": _int(1),
    "replication_factor": _int(1, allow=(-1,)),
    "max_message_bytes": _int(1024),
    # authentication and TLS
    "username": _text,
    "password": _text,
    "sasl_mechanism": _choice(SASL_MECHANISMS),
    "security_protocol": _choice(SECURITY_PROTOCOLS),
    "ssl": _bool,
    "ssl_cafile": _text,
    "ssl_certfile": _text,
    "ssl_keyfile": _text,
    "ssl_password": _text,
    "ssl_check_hostname": _bool,
    "ssl_context": _ssl_context,
    # client
    "client_id": _text,
    "connect_timeout": _float(0.0),
    "request_timeout_ms": _int(1000),
    # consumer groups: how fast a crashed member's events come back
    "session_timeout_ms": _int(1000),
    "heartbeat_interval_ms": _int(100),
    "max_poll_interval_ms": _int(1000),
    "revoke_timeout_ms": _int(0),
    "commit_interval_ms": _int(10),
    # throughput
    "fetch_max_records": _int(1),
    "max_partition_fetch_bytes": _int(1024),
    "linger_ms": _int(0),
    "compression_type": _choice(COMPRESSION_TYPES, upper=False),
}

#: Every option the kafka backend knows, sorted.
OPTIONS: tuple[str, ...] = tuple(sorted(_CONVERTERS))


@dataclasses.dataclass(frozen=True)
class KafkaSettings:
    """Everything the backend needs to connect, from the URL and options."""

    url: str
    hosts: tuple[str, ...]
    partitions: int
    replication_factor: int
    max_message_bytes: int
    client_id: str
    connect_timeout: float
    request_timeout_ms: int
    session_timeout_ms: int
    heartbeat_interval_ms: int
    max_poll_interval_ms: int
    revoke_timeout_ms: int
    commit_interval_ms: int
    fetch_max_records: int
    max_partition_fetch_bytes: int
    linger_ms: int
    compression_type: str | None
    security_protocol: str
    sasl_mechanism: str | None
    username: str | None = dataclasses.field(default=None, repr=False)
    password: str | None = dataclasses.field(default=None, repr=False)
    ssl_context: ssl.SSLContext | None = dataclasses.field(default=None, repr=False)

    @property
    def uses_ssl(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    @property
    def uses_sasl(self) -> bool:
        return self.security_protocol.startswith("SASL_")


def _split_url(url: str) -> tuple[str | None, str | None, tuple[str, ...], dict[str, str]]:
    """User, password, ``host:port`` list and query options of a ``kafka://`` URL."""
    if not isinstance(url, str) or "://" not in url:
        raise InvalidURLError("a kafka URL looks like kafka://host:9092[,host2:9092]")
    scheme, rest = url.split("://", 1)
    if scheme.lower() != "kafka":
        raise InvalidURLError(f"{scheme}:// is not a kafka URL; write kafka://host:9092")
    try:
        parts = urlsplit("kafka://" + rest)
    except ValueError:
        raise InvalidURLError("the kafka URL is malformed; write kafka://host:9092") from None
    netloc = parts.netloc
    user = password = None
    if "@" in netloc:
        userinfo, netloc = netloc.rsplit("@", 1)
        name, sep, secret = userinfo.partition(":")
        user = unquote(name) or None
        password = unquote(secret) if sep else None
    where = f"kafka://{netloc}{parts.path}"
    if parts.path not in ("", "/") or parts.fragment:
        raise InvalidURLError(
            f"{where!r} has a path or fragment; a kafka URL is kafka://host:9092[,host2:9092]"
            "[?option=value]"
        )
    hosts: list[str] = []
    for item in netloc.split(","):
        item = item.strip()
        if not item:
            continue
        if item.startswith("["):  # [ipv6]:port
            host, _, port = item[1:].partition("]")
            port = port.removeprefix(":")
            host = f"[{host}]"
        elif item.count(":") == 1:
            host, port = item.split(":")
        else:
            host, port = item, ""
        if not host or (port and not port.isdigit()) or (port and not 0 < int(port) < 65536):
            raise InvalidURLError(
                f"{where!r} has an invalid broker address {item!r}; write host:port"
            )
        hosts.append(f"{host}:{port or DEFAULT_PORT}")
    if not hosts:
        raise InvalidURLError(
            f"{where!r} names no broker; write kafka://host:9092 (several: host1:9092,host2:9092)"
        )
    try:
        query = dict(parse_qsl(parts.query, keep_blank_values=True, strict_parsing=True))
    except ValueError:
        if parts.query:
            raise InvalidURLError(
                f"{where!r} has a malformed query; write e.g. kafka://host:9092?partitions=12"
            ) from None
        query = {}
    return user, password, tuple(hosts), query


def _build_ssl(values: Mapping[str, Any]) -> ssl.SSLContext:
    context: ssl.SSLContext | None = values.get("ssl_context")
    if context is not None:
        return context
    try:
        context = ssl.create_default_context(cafile=values.get("ssl_cafile"))
        if values.get("ssl_certfile"):
            context.load_cert_chain(
                values["ssl_certfile"],
                keyfile=values.get("ssl_keyfile"),
                password=values.get("ssl_password"),
            )
    except (OSError, ssl.SSLError) as exc:
        # The message names files, never the key's password.
        raise ConfigurationError(
            f"kafka backend TLS setup failed ({type(exc).__name__}: "
            f"{getattr(exc, 'strerror', None) or 'cannot load the certificate files'}); check "
            "ssl_cafile, ssl_certfile, ssl_keyfile and ssl_password"
        ) from None
    if not values.get("ssl_check_hostname", True):
        context.check_hostname = False
    return context


def parse_settings(url: str, options: Mapping[str, Any] | None) -> KafkaSettings:
    """`KafkaSettings` from `url` and `options` (options win); errors name the option."""
    user, password, hosts, query = _split_url(url)
    raw: dict[str, Any] = {**query, **dict(options or {})}
    unknown = sorted(set(raw) - set(_CONVERTERS))
    if unknown:
        raise ConfigurationError(
            f"unknown kafka backend option(s) {', '.join(map(repr, unknown))}; the kafka "
            f"backend knows: {', '.join(OPTIONS)}"
        )
    values: dict[str, Any] = {name: _CONVERTERS[name](name, value) for name, value in raw.items()}
    username = values.get("username", user)
    secret = values.get("password", password)
    if (username is None) != (secret is None):
        raise ConfigurationError(
            "kafka backend authentication needs both a user name and a password (URL "
            "kafka://user:password@host:9092 or options username and password)"
        )
    tls_asked = values.get("ssl", False) or any(
        name in values for name in ("ssl_cafile", "ssl_certfile", "ssl_context")
    )
    protocol = values.get("security_protocol")
    if protocol is None:
        if username is not None:
            protocol = "SASL_SSL" if tls_asked else "SASL_PLAINTEXT"
        else:
            protocol = "SSL" if tls_asked else "PLAINTEXT"
    if protocol.startswith("SASL_") and username is None:
        raise ConfigurationError(
            f"security_protocol={protocol} needs a user name and password (URL "
            "kafka://user:password@host:9092 or options username and password)"
        )
    if not protocol.startswith("SASL_") and username is not None:
        raise ConfigurationError(
            f"credentials were given but security_protocol={protocol} does not use SASL; use "
            "SASL_PLAINTEXT or SASL_SSL"
        )
    mechanism = values.get("sasl_mechanism")
    if protocol.startswith("SASL_"):
        mechanism = mechanism or "PLAIN"
    elif mechanism is not None:
        raise ConfigurationError(
            f"sasl_mechanism={mechanism} needs security_protocol SASL_PLAINTEXT or SASL_SSL"
        )
    context = _build_ssl(values) if protocol in ("SSL", "SASL_SSL") else None
    merged = {**DEFAULTS, **values}
    if merged["heartbeat_interval_ms"] * 3 > merged["session_timeout_ms"]:
        raise ConfigurationError(
            f"heartbeat_interval_ms={merged['heartbeat_interval_ms']} must be at most a third "
            f"of session_timeout_ms={merged['session_timeout_ms']}"
        )
    if merged["revoke_timeout_ms"] >= merged["max_poll_interval_ms"]:
        raise ConfigurationError(
            f"revoke_timeout_ms={merged['revoke_timeout_ms']} must be below "
            f"max_poll_interval_ms={merged['max_poll_interval_ms']} (Kafka's rebalance timeout)"
        )
    return KafkaSettings(
        url="kafka://" + ",".join(hosts),
        hosts=hosts,
        partitions=merged["partitions"],
        replication_factor=merged["replication_factor"],
        max_message_bytes=merged["max_message_bytes"],
        client_id=merged["client_id"],
        connect_timeout=merged["connect_timeout"],
        request_timeout_ms=merged["request_timeout_ms"],
        session_timeout_ms=merged["session_timeout_ms"],
        heartbeat_interval_ms=merged["heartbeat_interval_ms"],
        max_poll_interval_ms=merged["max_poll_interval_ms"],
        revoke_timeout_ms=merged["revoke_timeout_ms"],
        commit_interval_ms=merged["commit_interval_ms"],
        fetch_max_records=merged["fetch_max_records"],
        max_partition_fetch_bytes=merged["max_partition_fetch_bytes"],
        linger_ms=merged["linger_ms"],
        compression_type=merged.get("compression_type"),
        security_protocol=protocol,
        sasl_mechanism=mechanism,
        username=username,
        password=secret,
        ssl_context=context,
    )
