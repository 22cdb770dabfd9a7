"""What the sqlite backend declares about itself (cheap to import: no database code)."""

from __future__ import annotations

from types import MappingProxyType

from eventwire.asyncapi import AsyncAPIProtocol
from eventwire.backend import BackendInfo, Capabilities
from eventwire.backendkit import BackendPlugin

__all__ = ["ASYNCAPI", "BACKEND_INFO", "CAPABILITIES", "MAX_MESSAGE_BYTES", "SCHEME", "plugin"]

SCHEME = "sqlite"
#: The default ``max_message_bytes`` (body, key and headers of one event); SQLite itself
#: stores up to 1 GB per value.
MAX_MESSAGE_BYTES = 16 * 1024 * 1024

# Every guarantee but G23 (G16: a process writing the file crashes mid-transaction while
# holding its write lock; the file is opened again and recovered).
CAPABILITIES = Capabilities(
    unsupported=MappingProxyType(
        {"G23": "one SQLite file on one host: there is no cluster whose node could fail"}
    ),
    cross_process=True,
    max_message_bytes=MAX_MESSAGE_BYTES,
)

BACKEND_INFO = BackendInfo(
    name="sqlite",
    schemes=(SCHEME,),
    description="durable embedded broker in one SQLite file, shared by the processes of one "
    "host (sharded log, consumer groups, shard leases as rows)",
    capabilities=CAPABILITIES,
    binding="kafka",
)


#: How the sqlite backend appears in AsyncAPI: its own protocol name, no bindings.
ASYNCAPI = AsyncAPIProtocol(
    "sqlite",
    description="eventwire's embedded durable broker: one SQLite file shared by the "
    "processes of one host",
    server_extensions=MappingProxyType({"x-eventwire-embedded": True}),
)

#: The plugin (the ``sqlite`` entry point of the ``eventwire`` group).
plugin = BackendPlugin(
    BACKEND_INFO,
    "eventwire_sqlite._backend:SqliteBackend",
    ASYNCAPI,
    idempotency_store="eventwire_sqlite._idempotency:SqliteIdempotencyStore",
)
