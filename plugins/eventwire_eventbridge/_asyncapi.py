"""How an EventBridge backend appears in AsyncAPI.

AsyncAPI has SQS bindings (0.2.0) but none for EventBridge. So:

- the server: protocol ``eventbridge``, host the EventBridge endpoint (the region's, or the
  ``endpoint`` option's), with ``x-eventbridge`` naming the bus and region;
- each channel: ``x-eventbridge-rule``, the event pattern of the rules that route it;
- each message: ``x-eventbridge``, where its CloudEvents ``type`` and ``source`` go in the
  EventBridge envelope (``detail-type``, ``source``);
- each receive operation: the SQS operation binding, listing the group's queue and the
  store queue of the channel's dead letters (with ``x-eventwire-role``), so
  infrastructure-as-code can create both.

What AsyncAPI cannot say about EventBridge stays in those ``x-`` fields: there is no binding
for an event bus, a rule, its event pattern or its targets, nor for ``PutEvents``.
"""

from __future__ import annotations

import json
from collections.abc import MutableMapping
from typing import Any
from urllib.parse import urlsplit

from eventwire.asyncapi import AsyncAPIProtocol
from eventwire.backend import Backend
from eventwire.deadletter import dead_letter_channel

from eventwire_eventbridge._envelope import channel_pattern
from eventwire_eventbridge._names import RETENTION_SECONDS, STORE_GROUP, resource_name
from eventwire_eventbridge._settings import EventBridgeSettings

__all__ = ["SQS_BINDING_VERSION", "add_bindings", "asyncapi_protocol"]

SQS_BINDING_VERSION = "0.2.0"


def _settings(backend: Any) -> EventBridgeSettings | None:
    settings = getattr(backend, "settings", None)
    return settings if isinstance(settings, EventBridgeSettings) else None


def asyncapi_protocol(backend: Backend) -> AsyncAPIProtocol:
    """Protocol ``eventbridge``; the server names its bus and region."""
    settings = _settings(backend)
    extensions: dict[str, Any] = {}
    if settings is not None:
        extensions["x-eventbridge"] = {
            "eventBusName": settings.bus,
            "region": settings.region or "from the AWS chain",
        }
    return AsyncAPIProtocol(
        "eventbridge",
        description="an AWS EventBridge event bus (PutEvents); rules route each channel to "
        "one SQS queue per consumer group",
        server_extensions=extensions,
    )


def _api_host(settings: EventBridgeSettings) -> str | None:
    """The host PutEvents goes to: the endpoint's, or the region's EventBridge endpoint."""
    if settings.endpoint is not None:
        return urlsplit(settings.endpoint).netloc or None
    if settings.region is None:
        return None
    suffix = "amazonaws.com.cn" if settings.region.startswith("cn-") else "amazonaws.com"
    return f"events.{settings.region}.{suffix}"


def add_bindings(document: MutableMapping[str, Any], bus: Any) -> None:
    """The ``eventwire_asyncapi_document`` hook: the rules, the envelope and the SQS queues
    of a bus on this backend (other buses are left alone)."""
    settings = _settings(getattr(bus, "backend", None))
    if settings is None:
        return
    for server in document.get("servers", {}).values():
        if server.get("protocol") == "eventbridge":
            server["host"] = _api_host(settings) or server["host"]
    channels: dict[str, Any] = document.get("channels", {})
    for channel in channels.values():
        pattern = json.loads(channel_pattern(channel["address"]))
        channel["x-eventbridge-rule"] = {"eventPattern": pattern}
    for message in document.get("components", {}).get("messages", {}).values():
        message["x-eventbridge"] = {
            "detail-type": "the CloudEvents type (the message name)",
            "source": "the CloudEvents source (the publishing service)",
            "detail": "channel, key, headers and the payload (data or data_base64)",
        }
    for operation in document.get("operations", {}).values():
        if operation.get("action") != "receive" or "x-eventwire-group" not in operation:
            continue
        key = operation["channel"]["$ref"].rsplit("/", 1)[-1]
        address = channels[key]["address"]
        group = operation["x-eventwire-group"]
        queue = {
            "name": resource_name(settings.prefix, address, group),
            "fifoQueue": False,
            "visibilityTimeout": int(settings.visibility_timeout),
            "receiveMessageWaitTime": int(settings.wait_time),
            "messageRetentionPeriod": RETENTION_SECONDS,
            "x-eventwire-role": "the group's queue",
        }
        dlq = dead_letter_channel(address)
        store = {
            "name": resource_name(settings.prefix, dlq, STORE_GROUP),
            "fifoQueue": False,
            "messageRetentionPeriod": RETENTION_SECONDS,
            "x-eventwire-role": f"the dead letters of {address} ({dlq}), kept for listing",
        }
        operation.setdefault("bindings", {})["sqs"] = {
            "queues": [queue, store],
            "bindingVersion": SQS_BINDING_VERSION,
        }
