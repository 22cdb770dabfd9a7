"""The NATS JetStream backend, ``nats://host1:4222[,host2:4222][?option=value]``.

Where FastStream is used and where nats-py is used underneath it:

- **FastStream** (`faststream.nats.NatsBroker`) makes the connection: server list,
  user/password, token, NKEY or ``.creds`` authentication and TLS through its
  ``security=`` objects, reconnects. Its logger is switched off (the backend logs once per
  outage instead) and the first connect is bounded by ``connect_timeout``.
- **nats-py** underneath does the rest, because FastStream's subscriber and publisher
  conflict with the guarantees: its JetStream subscribers settle with ``term()`` on error
  (never redelivered), its push durables cannot be shared by several members, it cannot
  stop fetching one subject while another member takes it over, and its publisher adds its
  own headers. The backend creates streams and durable pull consumers with the JetStream
  API, sends its own pull requests, acks and ``+WPI`` progress signals, and publishes HPUB
  commands built once per message, confirmed by their PubAcks.

How each guarantee is met:

- G01/G02: CloudEvents binary mode with ``ce-`` headers (the NATS binding); header values
  NATS cannot carry travel base64-encoded and come back unchanged. One stream per channel
  (``EW_<channel>``) capturing exactly ``<channel>.<shard>``.
- G03/G04/G13/G14: one durable pull consumer per group and shard, created when the group
  first subscribes (``deliver_policy`` new, or all with ``from_beginning``); members of a
  group share the shards.
- G05: a key always maps to the same shard subject; a shard is consumed by one member at
  a time: the kit's `eventwire.backendkit.ShardCoordinator` over leases in a JetStream
  key-value bucket (`eventwire_nats._leases`), with a cooperative hand-over
  and, after a crash, the previous owner's messages first (see `eventwire_nats._subscription`;
  a pull request that outlives a crashed client can still reorder a key across the crash:
  "Known limits" in docs/backends/nats.md).
- G11: the default idempotency store is `NatsIdempotencyStore`, a JetStream KV bucket on the
  same server, shared by every member process.
- G06/G07/G08/G09/G11: ack after the SDK pipeline settles; retries happen in place (the
  pipeline) while ``+WPI`` keeps the message from being redelivered; ``delivery_count`` is
  the server's ``num_delivered``, so attempts resume after a crash; no ``max_deliver``: the
  SDK dead-letters to ``<channel>.dlq`` before acking, so the original is never lost.
- G10: the stream drops duplicate ``Nats-Msg-Id`` (the event id) within its duplicate
  window; a dead letter's id adds ``:dlq:<group>`` and a replay's ``:replay:<id>`` (from the
  SDK's ``eventwire-replay`` header), so neither is taken for a duplicate.
- G12/G18: unsettled messages are nak'ed at close (redelivered at once); after a crash they
  come back after ``ack_wait`` and the shard moves on after ``lease_ttl``.
- G15/G16: ``publish`` waits for every PubAck and resends what was not confirmed (safe: the
  message id dedupes); file-storage streams survive a server restart; nats-py reconnects
  forever and pull requests are re-sent.
- G17: the server's ``max_payload`` (from its INFO) is the limit; a bigger message raises
  `eventwire.errors.MessageTooLargeError` naming it, before anything is sent.
- G19: pull requests never ask for more than the subscription's ``max_in_flight`` minus
  what is unsettled; the consumers' ``max_ack_pending`` bounds the server side too.
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
