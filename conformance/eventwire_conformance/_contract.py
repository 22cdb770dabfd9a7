"""The AsyncAPI 3.0 contract the suite attaches to a bus (G09, G20).

The contract is stricter than the event model on purpose: ``tag`` may hold at most 8
characters and ``seq`` must be at least 0, which the model does not require. So an event the
model accepts can still break the contract, and only a bus that checks the contract refuses
it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from eventwire import EventBus

from eventwire_conformance._support import Harness

__all__ = ["CONTRACT_TYPE", "MAX_TAG", "contract_bus_or_fail", "write_contract"]

#: The message name (event type) the contract describes.
CONTRACT_TYPE = "ContractPing"
#: The longest ``tag`` the contract allows.
MAX_TAG = 8


def contract_document(channel: str) -> dict[str, Any]:
    """An AsyncAPI 3.0 document with one channel and one message, ``ContractPing``."""
    payload = {
        "type": "object",
        "required": ["key", "seq"],
        "properties": {
            "key": {"type": "string"},
            "seq": {"type": "integer", "minimum": 0},
            "tag": {"type": "string", "maxLength": MAX_TAG},
        },
    }
    return {
        "asyncapi": "3.0.0",
        "info": {"title": "eventwire conformance contract", "version": "1.0.0"},
        "defaultContentType": "application/json",
        "channels": {
            "pings": {
                "address": channel,
                "messages": {CONTRACT_TYPE: {"$ref": f"#/components/messages/{CONTRACT_TYPE}"}},
            }
        },
        "operations": {
            "sendContractPing": {
                "action": "send",
                "channel": {"$ref": "#/channels/pings"},
                "messages": [{"$ref": f"#/channels/pings/messages/{CONTRACT_TYPE}"}],
            }
        },
        "components": {
            "messages": {
                CONTRACT_TYPE: {
                    "name": CONTRACT_TYPE,
                    "title": "A ping with a short tag",
                    "contentType": "application/json",
                    "payload": payload,
                }
            }
        },
    }


def write_contract(directory: Path, channel: str) -> Path:
    """Write the contract for `channel` as YAML into `directory`; returns its path."""
    path = directory / f"{channel}.asyncapi.yaml"
    path.write_text(yaml.safe_dump(contract_document(channel), sort_keys=False), "utf-8")
    return path


def contract_bus_or_fail(harness: Harness, path: Path) -> EventBus:
    """``harness.bus(contract=path)``, or a clear failure when contracts cannot be loaded."""
    try:
        return harness.bus(contract=path)
    except ImportError as exc:
        raise AssertionError(
            f"EventBus(contract=...) cannot load contracts: {type(exc).__name__}: {exc}. "
            "The eventwire.contracts module (load_validator) must be installed for this "
            "guarantee"
        ) from None
