"""`MemoryBackend`: the `eventwire.backend.Backend` protocol over the in-process broker,
built on `eventwire.backendkit` (settings, lifecycle, checks, shutdown contract)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

from eventwire.backend import MessageHandler, SubscriptionSpec, WireMessage
from eventwire.backendkit import BaseBackend, BaseSubscription
from eventwire.idempotency import IdempotencyStore

from eventwire_memory._broker import Member, MemoryBroker, get_broker, reset_brokers
from eventwire_memory._info import CAPABILITIES
from eventwire_memory._settings import MemorySettings

__all__ = ["MemoryBackend", "MemorySubscription"]

#: A member's fetch loop yields to the event loop after this many deliveries in a row.
_YIELD_EVERY = 64


class MemorySubscription(BaseSubscription):
    """One group member's fetch loop: pulls deliveries and awaits the handler for each.

    Shutdown follows `eventwire.backendkit.BaseSubscription`: ``stop`` gives up the
    member's partitions and cancels a handler call blocked on backpressure (its delivery and
    every other unsettled one stay pending and can still be acked); ``close`` leaves the
    group, so what is unsettled goes to a surviving member; ``abort`` leaves at once and
    later acks of the member's deliveries are ignored.
    """

    def __init__(self, spec: SubscriptionSpec, member: Member, handler: MessageHandler) -> None:
        super().__init__(spec, handler)
        self._member = member
        self._task = self.spawn(self._run(), f"fetch:{member.id}")

    @property
    def member_id(self) -> str:
        return self._member.id

    @property
    def partitions(self) -> list[int]:
        """The partitions this member is assigned now (empty once stopped)."""
        return self._member.partitions

    async def _run(self) -> None:
        member = self._member
        take = member.take
        event = member.event
        deliver = self.deliver
        streak = 0
        try:
            while True:
                delivery = take()
                if delivery is None:
                    streak = 0
                    event.clear()
                    member.waiting = True
                    try:
                        await event.wait()
                    finally:
                        member.waiting = False
                    continue
                await deliver(delivery)
                streak += 1
                if streak >= _YIELD_EVERY:
                    streak = 0
                    await asyncio.sleep(0)
        except asyncio.CancelledError:
            if self.running:
                member.leave()  # cancelled from outside (e.g. the event loop ended): a crash
            raise

    async def _stop_fetching(self) -> None:
        self._member.stop()
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    async def _release(self) -> None:
        self._member.leave()

    def _drop(self) -> None:
        self._member.leave()


class MemoryBackend(BaseBackend[MemorySettings]):
    """A connection to a named in-process broker: ``memory://`` or ``memory://name``.

    Backends created with the same URL in one process share one broker, so two of them
    subscribed with the same group are two members of that group.
    """

    name = "memory"
    binding = "kafka"
    capabilities = CAPABILITIES

    def __init__(self, url: str = "memory://", options: Mapping[str, Any] | None = None) -> None:
        super().__init__(MemorySettings.parse(url, options))
        self.partitions = self.settings.partitions
        self.broker_name = self.settings.broker
        self._broker: MemoryBroker | None = None
        self._unyielded = 0

    @property
    def broker(self) -> MemoryBroker:
        """The broker this backend is connected to."""
        self.check_connected()
        assert self._broker is not None
        return self._broker

    async def _connect(self) -> None:
        self._broker = get_broker(self.broker_name)

    def shared_idempotency_store(self) -> IdempotencyStore:
        """The broker's store: every bus on this broker (in this process) shares it."""
        return get_broker(self.broker_name).idempotency

    async def publish(self, channel: str, messages: Sequence[WireMessage]) -> None:
        self.check_publish(channel, messages)
        self.broker.publish(channel, messages, self.partitions)
        # A broker round trip would let other tasks run; do the same now and then.
        self._unyielded += len(messages)
        if self._unyielded >= _YIELD_EVERY:
            self._unyielded = 0
            await asyncio.sleep(0)

    async def subscribe(
        self, spec: SubscriptionSpec, handler: MessageHandler
    ) -> MemorySubscription:
        self.check_subscribe(spec)
        member = self.broker.join(
            spec.channel,
            spec.group,
            member_prefix=spec.member_prefix,
            max_in_flight=spec.max_in_flight,
            from_beginning=spec.from_beginning,
            partitions=self.partitions,
        )
        subscription = MemorySubscription(spec, member, handler)
        self.track(subscription)
        return subscription

    async def browse(self, channel: str, limit: int = 1000) -> list[WireMessage]:
        self.check_channel(channel)
        return self.broker.browse(channel, limit)

    async def delete_group(self, channel: str, group: str) -> None:
        """Forget `group` on `channel` (its positions); members still joined keep theirs."""
        self.check_channel(channel)
        self.broker.delete_group(channel, group)

    async def lag(self, channel: str, group: str) -> int | None:
        """Messages of `channel` that `group` has not acked yet, delivered or not
        (`eventwire.backend.LagReporter`); ``None`` if the group never joined."""
        self.check_connected()
        self.check_channel(channel)
        state = self.broker.group_state(channel, group)
        return None if state is None else state.lag

    def reset_broker(self) -> None:
        """Forget this URL's broker (`eventwire.backend.BrokerReset`)."""
        reset_brokers([self.broker_name])

    async def delete_channel(self, channel: str) -> bool:
        """Forget `channel`, its messages and its groups (`eventwire.backend.ChannelDeleter`)."""
        return self.broker.delete_channel(channel)

    async def purge_channel(self, channel: str) -> int:
        """Remove the channel's retained messages (`eventwire.backend.ChannelPurger`)."""
        self.check_channel(channel)
        return self.broker.purge_channel(channel)
