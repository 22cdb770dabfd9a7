"""The dead-letter store: EventBridge keeps no event, so every dead-letter channel
``<channel>.dlq`` gets an SQS queue of its own, fed by a rule like a group's queue, that
nobody consumes. Listing it receives every message hidden for a while (so one read does not
count a message twice) and makes them visible again; purging it receives and deletes.
"""

from __future__ import annotations

import contextlib
from typing import Any

from eventwire.backend import WireMessage
from eventwire.deadletter import DLQ_SUFFIX

from eventwire_eventbridge._clients import SQS_BATCH, sqs_batches
from eventwire_eventbridge._envelope import from_event

__all__ = ["HIDE_SECONDS", "is_kept", "purge", "read"]

#: How long a listing hides what it has received (it makes it visible again at its end;
#: a reader that crashes mid-listing leaves the messages hidden this long).
HIDE_SECONDS = 30


def is_kept(channel: str) -> bool:
    """Whether `channel` has a store: dead-letter channels do, others do not."""
    return channel.endswith(DLQ_SUFFIX)


async def read(sqs: Any, queue_url: str, limit: int, wait: int) -> list[WireMessage]:
    """Up to `limit` messages of the store, oldest first (by the time SQS got them).

    Each ``ReceiveMessage`` long-polls for `wait` seconds (long polling asks every SQS
    server; short polling only samples some), so a listing ends with one empty wait.
    """
    found: dict[str, dict[str, Any]] = {}
    receipts: list[str] = []
    try:
        while len(found) < limit:
            reply = await sqs.receive_message(
                QueueUrl=queue_url,
                MaxNumberOfMessages=min(SQS_BATCH, limit - len(found)),
                WaitTimeSeconds=wait,
                VisibilityTimeout=HIDE_SECONDS,
                MessageSystemAttributeNames=["SentTimestamp"],
            )
            received = reply.get("Messages", ())
            if not received:
                break
            for raw in received:
                receipts.append(raw["ReceiptHandle"])
                found.setdefault(raw["MessageId"], raw)
    finally:
        with contextlib.suppress(Exception):  # else they come back after HIDE_SECONDS
            for chunk in sqs_batches(receipts):
                await sqs.change_message_visibility_batch(
                    QueueUrl=queue_url,
                    Entries=[
                        {"Id": str(i), "ReceiptHandle": r, "VisibilityTimeout": 0}
                        for i, r in enumerate(chunk)
                    ],
                )
    ordered = sorted(
        found.values(), key=lambda raw: int(raw.get("Attributes", {}).get("SentTimestamp", 0))
    )
    letters: list[WireMessage] = []
    for raw in ordered:
        with contextlib.suppress(ValueError, KeyError, TypeError):  # not an event of ours
            letters.append(from_event(raw["Body"])[1])
    return letters


async def purge(sqs: Any, queue_url: str, wait: int) -> int:
    """Delete every message of the store; how many there were.

    Receive and ``DeleteMessageBatch`` rather than ``PurgeQueue``, which AWS allows once a
    minute per queue and which completes only within that minute.
    """
    count = 0
    while True:
        reply = await sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=SQS_BATCH,
            WaitTimeSeconds=wait,
            VisibilityTimeout=HIDE_SECONDS,
        )
        messages = reply.get("Messages", ())
        if not messages:
            return count
        result = await sqs.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)
            ],
        )
        count += len(result.get("Successful", ()))
