"""The contract of the whole order-processing system: every message on its channels.

Each service's own contract (``eventwire asyncapi generate <service>:bus``) lists what that
service publishes and consumes; a channel is shared by several of them. This bus declares
every message of `domain`, so the document generated from it says what may appear on each
channel, whoever publishes it — what ``eventwire contracts verify`` checks a running system
against::

    eventwire asyncapi generate docs.examples.order_processing.contract:bus \\
        --title "Order processing" -o contracts/order-processing.yaml
"""

from __future__ import annotations

from eventwire import EventBus

from docs.examples.order_processing import domain

bus = EventBus("memory://", source="order-processing")
bus.declare(
    *(getattr(domain, name) for name in domain.__all__ if name not in ("Currency", "OrderLine"))
)
