"""Options of the redis backend: parsed from the URL's query and ``backend_options``.

``redis://[[user]:password@]host[:port][/db][?option=value&...]``; ``rediss://`` for TLS.
Keyword options (``EventBus(..., backend_options={...})``) win over the URL's query.
Every value is checked here, so a bad one fails when the bus is created, naming the option.
"""

from __future__ import annotations

import dataclasses
import ssl
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from eventwire.errors import ConfigurationError, InvalidURLError
from eventwire.urls import redact_url

from eventwire_redis._info import MAX_MESSAGE_BYTES

__all__ = [
    "CONNECTION_OPTIONS",
    "DEFAULTS",
    "KNOWN_OPTIONS",
    "RedisSettings",
    "parse_settings",
]

#: Redis refuses a bulk string over ``proto-max-bulk-len`` (512 MiB by default); the backend
#: refuses far earlier, because every stream entry lives in the server's memory.
DEFAULT_MAX_MESSAGE_BYTES = MAX_MESSAGE_BYTES

DEFAULTS: Mapping[str, Any] = {
    "connect_timeout": 5.0,
    "socket_timeout": 10.0,
    "reconnect_timeout": 30.0,
    "shards": 8,
    "maxlen": 100_000,
    "retention": None,
    "lease_ttl": 5.0,
    "claim_min_idle": 0.0,
    "fetch_count": 200,
    "block": 0.2,
    "prefix": "",
    "max_message_bytes": DEFAULT_MAX_MESSAGE_BYTES,
    "client_name": None,
}

#: Options that only concern the connection (accepted by `RedisIdempotencyStore` too).
CONNECTION_OPTIONS = (
    "username",
    "password",
    "db",
    "client_name",
    "connect_timeout",
    "socket_timeout",
    "ssl_ca_certs",
    "ssl_certfile",
    "ssl_keyfile",
    "ssl_cert_reqs",
    "ssl_check_hostname",
)
#: Every option the backend knows.
KNOWN_OPTIONS = (
    *CONNECTION_OPTIONS,
    "reconnect_timeout",
    "shards",
    "maxlen",
    "retention",
    "lease_ttl",
    "claim_min_idle",
    "fetch_count",
    "block",
    "prefix",
    "max_message_bytes",
)

_CERT_REQS = {
    "required": ssl.CERT_REQUIRED,
    "optional": ssl.CERT_OPTIONAL,
    "none": ssl.CERT_NONE,
}


@dataclasses.dataclass(frozen=True, slots=True)
class RedisSettings:
    """Everything the backend needs to know, checked. ``password`` never shows in repr."""

    scheme: str
    host: str
    port: int
    db: int
    username: str | None
    password: str | None = dataclasses.field(repr=False)
    tls: bool
    ssl_ca_certs: str | None
    ssl_certfile: str | None
    ssl_keyfile: str | None
    ssl_cert_reqs: str
    ssl_check_hostname: bool
    client_name: str | None
    connect_timeout: float
    socket_timeout: float
    reconnect_timeout: float
    shards: int
    maxlen: int
    retention: float | None
    lease_ttl: float
    claim_min_idle: float
    fetch_count: int
    block: float
    prefix: str
    max_message_bytes: int

    @property
    def url(self) -> str:
        """The URL without credentials or options (safe for logs and documents)."""
        return f"{self.scheme}://{_host_text(self.host)}:{self.port}/{self.db}"

    def secrets(self) -> tuple[str, ...]:
        """Texts that must never appear in a log line, message or document."""
        return tuple(s for s in (self.password,) if s)

    def scrub(self, text: str) -> str:
        """`text` with every secret replaced by ``***``."""
        for secret in self.secrets():
            text = text.replace(secret, "***")
        return text

    def ssl_context(self) -> ssl.SSLContext:
        """The TLS context for ``rediss://``."""
        context = ssl.create_default_context(cafile=self.ssl_ca_certs)
        if self.ssl_certfile:
            context.load_cert_chain(self.ssl_certfile, self.ssl_keyfile)
        context.check_hostname = self.ssl_check_hostname and self.ssl_cert_reqs != "none"
        context.verify_mode = _CERT_REQS[self.ssl_cert_reqs]
        return context


