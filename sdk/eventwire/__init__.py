"""eventwire: domain events over Kafka, RabbitMQ, Redis Streams, NATS JetStream or memory,
with the same guarantees on every backend.

Quick start::

    from eventwire import Event, EventBus

    class OrderPlaced(Event, channel="orders", key="order_id"):
        order_id: str

    bus = EventBus("memory://", source="shop")

    @bus.subscribe(OrderPlaced, group="billing")
    async def bill(event: OrderPlaced) -> None: ...

    async with bus:
        await bus.publish(OrderPlaced(order_id="o-1"))
"""

from eventwire.backend import (
    Backend,
    BackendInfo,
    Capabilities,
    Inbound,
    Located,
    Origin,
    Subscription,
    SubscriptionSpec,
    WireMessage,
)
from eventwire.batching import BatchError, BatchPolicy
from eventwire.bus import EventBus
from eventwire.deadletter import DeadLetter
from eventwire.delivery import Delivery, Disposition, Failure
from eventwire.envelope import Envelope
from eventwire.errors import (
    BackendUnavailableError,
    BusClosedError,
    ConfigurationError,
    ContractError,
    DecodeError,
    EventDefinitionError,
    EventValidationError,
    EventwireError,
    InvalidURLError,
    MessageTooLargeError,
    NonRetryableError,
    PublishError,
    UnknownBackendError,
)
from eventwire.events import Command, Event, MessageSpec
from eventwire.foreign import CloudEventsJSON, PlainJSON
from eventwire.idempotency import Claim, IdempotencyStore, MemoryIdempotencyStore
from eventwire.middleware import BatchConsumeContext, ConsumeContext, Middleware, PublishContext
from eventwire.plugins import available_backends, create_backend, hookimpl
from eventwire.retry import RetryPolicy
from eventwire.urls import redact_url

__version__ = "0.1.0"

__all__ = [
    "Backend",
    "BackendInfo",
    "BackendUnavailableError",
    "BatchConsumeContext",
    "BatchError",
    "BatchPolicy",
    "BusClosedError",
    "Capabilities",
    "Claim",
    "CloudEventsJSON",
    "Command",
    "ConfigurationError",
    "ConsumeContext",
    "ContractError",
    "DeadLetter",
    "DecodeError",
    "Delivery",
    "Disposition",
    "Envelope",
    "Event",
    "EventBus",
    "EventDefinitionError",
    "EventValidationError",
    "EventwireError",
    "Failure",
    "IdempotencyStore",
    "Inbound",
    "InvalidURLError",
    "Located",
    "MemoryIdempotencyStore",
    "MessageSpec",
    "MessageTooLargeError",
    "Middleware",
    "NonRetryableError",
    "Origin",
    "PlainJSON",
    "PublishContext",
    "PublishError",
    "RetryPolicy",
    "Subscription",
    "SubscriptionSpec",
    "UnknownBackendError",
    "WireMessage",
    "__version__",
    "available_backends",
    "create_backend",
    "hookimpl",
    "redact_url",
]
