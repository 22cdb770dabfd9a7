"""A message as an EventBridge ``PutEvents`` entry, and back from the event SQS receives.

| CloudEvents / eventwire | EventBridge entry (``PutEvents``) | back, from the SQS body |
|---|---|---|
| ``source`` (``ce_source``) | ``Source`` | ``detail.headers`` |
| ``type`` (``ce_type``) | ``DetailType`` | ``detail.headers`` |
| ``time`` (``ce_time``) | ``Time`` (EventBridge keeps whole seconds) | ``detail.headers`` (exact) |
| ``id`` (``ce_id``) | ``detail.headers`` (EventBridge sets its own ``id``) | same |
| the channel | ``detail.channel`` (the rules match it) | ``detail.channel`` |
| the key, other headers | ``detail.key``, ``detail.headers`` | same |
| the body | ``detail.data`` (UTF-8 text) or ``detail.data_base64`` | same |

Every header travels in ``detail.headers`` as given, so a message round-trips byte for byte;
``Source``, ``DetailType`` and ``Time`` are there for rules, archives and other consumers.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from eventwire.backend import WireMessage
from eventwire.bindings import BINDINGS

__all__ = ["TARGET_INPUT", "channel_pattern", "entry_size", "from_event", "to_entry"]

_PREFIX = BINDINGS["kafka"]
#: ``Source`` / ``DetailType`` of a message without CloudEvents headers.
DEFAULT_SOURCE = "eventwire"
DEFAULT_DETAIL_TYPE = "eventwire.message"


def to_entry(bus: str, channel: str, message: WireMessage) -> dict[str, Any]:
    """The ``PutEventsRequestEntry`` of `message` on `channel`."""
    detail: dict[str, Any] = {
        "channel": channel,
        "key": message.key,
        "headers": dict(message.headers),
    }
    try:
        detail["data"] = message.body.decode("utf-8")
    except UnicodeDecodeError:
        detail["data_base64"] = base64.b64encode(message.body).decode("ascii")
    entry: dict[str, Any] = {
        "EventBusName": bus,
        "Source": message.headers.get(f"{_PREFIX}source") or DEFAULT_SOURCE,
        "DetailType": message.headers.get(f"{_PREFIX}type") or DEFAULT_DETAIL_TYPE,
        "Detail": json.dumps(detail, separators=(",", ":"), ensure_ascii=False),
    }
    time = _time(message.headers.get(f"{_PREFIX}time"))
    if time is not None:
        entry["Time"] = time
    return entry


def entry_size(entry: Mapping[str, Any]) -> int:
    """The size AWS counts against the 256 KiB limit: ``Time`` (14 bytes when set) plus the
    UTF-8 bytes of ``Source``, ``DetailType``, ``Detail`` and ``Resources``."""
    size = 14 if "Time" in entry else 0
    for name in ("Source", "DetailType", "Detail"):
        size += len(str(entry.get(name, "")).encode("utf-8"))
    size += sum(len(r.encode("utf-8")) for r in entry.get("Resources", ()))
    return size


def from_event(body: str) -> tuple[str, WireMessage]:
    """The channel and the message of an EventBridge event as a rule delivered it to SQS
    (the whole event, or only its ``detail`` as `TARGET_INPUT` gives it)."""
    event = json.loads(body)
    detail = event["detail"]
    if "data_base64" in detail:
        data = base64.b64decode(detail["data_base64"])
    else:
        data = str(detail["data"]).encode("utf-8")
    headers = {str(k): str(v) for k, v in dict(detail.get("headers") or {}).items()}
    return str(detail["channel"]), WireMessage(data, headers, detail.get("key"))


#: The rule target's input transformer: the queue gets ``{"detail": ...}``, all a consumer
#: reads (CloudEvents attributes travel in ``detail.headers``), not the whole event.
TARGET_INPUT = {"InputPathsMap": {"detail": "$.detail"}, "InputTemplate": '{"detail": <detail>}'}


def channel_pattern(channel: str) -> str:
    """The rule's event pattern: this backend's events of `channel`, nothing else."""
    return json.dumps({"detail": {"channel": [channel]}})


def _time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
