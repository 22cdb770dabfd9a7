"""The JSON codec: events to wire messages and back."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from pydantic import ValidationError

from eventwire.backend import WireMessage
from eventwire.bindings import from_headers, to_headers
from eventwire.envelope import JSON, Envelope
from eventwire.errors import DecodeError, EventValidationError
from eventwire.events import Message

__all__ = ["JSON", "PayloadValidator", "decode", "encode", "encode_body"]


class PayloadValidator(Protocol):
    """Checks a payload against a contract (see `eventwire.contracts`)."""

    def errors(self, message_type: str, payload: bytes) -> list[str]:
        """Every problem of `payload` for `message_type`; empty when it is valid."""
        ...


def encode(
    event: Message,
    envelope: Envelope,
    binding: str,
    validator: PayloadValidator | None = None,
) -> WireMessage:
    """Serialize `event` and check it; `EventValidationError` means nothing may be sent."""
    body = encode_body(event, envelope.type, validator)
    return WireMessage(body=body, headers=to_headers(envelope, binding), key=envelope.subject)


def encode_body(
    event: Message, message_type: str, validator: PayloadValidator | None = None
) -> bytes:
    """The JSON payload of `event`, checked (`EventValidationError`: nothing may be sent)."""
    model = type(event)
    fields = model.__pydantic_fields__
    if len(event.__dict__) < len(fields):  # built with model_construct() and fields left out
        missing = [name for name in fields if name not in event.__dict__]
        raise EventValidationError(
            f"{model.__name__} is missing required field(s) {', '.join(missing)} (was it built "
            f"with model_construct()?) and was not sent; build it with {model.__name__}(...)"
        )
    try:
        # Strict serialization: a value that does not fit its field (an instance built with
        # model_construct(), say) raises here instead of poisoning every consumer.
        body: bytes = model.__pydantic_serializer__.to_json(event, warnings="error")
    except (ValueError, TypeError, AttributeError) as exc:
        raise EventValidationError(
            f"{model.__name__} is not valid and was not sent: {exc}"
        ) from None
    if validator is not None:
        problems = validator.errors(message_type, body)
        if problems:
            raise EventValidationError(
                f"{model.__name__} breaks its contract and was not sent: " + "; ".join(problems)
            )
    return body


def decode_envelope(headers: Mapping[str, str], binding: str) -> Envelope:
    """The envelope of an incoming message (`DecodeError` when its headers are not one)."""
    return from_headers(headers, binding)


def decode(body: bytes, model: type[Message]) -> Message:
    """Validate `body` as `model`; `DecodeError` with pydantic's explanation otherwise."""
    try:
        return model.__pydantic_validator__.validate_json(body)  # type: ignore[no-any-return]
    except ValidationError as exc:
        raise DecodeError(f"payload is not a valid {model.__name__}: {exc}") from None
