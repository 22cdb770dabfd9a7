"""The rabbit backend's URL and options: ``amqp[s]://[user[:password]@]host[:port][/vhost][?opt=v]``."""

from __future__ import annotations

import dataclasses
import math
import re
import ssl
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from eventwire.errors import ConfigurationError, InvalidURLError
from eventwire.urls import redact_url

__all__ = ["OPTIONS", "RabbitSettings", "parse_settings"]

#: RabbitMQ's default ``max_message_size`` (128 MiB) since 3.8.
DEFAULT_MAX_MESSAGE_SIZE = 128 * 1024 * 1024
_AGE = re.compile(r"^[0-9]+[YMDhms]$")


@dataclasses.dataclass(frozen=True, slots=True, repr=False)
class RabbitSettings:
    """Everything the backend needs to connect and to lay out its topology."""

    host: str
    port: int
    vhost: str
    username: str
    password: str = dataclasses.field(repr=False)
    tls: bool
    ca_file: str | None
    cert_file: str | None
    key_file: str | None
    verify: bool
    external_auth: bool
    connect_timeout: float
    heartbeat: int
    reconnect_interval: float
    publish_timeout: float
    shards: int
    prefetch: int | None
    member_heartbeat: float
    member_lease: float
    release_timeout: float
    delivery_limit: int
    group_expires: float | None
    history: bool
    history_max_age: str
    history_max_bytes: int
    max_message_size: int
    safe_url: str

    def __repr__(self) -> str:
        return f"<RabbitSettings {self.safe_url}>"

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context for ``amqps://`` (or ``tls=true``), else ``None``."""
        if not self.tls:
            return None
        context = ssl.create_default_context(cafile=self.ca_file)
        if not self.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if self.cert_file:
            context.load_cert_chain(self.cert_file, self.key_file)
        return context

    def amqp_url(self) -> str:
        """The URL handed to the client library (credentials inside, never logged by us)."""
        scheme = "amqps" if self.tls else "amqp"
        user = (
            ""
            if self.external_auth
            else (f"{quote(self.username, safe='')}:{quote(self.password, safe='')}@")
        )
        vhost = quote(self.vhost, safe="")
        return f"{scheme}://{user}{self.host}:{self.port}/{vhost}?heartbeat={self.heartbeat}"


