"""Turn an eventwire URL into what each client library expects."""

from __future__ import annotations

from urllib.parse import urlsplit

from eventwire.urls import url_scheme

__all__ = ["broker_kind", "kafka_bootstrap"]

_KINDS = {
    "memory": "memory",
    "kafka": "kafka",
    "amqp": "rabbit",
    "amqps": "rabbit",
    "redis": "redis",
    "rediss": "redis",
    "nats": "nats",
    "tls": "nats",
}


def broker_kind(url: str) -> str | None:
    """ "memory", "kafka", "rabbit", "redis" or "nats"; ``None`` for another scheme."""
    return _KINDS.get(url_scheme(url))


def kafka_bootstrap(url: str) -> str:
    """``kafka://h1:9092,h2:9092`` -> ``h1:9092,h2:9092``."""
    return urlsplit(url).netloc.rsplit("@", 1)[-1] or "127.0.0.1:9092"
