"""A small hand-written contract with unique channel names, and a foreign producer's mix of
valid and invalid messages (raw headers and bodies, as another team's client would send)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import yaml

#: CloudEvents header prefix per binding (written by hand: the foreign producer is not eventwire).
PREFIX = {"kafka": "ce_", "nats": "ce-"}


def contract(tmp_path: Path, tag: str | None = None) -> tuple[Path, str, str]:
    """Write the contract; returns (path, orders channel, payments channel)."""
    tag = tag or uuid.uuid4().hex[:8]
    orders, payments = f"live-orders-{tag}", f"live-payments-{tag}"
    envelope = {
        "headers": {
            "type": "object",
            "required": ["ce_id", "ce_type", "ce_source", "ce_specversion"],
            "properties": {
                "ce_id": {"type": "string"},
                "ce_type": {"type": "string"},
                "ce_source": {"type": "string"},
                "ce_specversion": {"type": "string", "const": "1.0"},
                "ce_time": {"type": "string", "format": "date-time"},
                "content-type": {"type": "string", "const": "application/json"},
            },
        }
    }

    def message(name: str, schema: str, example: dict[str, Any]) -> dict[str, Any]:
        return {
            "name": name,
            "contentType": "application/json",
            "payload": {"$ref": f"#/components/schemas/{schema}"},
            "traits": [{"$ref": "#/components/messageTraits/envelope"}],
            "bindings": {"kafka": {"key": {"type": "string"}, "bindingVersion": "0.5.0"}},
            "x-eventwire-key": "order_id",
            "examples": [{"name": name, "payload": example}],
        }

    document = {
        "asyncapi": "3.0.0",
        "info": {"title": "shop", "version": "1.0.0"},
        "channels": {
            "orders": {
                "address": orders,
                "messages": {
                    "OrderPlaced": {"$ref": "#/components/messages/OrderPlaced"},
                    "OrderCancelled": {"$ref": "#/components/messages/OrderCancelled"},
                },
            },
            "payments": {
                "address": payments,
                "messages": {"PaymentCharged": {"$ref": "#/components/messages/PaymentCharged"}},
            },
        },
        "operations": {
            "sendOrderPlaced": {
                "action": "send",
                "channel": {"$ref": "#/channels/orders"},
                "messages": [{"$ref": "#/channels/orders/messages/OrderPlaced"}],
            },
            "sendOrderCancelled": {
                "action": "send",
                "channel": {"$ref": "#/channels/orders"},
                "messages": [{"$ref": "#/channels/orders/messages/OrderCancelled"}],
            },
            "receivePaymentCharged": {
                "action": "receive",
                "channel": {"$ref": "#/channels/payments"},
                "messages": [{"$ref": "#/channels/payments/messages/PaymentCharged"}],
            },
        },
        "components": {
            "schemas": {
                "OrderPlaced": {
                    "type": "object",
                    "required": ["order_id", "total", "currency"],
                    "properties": {
                        "order_id": {"type": "string", "minLength": 1},
                        "total": {"type": "number", "minimum": 0},
                        "currency": {"type": "string", "enum": ["EUR", "USD"]},
                        "note": {"type": "string", "maxLength": 20},
                    },
                },
                "OrderCancelled": {
                    "type": "object",
                    "required": ["order_id", "reason"],
                    "properties": {
                        "order_id": {"type": "string"},
                        "reason": {"type": "string", "enum": ["out-of-stock", "customer"]},
                    },
                },
                "PaymentCharged": {
                    "type": "object",
                    "required": ["order_id", "amount"],
                    "properties": {
                        "order_id": {"type": "string"},
                        "amount": {"type": "number", "minimum": 0},
                    },
                },
            },
            "messages": {
                "OrderPlaced": message(
                    "OrderPlaced",
                    "OrderPlaced",
                    {"order_id": "ord-1", "total": 12.5, "currency": "EUR"},
                ),
                "OrderCancelled": message(
                    "OrderCancelled", "OrderCancelled", {"order_id": "ord-1", "reason": "customer"}
                ),
                "PaymentCharged": message(
                    "PaymentCharged", "PaymentCharged", {"order_id": "ord-1", "amount": 12.5}
                ),
            },
            "messageTraits": {"envelope": envelope},
        },
    }
    path = tmp_path / f"shop-{tag}.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path, orders, payments


def headers(binding: str, event_type: str, n: int, **drop: bool) -> dict[str, str]:
    prefix = PREFIX[binding]
    out = {
        f"{prefix}id": f"00000000-0000-4000-8000-{n:012d}",
        f"{prefix}type": event_type,
        f"{prefix}source": "foreign-producer",
        f"{prefix}specversion": "1.0",
        f"{prefix}time": "2024-05-01T12:00:00Z",
        "content-type": "application/json",
    }
    for name in drop:
        out.pop(f"{prefix}{name}")
    return out


Raw = tuple[bytes, dict[str, str], str | None]


def foreign_mix(binding: str, orders: str, payments: str) -> list[tuple[str, Raw, str | None]]:
    """(channel, (body, headers, key)) in publish order, and the expected rule per message
    (``None``: valid). Three valid messages and one of each kind of violation."""
    placed = json.dumps({"order_id": "ord-1", "total": 12.5, "currency": "EUR"}).encode()
    return [
        (orders, (placed, headers(binding, "OrderPlaced", 1), "ord-1"), None),
        (
            orders,
            (
                json.dumps({"order_id": "ord-2", "reason": "customer"}).encode(),
                headers(binding, "OrderCancelled", 2),
                "ord-2",
            ),
            None,
        ),
        (
            payments,
            (
                json.dumps({"order_id": "ord-1", "amount": 12.5}).encode(),
                headers(binding, "PaymentCharged", 3),
                "ord-1",
            ),
            None,
        ),
        # a currency outside the enum
        (
            orders,
            (
                json.dumps({"order_id": "ord-4", "total": 1, "currency": "GBP"}).encode(),
                headers(binding, "OrderPlaced", 4),
                "ord-4",
            ),
            "payload",
        ),
        # a type the channel does not declare
        (orders, (placed, headers(binding, "OrderShipped", 5), "ord-5"), "type"),
        # no ordering key
        (orders, (placed, headers(binding, "OrderPlaced", 6), None), "key"),
        # no CloudEvents source
        (orders, (placed, headers(binding, "OrderPlaced", 7, source=True), "ord-7"), "cloudevents"),
        # not JSON
        (payments, (b"amount=12.5", headers(binding, "PaymentCharged", 8), "ord-8"), "payload"),
    ]


def as_consumer(path: Path, name: str, channel_key: str = "orders") -> Path:
    """A consumer's contract: the messages of one channel of `path`, received."""
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    document["info"]["title"] = name
    document["operations"] = {
        f"receive{key}": {
            "action": "receive",
            "channel": {"$ref": f"#/channels/{channel_key}"},
            "messages": [{"$ref": f"#/channels/{channel_key}/messages/{key}"}],
        }
        for key in document["channels"][channel_key]["messages"]
    }
    out = path.with_name(f"{name}.yaml")
    out.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return out