def _host_text(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _fail(name: str, value: object, want: str) -> ConfigurationError:
    return ConfigurationError(f"redis backend option {name}={value!r} is invalid; give {want}")


def _number(name: str, value: object, *, minimum: float, allow_zero: bool = True) -> float:
    if isinstance(value, bool):
        raise _fail(name, value, f"a number >= {minimum}")
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise _fail(name, value, f"a number of seconds >= {minimum}") from None
    if number != number or number < minimum or (not allow_zero and number == 0):
        raise _fail(name, value, f"a number of seconds >= {minimum}")
    return number


def _integer(name: str, value: object, *, minimum: int) -> int:
    if isinstance(value, bool):
        raise _fail(name, value, f"a whole number >= {minimum}")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and value.strip().lstrip("-").isdigit():
        number = int(value)
    else:
        raise _fail(name, value, f"a whole number >= {minimum}")
    if number < minimum:
        raise _fail(name, value, f"a whole number >= {minimum}")
    return number


def _flag(name: str, value: object) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise _fail(name, value, "true or false")


def _text(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise _fail(name, "<hidden>" if name == "password" else value, "a string")
    return value


def _optional(convert: Callable[[str, object], Any]) -> Callable[[str, object], Any]:
    def read(name: str, value: object) -> Any:
        if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none")):
            return None
        return convert(name, value)

    return read


def _prefix(name: str, value: object) -> str:
    text = _text(name, value)
    if any(c.isspace() for c in text):
        raise _fail(name, value, "a key prefix without spaces, e.g. 'shop:'")
    return text


_CONVERT: Mapping[str, Callable[[str, object], Any]] = {
    "connect_timeout": lambda n, v: _number(n, v, minimum=0.01),
    "socket_timeout": lambda n, v: _number(n, v, minimum=0.5),
    "reconnect_timeout": lambda n, v: _number(n, v, minimum=0),
    "shards": lambda n, v: _integer(n, v, minimum=1),
    "maxlen": lambda n, v: _integer(n, v, minimum=0),
    "retention": _optional(lambda n, v: _number(n, v, minimum=1)),
    "lease_ttl": lambda n, v: _number(n, v, minimum=0.5),
    "claim_min_idle": lambda n, v: _number(n, v, minimum=0),
    "fetch_count": lambda n, v: _integer(n, v, minimum=1),
    "block": lambda n, v: _number(n, v, minimum=0.01),
    "prefix": _prefix,
    "max_message_bytes": lambda n, v: _integer(n, v, minimum=1024),
    "client_name": _optional(_text),
    "username": _optional(_text),
    "password": _optional(_text),
    "db": lambda n, v: _integer(n, v, minimum=0),
    "ssl_ca_certs": _optional(_text),
    "ssl_certfile": _optional(_text),
    "ssl_keyfile": _optional(_text),
    "ssl_check_hostname": _flag,
}


def parse_settings(
    url: str, options: Mapping[str, Any] | None, *, known: tuple[str, ...] = KNOWN_OPTIONS
) -> RedisSettings:
    """Check `url` and `options`; raise `ConfigurationError` naming what is wrong."""
    safe = redact_url(url)
    try:
        parts = urlsplit(url)
        port = parts.port or 6379
    except (TypeError, ValueError) as exc:
        raise InvalidURLError(f"{safe!r} is not a valid redis URL: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("redis", "rediss"):
        raise InvalidURLError(
            f"{safe!r} is not a redis URL; write redis://host:6379/0 or rediss://host:6380/0"
        )
    host = parts.hostname or "127.0.0.1"
    merged: dict[str, Any] = {}
    if parts.query:
        try:
            query = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=True)
        except ValueError:
            raise InvalidURLError(
                f"{safe!r} has a malformed query; write e.g. redis://host:6379/0?shards=8"
            ) from None
        merged.update(query)
    path = parts.path.strip("/")
    if path:
        merged.setdefault("db", path)
    if parts.username:
        merged.setdefault("username", unquote(parts.username))
    if parts.password:
        merged.setdefault("password", unquote(parts.password))
    merged.update(options or {})
    unknown = sorted(set(merged) - set(known))
    if unknown:
        raise ConfigurationError(
            f"unknown redis backend option(s) {', '.join(map(repr, unknown))}; "
            f"the redis backend knows: {', '.join(known)}"
        )
    if "db" in merged and not (
        isinstance(merged["db"], int) or str(merged["db"]).strip().isdigit()
    ):
        raise ConfigurationError(
            f"{safe!r}: the database {merged['db']!r} is not a number; write "
            "redis://host:6379/0 (databases are numbered from 0)"
        )
    values: dict[str, Any] = dict(DEFAULTS)
    values.update(
        {
            "db": 0,
            "username": None,
            "password": None,
            "ssl_ca_certs": None,
            "ssl_certfile": None,
            "ssl_keyfile": None,
            "ssl_check_hostname": True,
        }
    )
    for name, raw in merged.items():
        if name == "ssl_cert_reqs":
            text = str(raw).strip().lower()
            if text not in _CERT_REQS:
                raise _fail(name, raw, "one of required, optional, none")
            values[name] = text
        else:
            values[name] = _CONVERT[name](name, raw)
    values.setdefault("ssl_cert_reqs", "required")
    if values["block"] >= values["socket_timeout"]:
        raise ConfigurationError(
            f"redis backend option block={values['block']} must be shorter than "
            f"socket_timeout={values['socket_timeout']}"
        )
    tls = scheme == "rediss"
    if not tls and any(values[n] for n in ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile")):
        raise ConfigurationError(f"{safe!r}: ssl_* options need TLS; use the rediss:// scheme")
    return RedisSettings(scheme=scheme, host=host, port=port, tls=tls, **values)
