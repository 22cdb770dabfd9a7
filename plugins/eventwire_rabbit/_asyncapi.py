"""How a RabbitMQ backend appears in AsyncAPI: protocol ``amqp``/``amqps``, AMQP bindings 0.3.0."""

from __future__ import annotations

from typing import Any

from eventwire.asyncapi import AsyncAPIProtocol
from eventwire.backend import Backend

__all__ = ["RabbitAsyncAPI", "asyncapi_protocol"]

BINDING_VERSION = "0.3.0"


class RabbitAsyncAPI(AsyncAPIProtocol):
    """A topic exchange per channel, the message type, acknowledged consumption."""

    def channel_bindings(self, address: str) -> dict[str, Any]:
        return {
            "amqp": {
                "is": "routingKey",
                "exchange": {
                    "name": address,
                    "type": "topic",
                    "durable": True,
                    "autoDelete": False,
                },
                "bindingVersion": BINDING_VERSION,
            }
        }

    def message_bindings(self, type_name: str, key: str | None) -> dict[str, Any]:
        return {"amqp": {"messageType": type_name, "bindingVersion": BINDING_VERSION}}

    def receive_bindings(self, group: str) -> dict[str, Any]:
        return {"amqp": {"ack": True, "bindingVersion": BINDING_VERSION}}


def asyncapi_protocol(backend: Backend) -> RabbitAsyncAPI:
    """The ``eventwire_asyncapi_protocol`` answer for `backend`."""
    return RabbitAsyncAPI("amqps" if backend.url.startswith("amqps://") else "amqp")
