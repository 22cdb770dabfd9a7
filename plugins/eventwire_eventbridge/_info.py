"""What the EventBridge backend declares about itself (cheap to import: no AWS client code)."""

from __future__ import annotations

from types import MappingProxyType

from eventwire.asyncapi import AsyncAPIProtocol
from eventwire.backend import BackendInfo, Capabilities
from eventwire.backendkit import BackendPlugin

__all__ = ["ASYNCAPI", "BACKEND_INFO", "CAPABILITIES", "MAX_ENTRY_BYTES", "SCHEME", "plugin"]

SCHEME = "eventbridge"
#: PutEvents refuses an entry over 256 KiB (Time, Source, DetailType, Detail, Resources).
MAX_ENTRY_BYTES = 256 * 1024
#: What the envelope (channel, key, header names and values in ``detail``, ``Source``,
#: ``DetailType``, ``Time``) may add to a message on top of the kit's size formula.
ENVELOPE_ALLOWANCE = 2 * 1024
#: The largest message (body, key, header names and values) the backend accepts.
MAX_MESSAGE_BYTES = (MAX_ENTRY_BYTES - ENVELOPE_ALLOWANCE) * 3 // 4

CAPABILITIES = Capabilities(
    unsupported=MappingProxyType(
        {
            "G05": "a rule delivers to a standard SQS queue, which does not keep order "
            "('best-effort ordering'); a FIFO queue target takes one static MessageGroupId "
            "per rule (SqsParameters), so per-key groups cannot come from EventBridge",
            "G14": "EventBridge keeps no events for a new rule; starting a group from the "
            "oldest event needs an archive and a replay, which this backend does not create",
            "G10": "EventBridge keeps no events to list: browsing a channel (the dead-letter "
            "channel included) needs an archive, which this backend does not create",
            "G16": "there is no broker process to restart on AWS; the local endpoint "
            "(moto) keeps everything in memory and loses it on a restart",
            "G17": "PutEvents refuses an entry over 256 KiB, so a 1 MiB event cannot be "
            "sent (larger payloads belong in S3, with a reference in the event)",
        }
    ),
    max_message_bytes=MAX_MESSAGE_BYTES,
)

BACKEND_INFO = BackendInfo(
    name="eventbridge",
    schemes=(SCHEME,),
    description="AWS EventBridge (publish: PutEvents) routed by rules to one SQS queue per "
    "group (consume: ReceiveMessage / DeleteMessage)",
    capabilities=CAPABILITIES,
    binding="kafka",
)


#: How the backend appears in AsyncAPI: protocol ``eventbridge``, no bindings.
ASYNCAPI = AsyncAPIProtocol(
    "eventbridge",
    description="an AWS EventBridge event bus; each group reads its own SQS queue",
)

#: The plugin (the ``eventbridge`` entry point of the ``eventwire`` group).
plugin = BackendPlugin(BACKEND_INFO, "eventwire_eventbridge._backend:EventBridgeBackend", ASYNCAPI)
