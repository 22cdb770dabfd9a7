"""What the kafka backend declares about itself (cheap to import: no client library)."""

from __future__ import annotations

from typing import Any

from eventwire.asyncapi import AsyncAPIProtocol
from eventwire.backend import BackendInfo, Capabilities
from eventwire.backendkit import BackendPlugin

__all__ = [
    "BACKEND_INFO",
    "CAPABILITIES",
    "DEFAULT_MAX_MESSAGE_BYTES",
    "SCHEMES",
    "KafkaAsyncAPI",
    "plugin",
]

SCHEMES = ("kafka",)
_BINDINGS = "0.5.0"

#: ``max.message.bytes`` of the topics the backend creates, unless the option
#: ``max_message_bytes`` says otherwise (Kafka's own default is 1 MiB).
DEFAULT_MAX_MESSAGE_BYTES = 8 * 1024 * 1024

CAPABILITIES = Capabilities(cross_process=True, max_message_bytes=DEFAULT_MAX_MESSAGE_BYTES)

BACKEND_INFO = BackendInfo(
    name="kafka",
    schemes=SCHEMES,
    description="Apache Kafka (FastStream's aiokafka broker; manual commits of the finished "
    "prefix per partition, idempotent acks=all producer, <channel>.dlq topics)",
    capabilities=CAPABILITIES,
    binding="kafka",
)


class KafkaAsyncAPI(AsyncAPIProtocol):
    """AsyncAPI protocol ``kafka``, Kafka bindings 0.5.0: topic per channel, the message key,
    the consumer group id."""

    def channel_bindings(self, address: str) -> dict[str, Any]:
        return {"kafka": {"topic": address, "bindingVersion": _BINDINGS}}

    def message_bindings(self, type_name: str, key: str | None) -> dict[str, Any]:
        if key is None:
            return {}
        described = {"type": "string", "description": f"the value of {key}"}
        return {"kafka": {"key": described, "bindingVersion": _BINDINGS}}

    def receive_bindings(self, group: str) -> dict[str, Any]:
        group_id = {"type": "string", "enum": [group]}
        return {"kafka": {"groupId": group_id, "bindingVersion": _BINDINGS}}


#: The plugin (the ``kafka`` entry point of the ``eventwire`` group).
plugin = BackendPlugin(
    BACKEND_INFO,
    "eventwire_kafka._backend:KafkaBackend",
    KafkaAsyncAPI("kafka"),
)
