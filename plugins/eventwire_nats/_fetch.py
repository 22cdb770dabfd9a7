"""`ShardFetch`: one member reading one shard of a channel during one lease epoch, inside
``coordinator.reading(...)`` so the shard is not given back while it runs.

- Recovery: if the shard's durable consumer has unacked messages (an earlier owner
  crashed or gave the shard up, or this member's connection broke), every message it
  receives is held back, the redelivered older ones too, until all that is pending is in
  its hands (no other delivery counts as pending) and one redelivery round has passed
  (``ack_wait`` and a second after the take-over); then it hands them out in stream order
  and reads on as usual. Holding the older ones as well matters: the server redelivers a
  message when its own ack deadline passes, and an earlier owner's progress signals
  (``+WPI``) moved those deadlines message by message, so redeliveries come back in no
  particular order. If instead the ack floor passes the last message delivered before the
  take-over (every earlier one settled), reading goes on at once. After a reconnection the
  fetch starts over with that check: deliveries on their way when the connection broke
  count as delivered on the server and never arrived. The consumer's state is read only
  from its leader: after a crash of a whole cluster, a replica answers while none is
  elected, and even the leader's counts can miss messages that come back later, which is
  why the redelivery round is waited for whatever the counts say.
- Pull requests to its own inbox for its share of ``max_in_flight``, each ending before the
  lease can pass on (``0.6 * lease_ttl`` after its last renewal at the latest).
- At the end its inbox stays until every request has been answered or has expired (NATS
  2.9 cannot cancel one); then what it held is forgotten.

A delivery given up unhandled is forgotten, not nak'ed: a nak would redeliver it at once,
ahead of older pending messages of its shard, and break key order; after ``ack_wait`` the
server redelivers in sequence order. docs/backends/nats.md (G05) tells the whole story.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from typing import Any, Protocol

from eventwire.backend import Inbound, Origin, WireMessage
from eventwire.backendkit import (
    Shard,
    ShardCoordinator,
    ShardInbound,
    ShardMember,
    ShardState,
    wait_event,
)

from eventwire_nats._settings import NatsSettings
from eventwire_nats._topology import ChannelTopology, durable_name
from eventwire_nats._wire import MSG_ID, decode_headers, reply_metadata, reply_origin


class Member(ShardMember[str], Protocol):
    """What a fetch needs of its group member (`eventwire_nats.NatsSubscription`)."""

    settings: NatsSettings
    coordinator: ShardCoordinator
    topology: ChannelTopology
    nc: Any
    js: Any
    #: Seconds before a lease's expiry after which no pull request may run any more.
    margin: float
    pull_expires: float

    @property
    def running(self) -> bool: ...
    @property
    def accepting(self) -> bool: ...
    def share(self) -> int: ...
    def track(self, inbound: NatsInbound) -> None: ...
    def forget(self, inbound: NatsInbound) -> None: ...
    async def deliver(self, inbound: Inbound) -> bool: ...


__all__ = ["Member", "NatsInbound", "ShardFetch"]

log = logging.getLogger("eventwire.nats")

_READING = (ShardState.RECOVERING, ShardState.READY)


class NoConsumerLeader(Exception):
    """A consumer's state came from a replica while no leader is elected: not to be trusted."""


class NatsInbound(ShardInbound[str]):
    """A message delivered by a JetStream pull consumer (an `eventwire.backend.Inbound`);
    its position is its ack subject."""

    __slots__ = ("fetch", "handed", "msg_id", "seq", "since")

    def __init__(
        self,
        fetch: ShardFetch,
        reply: str,
        seq: int,
        message: WireMessage,
        count: int,
        msg_id: str | None,
    ) -> None:
        super().__init__(fetch.member, fetch.shard, reply, message, count)
        self.fetch = fetch
        self.seq = seq
        #: The producer's ``Nats-Msg-Id`` header, if it set one.
        self.msg_id = msg_id
        #: When the server last heard of it (delivery, or the last progress signal).
        self.since = time.monotonic()
        #: Handed to the handler (not only held back by its fetch).
        self.handed = False

    @property
    def origin(self) -> Origin:
        """``<stream>/<sequence>``, the server's timestamp, ``Nats-Msg-Id`` as message_id."""
        stream, stamp = reply_origin(self.position)
        properties = {"message_id": self.msg_id} if self.msg_id else {}
        return Origin(position=f"{stream}/{self.seq}", timestamp=stamp, properties=properties)


