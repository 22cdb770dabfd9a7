"""Dead letters as the gateway shows them: filters, a stable id per letter, JSON views.

Reading and replaying go through `EventBus.dead_letters` and `EventBus.replay_dead_letters`,
so the semantics are the bus's on every backend: a replay publishes the original message
again to its channel, unchanged but for a fresh ``eventwire-replay`` header, and the
dead-letter channel keeps its entries (an audit log).
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from eventwire.bindings import from_headers
from eventwire.deadletter import DeadLetter
from eventwire.envelope import Envelope, format_time
from eventwire.errors import DecodeError
from eventwire.gateway._cloudevents import parse_rfc3339
from eventwire.gateway._problems import Problem

__all__ = ["LetterFilter", "details", "letter_id", "summary"]


@dataclasses.dataclass(frozen=True)
class LetterFilter:
    """Which letters: each field that is set must match (times inclusive)."""

    reason: str | None = None
    error_type: str | None = None
    group: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> LetterFilter:
        """From ``?reason=&error_type=&group=&since=&until=``; 400 for a bad time."""
        times: dict[str, datetime | None] = {}
        for name in ("since", "until"):
            text = query.get(name)
            try:
                times[name] = parse_rfc3339(text) if text is not None else None
            except ValueError as exc:
                raise Problem(400, "invalid-filter", f"{name}: {exc}") from None
        return cls(
            reason=query.get("reason"),
            error_type=query.get("error_type"),
            group=query.get("group"),
            since=times["since"],
            until=times["until"],
        )

    def __call__(self, letter: DeadLetter) -> bool:
        if self.reason is not None and letter.reason != self.reason:
            return False
        if self.error_type is not None and letter.error_type != self.error_type:
            return False
        if self.group is not None and letter.group != self.group:
            return False
        if self.since is not None and (letter.time is None or letter.time < self.since):
            return False
        return not (self.until is not None and (letter.time is None or letter.time > self.until))


def _envelope(letter: DeadLetter, binding: str) -> Envelope | None:
    try:
        return from_headers(letter.original.headers, binding)
    except DecodeError:
        return None


def letter_id(letter: DeadLetter) -> str:
    """A short id of one dead letter: the same letter read twice gets the same id."""
    digest = hashlib.sha256()
    for part in (letter.group, letter.reason, str(letter.attempts), str(letter.time)):
        digest.update(part.encode() + b"\0")
    for name, value in sorted(letter.original.headers.items()):
        digest.update(f"{name}={value}".encode("utf-8", "surrogateescape") + b"\0")
    digest.update(letter.original.body)
    return digest.hexdigest()[:20]


def summary(letter: DeadLetter, binding: str) -> dict[str, Any]:
    """What a row of the list shows."""
    envelope = _envelope(letter, binding)
    return {
        "id": letter_id(letter),
        "event_id": envelope.id if envelope else None,
        "type": envelope.type if envelope else None,
        "reason": letter.reason,
        "error_type": letter.error_type,
        "error": letter.error,
        "attempts": letter.attempts,
        "group": letter.group,
        "time": format_time(letter.time) if letter.time is not None else None,
        "key": letter.original.key,
    }


def details(letter: DeadLetter, binding: str) -> dict[str, Any]:
    """Everything about one letter: the summary, the original headers and the payload."""
    envelope = _envelope(letter, binding)
    body = letter.original.body
    payload: Any = None
    try:
        payload = json.loads(body)
        is_json = True
    except (ValueError, UnicodeDecodeError):
        is_json = False
    try:
        text: str | None = body.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    return {
        **summary(letter, binding),
        "source": envelope.source if envelope else None,
        "subject": envelope.subject if envelope else None,
        "correlationid": envelope.correlationid if envelope else None,
        "channel": letter.channel,
        "headers": dict(letter.original.headers),
        "payload": payload if is_json else None,
        "payload_text": text,
        "payload_base64": base64.b64encode(body).decode("ascii") if text is None else None,
    }
