"""What the nats backend declares about itself (cheap to import: no client library)."""

from __future__ import annotations

from typing import Any

from eventwire.asyncapi import AsyncAPIProtocol
from eventwire.backend import BackendInfo, Capabilities
from eventwire.backendkit import BackendPlugin

__all__ = [
    "BACKEND_INFO",
    "CAPABILITIES",
    "DEFAULT_MAX_PAYLOAD",
    "SCHEMES",
    "NatsAsyncAPI",
    "plugin",
]

SCHEMES = ("nats",)

#: nats-server's default ``max_payload`` (body plus headers). The real limit is the one the
#: server announces at connect; a connected backend's ``capabilities`` carry that one.
DEFAULT_MAX_PAYLOAD = 1024 * 1024

CAPABILITIES = Capabilities(cross_process=True, max_message_bytes=None)

BACKEND_INFO = BackendInfo(
    name="nats",
    schemes=SCHEMES,
    description="NATS JetStream: a stream per channel, key-sharded subjects, durable pull "
    "consumers per group and shard, leases in a key-value bucket (FastStream + nats-py)",
    capabilities=CAPABILITIES,
    binding="nats",
)


class NatsAsyncAPI(AsyncAPIProtocol):
    """AsyncAPI protocol ``nats``, NATS bindings 0.1.0: the group as the receive's queue."""

    def receive_bindings(self, group: str) -> dict[str, Any]:
        return {"nats": {"queue": group, "bindingVersion": "0.1.0"}}


#: The plugin (the ``nats`` entry point of the ``eventwire`` group).
plugin = BackendPlugin(
    BACKEND_INFO,
    "eventwire_nats._backend:NatsBackend",
    NatsAsyncAPI("nats"),
    idempotency_store="eventwire_nats._backend:NatsBackend.idempotency_store",
)
