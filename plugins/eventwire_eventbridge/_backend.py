"""`EventBridgeBackend`: publish with ``PutEvents``; each group reads its own SQS queue, fed
by a rule on the bus that matches the channel. Built on `eventwire.backendkit`."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from eventwire.backend import MessageHandler, SubscriptionSpec, WireMessage
from eventwire.backendkit import BaseBackend, ErrorMap
from eventwire.deadletter import dead_letter_channel
from eventwire.errors import (
    BackendUnavailableError,
    ConfigurationError,
    MessageTooLargeError,
    PublishError,
    UnsupportedOperationError,
)

from eventwire_eventbridge import _store
from eventwire_eventbridge._batcher import Entry, PutBatcher
from eventwire_eventbridge._clients import REQUEST_ATTEMPTS, is_aws_endpoint, open_clients
from eventwire_eventbridge._envelope import entry_size, to_entry
from eventwire_eventbridge._info import CAPABILITIES, EMULATOR_UNSUPPORTED, MAX_ENTRY_BYTES
from eventwire_eventbridge._names import STORE_GROUP, resource_name
from eventwire_eventbridge._routes import Routes, error_code
from eventwire_eventbridge._settings import EventBridgeSettings
from eventwire_eventbridge._subscription import EventBridgeInbound, EventBridgeSubscription

__all__ = [
    "EventBridgeBackend",
    "EventBridgeInbound",
    "EventBridgeSubscription",
    "resource_name",
]

log = logging.getLogger("eventwire.eventbridge")

#: PutEvents takes at most 10 entries and 256 KiB in one request.
MAX_BATCH_ENTRIES = 10
#: Entry error codes worth another PutEvents (bounded); any other code fails the publish.
_RETRYABLE = frozenset({"ThrottlingException", "InternalFailure", "InternalException"})
_PUT_ATTEMPTS = 4


class EventBridgeBackend(BaseBackend[EventBridgeSettings]):
    """``eventbridge://BUS?region=...``: events through one EventBridge bus, one SQS queue
    per group. Credentials come from the AWS SDK's standard chain."""

    name = "eventbridge"
    binding = "kafka"
    capabilities = CAPABILITIES

    def __init__(
        self, url: str = "eventbridge://default", options: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(EventBridgeSettings.parse(url, options))
        if not is_aws_endpoint(self.settings.endpoint):
            self.capabilities = dataclasses.replace(
                CAPABILITIES, unsupported={**CAPABILITIES.unsupported, **EMULATOR_UNSUPPORTED}
            )
        self._stack: contextlib.AsyncExitStack | None = None
        self._events: Any = None
        self._sqs: Any = None
        self._batcher = PutBatcher(
            self._put, max_entries=MAX_BATCH_ENTRIES, max_bytes=MAX_ENTRY_BYTES, parallel=4
        )
        self._routes = Routes(self)

    @property
    def events(self) -> Any:
        """The EventBridge client (aiobotocore)."""
        self.check_connected()
        return self._events

    @property
    def sqs(self) -> Any:
        """The SQS client (aiobotocore)."""
        return self._sqs

    def client_errors(self) -> ErrorMap:
        from botocore import exceptions as bx

        return {
            bx.NoCredentialsError: ConfigurationError,
            bx.PartialCredentialsError: ConfigurationError,
            bx.NoRegionError: ConfigurationError,
            bx.EndpointConnectionError: BackendUnavailableError,
            bx.ConnectTimeoutError: BackendUnavailableError,
            bx.ClientError: PublishError,
        }

    async def _connect(self) -> None:
        from botocore.exceptions import ClientError

        settings = self.settings
        stack = contextlib.AsyncExitStack()
        try:
            with self.map_errors(
                "connect to EventBridge",
                advice="give a region (?region=... or AWS_REGION) and credentials through the "
                "AWS chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, a role)",
            ):
                self._events, self._sqs = await open_clients(settings, stack)
                try:
                    await self._events.describe_event_bus(Name=settings.bus)
                except ClientError as exc:
                    if error_code(exc) == "ResourceNotFoundException":
                        raise ConfigurationError(
                            f"the event bus {settings.bus!r} does not exist in "
                            f"{self._events.meta.region_name}; create it (aws events "
                            f"create-event-bus --name {settings.bus}) or name another bus"
                        ) from exc
                    raise
        except BaseException:
            await stack.aclose()
            raise
        self._stack = stack

    async def _close(self) -> None:
        await self._batcher.close()
        if self._stack is not None:
            stack, self._stack = self._stack, None
            await stack.aclose()

    async def publish(self, channel: str, messages: Sequence[WireMessage]) -> None:
        """Send `messages` with ``PutEvents``; returns once EventBridge took every entry.

        Entries of concurrent calls share requests (`PutBatcher`). An entry throttled or
        failed inside EventBridge is sent again (bounded); any other refused entry fails
        the call with `PublishError` naming the error codes (the others stay sent).
        """
        self.check_publish(channel, messages)
        entries: list[Entry] = []
        for message in messages:
            entry = to_entry(self.settings.bus, channel, message)
            size = entry_size(entry)
            if size > MAX_ENTRY_BYTES:
                raise MessageTooLargeError(
                    f"an event on {channel!r} is {size} bytes as an EventBridge entry; "
                    f"this backend sends at most {MAX_ENTRY_BYTES} bytes (256 KiB, the limit of "
                    "the PutEvents API reference) per entry. "
                    "Send a smaller event (put a large payload in S3 and send its reference)"
                )
            entries.append((entry, size))
        if _store.is_kept(channel):
            await self._routes.ensure(channel, STORE_GROUP)
        try:
            with self.map_errors(f"publish to {channel!r}", into=PublishError):
                results = await self._batcher.put(entries)
        except PublishError as exc:
            if error_code(exc.__cause__) == "ThrottlingException":
                raise PublishError(
                    f"publish to {channel!r} failed: EventBridge throttled PutEvents "
                    f"(ThrottlingException) through {REQUEST_ATTEMPTS} attempts: the "
                    "account's PutEvents quota in this region is used up; publish less at "
                    "once, or raise the quota (Service Quotas)"
                ) from exc.__cause__
            raise
        refused = [r for r in results if r is not None]
        if refused:
            raise PublishError(
                f"publish to {channel!r} failed: EventBridge refused {len(refused)} of "
                f"{len(entries)} entries ({'; '.join(refused[:3])}); the others were sent"
            )

    async def _put(self, batch: list[dict[str, Any]]) -> list[str | None]:
        """One batch through PutEvents: entries throttled or failed inside EventBridge are
        sent again (bounded, with backoff); per entry, ``None`` or the refusal."""
        outcome: list[str | None] = [None] * len(batch)
        pending = list(range(len(batch)))
        for attempt in range(_PUT_ATTEMPTS):
            reply = await self.events.put_events(Entries=[batch[i] for i in pending])
            if not reply.get("FailedEntryCount"):
                for i in pending:
                    outcome[i] = None
                return outcome
            again: list[int] = []
            for i, result in zip(pending, reply["Entries"], strict=True):
                code = result.get("ErrorCode")
                outcome[i] = f"{code}: {result.get('ErrorMessage', '')}".strip() if code else None
                if code in _RETRYABLE:
                    again.append(i)
            if not again or attempt == _PUT_ATTEMPTS - 1:
                return outcome
            pending = again
            await asyncio.sleep(0.1 * 2**attempt)
        return outcome

    async def subscribe(
        self, spec: SubscriptionSpec, handler: MessageHandler
    ) -> EventBridgeSubscription:
        self.check_subscribe(spec)
        queue_url = await self._routes.ensure(spec.channel, spec.group)
        # Dead letters of this group are kept from the start (EventBridge keeps nothing).
        await self._routes.ensure(dead_letter_channel(spec.channel), STORE_GROUP)
        return await self.started(EventBridgeSubscription(spec, handler, self, queue_url))

    async def lag(self, channel: str, group: str) -> int | None:
        """SQS's ``ApproximateNumberOfMessages`` (visible) plus
        ``ApproximateNumberOfMessagesNotVisible`` (received, not deleted) of `group`'s queue
        (`eventwire.backend.LagReporter`): approximate, as SQS says, and eventually
        consistent; ``None`` if the group has no queue."""
        self.check_connected()
        self.check_channel(channel)
        url = await self._routes.find(channel, group, f"lag of group {group!r} on {channel!r}")
        if url is None:
            return None
        with self.map_errors(f"lag of group {group!r} on {channel!r}"):
            attrs = await self.sqs.get_queue_attributes(
                QueueUrl=url,
                AttributeNames=[
                    "ApproximateNumberOfMessages",
                    "ApproximateNumberOfMessagesNotVisible",
                ],
            )
        values = attrs["Attributes"]
        return int(values.get("ApproximateNumberOfMessages", 0)) + int(
            values.get("ApproximateNumberOfMessagesNotVisible", 0)
        )

    async def browse(self, channel: str, limit: int = 1000) -> list[WireMessage]:
        """The dead letters a dead-letter channel's store keeps, oldest first; any other
        channel raises `UnsupportedOperationError` (EventBridge keeps no events)."""
        self.check_connected()
        self.check_channel(channel)
        if not _store.is_kept(channel):
            raise UnsupportedOperationError(
                f"cannot list the events of {channel!r}: EventBridge keeps no events; only "
                "dead-letter channels (<channel>.dlq) are kept, each in an SQS queue of its own"
            )
        queue_url = await self._routes.find(channel, STORE_GROUP, f"list {channel!r}")
        if queue_url is None:
            return []
        with self.map_errors(f"list {channel!r}", into=BackendUnavailableError):
            return await _store.read(self.sqs, queue_url, limit, int(self.settings.wait_time))

    async def purge_channel(self, channel: str) -> int:
        """Delete what a dead-letter channel's store keeps (``0`` for any other channel:
        EventBridge keeps none of its events)."""
        self.check_connected()
        self.check_channel(channel)
        if not _store.is_kept(channel):
            return 0
        queue_url = await self._routes.find(channel, STORE_GROUP, f"purge {channel!r}")
        if queue_url is None:
            return 0
        with self.map_errors(f"purge {channel!r}", into=BackendUnavailableError):
            return await _store.purge(self.sqs, queue_url, int(self.settings.wait_time))

    async def delete_channel(self, channel: str) -> bool:
        """Delete the rules and queues this backend made for `channel` (every group)."""
        self.check_connected()
        return await self._routes.delete(channel)
