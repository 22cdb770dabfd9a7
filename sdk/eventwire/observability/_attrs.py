"""Names shared by traces, metrics and logs: OpenTelemetry messaging attributes."""

from __future__ import annotations

from typing import Any

__all__ = ["messaging_system"]

SYSTEM = "messaging.system"
DESTINATION = "messaging.destination.name"
OPERATION_TYPE = "messaging.operation.type"
OPERATION_NAME = "messaging.operation.name"
MESSAGE_ID = "messaging.message.id"
CONVERSATION_ID = "messaging.message.conversation_id"
GROUP = "messaging.consumer.group.name"
#: The semantic conventions define a delivery attempt only for Google Pub/Sub, hence our own.
ATTEMPT = "eventwire.delivery.attempt"
EVENT_TYPE = "cloudevents.event_type"
EVENT_ID = "cloudevents.event_id"
ERROR_TYPE = "error.type"
BATCH_COUNT = "messaging.batch.message_count"
#: How many events of a batch handler's call failed.
BATCH_FAILED = "eventwire.batch.failed_count"


def messaging_system(backend: Any) -> str:
    """The ``messaging.system`` value of `backend`: its ``messaging_system`` attribute (the
    semantic conventions' well-known value, where the backend declares one), else its name."""
    declared = getattr(backend, "messaging_system", None)
    return declared if isinstance(declared, str) and declared else str(backend.name)
