"""What the nats backend declares about itself (cheap to import: no client library)."""

from __future__ import annotations

from eventwire.backend import BackendInfo, Capabilities

__all__ = ["BACKEND_INFO", "CAPABILITIES", "SCHEMES"]

SCHEMES = ("nats",)

CAPABILITIES = Capabilities(cross_process=True)

BACKEND_INFO = BackendInfo(
    name="nats",
    schemes=SCHEMES,
    description="NATS JetStream (nats-py via FastStream)",
    capabilities=CAPABILITIES,
    binding="nats",
)
