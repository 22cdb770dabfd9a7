"""`Routes`: the rules and SQS queues the backend makes, one of each per (channel, group).

A rule on the bus matches the channel's events and targets the group's queue, whose policy
lets only that rule send to it. Creating both is idempotent on AWS, so `ensure` may run in
every process of a group.
"""

from __future__ import annotations

import contextlib
import json

from eventwire.errors import BackendUnavailableError

from eventwire_eventbridge._clients import AwsClients
from eventwire_eventbridge._envelope import TARGET_INPUT, channel_pattern
from eventwire_eventbridge._names import RETENTION_SECONDS, resource_name

__all__ = ["TARGET_ID", "Routes", "error_code"]

#: The id of a rule's one target, the group's queue.
TARGET_ID = "group-queue"


class Routes:
    """The routes of one backend: made on demand, their queue URLs remembered."""

    def __init__(self, backend: AwsClients) -> None:
        self._backend = backend
        #: (channel, group) -> the group's queue URL, for the routes this backend made.
        self._urls: dict[tuple[str, str], str] = {}

    async def ensure(self, channel: str, group: str) -> str:
        """The group's queue URL; makes the queue, the rule and its target when needed."""
        known = self._urls.get((channel, group))
        if known is not None:
            return known
        backend = self._backend
        settings = backend.settings
        events, sqs = backend.events, backend.sqs
        name = resource_name(settings.prefix, channel, group)
        with backend.map_errors(
            f"subscribe {group!r} to {channel!r}", into=BackendUnavailableError
        ):
            queue = await sqs.create_queue(
                QueueName=name,
                Attributes={
                    "VisibilityTimeout": str(int(settings.visibility_timeout)),
                    "MessageRetentionPeriod": str(RETENTION_SECONDS),
                },
            )
            queue_url = str(queue["QueueUrl"])
            attrs = await sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
            queue_arn = attrs["Attributes"]["QueueArn"]
            rule = await events.put_rule(
                Name=name,
                EventBusName=settings.bus,
                EventPattern=channel_pattern(channel),
                State="ENABLED",
                Description=f"eventwire: channel {channel} to group {group}",
            )
            await sqs.set_queue_attributes(
                QueueUrl=queue_url,
                Attributes={"Policy": queue_policy(queue_arn, rule["RuleArn"])},
            )
            targets = await events.put_targets(
                Rule=name,
                EventBusName=settings.bus,
                Targets=[{"Id": TARGET_ID, "Arn": queue_arn, "InputTransformer": TARGET_INPUT}],
            )
        if targets.get("FailedEntryCount"):
            failure = targets["FailedEntries"][0]
            raise BackendUnavailableError(
                f"subscribe {group!r} to {channel!r} failed: EventBridge refused the queue "
                f"target ({failure.get('ErrorCode')}: {failure.get('ErrorMessage')})"
            )
        self._urls[(channel, group)] = queue_url
        return queue_url

    async def find(self, channel: str, group: str, action: str) -> str | None:
        """The URL of the group's queue, ``None`` when nobody made one (`action` names what
        the caller does, for the error)."""
        known = self._urls.get((channel, group))
        if known is not None:
            return known
        backend = self._backend
        name = resource_name(backend.settings.prefix, channel, group)
        with backend.map_errors(action, into=BackendUnavailableError):
            try:
                reply = await backend.sqs.get_queue_url(QueueName=name)
            except Exception as exc:
                code = error_code(exc)
                if "NonExistentQueue" in code or "QueueDoesNotExist" in code:
                    return None
                raise
        return str(reply["QueueUrl"])

    async def delete(self, channel: str) -> bool:
        """Delete the rules and queues of every group of `channel` (made by any process with
        this prefix); whether there were any."""
        backend = self._backend
        settings = backend.settings
        events, sqs = backend.events, backend.sqs
        pattern = json.loads(channel_pattern(channel))
        names: list[str] = []
        async for page in events.get_paginator("list_rules").paginate(
            EventBusName=settings.bus, NamePrefix=f"{settings.prefix}-"
        ):
            names += [
                r["Name"]
                for r in page["Rules"]
                if json.loads(r.get("EventPattern") or "{}") == pattern
            ]
        for key in [k for k in self._urls if k[0] == channel]:
            del self._urls[key]
        for name in names:
            await events.remove_targets(Rule=name, EventBusName=settings.bus, Ids=[TARGET_ID])
            await events.delete_rule(Name=name, EventBusName=settings.bus)
            with contextlib.suppress(Exception):  # the queue may be gone already
                url = (await sqs.get_queue_url(QueueName=name))["QueueUrl"]
                await sqs.delete_queue(QueueUrl=url)
        return bool(names)


def queue_policy(queue_arn: str, rule_arn: str) -> str:
    """The queue policy that lets only the rule `rule_arn` send to the queue."""
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


def error_code(exc: BaseException | None) -> str:
    """The AWS error code of a botocore ``ClientError`` (``""`` for anything else)."""
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))