class ShardFetch:
    """One member reading one shard in one lease epoch (see the module docstring)."""

    def __init__(self, member: Member, shard: Shard) -> None:
        self.member = member
        self.shard = shard
        self.epoch = shard.epoch
        self.durable = durable_name(member.spec.group, shard.index)
        self.inbox = member.nc.new_inbox()
        self.sub: Any = None
        #: Messages asked for and not received yet, and when those requests expire.
        self.outstanding = 0
        self.deadline = 0.0
        #: Deliveries handed to the handler and not settled yet.
        self.handed = 0
        #: While recovering: the last message delivered before the take-over.
        self.barrier: int | None = None
        #: While recovering: what is held is handed out no sooner (`time.monotonic`),
        #: unless the ack floor passes the barrier.
        self.unsure_until = 0.0
        #: The connection was re-established: this fetch ends, another checks again.
        self.stale = False
        self.held: deque[NatsInbound] = deque()
        self.wake = asyncio.Event()

    @property
    def reading(self) -> bool:
        """Whether this fetch may still read: running, same epoch, recovering or ready."""
        shard = self.shard
        return (
            self.member.running
            and shard.epoch == self.epoch
            and shard.state in _READING
            and not self.stale
        )

    def reset(self) -> None:
        """The connection was re-established: the pull requests sent before are gone, and
        so may be deliveries that were on their way. This fetch ends; the member starts
        another, which reads the consumer's state first (`_begin`)."""
        self.outstanding = 0
        self.stale = True
        self.wake.set()

    async def run(self) -> None:
        member = self.member
        with member.coordinator.reading([self.shard]):
            try:
                await self._begin()
            except Exception as exc:  # the member starts another fetch
                log.debug("eventwire: %s cannot read shard %d: %s", member, self.shard.index, exc)
                await asyncio.sleep(0.2)
                return
            while self.reading:
                if self.barrier is not None:
                    await self._check_barrier(self.barrier)
                await self._request()
                self.wake.clear()
                await wait_event(
                    self.wake, 0.1 if self.barrier is not None else member.pull_expires / 2
                )
            await self._end()

    async def _consumer_state(self) -> Any:
        """The shard's durable consumer info, as its leader gives it; `NoConsumerLeader`
        while a replica answers with none elected (see the module docstring)."""
        member = self.member
        info = await member.js.consumer_info(member.topology.stream, self.durable)
        if info.cluster is not None and not info.cluster.leader:
            raise NoConsumerLeader(f"consumer {self.durable} has no leader yet")
        return info

    async def _begin(self) -> None:
        member = self.member
        info = await self._consumer_state()
        delivered = info.delivered.stream_seq
        if info.num_ack_pending or delivered > info.ack_floor.stream_seq:
            self.barrier = delivered
            # Every pending message is redelivered within one round (see the module
            # docstring); the counts may miss some, so the round is waited for.
            self.unsure_until = time.monotonic() + member.settings.ack_wait + 1.0
            log.info(
                "eventwire: %s reads shard %d (taken over, or after a reconnection) with "
                "unsettled messages up to sequence %d; it holds what it receives until they "
                "are all redelivered, then hands them out in order",
                member,
                self.shard.index,
                self.barrier,
            )
        else:
            member.coordinator.mark_recovered(self.shard, self.epoch)
        self.sub = await member.nc.subscribe(self.inbox, cb=self.on_message)

    async def _check_barrier(self, barrier: int) -> None:
        try:
            info = await self._consumer_state()
        except Exception:
            return
        # a message delivered twice: its latest delivery
        latest = {inbound.seq: inbound for inbound in self.held}
        settled = info.ack_floor.stream_seq >= barrier and not any(seq <= barrier for seq in latest)
        all_here = info.num_ack_pending <= len(latest) and time.monotonic() >= self.unsure_until
        if not (settled or all_here):
            return
        member = self.member
        for inbound in self.held:
            if latest[inbound.seq] is not inbound:
                member.forget(inbound)
        self.held = deque(sorted(latest.values(), key=lambda inbound: inbound.seq))
        while self.held and self.reading:
            await self._hand(self.held.popleft())
        if not self.held:
            self.barrier = None
            member.coordinator.mark_recovered(self.shard, self.epoch)

    async def _request(self) -> None:
        member = self.member
        now = time.monotonic()
        if now > self.deadline:
            self.outstanding = 0
        usable = self.shard.expires - member.margin - now
        share = member.share()
        room = share - self.handed - self.outstanding
        if usable < 0.05 or room <= 0 or (room * 2 < share and self.outstanding):
            return
        batch = min(room, member.settings.fetch_count)
        expires = min(member.pull_expires, usable)
        request = b'{"batch":%d,"expires":%d}' % (batch, int(expires * 1e9))
        subject = f"$JS.API.CONSUMER.MSG.NEXT.{member.topology.stream}.{self.durable}"
        try:
            await member.nc.publish(subject, request, reply=self.inbox)
        except Exception as exc:
            log.debug("eventwire: a pull request of %s failed: %s", member, exc)
            await asyncio.sleep(0.2)
            return
        self.outstanding += batch
        self.deadline = now + expires + 0.5

    async def _end(self) -> None:
        member = self.member
        while self.outstanding > 0 and time.monotonic() < self.deadline and member.accepting:
            self.wake.clear()
            await wait_event(self.wake, 0.05)
        sub, self.sub = self.sub, None
        if sub is not None:
            # Not sub.drain(): it flushes, and a flush cancelled half-way breaks nats-py's
            # connection. Every requested message has been handled by the callback here.
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        while self.held:
            member.forget(self.held.popleft())

    async def on_message(self, msg: Any) -> None:
        reply = msg.reply
        if not reply:  # a status: the end of a pull request (or a heartbeat)
            headers = msg.headers or {}
            pending = headers.get("Nats-Pending-Messages")
            if pending is not None and pending.isdigit():
                self.outstanding = max(0, self.outstanding - int(pending))
            elif headers.get("Status") != "100":
                self.outstanding = 0
            self.wake.set()
            return
        self.outstanding = max(0, self.outstanding - 1)
        member = self.member
        if not member.accepting:
            return
        try:
            seq, count = reply_metadata(reply)
        except ValueError:
            return
        message = WireMessage(msg.data, *decode_headers(msg.headers))
        msg_id = msg.headers.get(MSG_ID) if msg.headers else None
        inbound = NatsInbound(self, reply, seq, message, count, msg_id)
        member.track(inbound)
        if not member.running:
            return  # given back at close
        if self.barrier is not None:  # recovering: everything waits (module docstring)
            self.held.append(inbound)
            return
        await self._hand(inbound)

    async def _hand(self, inbound: NatsInbound) -> None:
        inbound.handed = True
        self.handed += 1
        try:
            await self.member.deliver(inbound)
        except asyncio.CancelledError:
            # the handler was waiting for room and never took it (see the module docstring)
            self.member.forget(inbound)
            raise
