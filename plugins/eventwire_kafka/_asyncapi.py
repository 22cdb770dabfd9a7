"""How a Kafka backend appears in AsyncAPI: protocol ``kafka``, Kafka bindings 0.5.0."""

from __future__ import annotations

from typing import Any

from eventwire.asyncapi import AsyncAPIProtocol
from eventwire.backend import Backend

__all__ = ["KafkaAsyncAPI", "asyncapi_protocol"]

BINDING_VERSION = "0.5.0"


class KafkaAsyncAPI(AsyncAPIProtocol):
    """Topic per channel, the message key, the consumer group id."""

    def channel_bindings(self, address: str) -> dict[str, Any]:
        return {"kafka": {"topic": address, "bindingVersion": BINDING_VERSION}}

    def message_bindings(self, type_name: str, key: str | None) -> dict[str, Any]:
        if key is None:
            return {}
        return {
            "kafka": {
                "key": {"type": "string", "description": f"the value of {key}"},
                "bindingVersion": BINDING_VERSION,
            }
        }

    def receive_bindings(self, group: str) -> dict[str, Any]:
        return {
            "kafka": {
                "groupId": {"type": "string", "enum": [group]},
                "bindingVersion": BINDING_VERSION,
            }
        }


def asyncapi_protocol(backend: Backend) -> KafkaAsyncAPI:
    """The ``eventwire_asyncapi_protocol`` answer for `backend`."""
    return KafkaAsyncAPI("kafka")
