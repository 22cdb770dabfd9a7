"""`EventBridgeBackend`: publish with ``PutEvents``; each group reads its own SQS queue, fed
by a rule on the bus that matches the channel. Built on `eventwire.backendkit`."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any

from eventwire.backend import MessageHandler, Origin, SubscriptionSpec, WireMessage
from eventwire.backendkit import BaseBackend, BaseSubscription, ErrorMap, Outage
from eventwire.errors import (
    BackendUnavailableError,
    ConfigurationError,
    MessageTooLargeError,
    PublishError,
)

from eventwire_eventbridge._envelope import channel_pattern, entry_size, from_event, to_entry
from eventwire_eventbridge._info import CAPABILITIES, MAX_ENTRY_BYTES
from eventwire_eventbridge._settings import EventBridgeSettings

__all__ = ["EventBridgeBackend", "EventBridgeInbound", "EventBridgeSubscription"]

log = logging.getLogger("eventwire.eventbridge")

#: PutEvents takes at most 10 entries and 256 KiB in one request.
MAX_BATCH_ENTRIES = 10
#: Entry error codes worth another PutEvents (bounded); any other code fails the publish.
_RETRYABLE = frozenset({"ThrottlingException", "InternalFailure", "InternalException"})
_PUT_ATTEMPTS = 4
_NAME_CHARS = re.compile(r"[^A-Za-z0-9_-]+")


def resource_name(prefix: str, channel: str, group: str) -> str:
    """The rule and queue name of `group` on `channel`: readable, unique, within the limits
    of both (rule: 64 characters; queue: 80; letters, digits, ``-`` and ``_``)."""
    digest = hashlib.sha256(f"{channel}\0{group}".encode()).hexdigest()[:10]
    readable = _NAME_CHARS.sub("-", f"{channel}-{group}")[: 64 - len(prefix) - 12]
    return f"{prefix}-{readable}-{digest}"


class EventBridgeInbound:
    """A message received from the group's queue (an `eventwire.backend.Inbound`)."""

    __slots__ = ("_settled", "_subscription", "delivery_count", "message", "message_id", "receipt")

    def __init__(
        self,
        subscription: EventBridgeSubscription,
        message: WireMessage,
        receipt: str,
        delivery_count: int,
        message_id: str = "",
    ) -> None:
        self.message = message
        self.receipt = receipt
        self.delivery_count = delivery_count
        #: The SQS message id: the same on every receive of this message from the queue.
        self.message_id = message_id
        self._subscription = subscription
        self._settled = False

    @property
    def origin(self) -> Origin:
        """``<group queue>/<SQS message id>``."""
        position = f"{self._subscription.spec.group}/{self.message_id}" if self.message_id else None
        return Origin(position=position)

    async def ack(self) -> None:
        """Delete it from the queue; idempotent, ignored once the member closed or aborted."""
        if not self._settled and self._subscription.accepting:
            self._settled = True
            await self._subscription.ack(self)

    def __repr__(self) -> str:
        return f"<EventBridgeInbound delivery_count={self.delivery_count}>"


