"""How a backend appears in an AsyncAPI 3.0 document: its server protocol and bindings.

A backend plugin answers the ``eventwire_asyncapi_protocol`` hook with an `AsyncAPIProtocol`
(subclassed where the protocol has AsyncAPI bindings), so the document generator
(`eventwire.contracts.generate_asyncapi`) names no backend. Not to be confused with the
CloudEvents protocol binding (``Backend.binding``), which names the envelope's headers.
Cheap to import: plugins import it from their ``_info.py`` (next to `BackendInfo`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

__all__ = ["AsyncAPIProtocol"]


@dataclasses.dataclass(frozen=True)
class AsyncAPIProtocol:
    """A backend's AsyncAPI server protocol, server description and protocol bindings.

    The three ``*_bindings`` methods return AsyncAPI ``bindings`` objects keyed by protocol
    (``{"kafka": {...}}``), or ``{}`` for none: the base class has none.
    """

    #: The server's ``protocol`` ("kafka", "amqps", "redis", "nats", "memory" ...).
    protocol: str
    #: The server's ``description``, if any.
    description: str | None = None
    #: Extra ``x-`` fields of the server object.
    server_extensions: Mapping[str, Any] = dataclasses.field(
        default_factory=lambda: MappingProxyType({})
    )

    def channel_bindings(self, address: str) -> dict[str, Any]:
        """The bindings of the channel at `address` (and of its dead-letter channel)."""
        return {}

    def message_bindings(self, type_name: str, key: str | None) -> dict[str, Any]:
        """The bindings of message `type_name`, whose ordering key is field `key`."""
        return {}

    def receive_bindings(self, group: str) -> dict[str, Any]:
        """The bindings of the receive operation of consumer group `group`."""
        return {}
