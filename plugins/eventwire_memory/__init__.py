"""The embedded reference backend: a real broker inside the process, ``memory://``.

It models a Kafka-like log with per-message acknowledgements. A channel is a retained log
split into partitions by a stable hash of the message key (8 by default; no key:
round-robin). Consumer groups keep their position per partition; members of a group share
the partitions (sorted round-robin, rebalanced on every join and leave) and settle each
delivery on its own rather than committing offsets. What a member leaves unsettled — it
stopped, closed or crashed (``abort()``) — is delivered again (``delivery_count`` + 1) to
the member that owns the partition next, before later messages of that partition. A
partition moved to another member is not fetched there until the previous member's
deliveries on it are settled (cooperative revoke), so one key never runs on two members.

Guarantees: everything the conformance suite checks except G16. Ordering per key,
at-least-once, fan-out, competing members, crash redelivery, durable groups (a group keeps
its position while no member runs), ``from_beginning`` and confirmed publishes hold because
the broker's state lives in this process for as long as the process runs. G16 (reconnect
after a broker restart) is unsupported: there is no broker process to restart. Members in
other processes cannot share it either (``cross_process=False``).

``memory://`` is the broker named ``"default"``; ``memory://name`` is a separate broker
``name``. Backends with the same URL in one process share the broker. Retention is
unbounded: every message stays in memory until the process ends or `reset_brokers` forgets
the broker. Messages over 8 MiB (body, key and headers) are refused with
`eventwire.errors.MessageTooLargeError`. Options: ``partitions`` (for channels the backend
creates), as a backend option or ``memory://name?partitions=4``.
"""

from eventwire_memory._backend import MemoryBackend, MemorySubscription
from eventwire_memory._broker import (
    DEFAULT_BROKER,
    DEFAULT_PARTITIONS,
    GroupState,
    MemoryBroker,
    MemoryInbound,
    get_broker,
    reset_brokers,
)
from eventwire_memory._info import BACKEND_INFO, CAPABILITIES, MAX_MESSAGE_BYTES
from eventwire_memory._settings import MemorySettings

__all__ = [
    "BACKEND_INFO",
    "CAPABILITIES",
    "DEFAULT_BROKER",
    "DEFAULT_PARTITIONS",
    "MAX_MESSAGE_BYTES",
    "GroupState",
    "MemoryBackend",
    "MemoryBroker",
    "MemoryInbound",
    "MemorySettings",
    "MemorySubscription",
    "get_broker",
    "reset_brokers",
]
