"""`EventBridgeBackend`: publish with ``PutEvents``; each group reads its own SQS queue, fed
by a rule on the bus that matches the channel. Built on `eventwire.backendkit`."""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import json
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
from eventwire_eventbridge._envelope import TARGET_INPUT, channel_pattern, entry_size, to_entry
from eventwire_eventbridge._info import CAPABILITIES, MAX_ENTRY_BYTES
from eventwire_eventbridge._names import STORE_GROUP, resource_name
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
#: Attempts of one request (the AWS SDK's standard retry mode: throttling, 5xx, timeouts).
REQUEST_ATTEMPTS = 3


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
        self._stack: contextlib.AsyncExitStack | None = None
        self._events: Any = None
        self._sqs: Any = None
        self._batcher = PutBatcher(
            self._put, max_entries=MAX_BATCH_ENTRIES, max_bytes=MAX_ENTRY_BYTES, parallel=4
        )
        #: (channel, group) -> the group's queue URL, for the routes this backend made.
        self._routes: dict[tuple[str, str], str] = {}

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
        from aiobotocore.config import AioConfig
        from aiobotocore.session import get_session
        from botocore.exceptions import ClientError

        settings = self.settings
        config = AioConfig(
            connect_timeout=settings.connect_timeout,
            read_timeout=max(30.0, settings.wait_time + 10.0),
            retries={"total_max_attempts": REQUEST_ATTEMPTS, "mode": "standard"},
        )
        session = get_session()
        _check_region(settings.region or session.get_config_variable("region"))
        stack = contextlib.AsyncExitStack()
        try:
            with self.map_errors(
                "connect to EventBridge",
                advice="give a region (?region=... or AWS_REGION) and credentials through the "
                "AWS chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, a role)",
            ):
                kwargs = {
                    "region_name": settings.region,
                    "endpoint_url": settings.endpoint,
                    "config": config,
                }
                self._events = await stack.enter_async_context(
                    session.create_client("events", **kwargs)
                )
                self._sqs = await stack.enter_async_context(session.create_client("sqs", **kwargs))
                try:
                    await self._events.describe_event_bus(Name=settings.bus)
                except ClientError as exc:
                    if _code(exc) == "ResourceNotFoundException":
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
                    f"PutEvents takes at most {MAX_ENTRY_BYTES} bytes (256 KiB) per entry. "
                    "Send a smaller event (put a large payload in S3 and send its reference)"
                )
            entries.append((entry, size))
        if _store.is_kept(channel):
            await self._ensure_route(channel, STORE_GROUP)
        try:
            with self.map_errors(f"publish to {channel!r}", into=PublishError):
                results = await self._batcher.put(entries)
        except PublishError as exc:
            if _code(exc.__cause__) == "ThrottlingException":
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
        queue_url = await self._ensure_route(spec.channel, spec.group)
        # Dead letters of this group are kept from the start (EventBridge keeps nothing).
        await self._ensure_route(dead_letter_channel(spec.channel), STORE_GROUP)
        subscription = EventBridgeSubscription(spec, handler, self, queue_url)
        self.track(subscription)
        return subscription

    async def _ensure_route(self, channel: str, group: str) -> str:
        """The group's queue and the rule that feeds it (both idempotent to create)."""
        known = self._routes.get((channel, group))
        if known is not None:
            return known
        settings = self.settings
        name = resource_name(settings.prefix, channel, group)
        with self.map_errors(f"subscribe {group!r} to {channel!r}", into=BackendUnavailableError):
            queue = await self.sqs.create_queue(
                QueueName=name,
                Attributes={
                    "VisibilityTimeout": str(int(settings.visibility_timeout)),
                    "MessageRetentionPeriod": "1209600",
                },
            )
            queue_url = queue["QueueUrl"]
            attrs = await self.sqs.get_queue_attributes(
                QueueUrl=queue_url, AttributeNames=["QueueArn"]
            )
            queue_arn = attrs["Attributes"]["QueueArn"]
            rule = await self.events.put_rule(
                Name=name,
                EventBusName=settings.bus,
                EventPattern=channel_pattern(channel),
                State="ENABLED",
                Description=f"eventwire: channel {channel} to group {group}",
            )
            await self.sqs.set_queue_attributes(
                QueueUrl=queue_url,
                Attributes={"Policy": _queue_policy(queue_arn, rule["RuleArn"])},
            )
            targets = await self.events.put_targets(
                Rule=name,
                EventBusName=settings.bus,
                Targets=[{"Id": "group-queue", "Arn": queue_arn, "InputTransformer": TARGET_INPUT}],
            )
        if targets.get("FailedEntryCount"):
            failure = targets["FailedEntries"][0]
            raise BackendUnavailableError(
                f"subscribe {group!r} to {channel!r} failed: EventBridge refused the queue "
                f"target ({failure.get('ErrorCode')}: {failure.get('ErrorMessage')})"
            )
        self._routes[(channel, group)] = str(queue_url)
        return str(queue_url)

    async def lag(self, channel: str, group: str) -> int | None:
        """SQS's ``ApproximateNumberOfMessages`` (visible) plus
        ``ApproximateNumberOfMessagesNotVisible`` (received, not deleted) of `group`'s queue
        (`eventwire.backend.LagReporter`): approximate, as SQS says, and eventually
        consistent; ``None`` if the group has no queue."""
        self.check_connected()
        self.check_channel(channel)
        name = resource_name(self.settings.prefix, channel, group)
        with self.map_errors(f"lag of group {group!r} on {channel!r}"):
            try:
                url = (await self.sqs.get_queue_url(QueueName=name))["QueueUrl"]
            except Exception as exc:
                if _code(exc) in ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"):
                    return None
                raise
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
        queue_url = await self._store_url(channel)
        if queue_url is None:
            return []
        with self.map_errors(f"list {channel!r}", into=BackendUnavailableError):
            return await _store.read(self.sqs, queue_url, limit, int(self.settings.wait_time))

    async def purge_channel(self, channel: str) -> int:
        """Delete what a dead-letter channel's store keeps (``0`` for any other channel:
        EventBridge keeps none of its events)."""
        self.check_connected()
        self.check_channel(channel)
        queue_url = await self._store_url(channel) if _store.is_kept(channel) else None
        if queue_url is None:
            return 0
        with self.map_errors(f"purge {channel!r}", into=BackendUnavailableError):
            return await _store.purge(self.sqs, queue_url, int(self.settings.wait_time))

    async def _store_url(self, channel: str) -> str | None:
        """The URL of `channel`'s store queue; ``None`` when nobody made one yet."""
        known = self._routes.get((channel, STORE_GROUP))
        if known is not None:
            return known
        name = resource_name(self.settings.prefix, channel, STORE_GROUP)
        try:
            reply = await self.sqs.get_queue_url(QueueName=name)
        except Exception as exc:
            if "NonExistentQueue" in _code(exc) or "QueueDoesNotExist" in _code(exc):
                return None
            with self.map_errors(f"list {channel!r}", into=BackendUnavailableError):
                raise
        return str(reply["QueueUrl"])

    async def delete_channel(self, channel: str) -> bool:
        """Delete the rules and queues this backend made for `channel` (every group)."""
        self.check_connected()
        settings = self.settings
        found = False
        pattern = json.loads(channel_pattern(channel))
        paginator = self.events.get_paginator("list_rules")
        names: list[str] = []
        async for page in paginator.paginate(
            EventBusName=settings.bus, NamePrefix=f"{settings.prefix}-"
        ):
            names += [
                r["Name"]
                for r in page["Rules"]
                if json.loads(r.get("EventPattern") or "{}") == pattern
            ]
        for key in [k for k in self._routes if k[0] == channel]:
            del self._routes[key]
        for name in names:
            found = True
            await self.events.remove_targets(
                Rule=name, EventBusName=settings.bus, Ids=["group-queue"]
            )
            await self.events.delete_rule(Name=name, EventBusName=settings.bus)
            with contextlib.suppress(Exception):
                url = (await self.sqs.get_queue_url(QueueName=name))["QueueUrl"]
                await self.sqs.delete_queue(QueueUrl=url)
        return found


def _queue_policy(queue_arn: str, rule_arn: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "events.amazonaws.com"},
                    "Action": "sqs:SendMessage",
                    "Resource": queue_arn,
                    "Condition": {"ArnEquals": {"aws:SourceArn": rule_arn}},
                }
            ],
        }
    )


def _check_region(region: str | None) -> None:
    """`ConfigurationError` for a region no AWS partition has (botocore's endpoint data,
    offline); ``None`` is left to the SDK, which names the ways to give one."""
    if region is None:
        return
    from botocore.session import Session

    session = Session()
    known = {
        name
        for partition in session.get_available_partitions()
        for name in session.get_available_regions("events", partition_name=partition)
    }
    if region in known:
        return
    close = difflib.get_close_matches(region, sorted(known), n=3)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    raise ConfigurationError(
        f"unknown AWS region {region!r}{hint}; give a region EventBridge runs in, e.g. "
        "eu-west-1 (?region=... or AWS_REGION)"
    )


def _code(exc: BaseException | None) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))
