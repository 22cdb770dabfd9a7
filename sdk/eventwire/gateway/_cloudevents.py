"""CloudEvents over HTTP (the HTTP protocol binding): binary and structured content modes.

- *binary*: the body is the event's data (``Content-Type: application/json``), the
  attributes are ``ce-<name>`` headers. A plain JSON POST without ``ce-`` headers is accepted
  too: the gateway then sets ``id`` (a new UUID), ``source`` and ``specversion``.
- *structured*: ``Content-Type: application/cloudevents+json``, the body is the whole event
  (attributes and ``data``).
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from eventwire.envelope import parse_time
from eventwire.gateway._problems import Problem

__all__ = [
    "ATTRIBUTES",
    "EXTENSION_NAME",
    "STRUCTURED",
    "Incoming",
    "parse_request",
    "parse_rfc3339",
]

STRUCTURED = "application/cloudevents+json"
#: The attributes the gateway reads (the rest are extensions, kept as headers).
ATTRIBUTES = (
    "specversion",
    "id",
    "source",
    "type",
    "time",
    "subject",
    "datacontenttype",
    "correlationid",
    "causationid",
    "dataversion",
)
#: CloudEvents attribute names: lower-case letters and digits, at most 20 characters.
EXTENSION_NAME = re.compile(r"^[a-z0-9]{1,20}$")
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


@dataclasses.dataclass(frozen=True)
class Incoming:
    """An event as the client sent it: attributes, extensions and the data (parsed JSON)."""

    mode: str
    attributes: Mapping[str, str]
    extensions: Mapping[str, str]
    data: Any
    #: structured mode: the ``ce-*`` headers sent beside the body (checked, not used)
    also: Incoming | None = None


def parse_request(content_type: str | None, headers: Mapping[str, str], body: bytes) -> Incoming:
    """The event in the request; a 400/415/422 `Problem` when it cannot be one."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media == STRUCTURED:
        event = _structured(body)
        beside = _attributes(headers, event.data)
        if beside.attributes or beside.extensions:
            event = dataclasses.replace(event, also=beside)
        return event
    if media == "application/json" or (
        media.startswith("application/") and media.endswith("+json") and "cloudevents" not in media
    ):
        return _binary(headers, body)
    raise Problem(
        415,
        "unsupported-media-type",
        f"Content-Type {content_type or '(none)'!r} is not accepted; send the data as "
        f"'application/json' (binary mode, ce-* headers) or the whole event as '{STRUCTURED}' "
        "(structured mode)",
    )


def _json(body: bytes, what: str) -> Any:
    def reject(constant: str) -> Any:
        raise ValueError(f"{constant} is not JSON")

    try:
        return json.loads(body.decode("utf-8"), parse_constant=reject)
    except UnicodeDecodeError:
        raise Problem(400, "malformed-json", f"the {what} is not UTF-8 text") from None
    except (ValueError, RecursionError) as exc:
        raise Problem(400, "malformed-json", f"the {what} is not valid JSON: {exc}") from None


def _binary(headers: Mapping[str, str], body: bytes) -> Incoming:
    return _attributes(headers, _json(body, "request body (the event's data)"))


def _attributes(headers: Mapping[str, str], data: Any) -> Incoming:
    attributes: dict[str, str] = {}
    extensions: dict[str, str] = {}
    for name, value in headers.items():
        lower = name.lower()
        if not lower.startswith("ce-"):
            continue
        attr = lower[3:]
        if attr in ATTRIBUTES:
            attributes[attr] = value
        elif attr == "datacontenttype":
            continue
        else:
            extensions[attr] = value
    return Incoming("binary", attributes, extensions, data)


def _structured(body: bytes) -> Incoming:
    event = _json(body, "request body (a CloudEvent in structured mode)")
    if not isinstance(event, dict):
        raise Problem(
            400,
            "malformed-event",
            f"a structured-mode CloudEvent is a JSON object, got {type(event).__name__}",
        )
    errors: list[dict[str, str]] = []
    attributes: dict[str, str] = {}
    extensions: dict[str, str] = {}
    for name, value in event.items():
        if name == "data":
            continue
        if name == "data_base64":
            errors.append(
                {"path": "$.data_base64", "message": "binary data is not accepted; events are JSON"}
            )
            continue
        if name in ATTRIBUTES:
            if not isinstance(value, str):
                errors.append({"path": f"$.{name}", "message": "must be a string"})
            else:
                attributes[name] = value
        elif not EXTENSION_NAME.match(name):
            errors.append(
                {
                    "path": f"$[{json.dumps(name)}]",
                    "message": "not a CloudEvents attribute name (a-z, 0-9, at most 20)",
                }
            )
        elif isinstance(value, bool):
            extensions[name] = "true" if value else "false"
        elif isinstance(value, str | int):
            extensions[name] = str(value)
        else:
            errors.append(
                {"path": f"$.{name}", "message": "an extension is a string, integer or boolean"}
            )
    for name in ("specversion", "id", "source", "type"):
        if name not in event:
            errors.append(
                {"path": f"$.{name}", "message": f"the required attribute {name} is missing"}
            )
    if "data" not in event:
        errors.append({"path": "$.data", "message": "the event has no data"})
    if errors:
        raise Problem(422, "invalid-event", "the CloudEvent is not valid", errors=errors)
    return Incoming("structured", attributes, extensions, event["data"])


def parse_rfc3339(text: str) -> datetime:
    """An RFC 3339 timestamp with a time zone; `ValueError` otherwise."""
    if not _RFC3339.match(text):
        raise ValueError(f"{text!r} is not an RFC 3339 timestamp")
    return parse_time(text.upper())
