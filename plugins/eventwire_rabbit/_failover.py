"""Moving between the nodes of a RabbitMQ cluster.

aio-pika's robust connection (the one FastStream's `RabbitBroker` opens) reconnects to the one
URL it was given, so a bus whose node died would wait for that node. `failover_connection`
makes a robust connection class that moves to the next node of the URL's list whenever a
connection attempt fails: when its node dies, the next attempt goes to another node, where
the cluster's quorum queues and streams (replicated) are found again. The first connection
goes through `RabbitBackend._connect`, which tries the nodes in turn.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aio_pika import RobustConnection

__all__ = ["failover_connection"]

#: The robust connection's (name-mangled) method that makes one connection attempt.
_ATTEMPT = "_RobustConnection__connect_transport"


def failover_connection(nodes: Sequence[tuple[str, int]], first: int = 0) -> type[RobustConnection]:
    """A `RobustConnection` class for `nodes` ((host, port), the connection starts on
    ``nodes[first]``) that tries the next node after every failed attempt."""
    ring = tuple(nodes)

    async def attempt(self: Any) -> None:
        try:
            await getattr(RobustConnection, _ATTEMPT)(self)
        except Exception:
            self.failover_node = (self.failover_node + 1) % len(ring)
            host, port = ring[self.failover_node]
            self.url = self.url.with_host(host).with_port(port)
            raise

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        RobustConnection.__init__(self, *args, **kwargs)
        self.failover_node = first

    return type("FailoverConnection", (RobustConnection,), {"__init__": init, _ATTEMPT: attempt})