def _boolean(name: str, value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("1", "true", "yes", "on"):
        return True
    if isinstance(value, str) and value.strip().lower() in ("0", "false", "no", "off"):
        return False
    raise ConfigurationError(f"rabbit backend option {name}={value!r} must be true or false")


def _number(name: str, value: object, *, minimum: float, integer: bool = False) -> float:
    number: float
    if isinstance(value, bool):
        number = math.nan
    elif isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            number = math.nan
    else:
        number = math.nan
    if (
        math.isnan(number)
        or number < minimum
        or math.isinf(number)
        or (integer and number != int(number))
    ):
        kind = "a whole number" if integer else "a number"
        raise ConfigurationError(
            f"rabbit backend option {name}={value!r} must be {kind} >= {minimum:g}"
        )
    return number


def _text(name: str, value: object) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigurationError(f"rabbit backend option {name} must be a non-empty string")
    return value


def _age(name: str, value: object) -> str:
    text = _text(name, value)
    if not _AGE.match(text):
        raise ConfigurationError(
            f"rabbit backend option {name}={value!r} must be a RabbitMQ age such as '7D', "
            "'12h', '30m' or '90s' (units Y M D h m s)"
        )
    return text


Converter = Callable[[str, object], Any]

#: Every option, with its converter and its default (``None``: not set).
OPTIONS: dict[str, tuple[Converter, object]] = {
    "username": (_text, None),
    "password": (lambda n, v: v if isinstance(v, str) else _text(n, v), None),
    "vhost": (lambda n, v: v if isinstance(v, str) else _text(n, v), None),
    "tls": (_boolean, False),
    "ca_file": (_text, None),
    "cert_file": (_text, None),
    "key_file": (_text, None),
    "verify": (_boolean, True),
    "external_auth": (_boolean, False),
    "connect_timeout": (lambda n, v: _number(n, v, minimum=0.1), 5.0),
    "heartbeat": (lambda n, v: int(_number(n, v, minimum=0, integer=True)), 10),
    "reconnect_interval": (lambda n, v: _number(n, v, minimum=0.05), 1.0),
    "publish_timeout": (lambda n, v: _number(n, v, minimum=0.1), 30.0),
    "shards": (lambda n, v: int(_number(n, v, minimum=1, integer=True)), 8),
    "prefetch": (lambda n, v: int(_number(n, v, minimum=1, integer=True)), None),
    "member_heartbeat": (lambda n, v: _number(n, v, minimum=0.05), 0.5),
    "member_lease": (lambda n, v: _number(n, v, minimum=0.2), 3.0),
    "release_timeout": (lambda n, v: _number(n, v, minimum=0.1), 30.0),
    "delivery_limit": (lambda n, v: int(_number(n, v, minimum=0, integer=True)), 20),
    "group_expires": (lambda n, v: _number(n, v, minimum=1), None),
    "history": (_boolean, True),
    "history_max_age": (_age, "7D"),
    "history_max_bytes": (lambda n, v: int(_number(n, v, minimum=1, integer=True)), 1 << 30),
    "max_message_size": (
        lambda n, v: int(_number(n, v, minimum=1, integer=True)),
        DEFAULT_MAX_MESSAGE_SIZE,
    ),
}


def parse_settings(url: str, options: Mapping[str, Any] | None) -> RabbitSettings:
    """Read `url` and `options` (options win); `ConfigurationError` names what is wrong."""
    safe = redact_url(url)
    try:
        parts = urlsplit(url)
        port = parts.port
    except (TypeError, ValueError) as exc:
        raise InvalidURLError(f"{safe!r} is not a valid RabbitMQ URL: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("amqp", "amqps"):
        raise InvalidURLError(f"{safe!r} is not an amqp:// or amqps:// URL")
    if not parts.hostname:
        raise InvalidURLError(
            f"{safe!r} names no host; write e.g. amqp://user:password@localhost:5672/vhost"
        )
    try:
        query = dict(parse_qsl(parts.query, keep_blank_values=True, strict_parsing=True))
    except ValueError:
        if parts.query:
            raise InvalidURLError(
                f"{safe!r} has a malformed query; write e.g. ?shards=8&connect_timeout=5"
            ) from None
        query = {}
    merged: dict[str, object] = {**query, **dict(options or {})}
    unknown = sorted(set(merged) - set(OPTIONS))
    if unknown:
        raise ConfigurationError(
            f"unknown rabbit backend option(s) {', '.join(map(repr, unknown))}; the rabbit "
            f"backend knows: {', '.join(sorted(OPTIONS))}"
        )
    values: dict[str, Any] = {}
    for name, (convert, default) in OPTIONS.items():
        raw = merged.get(name)
        values[name] = default if raw is None else convert(name, raw)
    tls = scheme == "amqps" or bool(values["tls"])
    path = unquote(parts.path[1:]) if parts.path.startswith("/") else unquote(parts.path)
    vhost = values["vhost"] if values["vhost"] is not None else (path or "/")
    username = values["username"] or (unquote(parts.username) if parts.username else "guest")
    password = (
        values["password"]
        if values["password"] is not None
        else (unquote(parts.password) if parts.password is not None else "guest")
    )
    if values["key_file"] and not values["cert_file"]:
        raise ConfigurationError("rabbit backend option key_file needs cert_file as well")
    if values["external_auth"] and not values["cert_file"]:
        raise ConfigurationError(
            "rabbit backend option external_auth=true needs a client certificate (cert_file)"
        )
    if values["member_lease"] <= values["member_heartbeat"]:
        raise ConfigurationError(
            f"rabbit backend option member_lease={values['member_lease']:g} must be longer "
            f"than member_heartbeat={values['member_heartbeat']:g}"
        )
    return RabbitSettings(
        host=parts.hostname,
        port=port or (5671 if tls else 5672),
        vhost=vhost,
        username=username,
        password=password,
        tls=tls,
        ca_file=values["ca_file"],
        cert_file=values["cert_file"],
        key_file=values["key_file"],
        verify=values["verify"],
        external_auth=values["external_auth"],
        connect_timeout=values["connect_timeout"],
        heartbeat=values["heartbeat"],
        reconnect_interval=values["reconnect_interval"],
        publish_timeout=values["publish_timeout"],
        shards=values["shards"],
        prefetch=values["prefetch"],
        member_heartbeat=values["member_heartbeat"],
        member_lease=values["member_lease"],
        release_timeout=values["release_timeout"],
        delivery_limit=values["delivery_limit"],
        group_expires=values["group_expires"],
        history=values["history"],
        history_max_age=values["history_max_age"],
        history_max_bytes=values["history_max_bytes"],
        max_message_size=values["max_message_size"],
        safe_url=f"{scheme}://{parts.hostname}:{port or (5671 if tls else 5672)}/"
        + ("" if vhost == "/" else quote(vhost, safe="")),
    )
