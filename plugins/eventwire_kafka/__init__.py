"""The Kafka backend: ``kafka://host1:9092,host2:9092[?option=value...]``.

A channel is a topic, the event key is the record key, a group is a Kafka consumer group and
the CloudEvents attributes travel as ``ce_`` record headers. Options: `KafkaSettings`. How each
guarantee is met, what FastStream does and what goes underneath it to aiokafka, and what the
backend creates on the broker: ``docs/backends/kafka.md``.
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
    from eventwire_kafka._records import KafkaInbound
    from eventwire_kafka._subscription import KafkaSubscription
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
        "KafkaInbound": "eventwire_kafka._records",
        "KafkaSubscription": "eventwire_kafka._subscription",
        "check_topic": "eventwire_kafka._topics",
    },
)
