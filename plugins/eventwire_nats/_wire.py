"""WireMessage <-> NATS message: headers, message ids, ack-subject metadata.

A header value a NATS header line cannot carry (CR, LF, NUL, leading or trailing blanks)
travels base64-encoded behind ``ew64:``. Added on publish and removed on receipt:
``Nats-Msg-Id`` (the event id, plus ``:dlq:<group>`` or ``:replay:<id>`` so neither is a
duplicate of the original, for the stream's duplicate window) and ``eventwire-key`` (the
key, only when it is not ``ce-subject``; ``eventwire-keyless``: no key despite one).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from datetime import UTC, datetime

from eventwire.backend import WireMessage
from eventwire.errors import PublishError

__all__ = [
    "MSG_ID",
    "decode_headers",
    "header_block",
    "parse_header_lines",
    "reply_metadata",
    "reply_origin",
]

MSG_ID = "Nats-Msg-Id"
_KEY = "eventwire-key"
_KEYLESS = "eventwire-keyless"
_SUBJECT = "ce-subject"
#: Publish conditions the server checks (``Nats-Expected-Stream``, ``-Last-Sequence`` ...):
#: another producer's, dropped on receipt, or a dead letter carrying them would be refused.
_DIRECTIVE = "Nats-Expected-"
_ID = "ce-id"
_DLQ_GROUP = "eventwire-dlq-group"
_REPLAY = "eventwire-replay"
_B64 = "ew64:"
_INTERNAL = (MSG_ID, _KEY, _KEYLESS)
_BAD_NAME = frozenset(":\r\n\t \0")
_LINE_BREAK = re.compile("[\r\n\0]")
_GOOD_NAMES: set[str] = set()


def _check_name(name: str) -> None:
    if not name or not name.isascii() or _BAD_NAME.intersection(name):
        raise PublishError(
            f"header name {name!r} cannot travel in a NATS header; use ASCII letters, "
            "digits and '-' (no spaces or ':'); nothing was sent"
        )
    if len(_GOOD_NAMES) < 10_000:
        _GOOD_NAMES.add(name)


def _unsafe(text: str) -> bool:
    """True when `text` would not survive a NATS header line as it is."""
    return text.strip() != text or text.startswith(_B64) or bool(_LINE_BREAK.search(text))


def _b64(text: str) -> str:
    return _B64 + base64.b64encode(text.encode()).decode("ascii")


def header_block(message: WireMessage) -> bytes:
    """The NATS header block of `message`, with its message id and (if needed) its key.

    Raises `PublishError` for a header name NATS cannot carry.
    """
    unsafe = _unsafe
    lines = ["NATS/1.0\r\n"]
    headers = message.headers
    for name, value in headers.items():
        if name not in _GOOD_NAMES:
            _check_name(name)
        if name in _INTERNAL:
            continue
        text = value if type(value) is str else str(value)
        if unsafe(text):
            text = _b64(text)
        lines.append(f"{name}: {text}\r\n")
    key = message.key
    subject = headers.get(_SUBJECT)
    if key is None:
        if subject is not None:
            lines.append(f"{_KEYLESS}: 1\r\n")
    elif key != subject:
        lines.append(f"{_KEY}: {_b64(key) if unsafe(key) else key}\r\n")
    msg_id = headers.get(_ID)
    if msg_id:
        if replay := headers.get(_REPLAY):
            msg_id += f":replay:{replay}"
        if (group := headers.get(_DLQ_GROUP)) is not None:
            msg_id += f":dlq:{group}"
        if unsafe(msg_id):
            msg_id = base64.b64encode(msg_id.encode()).decode("ascii")
        lines.append(f"{MSG_ID}: {msg_id}\r\n")
    lines.append("\r\n")
    return "".join(lines).encode()


def _decode(value: str) -> str:
    if value.startswith(_B64):
        try:
            return base64.b64decode(value[len(_B64) :]).decode("utf-8", "replace")
        except ValueError:
            return value
    return value


def decode_headers(headers: Mapping[str, str] | None) -> tuple[dict[str, str], str | None]:
    """The published headers and the key of a received message."""
    if not headers:
        return {}, None
    out = {
        name: _decode(value)
        for name, value in headers.items()
        # another producer's publish conditions are not part of the message either
        if name not in _INTERNAL and not name.startswith(_DIRECTIVE)
    }
    key = headers.get(_KEY)
    if key is not None:
        key = _decode(key)
    elif _KEYLESS not in headers:
        key = out.get(_SUBJECT)
    return out, key


def reply_metadata(reply: str) -> tuple[int, int]:
    """``(stream sequence, times delivered)`` from a JetStream ack subject.

    ``$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>`` or the newer
    form with a domain and an account hash after ``$JS.ACK``.
    """
    tokens = reply.split(".")
    if len(tokens) == 9:
        return int(tokens[5]), int(tokens[4])
    if len(tokens) >= 11:
        return int(tokens[7]), int(tokens[6])
    raise ValueError(f"not a JetStream ack subject: {reply!r}")


def reply_origin(reply: str) -> tuple[str, datetime | None]:
    """``(stream, server timestamp)`` from a JetStream ack subject (see `reply_metadata`)."""
    tokens = reply.split(".")
    stream, stamp = (tokens[2], tokens[7]) if len(tokens) == 9 else (tokens[4], tokens[9])
    when = datetime.fromtimestamp(int(stamp) / 1e9, tz=UTC) if stamp.isdigit() else None
    return stream, when


def parse_header_lines(raw: bytes) -> dict[str, str]:
    """NATS header lines (``Name: value``) as a dict: what nats-py's parser returns.

    Installed on the backend's own connection in place of nats-py's parser, which inspects
    every character of every name in Python and was the largest cost of a delivery.
    """
    out: dict[str, str] = {}
    for line in raw.decode("utf-8", "replace").split("\r\n"):
        name, sep, value = line.partition(":")
        if not sep:
            continue
        name = name.strip()
        if not name or " " in name or "\t" in name or not name.isascii():
            continue
        out[name] = value.strip()
    return out
