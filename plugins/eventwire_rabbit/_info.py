"""What the rabbit backend declares about itself (cheap to import: no client library)."""

from __future__ import annotations

from typing import Any

from eventwire.asyncapi import AsyncAPIProtocol
from eventwire.backend import Backend, BackendInfo, Capabilities
from eventwire.backendkit import BackendPlugin

__all__ = [
    "BACKEND_INFO",
    "CAPABILITIES",
    "MAX_MESSAGE_BYTES",
    "SCHEMES",
    "SLOTS",
    "RabbitAsyncAPI",
    "asyncapi_protocol",
    "plugin",
]

SCHEMES = ("amqp", "amqps")
_BINDINGS = "0.3.0"
#: RabbitMQ's default ``max_message_size`` (128 MiB); the ``max_message_size`` option
#: changes it per backend, to match a broker configured otherwise.
MAX_MESSAGE_BYTES = 128 * 1024 * 1024
#: How many slots keys are hashed into (see `eventwire_rabbit._wire.slot`); a group has at
#: most this many shards.
SLOTS = 64

CAPABILITIES = Capabilities(cross_process=True, max_message_bytes=MAX_MESSAGE_BYTES)

BACKEND_INFO = BackendInfo(
    name="rabbit",
    schemes=SCHEMES,
    description="RabbitMQ 3.10+ (FastStream's RabbitBroker connection, aio-pika/aiormq "
    "channels): quorum-queue shards with single active consumer, history streams",
    capabilities=CAPABILITIES,
    binding="amqp",
)


class RabbitAsyncAPI(AsyncAPIProtocol):
    """AsyncAPI protocol ``amqp``/``amqps``, AMQP bindings 0.3.0: a topic exchange per
    channel, the message type, acknowledged consumption."""

    def channel_bindings(self, address: str) -> dict[str, Any]:
        exchange = {"name": address, "type": "topic", "durable": True, "autoDelete": False}
        return {"amqp": {"is": "routingKey", "exchange": exchange, "bindingVersion": _BINDINGS}}

    def message_bindings(self, type_name: str, key: str | None) -> dict[str, Any]:
        return {"amqp": {"messageType": type_name, "bindingVersion": _BINDINGS}}

    def receive_bindings(self, group: str) -> dict[str, Any]:
        return {"amqp": {"ack": True, "bindingVersion": _BINDINGS}}


def asyncapi_protocol(backend: Backend) -> RabbitAsyncAPI:
    """The ``eventwire_asyncapi_protocol`` answer for `backend`."""
    return RabbitAsyncAPI("amqps" if backend.url.startswith("amqps://") else "amqp")


#: The plugin (the ``rabbit`` entry point of the ``eventwire`` group).
plugin = BackendPlugin(
    BACKEND_INFO,
    "eventwire_rabbit._backend:RabbitBackend",
    "eventwire_rabbit._info:asyncapi_protocol",
)
