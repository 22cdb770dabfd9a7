"""Confirmed publishing and raw core-NATS sends on the backend's nats-py connection.

`Publisher.publish` writes HPUB commands built once per message, each with a reply subject
``<inbox>.<batch>.<index>``, then waits for every PubAck and resends what was not
confirmed (safe: the stream drops a message id it has seen within its duplicate window).
`Publisher.send` writes a small core message (an ack, a progress signal) straight into the
client's outbound buffer. Both fall back to nats-py's public API if its internals change.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

from eventwire.backendkit import describe_exception, wait_event
from eventwire.errors import MessageTooLargeError, PublishError

from eventwire_nats._settings import NatsSettings

__all__ = ["Prepared", "Publisher"]

#: (subject, header block, body) of one message ready to send.
Prepared = tuple[bytes, bytes, bytes]


@dataclasses.dataclass(slots=True)
class _Batch:
    """The PubAcks one publish call is waiting for, and the refusals by index: ``(kind,
    text)``, kind ``no-stream``, ``too-large`` or ``error``."""

    waiting: set[int]
    done: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    errors: dict[int, tuple[str, str]] = dataclasses.field(default_factory=dict)


def _pub_ack_error(msg: Any) -> tuple[str, str]:
    data = msg.data
    if not data and (msg.headers or {}).get("Status") == "503":
        return "no-stream", "no stream captures the subject"
    try:
        error = json.loads(data).get("error") or {}
    except (ValueError, AttributeError):
        error = {"description": data[:200].decode(errors="replace")}
    text = str(error.get("description") or error)
    return ("too-large" if "size" in text and "exceed" in text else "error"), text


def _headers(block: bytes) -> dict[str, str]:
    """A header block back as a dict (for nats-py's public publish API)."""
    lines = block.decode().split("\r\n")[1:]
    return dict(line.split(": ", 1) for line in lines if line)


class Publisher:
    """Publishing on one connection (see the module docstring)."""

    def __init__(self, nc: Any, settings: NatsSettings) -> None:
        self.nc = nc
        self._settings = settings
        self._raw = hasattr(nc, "_send_command") and hasattr(nc, "_flush_queue")
        self._prefix = nc.new_inbox() + "."
        self._batches: dict[str, _Batch] = {}
        self._tokens = itertools.count()

    async def start(self) -> None:
        await self.nc.subscribe(self._prefix + ">", cb=self._on_pub_ack)

    async def _on_pub_ack(self, msg: Any) -> None:
        batch_id, _, index_text = msg.subject[len(self._prefix) :].partition(".")
        batch = self._batches.get(batch_id)
        index = int(index_text)
        if batch is None or index not in batch.waiting:
            return
        data = msg.data
        if not (data.startswith(b'{"stream"') and b'"error"' not in data):
            batch.errors[index] = _pub_ack_error(msg)
        batch.waiting.discard(index)
        if not batch.waiting:
            batch.done.set()

    async def publish(
        self, channel: str, prepared: list[Prepared], recreate: Callable[[], Awaitable[object]]
    ) -> None:
        """Send every message, wait for every PubAck, resend what was not confirmed until
        ``publish_timeout``; `recreate` makes the channel's stream again if it is gone."""
        nc, timeout = self.nc, self._settings.publish_timeout
        deadline = time.monotonic() + timeout
        todo = list(range(len(prepared)))
        last = "no answer"
        while True:
            batch_id = str(next(self._tokens))
            batch = _Batch(set(todo))
            self._batches[batch_id] = batch
            try:
                try:
                    await self._send(prepared, todo, f"{self._prefix}{batch_id}.")
                except Exception as exc:  # connection closed, or outbound buffer full
                    last = describe_exception(exc)
                    if nc.is_closed:
                        raise PublishError(
                            f"could not publish to {channel!r}: the NATS connection is closed "
                            f"({last})"
                        ) from exc
                wait = min(
                    max(0.05, deadline - time.monotonic()),
                    self._settings.request_timeout + len(todo) / 20000,
                )
                await wait_event(batch.done, wait)
            finally:
                self._batches.pop(batch_id, None)
            failed = sorted(batch.waiting | set(batch.errors))
            if not failed:
                return
            for kind, error in batch.errors.values():
                if kind == "too-large":
                    raise MessageTooLargeError(
                        f"NATS refused a message for channel {channel!r} as too large: "
                        f"{error}; the server's max_payload is {nc.max_payload} bytes"
                    )
                last = error
            if time.monotonic() >= deadline:
                raise PublishError(
                    f"NATS did not confirm {len(failed)} of {len(prepared)} message(s) for "
                    f"channel {channel!r} within {timeout:g}s ({last}); they may or may not be "
                    "stored. Publishing them again is safe: the stream drops repeated event ids "
                    "within its duplicate window"
                )
            if any(kind == "no-stream" for kind, _ in batch.errors.values()):
                with contextlib.suppress(Exception):
                    await recreate()
            todo = failed
            await asyncio.sleep(0.1)

    async def _send(self, prepared: list[Prepared], todo: list[int], reply_prefix: str) -> None:
        """Write the HPUB commands of `todo` in writes of about 1 MB.

        nats-py builds each command from a header dict, which costs more than the rest of a
        publish; the header blocks are built once and the commands handed to the client's
        outbound buffer (its own flusher writes them).
        """
        nc = self.nc
        if nc.is_closed:
            raise ConnectionError("the connection is closed")
        if not self._raw or nc.is_draining_pubs:  # the public API
            for index in todo:
                subject, header, body = prepared[index]
                await nc.publish(
                    subject.decode(), body, reply=f"{reply_prefix}{index}", headers=_headers(header)
                )
            return
        chunk: list[bytes] = []
        size = 0
        prefix = reply_prefix.encode()
        for index in todo:
            subject, header, body = prepared[index]
            total = len(header) + len(body)
            head = b"HPUB %b %b%d %d %d\r\n" % (subject, prefix, index, len(header), total)
            chunk += (head, header, body, b"\r\n")
            size += len(head) + total + 2
            if size >= 1 << 20:
                await self._write(b"".join(chunk))
                chunk, size = [], 0
        if chunk:
            await self._write(b"".join(chunk))

    async def _write(self, data: bytes) -> None:
        nc = self.nc
        if not nc.is_connected and len(data) + nc._pending_data_size > nc._max_pending_size:
            raise ConnectionError("disconnected and the outbound buffer is full")
        await nc._send_command(data)
        if nc._flush_queue.empty():
            await nc._flush_pending()

    async def send(self, subject: str, payload: bytes) -> None:
        """Publish a small core NATS message (an ack, a progress signal) with no reply.

        Written straight into the client's outbound buffer (what ``nc.publish`` does after
        validating and building the command), which halves the cost of an ack.
        """
        nc = self.nc
        if not self._raw:
            await nc.publish(subject, payload)
            return
        if nc.is_closed:
            raise ConnectionError("the NATS connection is closed")
        await self._write(b"PUB %b %d\r\n%b\r\n" % (subject.encode(), len(payload), payload))
