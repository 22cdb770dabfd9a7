"""The OpenAPI 3.1 document of a gateway, generated from its contracts.

Every message the contracts send becomes ``POST /events/<type>`` whose request body is the
message's payload schema (``application/json``, binary mode) or a CloudEvent carrying it
(``application/cloudevents+json``, structured mode); the dead-letter endpoints take the
channels of the contracts.
"""

from __future__ import annotations

from typing import Any

from eventwire.gateway._catalog import Catalog, IngressMessage
from eventwire.gateway._cloudevents import STRUCTURED
from eventwire.gateway._problems import PROBLEM_JSON

__all__ = ["MAX_OFFSET", "OPENAPI_PATH", "build_openapi"]

OPENAPI_PATH = "/openapi.json"
MAX_OFFSET = 1_000_000_000
_LETTER_ID = {"type": "string", "pattern": "^[0-9a-f]{20}$"}
_NULLABLE_STRING = {"type": ["string", "null"]}

_PROBLEM = {
    "type": "object",
    "description": "Problem details (RFC 9457)",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["path", "message"],
                "properties": {"path": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
}
_ACCEPTED = {
    "type": "object",
    "required": ["id", "type", "channel", "source", "duplicate"],
    "properties": {
        "id": {"type": "string"},
        "type": {"type": "string"},
        "channel": {"type": "string"},
        "source": {"type": "string"},
        "duplicate": {"type": "boolean", "description": "true: this id was published before"},
    },
}
_SUMMARY_PROPERTIES: dict[str, Any] = {
    "id": {"type": "string", "description": "the letter's id in this gateway"},
    "event_id": _NULLABLE_STRING,
    "type": _NULLABLE_STRING,
    "reason": {"type": "string"},
    "error_type": {"type": "string"},
    "error": {"type": "string"},
    "attempts": {"type": "integer"},
    "group": {"type": "string"},
    "time": _NULLABLE_STRING,
    "key": _NULLABLE_STRING,
}
_LETTER_SUMMARY = {
    "type": "object",
    "required": list(_SUMMARY_PROPERTIES),
    "properties": _SUMMARY_PROPERTIES,
}
_LETTER = {
    "type": "object",
    "required": [
        *_SUMMARY_PROPERTIES,
        "source",
        "subject",
        "correlationid",
        "channel",
        "headers",
        "payload",
        "payload_text",
        "payload_base64",
    ],
    "properties": {
        **_SUMMARY_PROPERTIES,
        "source": _NULLABLE_STRING,
        "subject": _NULLABLE_STRING,
        "correlationid": _NULLABLE_STRING,
        "channel": {"type": "string"},
        "headers": {"type": "object", "additionalProperties": {"type": "string"}},
        "payload": {"description": "the payload as JSON (null when it is not JSON)"},
        "payload_text": _NULLABLE_STRING,
        "payload_base64": _NULLABLE_STRING,
    },
}
_LETTER_PAGE = {
    "type": "object",
    "required": ["channel", "total", "offset", "limit", "truncated", "items"],
    "properties": {
        "channel": {"type": "string"},
        "total": {"type": "integer", "description": "letters matching the filter"},
        "offset": {"type": "integer"},
        "limit": {"type": "integer"},
        "truncated": {
            "type": "boolean",
            "description": "the dead-letter channel holds more letters than one scan reads",
        },
        "items": {
            "type": "array",
            "items": {"$ref": "#/components/schemas/gateway.DeadLetterSummary"},
        },
    },
}
_CHANNELS = {
    "type": "object",
    "required": ["channels"],
    "properties": {
        "channels": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["channel", "count", "truncated"],
                "properties": {
                    "channel": {"type": "string"},
                    "count": {"type": "integer"},
                    "truncated": {"type": "boolean"},
                },
            },
        }
    },
}
_REPLAYED = {
    "type": "object",
    "required": ["replayed"],
    "properties": {"replayed": {"type": "integer"}},
}
_PURGED = {
    "type": "object",
    "required": ["purged"],
    "properties": {"purged": {"type": "integer"}},
}
_HEALTH = {
    "type": "object",
    "required": ["status"],
    "properties": {"status": {"type": "string"}, "broker": {"type": "string"}},
}
_MESSAGES = {
    400: "the request cannot be read (malformed JSON, a bad parameter)",
    401: "no or a wrong bearer token",
    404: "no such event type, channel or letter",
    409: "the same event id is being published right now",
    413: "the body is larger than the limit",
    415: "the content type is not accepted",
    422: "the event breaks its contract; each violation is listed",
    501: "the backend cannot purge dead letters",
    503: "the broker is unreachable or did not confirm; retry after Retry-After seconds",
}
_FILTERS: list[dict[str, Any]] = [
    {"name": "reason", "in": "query", "schema": {"type": "string"}},
    {"name": "error_type", "in": "query", "schema": {"type": "string"}},
    {"name": "group", "in": "query", "schema": {"type": "string"}},
    {"name": "since", "in": "query", "schema": {"type": "string", "format": "date-time"}},
    {"name": "until", "in": "query", "schema": {"type": "string", "format": "date-time"}},
]


