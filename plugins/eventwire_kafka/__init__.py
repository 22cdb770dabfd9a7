"""The Kafka backend: ``kafka://host1:9092,host2:9092[?option=value...]``.

A channel is a topic, the event key is the record key, a group is a Kafka consumer group
and the CloudEvents attributes travel as ``ce_`` record headers (Kafka protocol binding,
binary mode). Options come from the URL query or ``EventBus(backend_options=...)``
(`KafkaSettings`, documented in ``docs/backends/kafka.md``); credentials come from the URL's
user info or the ``username`` / ``password`` options and never appear in `KafkaBackend.url`,
reprs, error messages or logs.

FastStream and the client library underneath
--------------------------------------------
The connection is FastStream's ``KafkaBroker``: it turns the security settings (SASL PLAIN,
SCRAM-SHA-256/512, TLS through its ``SASLPlaintext`` / ``SASLScram*`` / ``BaseSecurity``
objects) into the aiokafka client arguments and owns the producer (configured with
``enable_idempotence=True, acks="all"``) and the admin client. Two things go underneath it
to aiokafka, because FastStream's behaviour conflicts with the guarantees:

- Consuming. FastStream's Kafka subscriber acknowledges first by default (``ACK_FIRST``
  auto-commits before the handler runs, so a failing handler loses the event), and its
  manual ack commits the consumer's position (everything fetched), which loses events as
  soon as records of one partition are handled concurrently. Each subscription is an
  ``AIOKafkaConsumer`` (built with the same connection arguments) with
  ``enable_auto_commit=False`` and the commit discipline of `KafkaSubscription`.
- Publishing. FastStream's ``publish`` adds ``content-type`` and ``correlation_id``
  headers of its own (they would change the CloudEvents headers) and costs tens of
  microseconds per message. `KafkaBackend.publish` uses the aiokafka producer FastStream
  started: ``send`` for a few messages, hand-filled record batches (same murmur2
  partitioner) for many.

How each guarantee is met
-------------------------
- G01/G02/G03: one topic per channel, headers and key carried as they are; every group is
  its own consumer group with its own offsets.
- G04/G05: the consumer group shares partitions among members; a key always maps to the
  same partition, and records are handed to the SDK pipeline in offset order, which runs
  different keys concurrently and same-key records one after another. On a rebalance a
  member stops dispatching revoked partitions, waits up to ``revoke_timeout_ms`` for
  their in-flight events, and commits before the partitions move, so a key never runs on
  two members at once.
- G06/G07/G08/G09: nothing is committed before it is settled: the committed offset of a
  partition is the end of its contiguous prefix of acked records (committed every
  ``commit_interval_ms``, on revoke and on close), so concurrency inside a partition stays
  at-least-once. Retries happen in place in the pipeline; dead letters go to the topic
  ``<channel>.dlq`` (created with the channel's topic on subscribe) before the ack.
  Kafka has no delivery count: before a fetched batch is handed to the pipeline, the
  member commits its partitions again (the same offset) with metadata naming the records
  handed out beyond it and their counts; the next owner, also after a crash, reads it on
  assignment and delivers those records with ``delivery_count`` one higher.
- G10: `KafkaBackend.browse` reads a topic with a group-less consumer, from the beginning
  to the end offsets, oldest first, and commits nothing.
- G11: with ``idempotent=True`` the SDK's idempotency store runs each effect once per group,
  which also covers the records a rebalance or crash delivers twice.
- G12: a crashed member stops heartbeating; after ``session_timeout_ms`` (10 s by default;
  the broker's ``group.min.session.timeout.ms`` is 6 s) its partitions move and every
  record after the committed prefix is delivered again, the ones it held with
  ``delivery_count`` >= 2 (the commit metadata above). `abort` drops the connections
  without committing.
- G13/G14: a partition with no committed offset starts at the end (or at the beginning
  with ``from_beginning``) and that position is committed before `subscribe` returns, so
  an event published after `subscribe` returns is never missed and a group that exists
  resumes from its commits.
- G15: the producer is idempotent with ``acks=all``; `publish` returns once every record's
  future resolved; close flushes.
- G16: aiokafka reconnects by itself; publishes wait (up to ``request_timeout_ms``) while
  the broker is away, commits that fail are retried, the group is rejoined. When the
  restarted broker no longer accepts the producer's sequence numbers
  (``OutOfOrderSequenceNumber``, which aiokafka never recovers from), the backend replaces
  the producer (idempotent, ``acks=all``) and sends the unconfirmed publish again (see
  ``_producer``).
- G17: topics are created with ``max.message.bytes`` = ``max_message_bytes`` (8 MiB by
  default); a message over a topic's limit raises `eventwire.errors.MessageTooLargeError`
  naming the limit before anything is sent.
- G18: close stops fetching, lets the pipeline finish, commits the finished prefix and
  leaves the group.
- G19: the pipeline's window blocks the dispatch loop, which then stops calling
  ``getmany``; aiokafka prefetches at most ``max_partition_fetch_bytes`` per partition.
- G20: contracts are enforced by the SDK before `publish` is called.

Topics are created when missing (``partitions``, ``replication_factor``) through the admin
client; a name Kafka rejects raises `eventwire.errors.ConfigurationError` before anything
is sent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from eventwire.backendkit import lazy_exports

from eventwire_kafka._info import (
    BACKEND_INFO,
    CAPABILITIES,
    DEFAULT_MAX_MESSAGE_BYTES,
    SCHEMES,
)
from eventwire_kafka._settings import KafkaSettings

if TYPE_CHECKING:
    from eventwire_kafka._backend import KafkaBackend
    from eventwire_kafka._consumer import KafkaInbound, KafkaSubscription
    from eventwire_kafka._topics import check_topic

__all__ = [
    "BACKEND_INFO",
    "CAPABILITIES",
    "DEFAULT_MAX_MESSAGE_BYTES",
    "SCHEMES",
    "KafkaBackend",
    "KafkaInbound",
    "KafkaSettings",
    "KafkaSubscription",
    "check_topic",
]

# These import aiokafka and FastStream: loaded on first use, so importing the plugin (which
# every ``import eventwire`` with plugins does) never needs the Kafka client.
__getattr__ = lazy_exports(
    __name__,
    {
        "KafkaBackend": "eventwire_kafka._backend",
        "KafkaInbound": "eventwire_kafka._consumer",
        "KafkaSubscription": "eventwire_kafka._consumer",
        "check_topic": "eventwire_kafka._topics",
    },
)
