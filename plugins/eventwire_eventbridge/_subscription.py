"""One group member on its group's SQS queue: long polls, hands messages on, deletes what
is acked in batches (``DeleteMessageBatch``, 10 per call) and keeps the rest hidden."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from eventwire.backend import MessageHandler, Origin, SubscriptionSpec, WireMessage
from eventwire.backendkit import BaseSubscription, Outage, retrieve

from eventwire_eventbridge._clients import SQS_BATCH, AwsClients, sqs_batches
from eventwire_eventbridge._envelope import from_event

__all__ = ["EventBridgeInbound", "EventBridgeSubscription"]

log = logging.getLogger("eventwire.eventbridge")

#: How many DeleteMessageBatch calls one member has in flight at once.
PARALLEL_DELETES = 4


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
        """``<group>/<SQS message id>``."""
        position = f"{self._subscription.spec.group}/{self.message_id}" if self.message_id else None
        return Origin(position=position)

    async def ack(self) -> None:
        """Queue its deletion (sent in the next batch); idempotent, ignored once the member
        closed or aborted."""
        if not self._settled and self._subscription.accepting:
            self._settled = True
            self._subscription.ack(self)

    def __repr__(self) -> str:
        return f"<EventBridgeInbound delivery_count={self.delivery_count}>"


class EventBridgeSubscription(BaseSubscription):
    """One member of ``spec.group``: long-polls the group's queue and hands each message on,
    receiving no more than ``max_in_flight`` unsettled (SQS counts every receive).

    ``ack`` queues the message's deletion; a background task sends the queued deletions
    with ``DeleteMessageBatch`` (10 per call, a few calls at once), and ``close`` sends
    what is left. While a message is unsettled the member keeps it hidden
    (``ChangeMessageVisibilityBatch`` every third of ``visibility_timeout``), so a slow
    handler or a full pipeline never lets another member take it. A message the member
    leaves unsettled is made visible again when it closes, so another member gets it at
    once. Stopping waits for a long poll under way (at most ``wait_time``): what it
    received is not handed on and is made visible again on close. Abandoned, the poll
    can still take messages on the server (the local emulator's does), hiding them for
    ``visibility_timeout`` and counting a receive. After a crash (``abort``) SQS delivers
    a message again once ``visibility_timeout`` has passed, and so it does for an ack the
    crash kept from being sent.
    """

    def __init__(
        self,
        spec: SubscriptionSpec,
        handler: MessageHandler,
        backend: AwsClients,
        queue_url: str,
    ) -> None:
        super().__init__(spec, handler)
        self._backend = backend
        self._queue_url = queue_url
        self._unsettled: dict[str, EventBridgeInbound] = {}
        #: Set after a deletion reply took messages out of `_unsettled`: room to receive.
        self._room = asyncio.Event()
        #: The long poll under way (`_stop_fetching` waits for it).
        self._receiving: asyncio.Future[Any] | None = None
        #: Receipts received while stopping, never handed on: made visible on `_release`.
        self._untaken: list[str] = []
        self._acks: list[str] = []
        self._ack_event = asyncio.Event()
        self._task = self.spawn(self._run(), f"receive:{spec.group}")
        self.spawn(self._keep_hidden(), f"visibility:{spec.group}")
        self.spawn(self._ack_loop(), f"acks:{spec.group}")

    @property
    def _sqs(self) -> Any:
        return self._backend.sqs

    # -- receiving ------------------------------------------------------------------------

    async def _run(self) -> None:
        settings = self._backend.settings
        outage = Outage(f"receiving from {self.spec.channel}/{self.spec.group}", settings.scrub)
        while self.running:
            room = self.spec.max_in_flight - len(self._unsettled)
            if room <= 0:  # receive no more than the handler can take: SQS counts receives
                self._room.clear()
                await self._room.wait()
                continue
            self._receiving = receiving = asyncio.ensure_future(
                self._sqs.receive_message(
                    QueueUrl=self._queue_url,
                    MaxNumberOfMessages=min(SQS_BATCH, room),
                    WaitTimeSeconds=int(settings.wait_time),
                    MessageSystemAttributeNames=["ApproximateReceiveCount"],
                )
            )
            receiving.add_done_callback(retrieve)
            try:  # shielded: cancelling this loop leaves the poll to `_stop_fetching`
                reply = await asyncio.shield(receiving)
            except Exception as exc:
                self._receiving = None
                await asyncio.sleep(outage.failed(exc))
                continue
            self._receiving = None
            outage.ok()
            inbounds = []
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
                self._unsettled[receipt] = inbound  # released on close if not handed on
                inbounds.append(inbound)
            for inbound in inbounds:
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
        for chunk in sqs_batches(receipts):
            await self._sqs.change_message_visibility_batch(
                QueueUrl=self._queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": r, "VisibilityTimeout": seconds}
                    for i, r in enumerate(chunk)
                ],
            )

    # -- acknowledgements -----------------------------------------------------------------

    def ack(self, inbound: EventBridgeInbound) -> None:
        """Queue the deletion of `inbound` (`_ack_loop` sends it). It stays hidden (in
        ``_unsettled``) until SQS has deleted it, so a slow deletion never lets another
        member receive it."""
        self._acks.append(inbound.receipt)
        self._ack_event.set()

    async def _ack_loop(self) -> None:
        outage = Outage(
            f"deleting acked messages of {self.spec.channel}/{self.spec.group}",
            self._backend.settings.scrub,
        )
        while True:
            await self._ack_event.wait()
            self._ack_event.clear()
            try:
                await self._send_acks()
            except Exception as exc:
                self._ack_event.set()
                await asyncio.sleep(outage.failed(exc))
            else:
                outage.ok()

    async def _send_acks(self) -> None:
        """Delete every queued receipt, `PARALLEL_DELETES` batches at a time. Receipts of a
        call that failed go back to the queue; entries SQS refused as its own fault are
        queued again, the others (an expired receipt: the message comes back) are logged."""
        while self._acks:
            taken = self._acks[: SQS_BATCH * PARALLEL_DELETES]
            del self._acks[: len(taken)]
            chunks = sqs_batches(taken)
            try:
                results = await asyncio.gather(
                    *(self._delete(chunk) for chunk in chunks), return_exceptions=True
                )
            except asyncio.CancelledError:  # close cancels the loop: `_flush` sends them
                self._acks[:0] = taken
                raise
            error: BaseException | None = None
            for chunk, result in zip(chunks, results, strict=True):
                if isinstance(result, BaseException):
                    self._acks[:0] = chunk
                    error = error or result
                else:
                    self._acks.extend(result)
            if error is not None:
                raise error

    async def _delete(self, receipts: list[str]) -> list[str]:
        """One DeleteMessageBatch; the receipts to try again."""
        reply = await self._sqs.delete_message_batch(
            QueueUrl=self._queue_url,
            Entries=[{"Id": str(i), "ReceiptHandle": r} for i, r in enumerate(receipts)],
        )
        again: list[str] = []
        for failed in reply.get("Failed", ()):
            if not failed.get("SenderFault", True):
                again.append(receipts[int(failed["Id"])])
                continue
            self._unsettled.pop(receipts[int(failed["Id"])], None)
            log.warning(
                "eventwire: %s/%s: SQS refused to delete an acked message (%s: %s); it will "
                "be delivered again",
                self.spec.channel,
                self.spec.group,
                failed.get("Code"),
                failed.get("Message", ""),
            )
        for done in reply.get("Successful", ()):
            self._unsettled.pop(receipts[int(done["Id"])], None)
        self._room.set()  # the receive loop counts its room again
        return again

    # -- the shutdown hooks ---------------------------------------------------------------

    async def _stop_fetching(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        receiving, self._receiving = self._receiving, None
        if receiving is None:
            return
        settings = self._backend.settings
        try:
            reply = await asyncio.wait_for(
                asyncio.shield(receiving), settings.wait_time + settings.connect_timeout
            )
        except Exception:  # failed, or still waiting: it took nothing this member can name
            return
        self._untaken += [raw["ReceiptHandle"] for raw in reply.get("Messages", ())]

    async def _flush(self) -> None:
        """Send the queued deletions, retried for up to ``connect_timeout``."""
        settings = self._backend.settings
        outage = Outage(f"final deletions on {self.spec.channel}/{self.spec.group}", settings.scrub)
        deadline = time.monotonic() + settings.connect_timeout
        while self._acks and time.monotonic() < deadline:
            try:
                await self._send_acks()
            except Exception as exc:
                await asyncio.sleep(outage.failed(exc))
        if self._acks:
            log.warning(
                "eventwire: %d acked message(s) of %s/%s could not be deleted; they will be "
                "delivered again",
                len(self._acks),
                self.spec.channel,
                self.spec.group,
            )

    async def _release(self) -> None:
        receipts = [*self._unsettled, *self._untaken]
        self._unsettled.clear()
        self._untaken.clear()
        await self._change_visibility(receipts, 0)

    def _drop(self) -> None:
        self._unsettled.clear()
        self._untaken.clear()
        self._acks.clear()