def _json(schema: Any, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _problems(*codes: int) -> dict[str, Any]:
    return {
        str(code): {
            "description": _MESSAGES[code],
            "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/gateway.Problem"}}},
        }
        for code in codes
    }


def _ce_headers(message: IngressMessage) -> list[dict[str, Any]]:
    def header(name: str, schema: dict[str, Any], text: str) -> dict[str, Any]:
        return {
            "name": "ce-" + name,
            "in": "header",
            "required": False,
            "schema": schema,
            "description": text,
        }

    text: dict[str, Any] = {"type": "string", "minLength": 1}
    out = [
        header("specversion", {"type": "string", "enum": ["1.0"]}, "CloudEvents version"),
        header("id", text, "event id (default: a new UUID); a retried id is not published twice"),
        header("source", text, "the producer (default: the gateway's source)"),
        header("type", {"type": "string", "enum": [message.type]}, "the event type"),
        header("time", {"type": "string", "format": "date-time"}, "RFC 3339"),
        header("correlationid", {"type": "string"}, "the business transaction"),
        header("causationid", {"type": "string"}, "the id of the event that caused this one"),
    ]
    if message.key is None:
        out.append(header("subject", {"type": "string"}, "the ordering key"))
    if message.version is not None:
        out.append(
            header(
                "dataversion",
                {"type": "string", "enum": [message.version]},
                "the payload's schema version",
            )
        )
    return out


def _structured(message: IngressMessage, schema_ref: str) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "specversion": {"type": "string", "enum": ["1.0"]},
        "id": {"type": "string", "minLength": 1},
        "source": {"type": "string", "minLength": 1},
        "type": {"type": "string", "enum": [message.type]},
        "time": {"type": "string", "format": "date-time"},
        "datacontenttype": {"type": "string", "enum": ["application/json"]},
        "correlationid": {"type": "string"},
        "causationid": {"type": "string"},
        "data": {"$ref": schema_ref},
    }
    if message.key is None:
        properties["subject"] = {"type": "string"}
    if message.version is not None:
        properties["dataversion"] = {"type": "string", "enum": [message.version]}
    return {
        "type": "object",
        "required": ["specversion", "id", "source", "type", "data"],
        "properties": properties,
        "propertyNames": {"pattern": "^[a-z0-9]{1,20}$"},
        "additionalProperties": {"type": ["string", "integer", "boolean"]},
    }


def _ingress(message: IngressMessage, name: str) -> dict[str, Any]:
    ref = "#/components/schemas/" + name
    json_media: dict[str, Any] = {"schema": {"$ref": ref}}
    if message.examples:
        json_media["examples"] = {
            f"example{i + 1}": {"value": v} for i, v in enumerate(message.examples)
        }
    return {
        "post": {
            "operationId": "publish_" + name,
            "summary": f"Publish {message.type} to {message.channel}",
            "description": f"{message.summary}\n\nContract: {message.contract.name}; "
            f"kind: {message.kind}; channel: {message.channel}"
            + (f"; ordering key: {message.key}" if message.key else ""),
            "tags": ["events"],
            "security": [{"bearer": []}],
            "parameters": _ce_headers(message),
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": json_media,
                    STRUCTURED: {"schema": _structured(message, ref)},
                },
            },
            "responses": {
                "202": _json(
                    {"$ref": "#/components/schemas/gateway.Accepted"},
                    "the broker stored the event",
                ),
                **_problems(400, 401, 413, 415, 422, 503),
            },
        }
    }


def _letter_links(read_only: bool) -> dict[str, Any]:
    """From a page of letters to its first letter (stateful testing follows these)."""
    parameters = {"channel": "$request.path.channel", "letter": "$response.body#/items/0/id"}
    links: dict[str, Any] = {
        "GetLetter": {"operationId": "get_dead_letter", "parameters": parameters}
    }
    if not read_only:
        links["ReplayLetter"] = {"operationId": "replay_dead_letter", "parameters": parameters}
    return links


