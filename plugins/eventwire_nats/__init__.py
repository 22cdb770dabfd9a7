"""The NATS JetStream backend, ``nats://host1:4222[,host2:4222][?option=value]``.

FastStream's ``NatsBroker`` makes the connection; streams, durable pull consumers, pull
requests, acks and confirmed publishes go through nats-py underneath it. Options:
`NatsSettings`. How each guarantee is met, why FastStream's subscriber is not used and what
the backend creates on the server: ``docs/backends/nats.md``.
"""

from eventwire_nats._backend import NatsBackend
from eventwire_nats._fetch import NatsInbound
from eventwire_nats._idempotency import NatsIdempotencyStore
from eventwire_nats._info import BACKEND_INFO, CAPABILITIES, DEFAULT_MAX_PAYLOAD, SCHEMES
from eventwire_nats._settings import NatsSettings
from eventwire_nats._subscription import NatsSubscription
from eventwire_nats._topology import ChannelTopology, durable_name, stream_name

__all__ = [
    "BACKEND_INFO",
    "CAPABILITIES",
    "DEFAULT_MAX_PAYLOAD",
    "SCHEMES",
    "ChannelTopology",
    "NatsBackend",
    "NatsIdempotencyStore",
    "NatsInbound",
    "NatsSettings",
    "NatsSubscription",
    "durable_name",
    "stream_name",
]
