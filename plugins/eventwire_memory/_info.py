"""What the memory backend declares about itself (cheap to import: no broker code)."""

from __future__ import annotations

from types import MappingProxyType

from eventwire.asyncapi import AsyncAPIProtocol
from eventwire.backend import BackendInfo, Capabilities
from eventwire.backendkit import BackendPlugin

__all__ = ["ASYNCAPI", "BACKEND_INFO", "CAPABILITIES", "MAX_MESSAGE_BYTES", "SCHEME", "plugin"]

SCHEME = "memory"
#: The largest message (body, key, header names and values) the memory backend stores.
MAX_MESSAGE_BYTES = 8 * 1024 * 1024

CAPABILITIES = Capabilities(
    unsupported=MappingProxyType(
        {
            "G16": "the in-memory broker lives inside the process; there is no broker "
            "process to restart",
            "G22": "the in-memory broker lives inside the process; there is no broker "
            "process to kill",
            "G23": "the in-memory broker lives inside the process; there is no cluster "
            "node to kill",
        }
    ),
    cross_process=False,
    max_message_bytes=MAX_MESSAGE_BYTES,
)

BACKEND_INFO = BackendInfo(
    name="memory",
    schemes=(SCHEME,),
    description="embedded in-process broker (Kafka-like partitioned log, per-message acks); "
    "the reference backend",
    capabilities=CAPABILITIES,
    binding="kafka",
)


#: How the memory backend appears in AsyncAPI: its own protocol name, no bindings.
ASYNCAPI = AsyncAPIProtocol(
    "memory",
    description="eventwire's embedded in-memory broker (inside the process; no network)",
    server_extensions=MappingProxyType({"x-eventwire-embedded": True}),
)

#: The plugin (the ``memory`` entry point of the ``eventwire`` group).
plugin = BackendPlugin(BACKEND_INFO, "eventwire_memory._backend:MemoryBackend", ASYNCAPI)
