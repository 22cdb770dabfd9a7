"""The embedded reference backend: a real broker inside the process, ``memory://``.

It models a Kafka-like log with per-message acknowledgements: a channel is a retained log
split into partitions by the key (8 by default; no key: round-robin); a consumer group
keeps its position per partition and settles each delivery on its own. The members of a
group share the partitions through the backend kit's shard leases (`ShardedSubscription`
over an in-process `LeaseStore`), as any backend on the kit does: a partition changes hands
only once the deliveries taken from it are settled, and what a member leaves unsettled —
it closed, aborted, or its event loop ended — is delivered again (``delivery_count`` + 1)
to the partition's next owner before later messages.

Guarantees: everything the conformance suite checks except G16, G22 and G23: there is no
broker process to restart or kill, no cluster node; members in other processes cannot share
it (``cross_process=False``). ``memory://`` is the broker named ``"default"``;
``memory://name`` is a separate broker ``name``; backends with the same URL in one process
share it. Retention is unbounded (until the process ends or `reset_brokers`). Messages over
8 MiB (body, key and headers) are refused with `eventwire.errors.MessageTooLargeError`.
Option: ``partitions`` (for the channels the backend creates).
"""

from eventwire_memory._backend import MemoryBackend, MemoryInbound, MemorySubscription
from eventwire_memory._broker import (
    DEFAULT_BROKER,
    DEFAULT_PARTITIONS,
    GroupState,
    MemoryBroker,
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
