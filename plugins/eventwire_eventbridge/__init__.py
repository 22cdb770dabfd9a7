"""AWS EventBridge + SQS backend: ``eventbridge://BUS?region=...[&endpoint=...]``.

Publish is ``PutEvents`` on the bus (batched to 10 entries and 256 KiB per request; every
failed entry is retried when throttled, else fails the publish). Each group gets one SQS
queue, fed by a rule on the bus that matches the channel; a member long-polls it, ``ack``
deletes the message, and what a member leaves unsettled is made visible again. See
``docs/backends/eventbridge.md`` for the mapping, the limits and what is unsupported.
"""

from eventwire.backendkit import lazy_exports

from eventwire_eventbridge._info import BACKEND_INFO, CAPABILITIES, MAX_MESSAGE_BYTES
from eventwire_eventbridge._settings import EventBridgeSettings

__all__ = [
    "BACKEND_INFO",
    "CAPABILITIES",
    "MAX_MESSAGE_BYTES",
    "EventBridgeBackend",
    "EventBridgeSettings",
]

__getattr__ = lazy_exports(__name__, {"EventBridgeBackend": "eventwire_eventbridge._backend"})
