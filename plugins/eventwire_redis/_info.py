"""What the redis backend declares about itself (cheap to import: no client library)."""

from __future__ import annotations

from eventwire.backend import BackendInfo, Capabilities

__all__ = ["BACKEND_INFO", "CAPABILITIES", "SCHEMES"]

SCHEMES = (
    "redis",
    "rediss",
)

CAPABILITIES = Capabilities(cross_process=True)

BACKEND_INFO = BackendInfo(
    name="redis",
    schemes=SCHEMES,
    description="Redis Streams (redis-py via FastStream)",
    capabilities=CAPABILITIES,
    binding="kafka",
)