class EventBridgeSubscription(BaseSubscription):
    """One member of ``spec.group``: long-polls the group's queue and hands each message on.

    ``ack`` deletes the message. While a message is unsettled the member keeps it hidden
    (``ChangeMessageVisibilityBatch`` every third of ``visibility_timeout``), so a slow
    handler or a full pipeline never lets another member take it. A message the member
    leaves unsettled is made visible again when it closes, so another member gets it at
    once; after a crash (``abort``) SQS delivers it again once ``visibility_timeout`` has
    passed.
    """

    def __init__(
        self,
        spec: SubscriptionSpec,
        handler: MessageHandler,
        backend: EventBridgeBackend,
        queue_url: str,
    ) -> None:
        super().__init__(spec, handler)
        self._backend = backend
        self._queue_url = queue_url
        self._unsettled: dict[str, EventBridgeInbound] = {}
        self._task = self.spawn(self._run(), f"receive:{spec.group}")
        self.spawn(self._keep_hidden(), f"visibility:{spec.group}")

    async def _run(self) -> None:
        settings = self._backend.settings
        outage = Outage(f"receiving from {self.spec.channel}/{self.spec.group}", settings.scrub)
        batch = max(1, min(10, self.spec.max_in_flight))
        while self.running:
            try:
                reply = await self._backend.sqs.receive_message(
                    QueueUrl=self._queue_url,
                    MaxNumberOfMessages=batch,
                    WaitTimeSeconds=int(settings.wait_time),
                    MessageSystemAttributeNames=["ApproximateReceiveCount"],
                )
            except Exception as exc:
                await asyncio.sleep(outage.failed(exc))
                continue
            outage.ok()
            for raw in reply.get("Messages", ()):
                receipt = raw["ReceiptHandle"]
                count = int(raw.get("Attributes", {}).get("ApproximateReceiveCount", "1"))
                try:
                    channel, message = from_event(raw["Body"])
                except (ValueError, KeyError, TypeError):
                    log.warning(
                        "eventwire: %s/%s: a message in the group's queue is not an event of "
                        "this backend; it is left there",
                        self.spec.channel,
                        self.spec.group,
                    )
                    continue
                if channel != self.spec.channel:
                    continue
                inbound = EventBridgeInbound(
                    self, message, receipt, count, raw.get("MessageId", "")
                )
                self._unsettled[receipt] = inbound
                await self.deliver(inbound)

    async def _keep_hidden(self) -> None:
        """Extend the visibility of every unsettled message before it runs out."""
        settings = self._backend.settings
        outage = Outage(f"extending visibility on {self.spec.group}", settings.scrub)
        while True:
            await asyncio.sleep(settings.visibility_timeout / 3)
            try:
                await self._change_visibility(
                    list(self._unsettled), int(settings.visibility_timeout)
                )
            except Exception as exc:
                await asyncio.sleep(outage.failed(exc))
            else:
                outage.ok()

    async def _change_visibility(self, receipts: list[str], seconds: int) -> None:
        for start in range(0, len(receipts), 10):
            await self._backend.sqs.change_message_visibility_batch(
                QueueUrl=self._queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": r, "VisibilityTimeout": seconds}
                    for i, r in enumerate(receipts[start : start + 10])
                ],
            )

    async def ack(self, inbound: EventBridgeInbound) -> None:
        self._unsettled.pop(inbound.receipt, None)
        with self._backend.map_errors(f"ack on {self.spec.channel}/{self.spec.group}"):
            await self._backend.sqs.delete_message(
                QueueUrl=self._queue_url, ReceiptHandle=inbound.receipt
            )

    async def _stop_fetching(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    async def _release(self) -> None:
        receipts = list(self._unsettled)
        self._unsettled.clear()
        await self._change_visibility(receipts, 0)

    def _drop(self) -> None:
        self._unsettled.clear()


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
            retries={"max_attempts": 3, "mode": "standard"},
        )
        session = get_session()
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
        if self._stack is not None:
            stack, self._stack = self._stack, None
            await stack.aclose()

    async def publish(self, channel: str, messages: Sequence[WireMessage]) -> None:
        self.check_publish(channel, messages)
        entries = [to_entry(self.settings.bus, channel, m) for m in messages]
        for entry in entries:
            size = entry_size(entry)
            if size > MAX_ENTRY_BYTES:
                raise MessageTooLargeError(
                    f"an event on {channel!r} is {size} bytes as an EventBridge entry; "
                    f"PutEvents takes at most {MAX_ENTRY_BYTES} bytes (256 KiB) per entry. "
                    "Send a smaller event (put a large payload in S3 and send its reference)"
                )
        for batch in _batches(entries):
            await self._put(channel, batch)

    async def _put(self, channel: str, batch: list[dict[str, Any]]) -> None:
        """One batch through PutEvents; throttled entries again (bounded), any other failed
        entry fails the publish with its error code."""
        pending = batch
        for attempt in range(_PUT_ATTEMPTS):
            with self.map_errors(f"publish to {channel!r}", into=PublishError):
                reply = await self.events.put_events(Entries=pending)
            if not reply.get("FailedEntryCount"):
                return
            results = reply["Entries"]
            failed = [
                (entry, result)
                for entry, result in zip(pending, results, strict=True)
                if result.get("ErrorCode")
            ]
            fatal = [(e, r) for e, r in failed if r["ErrorCode"] not in _RETRYABLE]
            if fatal or attempt == _PUT_ATTEMPTS - 1:
                shown = fatal or failed
                codes = "; ".join(
                    f"{r['ErrorCode']}: {r.get('ErrorMessage', '')}".strip() for _, r in shown[:3]
                )
                raise PublishError(
                    f"publish to {channel!r} failed: EventBridge refused {len(failed)} of "
                    f"{len(pending)} entries ({codes}); the others were sent"
                )
            pending = [entry for entry, _ in failed]
            await asyncio.sleep(0.1 * 2**attempt)

    async def subscribe(
        self, spec: SubscriptionSpec, handler: MessageHandler
    ) -> EventBridgeSubscription:
        self.check_subscribe(spec)
        queue_url = await self._ensure_route(spec.channel, spec.group)
        subscription = EventBridgeSubscription(spec, handler, self, queue_url)
        self.track(subscription)
        return subscription

    async def _ensure_route(self, channel: str, group: str) -> str:
        """The group's queue and the rule that feeds it (both idempotent to create)."""
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
                Targets=[{"Id": "group-queue", "Arn": queue_arn}],
            )
        if targets.get("FailedEntryCount"):
            failure = targets["FailedEntries"][0]
            raise BackendUnavailableError(
                f"subscribe {group!r} to {channel!r} failed: EventBridge refused the queue "
                f"target ({failure.get('ErrorCode')}: {failure.get('ErrorMessage')})"
            )
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
        self.check_channel(channel)
        raise ConfigurationError(
            f"cannot list the events of {channel!r}: EventBridge keeps no events outside an "
            "archive, and this backend creates none (see docs/backends/eventbridge.md)"
        )

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


def _batches(entries: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Entries in PutEvents requests of at most 10 entries and 256 KiB."""
    batches: list[list[dict[str, Any]]] = []
    current: list[dict[str, Any]] = []
    size = 0
    for entry in entries:
        n = entry_size(entry)
        if current and (len(current) == MAX_BATCH_ENTRIES or size + n > MAX_ENTRY_BYTES):
            batches.append(current)
            current, size = [], 0
        current.append(entry)
        size += n
    if current:
        batches.append(current)
    return batches


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


def _code(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))
