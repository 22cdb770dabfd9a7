"""The Kafka backend's log lines, and the prefix of those about one subscription."""

from __future__ import annotations

import logging

from eventwire.backend import SubscriptionSpec

log = logging.getLogger("eventwire.kafka")


def log_group(spec: SubscriptionSpec, level: int, message: str, *args: object) -> None:
    """Log ``eventwire: kafka <channel>/<group>: <message>`` at `level`."""
    log.log(level, "eventwire: kafka %s/%s: " + message, spec.channel, spec.group, *args)
