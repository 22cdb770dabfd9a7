"""What the redis backend declares about itself (cheap to import: no client library)."""

from __future__ import annotations

from eventwire.backend import BackendInfo, Capabilities
from eventwire.backendkit import BackendPlugin

__all__ = ["BACKEND_INFO", "CAPABILITIES", "MAX_MESSAGE_BYTES", "SCHEMES", "plugin"]

SCHEMES = (
    "redis",
    "rediss",
    "redis+sentinel",
)

#: The default ``max_message_bytes`` (body, key and headers of one event). Redis itself takes
#: up to ``proto-max-bulk-len`` (512 MiB by default) per field; every stream entry lives in
#: the server's memory, so the backend refuses far earlier. A backend lowers it further to
#: the server's ``proto-max-bulk-len`` when that is smaller; the option raises or lowers it.
MAX_MESSAGE_BYTES = 32 * 1024 * 1024

# Every guarantee is met (G01-G20, G16 with AOF persistence on the server).
CAPABILITIES = Capabilities(cross_process=True, max_message_bytes=MAX_MESSAGE_BYTES)

BACKEND_INFO = BackendInfo(
    name="redis",
    schemes=SCHEMES,
    description="Redis Streams: sharded streams, consumer groups, shard leases, XAUTOCLAIM "
    "take-over (redis-py, connection set up by FastStream)",
    capabilities=CAPABILITIES,
    binding="kafka",
)

#: The plugin (the ``redis`` entry point of the ``eventwire`` group).
plugin = BackendPlugin(
    BACKEND_INFO,
    "eventwire_redis._backend:RedisBackend",
    idempotency_store="eventwire_redis._idempotency:RedisIdempotencyStore",
)
