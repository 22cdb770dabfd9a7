"""How a NATS backend appears in AsyncAPI: protocol ``nats``, NATS bindings 0.1.0."""

from __future__ import annotations

from typing import Any

from eventwire.asyncapi import AsyncAPIProtocol
from eventwire.backend import Backend

__all__ = ["NatsAsyncAPI", "asyncapi_protocol"]

BINDING_VERSION = "0.1.0"


class NatsAsyncAPI(AsyncAPIProtocol):
    """The consumer group as the queue of the receive operation."""

    def receive_bindings(self, group: str) -> dict[str, Any]:
        return {"nats": {"queue": group, "bindingVersion": BINDING_VERSION}}


def asyncapi_protocol(backend: Backend) -> NatsAsyncAPI:
    """The ``eventwire_asyncapi_protocol`` answer for `backend`."""
    return NatsAsyncAPI("nats")
