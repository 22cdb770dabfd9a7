"""Loading a contract (read and fully validated) and the payload validator built from it."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from pydantic_core import from_json
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from eventwire.contracts._document import (
    DOCUMENT_URI,
    deref,
    iter_messages,
    payload_pointer,
    read_document,
    resolve,
)
from eventwire.contracts._fast import Check, compile_payload_check
from eventwire.contracts._validate import validate_document
from eventwire.errors import ContractError

__all__ = ["ContractValidator", "load_document", "load_validator"]


def load_document(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and fully validate a contract; `ContractError` lists every problem found."""
    document = read_document(path)
    problems = [p for p in validate_document(document) if p.severity == "error"]
    if problems:
        shown = "\n".join(f"  {p}" for p in problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise ContractError(
            f"{path}: not a valid AsyncAPI 3.0 contract ({len(problems)} problem(s)):\n"
            f"{shown}{more}"
        )
    return document


class ContractValidator:
    """Validates event payloads against the message schemas of one contract.

    One compiled `Draft202012Validator` per message, built once, words the problems of an
    invalid payload. A `jsonschema_rs` validator of the same schema answers first (about a
    microsecond for a typical event; see `eventwire.contracts._fast`): only a payload it
    rejects reaches jsonschema. ``errors`` of a valid payload costs a JSON parse plus that.
    """

    def __init__(self, document: Mapping[str, Any], source: str = "<contract>") -> None:
        self.source = source
        #: channel address -> its ``x-eventwire-accept`` value (`eventwire.foreign`), as written.
        self.accept: dict[str, Any] = {
            str(channel.get("address") or key): channel["x-eventwire-accept"]
            for key, channel in (document.get("channels") or {}).items()
            if isinstance(channel, Mapping) and "x-eventwire-accept" in channel
        }
        registry: Registry[Any] = Registry().with_resource(
            DOCUMENT_URI, DRAFT202012.create_resource(document)
        )
        self._validators: dict[str, Draft202012Validator | None] = {}
        self._compiled: dict[str, Check] = {}
        try:
            entries = list(iter_messages(document))
        except KeyError as exc:
            raise ContractError(f"{source}: {exc.args[0]}") from None
        for entry in entries:
            pointer = payload_pointer(document, entry)
            if pointer is None:
                self._validators[entry.name] = None
                continue
            schema, _ = deref(document, resolve(document, "#" + pointer), pointer)
            try:
                Draft202012Validator.check_schema(schema)
            except SchemaError as exc:
                where = "/".join(str(p) for p in exc.absolute_path)
                raise ContractError(
                    f"{source}: the payload schema of message {entry.name!r} ({pointer}) "
                    f"is not a valid JSON Schema at '{where}': {exc.message}"
                ) from None
            ref = {"$ref": DOCUMENT_URI + "#" + quote(pointer, safe="/~")}
            self._validators[entry.name] = Draft202012Validator(
                ref,
                registry=registry,
                format_checker=Draft202012Validator.FORMAT_CHECKER,
            )
            check = compile_payload_check(document, pointer)
            if check is not None:
                self._compiled[entry.name] = check

    @property
    def message_types(self) -> list[str]:
        """The message names (event types) of the contract."""
        return sorted(self._validators)

    def errors(self, message_type: str, payload: bytes) -> list[str]:
        """Every problem of `payload` for `message_type`, with its JSON path; empty if valid."""
        try:
            validator = self._validators[message_type]
        except KeyError:
            known = ", ".join(self.message_types) or "none"
            return [
                f"message type {message_type!r} is not in the contract {self.source} "
                f"(its messages: {known})"
            ]
        if validator is None:
            return []
        check = self._compiled.get(message_type)
        if check is not None:
            try:  # pydantic-core's parser: several times faster than json.loads, and never
                # takes a document json.loads refuses (tests/contracts/test_fast_validation.py)
                if check(from_json(payload)):
                    return []
            except ValueError:
                pass
        try:
            instance = json.loads(payload)
        except (ValueError, UnicodeDecodeError) as exc:
            return [f"$: payload is not JSON: {exc}"]
        return [
            f"{error.json_path}: {error.message}"
            for error in sorted(validator.iter_errors(instance), key=lambda e: e.json_path)
        ]


def load_validator(path: str | os.PathLike[str]) -> ContractValidator:
    """The payload validator of the contract at `path` (used by ``EventBus(contract=...)``).

    A missing, malformed or invalid contract raises `ContractError` naming the file and the
    JSON path of each problem.
    """
    document = load_document(path)
    return ContractValidator(document, str(path))
