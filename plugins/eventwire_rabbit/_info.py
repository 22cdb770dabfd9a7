"""What the rabbit backend declares about itself (cheap to import: no client library)."""

from __future__ import annotations

from eventwire.backend import BackendInfo, Capabilities

__all__ = ["BACKEND_INFO", "CAPABILITIES", "SCHEMES"]

SCHEMES = (
    "amqp",
    "amqps",
)

CAPABILITIES = Capabilities(cross_process=True)

BACKEND_INFO = BackendInfo(
    name="rabbit",
    schemes=SCHEMES,
    description="RabbitMQ (aio-pika via FastStream)",
    capabilities=CAPABILITIES,
    binding="amqp",
)
