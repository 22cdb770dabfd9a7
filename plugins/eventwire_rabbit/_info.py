"""What the rabbit backend declares about itself (cheap to import: no client library)."""

from __future__ import annotations

from eventwire.backend import BackendInfo, Capabilities
from eventwire.backendkit import BackendPlugin

__all__ = ["BACKEND_INFO", "CAPABILITIES", "MAX_MESSAGE_BYTES", "SCHEMES", "SLOTS", "plugin"]

SCHEMES = (
    "amqp",
    "amqps",
)
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

#: The plugin (the ``rabbit`` entry point of the ``eventwire`` group).
plugin = BackendPlugin(
    BACKEND_INFO,
    "eventwire_rabbit._backend:RabbitBackend",
    "eventwire_rabbit._asyncapi:asyncapi_protocol",
)
