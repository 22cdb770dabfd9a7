"""The RabbitMQ backend: ``amqp://user:password@host:5672/vhost`` and ``amqps://``.

A durable topic exchange and a history stream per channel; per group a headers exchange
that routes each key's slot to one of ``shards`` quorum queues with single active consumer
(`eventwire_rabbit._topology`). FastStream's ``RabbitBroker`` owns the connection; aiormq
channels underneath it publish and consume. Options: `RabbitSettings`. How each guarantee is
achieved and why FastStream's subscriber is not used: ``docs/backends/rabbit.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from eventwire.backendkit import lazy_exports

from eventwire_rabbit._info import BACKEND_INFO, CAPABILITIES, MAX_MESSAGE_BYTES, SCHEMES
from eventwire_rabbit._settings import RabbitSettings

if TYPE_CHECKING:
    from eventwire_rabbit._backend import RabbitBackend
    from eventwire_rabbit._subscription import RabbitInbound, RabbitSubscription

__all__ = [
    "BACKEND_INFO",
    "CAPABILITIES",
    "MAX_MESSAGE_BYTES",
    "SCHEMES",
    "RabbitBackend",
    "RabbitInbound",
    "RabbitSettings",
    "RabbitSubscription",
]

# The client library (aio-pika, FastStream) loads only when the backend is used.
__getattr__ = lazy_exports(
    __name__,
    {
        "RabbitBackend": "eventwire_rabbit._backend",
        "RabbitInbound": "eventwire_rabbit._subscription",
        "RabbitSubscription": "eventwire_rabbit._subscription",
    },
)
