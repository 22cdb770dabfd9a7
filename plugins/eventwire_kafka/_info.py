"""What the kafka backend declares about itself (cheap to import: no client library)."""

from __future__ import annotations

from eventwire.backend import BackendInfo, Capabilities

__all__ = ["BACKEND_INFO", "CAPABILITIES", "SCHEMES"]

SCHEMES = ("kafka",)

CAPABILITIES = Capabilities(cross_process=True)

BACKEND_INFO = BackendInfo(
    name="kafka",
    schemes=SCHEMES,
    description="Apache Kafka (aiokafka via FastStream)",
    capabilities=CAPABILITIES,
    binding="kafka",
)
