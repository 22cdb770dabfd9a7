"""What the EventBridge backend declares about itself (cheap to import: no AWS client code)."""

from __future__ import annotations

from types import MappingProxyType

from eventwire.backend import BackendInfo, Capabilities
from eventwire.backendkit import BackendPlugin

__all__ = [
    "BACKEND_INFO",
    "CAPABILITIES",
    "EMULATOR_UNSUPPORTED",
    "MAX_ENTRY_BYTES",
    "SCHEME",
    "plugin",
]

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
            "G05": "a rule delivers to a standard SQS queue, which gives best-effort ordering "
            "only; a FIFO queue target takes one static MessageGroupId per target "
            "(SqsParameters), so EventBridge cannot put each key in a message group of its own",
            "G14": "EventBridge keeps no events for a rule created after them; the only way "
            "back is an archive replay, which AWS documents as not in the original order, "
            "replayed in 1-minute intervals and to be started about 10 minutes after the "
            "events (archiving is asynchronous), so this backend does not offer it",
            "G16": "EventBridge and SQS are managed services without a broker process to "
            "restart; the local endpoint (moto) keeps everything in memory, so restarting it "
            "starts an empty account and measures the emulator, not the backend",
            "G17": "a 1 MiB event does not fit one EventBridge entry: this backend refuses an "
            "entry over 256 KiB, the limit of the PutEvents API reference and of the local "
            "endpoint, and the 1 MB that AWS announced for EventBridge events in January 2026 "
            "is less than a 1 MiB payload plus its envelope; large payloads belong in S3, with "
            "a reference in the event",
            "G21": "it checks per-key order while members join and leave, and a standard SQS "
            "queue gives best-effort ordering only (see G05)",
            "G22": "EventBridge and SQS are managed services without a broker process to "
            "kill; killing the local endpoint (moto) loses the whole account, as for G16",
            "G23": "EventBridge and SQS replicate across availability zones inside AWS; "
            "there is no node of theirs a client could kill",
        }
    ),
    max_message_bytes=MAX_MESSAGE_BYTES,
)

#: Declared on top of `CAPABILITIES` when ``endpoint`` is not one of AWS's own (an emulator).
EMULATOR_UNSUPPORTED = MappingProxyType(
    {
        "G04": "the endpoint is not AWS's own, and the local emulator (moto 5.x) can return one "
        "message to two ReceiveMessage calls on a queue at the same moment (it checks that a "
        "message is visible and marks it received without a lock: the race of moto issue "
        "519, closed in 2016, is back in 5.x), so two members of a group may each handle "
        "one event. SQS hides a received message from every other receiver for its "
        "visibility timeout (a standard queue may still, rarely, deliver a second copy: at "
        "least once); run G04 against a real account without endpoint "
        "(docs/backends/eventbridge.md)",
    }
)

BACKEND_INFO = BackendInfo(
    name="eventbridge",
    schemes=(SCHEME,),
    description="AWS EventBridge (publish: PutEvents) routed by rules to one SQS queue per "
    "group (consume: ReceiveMessage / DeleteMessageBatch)",
    capabilities=CAPABILITIES,
    binding="kafka",
)

#: The plugin (the ``eventbridge`` entry point of the ``eventwire`` group).
plugin = BackendPlugin(
    BACKEND_INFO,
    "eventwire_eventbridge._backend:EventBridgeBackend",
    "eventwire_eventbridge._asyncapi:asyncapi_protocol",
    asyncapi_document="eventwire_eventbridge._asyncapi:add_bindings",
)
