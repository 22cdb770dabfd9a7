"""Ingress: a CloudEvent posted over HTTP, checked against its contract, then published.

Nothing reaches the broker before every check passed: content type, JSON, the CloudEvents
attributes, the payload against the contract's schema, the size the backend accepts. The
answer is ``202`` only once the broker confirmed. A retried POST with the same ``source`` and
``id`` is not published twice (the bus's idempotency store remembers it).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from eventwire.backend import WireMessage
from eventwire.bindings import BINDINGS, to_headers
from eventwire.envelope import SPEC_VERSION, Envelope, new_id
from eventwire.gateway._catalog import IngressMessage
from eventwire.gateway._cloudevents import EXTENSION_NAME, Incoming, parse_rfc3339
from eventwire.gateway._link import BrokerLink
from eventwire.gateway._problems import Problem
from eventwire.idempotency import Claim, IdempotencyStore

__all__ = ["build_envelope", "publish_event"]

#: How long a published id is remembered, and how long a claim may be held.
IDEMPOTENCY_TTL = 24 * 3600.0
CLAIM_LEASE = 60.0


def _key_of(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return str(value)


def build_envelope(message: IngressMessage, incoming: Incoming, default_source: str) -> Envelope:
    """The envelope to publish; a 422 `Problem` listing every attribute that is wrong."""
    attrs = incoming.attributes
    errors: list[dict[str, str]] = []

    def bad(name: str, text: str) -> None:
        where = f"ce-{name}" if incoming.mode == "binary" else f"$.{name}"
        errors.append({"path": where, "message": text})

    specversion = attrs.get("specversion", SPEC_VERSION)
    if specversion != SPEC_VERSION:
        bad("specversion", f"must be {SPEC_VERSION!r}, got {specversion!r}")
    if attrs.get("type", message.type) != message.type:
        bad("type", f"this endpoint accepts {message.type!r}, got {attrs['type']!r}")
    for name in ("id", "source"):
        if name in attrs and not attrs[name]:
            bad(name, "must not be empty")
    time = datetime.now(UTC)
    if "time" in attrs:
        try:
            time = parse_rfc3339(attrs["time"])
        except ValueError as exc:
            bad("time", str(exc))
    content = attrs.get("datacontenttype", "application/json")
    if content.split(";", 1)[0].strip().lower() != "application/json":
        bad("datacontenttype", f"events are JSON ('application/json'), got {content!r}")
    version = attrs.get("dataversion", message.version)
    if message.version is not None and version != message.version:
        bad("dataversion", f"the contract has version {message.version!r}, got {version!r}")
    subject = attrs.get("subject")
    if message.key is not None and isinstance(incoming.data, Mapping):
        key = _key_of(incoming.data.get(message.key))
        if subject is not None and key is not None and subject != key:
            bad(
                "subject",
                f"the ordering key is the data's {message.key!r} ({key!r}), got {subject!r}",
            )
        subject = key if key is not None else subject
    for name in incoming.extensions:
        if not EXTENSION_NAME.match(name):
            bad(name, "not a CloudEvents attribute name (a-z, 0-9, at most 20)")
    if errors:
        raise Problem(
            422, "invalid-event", "the CloudEvent attributes are not valid", errors=errors
        )
    return Envelope(
        id=attrs.get("id") or new_id(),
        type=message.type,
        source=attrs.get("source") or default_source,
        time=time,
        specversion=SPEC_VERSION,
        subject=subject,
        correlationid=attrs.get("correlationid"),
        causationid=attrs.get("causationid"),
        dataversion=version,
    )


def encode_payload(message: IngressMessage, data: Any) -> bytes:
    """The payload as JSON; a 422 `Problem` naming each violation of the contract."""
    body = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    problems = message.validator.errors(message.type, body)
    if problems:
        errors = []
        for text in problems:
            path, _, what = text.partition(": ")
            errors.append({"path": path, "message": what})
        raise Problem(
            422,
            "invalid-payload",
            f"the data is not a valid {message.type} ({message.contract.name}); nothing was "
            "published",
            errors=errors,
        )
    return body


async def publish_event(
    link: BrokerLink,
    store: IdempotencyStore,
    message: IngressMessage,
    incoming: Incoming,
    default_source: str,
) -> tuple[Envelope, bool]:
    """Check and publish; returns the envelope and whether it was a duplicate."""
    if incoming.also is not None:  # headers beside a structured event must be valid too
        build_envelope(message, incoming.also, default_source)
    envelope = build_envelope(message, incoming, default_source)
    body = encode_payload(message, incoming.data)
    bus = link.bus
    backend = bus.backend
    prefix = BINDINGS[backend.binding]
    envelope_headers = {prefix + name: value for name, value in incoming.extensions.items()}
    if envelope_headers:
        envelope = dataclasses.replace(envelope, headers=envelope_headers)
    wire = WireMessage(body, to_headers(envelope, backend.binding), envelope.subject)
    limit = backend.capabilities.max_message_bytes
    if limit is not None and len(body) + sum(map(len, wire.headers.values())) > limit:
        raise Problem(
            413,
            "event-too-large",
            f"the event encodes to more than the {backend.name} backend's limit of {limit} "
            "bytes; nothing was published",
        )
    if "id" not in incoming.attributes:
        await link.publish(message.channel, wire)
        return envelope, False
    claim_key = f"eventwire-gateway:{envelope.source}:{envelope.id}"
    while True:
        claim = await store.claim(claim_key, CLAIM_LEASE)
        if claim is Claim.DONE:
            return envelope, True
        if claim is Claim.ACQUIRED:
            break
        await asyncio.sleep(0.05)  # BUSY: the same id is being published right now
    try:
        await link.publish(message.channel, wire)
    except BaseException:
        await store.release(claim_key)
        raise
    await store.complete(claim_key, IDEMPOTENCY_TTL)
    return envelope, False
