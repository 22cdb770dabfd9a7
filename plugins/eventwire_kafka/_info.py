"""What the kafka backend declares about itself (cheap to import: no client library)."""

from __future__ import annotations

from eventwire.backend import BackendInfo, Capabilities
from eventwire.backendkit import BackendPlugin

__all__ = ["BACKEND_INFO", "CAPABILITIES", "DEFAULT_MAX_MESSAGE_BYTES", "SCHEMES", "plugin"]

SCHEMES = ("kafka",)

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

#: The plugin (the ``kafka`` entry point of the ``eventwire`` group).
plugin = BackendPlugin(
    BACKEND_INFO,
    "eventwire_kafka._backend:KafkaBackend",
    "eventwire_kafka._asyncapi:asyncapi_protocol",
)
