"""``nats://`` URLs and backend options: parsing, validation, and keeping secrets out of text.

``nats://[user:password@]host1:4222[,host2:4222][?option=value&...]`` or
``nats://token@host:4222``. Every option can also be given as
``EventBus(..., backend_options={...})`` (which wins over the URL). Credentials are taken out
of the URL here, so the server addresses handed to the client library never carry them and
`NatsSettings.display_url` is safe to log.
"""

from __future__ import annotations

import dataclasses
import re
import ssl
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from eventwire.errors import ConfigurationError, InvalidURLError

__all__ = ["OPTIONS", "SECRET_OPTIONS", "NatsSettings", "parse_nats_url"]

DEFAULT_PORT = 4222

#: Options whose values are secrets: never echoed in errors, reprs or logs.
SECRET_OPTIONS = frozenset({"password", "token", "nkey_seed"})

#: Every option the backend knows, with a one-line description (for error messages and docs).
OPTIONS: Mapping[str, str] = {
    "servers": "extra server addresses, comma-separated (host:port)",
    "user": "user name (or in the URL: nats://user:password@host)",
    "password": "password",
    "token": "authentication token (or in the URL: nats://token@host)",
    "credentials_file": "path of a .creds file (JWT + NKEY seed); needs the 'nkeys' package",
    "nkey_seed_file": "path of an NKEY seed file; needs the 'nkeys' package",
    "nkey_seed": "an NKEY seed itself (SU...); needs the 'nkeys' package",
    "tls": "true: connect with TLS (implied by any other tls_* option)",
    "tls_ca_file": "CA bundle that signs the server certificate",
    "tls_cert_file": "client certificate (mutual TLS)",
    "tls_key_file": "client private key (mutual TLS)",
    "tls_hostname": "server name to verify the certificate against",
    "tls_verify": "false: do not verify the server certificate (testing only)",
    "tls_handshake_first": "true: TLS handshake before the server's INFO (handshake_first)",
    "ssl_context": "an ssl.SSLContext (backend_options only)",
    "name": "connection name shown by the server (default: eventwire)",
    "connect_timeout": "seconds the first connect may take in all (default 5)",
    "reconnect_wait": "seconds between reconnect attempts (default 0.5)",
    "max_reconnect_attempts": "reconnect attempts after a lost connection, -1 = forever (default)",
    "request_timeout": "seconds a JetStream API request may take (default 5)",
    "publish_timeout": "seconds publish keeps retrying until the server confirms (default 15)",
    "shards": "subjects (<channel>.<n>) per new channel stream, the unit of key order (default 8)",
    "ack_wait": "seconds before the server redelivers an unacknowledged message (default 5)",
    "lease_ttl": "seconds a crashed member keeps its shards (default 5)",
    "lease_bucket": "key-value bucket of group membership and shard leases",
    "storage": "file (default) or memory, for the streams this backend creates",
    "replicas": "stream replicas in a cluster (default 1)",
    "max_age": "retention: seconds a message is kept, 0 = forever (default)",
    "max_bytes": "retention: bytes per stream, -1 = unlimited (default)",
    "max_msgs": "retention: messages per stream, -1 = unlimited (default)",
    "duplicate_window": "seconds the stream remembers message ids to drop duplicates (default 120)",
    "fetch_batch": "messages asked for by one pull request at most (default 256)",
}

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNITS = {None: 1.0, "ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
_BUCKET = re.compile(r"^[a-zA-Z0-9_-]+$")


@dataclasses.dataclass(frozen=True, slots=True)
class NatsSettings:
    """Everything the NATS backend needs to connect and to build its topology."""

    servers: tuple[str, ...]
    display_url: str
    user: str | None = dataclasses.field(default=None, repr=False)
    password: str | None = dataclasses.field(default=None, repr=False)
    token: str | None = dataclasses.field(default=None, repr=False)
    credentials_file: str | None = None
    nkey_seed_file: str | None = None
    nkey_seed: str | None = dataclasses.field(default=None, repr=False)
    tls: bool = False
    tls_ca_file: str | None = None
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    tls_hostname: str | None = None
    tls_verify: bool = True
    tls_handshake_first: bool = False
    ssl_context: ssl.SSLContext | None = dataclasses.field(default=None, repr=False)
    name: str = "eventwire"
    connect_timeout: float = 5.0
    reconnect_wait: float = 0.5
    max_reconnect_attempts: int = -1
    request_timeout: float = 5.0
    publish_timeout: float = 15.0
    shards: int = 8
    ack_wait: float = 5.0
    lease_ttl: float = 5.0
    lease_bucket: str = "eventwire_leases"
    storage: str = "file"
    replicas: int = 1
    max_age: float = 0.0
    max_bytes: int = -1
    max_msgs: int = -1
    duplicate_window: float = 120.0
    fetch_batch: int = 256

    def ssl(self) -> ssl.SSLContext | None:
        """The TLS context to connect with, or ``None`` for a plain connection."""
        if self.ssl_context is not None:
            return self.ssl_context
        if not self.tls:
            return None
        context = ssl.create_default_context(cafile=self.tls_ca_file)
        if not self.tls_verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if self.tls_cert_file:
            try:
                context.load_cert_chain(self.tls_cert_file, self.tls_key_file)
            except (OSError, ssl.SSLError) as exc:
                raise ConfigurationError(
                    f"nats backend: cannot load the client certificate {self.tls_cert_file!r} "
                    f"(key {self.tls_key_file!r}): {exc}"
                ) from None
        return context


def _bad(option: str, value: object, what: str) -> ConfigurationError:
    shown = "<hidden>" if option in SECRET_OPTIONS else repr(value)
    return ConfigurationError(f"nats backend option {option}={shown} is invalid; {what}")


def _seconds(option: str, value: object, *, minimum: float = 0.0) -> float:
    if isinstance(value, bool):
        raise _bad(option, value, "give seconds, e.g. 5, 0.5 or '500ms'")
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        number = float(match.group(1)) * _UNITS[match.group(2)]
    else:
        raise _bad(option, value, "give seconds, e.g. 5, 0.5 or '500ms'")
    if number < minimum:
        raise _bad(option, value, f"it must be at least {minimum} seconds")
    return number


def _integer(option: str, value: object, *, minimum: int) -> int:
    if isinstance(value, bool):
        raise _bad(option, value, f"give a whole number >= {minimum}")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
        number = int(value)
    else:
        raise _bad(option, value, f"give a whole number >= {minimum}")
    if number < minimum:
        raise _bad(option, value, f"give a whole number >= {minimum}")
    return number


def _flag(option: str, value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise _bad(option, value, "give true or false")


def _text(option: str, value: object) -> str:
    if not isinstance(value, str) or not value:
        raise _bad(option, value, "give a non-empty string")
    return value


def _host(entry: str, url: str) -> str:
    """``host[:port]`` checked, as ``nats://host:port``."""
    entry = entry.strip()
    if not entry:
        raise InvalidURLError(f"{url!r} has an empty server address in its host list")
    if "://" in entry:
        scheme, entry = entry.split("://", 1)
        if scheme.lower() not in ("nats", "tls"):
            raise InvalidURLError(f"server address {entry!r} in {url!r} must be host:port")
    if "@" in entry:
        raise InvalidURLError(
            f"{url!r}: put credentials once, before the first host (nats://user:pass@h1,h2), "
            "or in the options user/password/token"
        )
    try:
        parts = urlsplit(f"//{entry}")
        port = parts.port
    except ValueError:
        raise InvalidURLError(f"server address {entry!r} in {url!r} has an invalid port") from None
    if not parts.hostname or parts.path:
        raise InvalidURLError(f"server address {entry!r} in {url!r} is not host[:port]")
    host = parts.hostname
    if ":" in host:
        host = f"[{host}]"
    return f"nats://{host}:{port or DEFAULT_PORT}"


def parse_nats_url(url: str, options: Mapping[str, Any] | None = None) -> NatsSettings:
    """The settings of ``url`` merged with `options` (options win).

    Raises `InvalidURLError` for a malformed URL and `ConfigurationError` for an unknown or
    invalid option, never echoing a secret.
    """
    if not isinstance(url, str) or "://" not in url:
        raise InvalidURLError("a nats URL looks like nats://host:4222 or nats://h1:4222,h2:4222")
    scheme, rest = url.split("://", 1)
    if scheme.lower() != "nats":
        raise InvalidURLError(f"not a nats:// URL (scheme {scheme!r})")
    rest, _, fragment = rest.partition("#")
    rest, _, query = rest.partition("?")
    netloc, _, path = rest.partition("/")
    userinfo, at, hosts = netloc.rpartition("@")
    if not at:
        userinfo, hosts = "", netloc
    if path.strip("/") or fragment:
        raise InvalidURLError(
            f"nats://{hosts}/{path} has a path or fragment; a nats URL is "
            "nats://[user:password@]host[:port][,host2[:port]][?option=value]"
        )
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError:
        raise InvalidURLError(
            f"nats://{hosts} has a malformed query; write e.g. ?shards=8&ack_wait=5"
        ) from None
    merged: dict[str, Any] = {}
    if userinfo:
        user, colon, password = userinfo.partition(":")
        if colon:
            merged["user"] = unquote(user)
            merged["password"] = unquote(password)
        else:
            merged["token"] = unquote(user)
    for key, value in pairs:
        merged[key] = value
    merged.update(dict(options or {}))
    unknown = sorted(set(merged) - set(OPTIONS))
    if unknown:
        raise ConfigurationError(
            f"unknown nats backend option(s) {', '.join(map(repr, unknown))}; the nats "
            f"backend knows: {', '.join(OPTIONS)}"
        )

    servers = [_host(h, f"nats://{hosts}") for h in hosts.split(",")] if hosts else []
    extra = merged.pop("servers", None)
    if extra is not None:
        entries = extra.split(",") if isinstance(extra, str) else list(extra)
        servers += [_host(str(h), f"nats://{hosts}") for h in entries]
    if not servers:
        servers = [f"nats://127.0.0.1:{DEFAULT_PORT}"]
    servers = list(dict.fromkeys(servers))
    display = "nats://" + ",".join(s.split("://", 1)[1] for s in servers)

    values: dict[str, Any] = {}
    for key in ("user", "password", "token", "nkey_seed"):
        if key in merged:
            values[key] = _text(key, merged[key])
    for key in (
        "credentials_file",
        "nkey_seed_file",
        "tls_ca_file",
        "tls_cert_file",
        "tls_key_file",
        "tls_hostname",
        "name",
    ):
        if key in merged:
            values[key] = _text(key, merged[key])
    for key in ("tls", "tls_verify", "tls_handshake_first"):
        if key in merged:
            values[key] = _flag(key, merged[key])
    if "ssl_context" in merged:
        context = merged["ssl_context"]
        if not isinstance(context, ssl.SSLContext):
            raise _bad("ssl_context", type(context).__name__, "give an ssl.SSLContext")
        values["ssl_context"] = context
    if (
        any(
            k in values
            for k in ("tls_ca_file", "tls_cert_file", "tls_key_file", "tls_hostname", "ssl_context")
        )
        or values.get("tls_handshake_first")
        or values.get("tls_verify") is False
    ):
        values.setdefault("tls", True)
    if values.get("tls_key_file") and not values.get("tls_cert_file"):
        raise _bad("tls_key_file", values["tls_key_file"], "give tls_cert_file as well")
    for key, minimum in (
        ("connect_timeout", 0.1),
        ("reconnect_wait", 0.0),
        ("request_timeout", 0.1),
        ("publish_timeout", 0.1),
        ("ack_wait", 1.0),
        ("lease_ttl", 1.0),
        ("max_age", 0.0),
        ("duplicate_window", 0.0),
    ):
        if key in merged:
            values[key] = _seconds(key, merged[key], minimum=minimum)
    for key, low in (
        ("max_reconnect_attempts", -1),
        ("shards", 1),
        ("replicas", 1),
        ("max_bytes", -1),
        ("max_msgs", -1),
        ("fetch_batch", 1),
    ):
        if key in merged:
            values[key] = _integer(key, merged[key], minimum=low)
    if values.get("shards", 1) > 1024:
        raise _bad("shards", values["shards"], "use at most 1024")
    if "storage" in merged:
        storage = str(merged["storage"]).lower()
        if storage not in ("file", "memory"):
            raise _bad("storage", merged["storage"], "give file or memory")
        values["storage"] = storage
    if "lease_bucket" in merged:
        bucket = _text("lease_bucket", merged["lease_bucket"])
        if not _BUCKET.match(bucket):
            raise _bad("lease_bucket", bucket, "use letters, digits, '_' and '-'")
        values["lease_bucket"] = bucket
    auth: list[str] = [
        k for k in ("token", "credentials_file", "nkey_seed_file", "nkey_seed") if k in values
    ]
    if "user" in values or "password" in values:
        auth.insert(0, "user/password")
        if "user" not in values or "password" not in values:
            raise ConfigurationError("nats backend: give both user and password (or neither)")
    if len(auth) > 1:
        raise ConfigurationError(
            f"nats backend: choose one way to authenticate, got {', '.join(auth)}"
        )
    defaults = NatsSettings(servers=(), display_url="")
    window = values.get("duplicate_window", defaults.duplicate_window)
    max_age = values.get("max_age", defaults.max_age)
    if max_age and window > max_age:
        values["duplicate_window"] = max_age
    return NatsSettings(servers=tuple(servers), display_url=display, **values)
