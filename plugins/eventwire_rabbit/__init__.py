"""The RabbitMQ backend: ``amqp://user:password@host:5672/vhost`` and ``amqps://``.

Topology (see `eventwire_rabbit._topology`): a durable topic exchange per channel; a history
stream per channel; per group a headers exchange that routes the key's slot (set by the
publisher) to one of ``shards`` quorum queues with single active consumer; ``<channel>.dlq``
is a channel like any other.

How each guarantee is achieved:

- G01/G02/G03: the event is one persistent AMQP message; CloudEvents attributes travel as
  ``cloudEvents:*`` entries of the 0-9-1 headers table (the AMQP binding's application
  properties), header values are delivered as ``str``, the key in an ``eventwire-key``
  header. Each channel has its own exchange; each group its own exchange bound to it.
- G04/G05: the group's exchange sends a key always to the same shard (a fixed slot table in
  durable bindings, the same after a broker restart); a shard queue has single active
  consumer, so one member at a time takes it, in queue order. Members learn of
  each other through heartbeats and own the shards round-robin (the backend kit's shard
  coordinator over a lease store on these primitives); a member gives a shard up by
  closing that shard's AMQP channel after its handed-out messages finished: the broker puts
  what is left back at the head of the queue and activates the next consumer in one step.
- G06/G07/G12/G18: manual acks, sent in batches (one ``multiple`` ack per settled prefix);
  what is unsettled when a channel or connection closes goes back to the queue, and the
  quorum queue's ``x-delivery-count`` gives ``delivery_count``. Survivors take a dead
  member's shards after ``member_lease`` seconds without its heartbeat.
- G08/G09/G10: the SDK publishes dead letters to ``<channel>.dlq``; its history stream keeps
  them for ``browse`` and replay. Shard queues also dead-letter to that exchange natively
  (``x-dead-letter-exchange``, ``x-delivery-limit``) as a broker-side backstop.
- G13: shard queues are durable and outlive their consumers. G14: a new ``from_beginning``
  group is filled from the channel's history stream before it is bound. G15: publisher
  confirms, ``delivery_mode=2``. G16: FastStream's robust connection reconnects, the backend
  reopens its channels and sends unconfirmed publishes again within ``publish_timeout``.
  G17: ``max_message_size`` (128 MiB by default, like RabbitMQ). G19: per-shard prefetch
  plus the SDK's window.

FastStream vs the client library: FastStream's `RabbitBroker` owns the connection (URL,
TLS and SASL security, aio-pika's robust reconnection, bounded fail-fast connect). Below it
the backend uses aiormq channels directly: FastStream's subscriber consumes one queue on a
shared robust channel with per-message acks and cannot hand a single-active-consumer shard
over by closing its channel; its ``publish`` is not persistent by default and encodes each
message through its serializer. Publishing here is pipelined on one confirm channel.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from eventwire.backendkit import lazy_exports

from eventwire_rabbit._info import BACKEND_INFO, CAPABILITIES, MAX_MESSAGE_BYTES, SCHEMES
from eventwire_rabbit._settings import RabbitSettings

if TYPE_CHECKING:
    from eventwire_rabbit._backend import RabbitBackend
    from eventwire_rabbit._consumer import RabbitInbound, RabbitSubscription

__all__ = [
    "BACKEND_INFO",
    "CAPABILITIES",
    "MAX_MESSAGE_BYTES",
    "SCHEMES",
    "RabbitBackend",
    "RabbitInbound",
    "RabbitSettings",
    "RabbitSubscription",
]

# The client library (aio-pika, FastStream) loads only when the backend is used.
__getattr__ = lazy_exports(
    __name__,
    {
        "RabbitBackend": "eventwire_rabbit._backend",
        "RabbitInbound": "eventwire_rabbit._consumer",
        "RabbitSubscription": "eventwire_rabbit._consumer",
    },
)
