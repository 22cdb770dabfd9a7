"""moto_server, the local EventBridge + SQS endpoint, with its costliest steps cut and its
deletion race fixed.

    python conformance/brokers/moto_server.py -H 127.0.0.1 -p PORT   (moto_server's arguments)

Used by `conformance/brokers/brokers up aws` and by the tests (tests/backends/_moto.py). What
the emulator answers is unchanged but for the deletion race (below); the rest only changes
how much CPU it spends to answer:

- moto routes every event a rule matches through an input template whose JSON paths it
  parses again, with a new parser, for each event and target (about 4 ms each). The same
  path always gives the same expression, so the parse is memoized.
- ``ReceiveMessage`` checks each message it returns against the queue's retention period by
  computing every attribute of the queue, three times, and three of those attributes count
  the queue's messages: each received message costs nine passes over the whole queue, so
  draining a backlog of N messages costs N² (10,000 events: hours on a small machine). The
  check reads the queue's retention period directly instead, with the same result.
- ``DeleteMessage`` (each entry of ``DeleteMessageBatch``) walks the queue twice, building
  a list of receipt handles for every message; it walks it once here, comparing handles.
  That is also the one change to an answer: moto's own replaces the queue's list without
  the lock ``SendMessage`` appends with, so under concurrent deletions and sends (a member
  sends up to four ``DeleteMessageBatch`` calls at once while EventBridge routes new
  events) deleted messages come back and new ones are dropped, which AWS never does. Here
  the whole deletion holds that lock.
- Every visibility and delay check of a message (each of those passes, and each
  ``SendMessage`` makes three more) reads the clock through two ``datetime`` objects; the SQS
  model reads the same clock with ``time.time()`` instead.
"""

from __future__ import annotations

import functools
import sys
import time
from typing import Any

from moto.core import utils


def retained(backend: Any, queue_name: str, message: Any) -> bool:
    """moto's ``SQSBackend.is_message_valid_based_on_retention_period``, the same answer in
    O(1): whether `message` is younger than its queue's retention period."""
    period = int(backend.get_queue(queue_name).message_retention_period)
    return bool(period + message.sent_timestamp / 1000 > time.time())


def delete_message(queue: Any, receipt_handle: str) -> None:
    """moto's ``Queue.delete_message`` in one pass: delete the message that has or had
    `receipt_handle` (again: nothing), else ``ReceiptHandleIsInvalid``.

    All of it under the lock ``SendMessage`` appends with. moto's own rebuilds the queue's
    list and assigns it without a lock: two deletions at once can bring a deleted message
    back, and a message appended meanwhile is dropped. A new list, as moto makes, so
    readers iterating the old one keep theirs."""
    from moto.sqs.exceptions import ReceiptHandleIsInvalid

    with queue._messages_lock:
        if receipt_handle in queue.deleted_messages:
            return
        remaining = []
        found = False
        for message in queue._messages:
            if message.receipt_handle == receipt_handle or (
                receipt_handle in message._old_receipt_handles
            ):
                found = True
                queue.pending_messages.discard(message)
                queue.deleted_messages.update(message.all_receipt_handles)
            else:
                remaining.append(message)
        if not found:
            raise ReceiptHandleIsInvalid()
        queue._messages = remaining


def unix_time(dt: Any = None) -> float:
    """moto's ``unix_time``: seconds since the epoch, of `dt` or of now."""
    return time.time() if dt is None else float(utils.unix_time(dt))


def unix_time_millis(dt: Any = None) -> float:
    """moto's ``unix_time_millis``: milliseconds since the epoch, of `dt` or of now."""
    return unix_time(dt) * 1000.0


def _patch() -> None:
    import jsonpath_ng.ext
    from moto.sqs import models

    memoized = functools.lru_cache(maxsize=256)(vars(jsonpath_ng.ext)["parse"])
    setattr(jsonpath_ng.ext, "parse", memoized)  # noqa: B010 (patching a third party)
    setattr(models.SQSBackend, "is_message_valid_based_on_retention_period", retained)  # noqa: B010
    setattr(models.Queue, "delete_message", delete_message)  # noqa: B010
    setattr(models, "unix_time", unix_time)  # noqa: B010
    setattr(models, "unix_time_millis", unix_time_millis)  # noqa: B010


def main(argv: list[str]) -> None:
    _patch()
    from moto.server import main as serve

    serve(argv)


if __name__ == "__main__":
    main(sys.argv[1:])