def build_openapi(
    catalog: Catalog, *, read_only: bool, title: str = "eventwire gateway"
) -> dict[str, Any]:
    """The OpenAPI 3.1 document of a gateway serving `catalog`."""
    schemas: dict[str, Any] = dict(catalog.schemas)
    paths: dict[str, Any] = {}
    if not read_only:
        for message in catalog.messages.values():
            name = "Event." + message.type
            schemas[name] = message.schema
            paths[f"/events/{message.type}"] = _ingress(message, name)
    channel = {
        "name": "channel",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "enum": list(catalog.channels) or [""]},
    }
    letter = {"name": "letter", "in": "path", "required": True, "schema": _LETTER_ID}
    page = [
        {
            "name": "offset",
            "in": "query",
            "schema": {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET},
        },
        {
            "name": "limit",
            "in": "query",
            "schema": {"type": "integer", "minimum": 1, "maximum": 500},
        },
    ]
    paths["/dead-letters"] = {
        "get": {
            "operationId": "dead_letter_channels",
            "summary": "Channels and how many dead letters each holds",
            "tags": ["dead letters"],
            "responses": {
                "200": {
                    **_json({"$ref": "#/components/schemas/gateway.Channels"}, "per channel"),
                    "links": {
                        "ListLetters": {
                            "operationId": "list_dead_letters",
                            "parameters": {"channel": "$response.body#/channels/0/channel"},
                        }
                    },
                },
                **_problems(503),
            },
        }
    }
    paths["/dead-letters/{channel}"] = {
        "get": {
            "operationId": "list_dead_letters",
            "summary": "The dead letters of a channel, oldest first (filtered, paginated)",
            "tags": ["dead letters"],
            "parameters": [channel, *_FILTERS, *page],
            "responses": {
                "200": {
                    **_json({"$ref": "#/components/schemas/gateway.DeadLetterPage"}, "one page"),
                    "links": _letter_links(read_only),
                },
                **_problems(400, 404, 503),
            },
        }
    }
    paths["/dead-letters/{channel}/{letter}"] = {
        "get": {
            "operationId": "get_dead_letter",
            "summary": "One dead letter: payload, headers, reason, error, attempts",
            "tags": ["dead letters"],
            "parameters": [channel, letter],
            "responses": {
                "200": _json({"$ref": "#/components/schemas/gateway.DeadLetter"}, "the letter"),
                **_problems(404, 503),
            },
        }
    }
    if not read_only:
        paths["/dead-letters/{channel}/replay"] = {
            "post": {
                "operationId": "replay_dead_letters",
                "summary": "Replay the letters matching the filter (no filter: all of them)",
                "tags": ["dead letters"],
                "security": [{"bearer": []}],
                "parameters": [channel, *_FILTERS],
                "responses": {
                    "200": _json({"$ref": "#/components/schemas/gateway.Replayed"}, "how many"),
                    **_problems(400, 401, 404, 503),
                },
            }
        }
        paths["/dead-letters/{channel}/purge"] = {
            "post": {
                "operationId": "purge_dead_letters",
                "summary": "Remove every dead letter of the channel (no filter: the whole "
                "dead-letter channel)",
                "tags": ["dead letters"],
                "security": [{"bearer": []}],
                "parameters": [channel],
                "responses": {
                    "200": _json({"$ref": "#/components/schemas/gateway.Purged"}, "how many"),
                    **_problems(401, 404, 501, 503),
                },
            }
        }
        paths["/dead-letters/{channel}/{letter}/replay"] = {
            "post": {
                "operationId": "replay_dead_letter",
                "summary": "Replay one letter to its channel",
                "tags": ["dead letters"],
                "security": [{"bearer": []}],
                "parameters": [channel, letter],
                "responses": {
                    "200": _json({"$ref": "#/components/schemas/gateway.Replayed"}, "replayed"),
                    **_problems(401, 404, 503),
                },
            }
        }
    for name, path in (("live", "/health/live"), ("ready", "/health/ready")):
        paths[path] = {
            "get": {
                "operationId": f"health_{name}",
                "summary": "Liveness" if name == "live" else "Readiness: connected to the broker",
                "tags": ["health"],
                "responses": {
                    "200": _json({"$ref": "#/components/schemas/gateway.Health"}, name),
                    **({} if name == "live" else _problems(503)),
                },
            }
        }
    schemas.update(
        {
            "gateway.Problem": _PROBLEM,
            "gateway.Accepted": _ACCEPTED,
            "gateway.DeadLetterSummary": _LETTER_SUMMARY,
            "gateway.DeadLetter": _LETTER,
            "gateway.DeadLetterPage": _LETTER_PAGE,
            "gateway.Channels": _CHANNELS,
            "gateway.Replayed": _REPLAYED,
            "gateway.Purged": _PURGED,
            "gateway.Health": _HEALTH,
        }
    )
    return {
        "openapi": "3.1.0",
        "info": {
            "title": title,
            "version": "1.0.0",
            "description": "Publish the events of the contracts "
            + ", ".join(path.name for path, _ in catalog.contracts)
            + " over HTTP (CloudEvents binary or structured mode), and operate dead letters.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
