"""One group member on one channel: shard leases, pull requests, deliveries, redelivery timers.

How a member keeps key order with several members (G05) on NATS 2.9 (which has no pinned
pull consumers):

- A channel's stream has ``shards`` subjects ``<channel>.<n>``; a key always goes to the same
  one. Each group has one durable pull consumer per shard.
- Members of a group register in the lease bucket (key ``g.<group>.m.<member>``, renewed
  every ``lease_ttl / 5``; the bucket's ``max_age`` removes a crashed member's key). Every
  member computes the same assignment from the sorted live members: shard ``i`` belongs to
  member ``i % members``.
- A member consumes a shard only while it holds the shard's lease (``g.<group>.s.<n>``),
  taken with *create-if-absent* and renewed with *update-at-revision*; a lease that could
  not be renewed for ``0.6 * lease_ttl`` is treated as gone, and pull requests expire within
  ``0.2 * lease_ttl``, so a member has stopped fetching before its lease can pass on.
- A member that is no longer assigned a shard stops fetching, drains its pull subscription,
  waits until every delivery it handed out on that shard is settled, and only then deletes
  the lease (cooperative hand-over: one key never runs on two members).
- A member taking a shard over first asks the consumer for what is unacknowledged. If the
  previous owner left messages pending (it crashed), messages newer than the last delivered
  one are held back until the consumer's ack floor has passed it: the previous owner's
  messages come back (after ``ack_wait``, or at once if it nak'ed them) and run first.
- Join, leave and release are announced on a core NATS subject, so the others rebalance at
  once rather than on their next tick.

Every unsettled delivery older than ``ack_wait / 3`` gets a ``+WPI`` (work in progress)
now and then, so a slow handler or retries in place never trigger a redelivery; a crashed
member stops sending them, and its messages come back after ``ack_wait``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from eventwire.backend import MessageHandler, SubscriptionSpec, WireMessage

from eventwire_nats._topology import ChannelTopology, durable_name, group_token
from eventwire_nats._wire import decode_headers, reply_metadata

if TYPE_CHECKING:
    from eventwire_nats._backend import NatsBackend

__all__ = ["NatsDelivery", "NatsSubscription"]

log = logging.getLogger("eventwire.nats")

_ACK = b"+ACK"
_NAK = b"-NAK"
_WPI = b"+WPI"
#: How long `subscribe` waits for this member's first share of the shards.
SETTLE_TIMEOUT = 3.0


class NatsDelivery:
    """A message delivered by a JetStream pull consumer (an `eventwire.backend.Inbound`)."""

    __slots__ = (
        "_member",
        "_reply",
        "_shard",
        "delivery_count",
        "handed",
        "message",
        "seq",
        "since",
    )

    def __init__(
        self,
        message: WireMessage,
        delivery_count: int,
        reply: str,
        seq: int,
        shard: _Shard,
        member: NatsSubscription,
    ) -> None:
        self.message = message
        self.delivery_count = delivery_count
        self.seq = seq
        self.since = time.monotonic()
        self.handed = False
        self._reply = reply
        self._shard = shard
        self._member = member

    def __repr__(self) -> str:
        return (
            f"<NatsDelivery shard={self._shard.index} seq={self.seq} "
            f"delivery_count={self.delivery_count}>"
        )

    async def ack(self) -> None:
        """Settle: the consumer will not deliver this message to the group again."""
        await self._member._settle(self, _ACK)


class _Shard:
    """This member's view of one shard of the channel."""

    def __init__(self, index: int, member: NatsSubscription) -> None:
        self.index = index
        self.durable = durable_name(member.spec.group, index)
        self.lease_key = f"g.{member.token}.s.{index}"
        self.revision: int | None = None
        self.valid_until = 0.0
        self.sub: Any = None
        self.inbox = ""
        self.outstanding = 0
        self.deadline = 0.0
        self.handed = 0
        self.buffer: deque[NatsDelivery] = deque()
        self.barrier: int | None = None
        self.revoking = False
        self.active = False
        self.wake = asyncio.Event()
        self.settled = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []

    @property
    def held(self) -> bool:
        return self.revision is not None

    def tasks_running(self) -> bool:
        return any(not task.done() for task in self.tasks)


class NatsSubscription:
    """One member of ``spec.group`` on ``spec.channel`` (see the module docstring)."""

    def __init__(
        self,
        backend: NatsBackend,
        spec: SubscriptionSpec,
        topology: ChannelTopology,
        handler: MessageHandler,
    ) -> None:
        self.spec = spec
        self.topology = topology
        self._backend = backend
        self._settings = backend.settings
        self._handler = handler
        self._nc = backend.nc
        self._kv = backend.kv
        self.token = group_token(topology.stream, spec.group)
        consumer = "".join(c if c.isalnum() or c in "-_" else "-" for c in spec.member_prefix)
        self.member_id = f"{consumer[:60]}-{uuid.uuid4().hex[:8]}"
        self._member_key = f"g.{self.token}.m.{self.member_id}"
        self._members_filter = f"$KV.{backend.lease_bucket}.g.{self.token}.m.*"
        self._signal_subject = f"_EVENTWIRE.rebalance.{self.token}"
        self._next_prefix = f"$JS.API.CONSUMER.MSG.NEXT.{topology.stream}."
        self.shards = [_Shard(i, self) for i in range(topology.shards)]
        self._unsettled: dict[NatsDelivery, None] = {}
        self._members: list[str] = []
        self._tick = asyncio.Event()
        self._stopping = False
        self._closed = False
        self._aborted = False
        self._tasks: list[asyncio.Task[None]] = []
        self._signal_sub: Any = None
        self._draining: list[asyncio.Task[None]] = []
        self._ready = asyncio.Event()
        self.ttl = backend.lease_ttl
        self._pull_expires = min(1.0, max(0.2, 0.2 * self.ttl))

    def __repr__(self) -> str:
        return f"<NatsSubscription {self.spec.channel}/{self.spec.group} {self.member_id}>"

    # -- introspection ------------------------------------------------------------------

    @property
    def owned(self) -> list[int]:
        """The shards this member consumes now."""
        return [s.index for s in self.shards if s.active]

    @property
    def unsettled(self) -> int:
        return len(self._unsettled)

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        self._signal_sub = await self._nc.subscribe(self._signal_subject, cb=self._on_signal)
        await self._register()
        await self._signal()
        self._tasks = [
            asyncio.create_task(self._coordinate(), name=f"eventwire-nats:{self}:leases"),
            asyncio.create_task(self._keep_alive(), name=f"eventwire-nats:{self}:progress"),
        ]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ready.wait(), SETTLE_TIMEOUT)

    async def stop(self) -> None:
        """Stop fetching; keep the leases of shards with unsettled deliveries until close."""
        if self._stopping:
            return
        self._stopping = True
        for shard in self.shards:
            shard.wake.set()
        self._draining = [asyncio.create_task(self._drain_sub(s)) for s in self.shards]
        with contextlib.suppress(Exception):
            await self._unregister()
        self._tick.set()

    async def close(self) -> None:
        """Give back what is unsettled (nak: redelivered at once) and release every lease."""
        if self._closed:
            return
        await self.stop()
        await asyncio.gather(*self._draining, return_exceptions=True)
        self._closed = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for shard in self.shards:
            for task in shard.tasks:
                task.cancel()
            await asyncio.gather(*shard.tasks, return_exceptions=True)
        for delivery in list(self._unsettled):
            with contextlib.suppress(Exception):
                await self._backend.send(delivery._reply, _NAK)
        self._unsettled.clear()
        for shard in self.shards:
            if shard.revision is not None:
                with contextlib.suppress(Exception):
                    await self._kv.delete(shard.lease_key, last=shard.revision)
                shard.revision = None
        with contextlib.suppress(Exception):
            await self._signal()
        if self._signal_sub is not None:
            with contextlib.suppress(Exception):
                await self._signal_sub.unsubscribe()

    def abort(self) -> list[asyncio.Task[None]]:
        """Crash: stop everything at once, settle nothing, release nothing."""
        self._aborted = self._stopping = self._closed = True
        tasks = list(self._tasks)
        for shard in self.shards:
            tasks += shard.tasks
            shard.wake.set()
        for task in tasks:
            task.cancel()
        return tasks

    # -- membership and leases --------------------------------------------------------------

    async def _register(self) -> None:
        value = json.dumps({"consumer": self.spec.member_prefix, "member": self.member_id})
        await self._kv.put(self._member_key, value.encode())

    async def _unregister(self) -> None:
        await self._backend.js.purge_stream(
            self._backend.lease_stream,
            subject=f"$KV.{self._backend.lease_bucket}.{self._member_key}",
        )
        await self._signal()

    async def _signal(self) -> None:
        await self._nc.publish(self._signal_subject, self.member_id.encode())

    async def _on_signal(self, msg: Any) -> None:
        if msg.data.decode(errors="replace") != self.member_id:
            self._tick.set()

    async def _live_members(self) -> list[str]:
        info = await self._backend.js.stream_info(
            self._backend.lease_stream, subjects_filter=self._members_filter
        )
        subjects = info.state.subjects or {}
        members = sorted(subject.rsplit(".", 1)[-1] for subject in subjects)
        if not self._stopping and self.member_id not in members:
            members.append(self.member_id)
            members.sort()
        return members

    def _assigned(self) -> set[int]:
        if self._stopping or not self._members:
            return set()
        count = len(self._members)
        me = self._members.index(self.member_id)
        return {s.index for s in self.shards if s.index % count == me}

    async def _coordinate(self) -> None:
        interval = self.ttl / 5
        last_register = 0.0
        while not self._closed:
            try:
                started = time.monotonic()
                if not self._stopping and started - last_register >= interval * 0.9:
                    await self._register()
                    last_register = started
                self._members = await self._live_members()
                await self._rebalance()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.debug("eventwire: nats lease round for %s failed: %s", self, exc)
            self._tick.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._tick.wait(), interval)

    async def _rebalance(self) -> None:
        assigned = self._assigned()
        for shard in self.shards:
            if shard.held:
                if shard.index not in assigned:
                    shard.revoking = True
                    shard.wake.set()
                    if shard.active:
                        shard.active = False
                        shard.tasks.append(asyncio.create_task(self._revoke(shard)))
                if shard.held:
                    await self._renew(shard)
            elif shard.index in assigned and not shard.tasks_running():
                await self._acquire(shard)
        if not self._ready.is_set() and assigned and all(self.shards[i].active for i in assigned):
            self._ready.set()

    async def _renew(self, shard: _Shard) -> None:
        if shard.revision is None:
            return
        started = time.monotonic()
        try:
            shard.revision = await self._kv.update(
                shard.lease_key, self.member_id.encode(), last=shard.revision
            )
        except Exception as exc:
            if _wrong_revision(exc):
                log.warning(
                    "eventwire: %s lost the lease of shard %d (renewal failed); it stops "
                    "fetching there",
                    self,
                    shard.index,
                )
                shard.revision = None
                self._deactivate(shard)
                return
            raise
        shard.valid_until = started + 0.6 * self.ttl
        shard.wake.set()

    async def _acquire(self, shard: _Shard) -> None:
        started = time.monotonic()
        try:
            revision = await self._kv.create(shard.lease_key, self.member_id.encode())
        except Exception as exc:
            if _wrong_revision(exc):
                return  # another member holds it (it is handing over, or it crashed)
            raise
        shard.revision = revision
        shard.valid_until = started + 0.6 * self.ttl
        try:
            info = await self._backend.js.consumer_info(self.topology.stream, shard.durable)
            shard.barrier = info.delivered.stream_seq if info.num_ack_pending else None
            shard.inbox = self._nc.new_inbox()
            shard.outstanding = 0
            shard.deadline = 0.0
            shard.revoking = False
            shard.sub = await self._nc.subscribe(shard.inbox, cb=self._callback(shard))
        except BaseException:
            with contextlib.suppress(Exception):
                await self._kv.delete(shard.lease_key, last=revision)
            shard.revision = None
            raise
        shard.active = True
        shard.tasks = [t for t in shard.tasks if not t.done()]
        shard.tasks.append(asyncio.create_task(self._pull(shard)))
        if shard.barrier is not None:
            log.info(
                "eventwire: %s took over shard %d with unsettled messages up to sequence %d; "
                "newer ones wait until those are settled",
                self,
                shard.index,
                shard.barrier,
            )
            shard.tasks.append(asyncio.create_task(self._await_barrier(shard)))

    def _deactivate(self, shard: _Shard) -> None:
        shard.active = False
        shard.wake.set()
        shard.tasks.append(asyncio.create_task(self._drain_sub(shard)))

    async def _revoke(self, shard: _Shard) -> None:
        """Hand a shard over: stop fetching, settle what was handed out, release the lease."""
        await self._drain_sub(shard)
        await self._give_back_buffer(shard)
        while shard.handed and not self._closed:
            shard.settled.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(shard.settled.wait(), 0.5)
        if self._closed or shard.revision is None:
            return
        revision, shard.revision = shard.revision, None
        with contextlib.suppress(Exception):
            await self._kv.delete(shard.lease_key, last=revision)
        shard.revoking = False
        with contextlib.suppress(Exception):
            await self._signal()

    async def _drain_sub(self, shard: _Shard) -> None:
        """End this member's pull requests on `shard`, then unsubscribe.

        A pull request cannot be cancelled on NATS 2.9, and one whose inbox has no
        subscriber any more can still take a redelivered message (which then waits out
        ``ack_wait``). So the inbox stays subscribed until every request has been answered
        or has expired; what arrives meanwhile is registered like any delivery.
        """
        if shard.sub is None:
            return
        while shard.outstanding > 0 and time.monotonic() < shard.deadline and not self._aborted:
            shard.wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(shard.wake.wait(), 0.05)
        sub, shard.sub = shard.sub, None
        if sub is not None:
            # Not sub.drain(): it flushes, and a flush cancelled half-way breaks nats-py's
            # connection. Every requested message has been handled by the callback here.
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def _give_back_buffer(self, shard: _Shard) -> None:
        while shard.buffer:
            delivery = shard.buffer.popleft()
            self._unsettled.pop(delivery, None)
            with contextlib.suppress(Exception):
                await self._backend.send(delivery._reply, _NAK)
        shard.barrier = None

    async def _await_barrier(self, shard: _Shard) -> None:
        """Hold newer messages back until the previous owner's messages are settled."""
        js = self._backend.js
        while shard.barrier is not None and shard.active:
            try:
                info = await js.consumer_info(self.topology.stream, shard.durable)
                floor = info.ack_floor.stream_seq
            except asyncio.CancelledError:
                raise
            except Exception:
                floor = -1
            if floor >= shard.barrier:
                while shard.buffer and shard.active:
                    delivery = shard.buffer.popleft()
                    await self._hand(shard, delivery)
                if shard.active:
                    shard.barrier = None
                    shard.wake.set()
                return
            await asyncio.sleep(0.1)

    # -- fetching ----------------------------------------------------------------------------

    def _share(self) -> int:
        active = sum(1 for s in self.shards if s.active) or 1
        return max(1, math.ceil(self.spec.max_in_flight / active))

    async def _pull(self, shard: _Shard) -> None:
        subject = self._next_prefix + shard.durable
        batch_cap = self._settings.fetch_batch
        expires = self._pull_expires
        publish = self._nc.publish
        while shard.active and not self._stopping:
            now = time.monotonic()
            if now > shard.deadline:
                shard.outstanding = 0
            if now < shard.valid_until - 0.05 and shard.sub is not None:
                share = self._share()
                room = share - shard.handed - shard.outstanding
                if room > 0 and (room * 2 >= share or shard.outstanding == 0):
                    batch = min(room, batch_cap)
                    wait = min(expires, shard.valid_until - now)
                    request = b'{"batch":%d,"expires":%d}' % (batch, int(wait * 1e9))
                    try:
                        await publish(subject, request, reply=shard.inbox)
                    except Exception as exc:
                        log.debug("eventwire: pull request on %s failed: %s", subject, exc)
                        await asyncio.sleep(0.2)
                        continue
                    shard.outstanding += batch
                    shard.deadline = now + wait + 0.5
            shard.wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(shard.wake.wait(), expires / 2)

    def reset_requests(self) -> None:
        """The connection was re-established: pull requests sent before are gone."""
        for shard in self.shards:
            shard.outstanding = 0
            shard.deadline = 0.0
            shard.wake.set()
        self._tick.set()

    def _callback(self, shard: _Shard) -> Callable[[Any], Awaitable[None]]:
        member = self
        unsettled = self._unsettled

        async def on_message(msg: Any) -> None:
            reply = msg.reply
            if not reply:  # a status: the end of a pull request (or a heartbeat)
                headers = msg.headers or {}
                pending = headers.get("Nats-Pending-Messages")
                if pending is not None and pending.isdigit():
                    shard.outstanding = max(0, shard.outstanding - int(pending))
                elif headers.get("Status") != "100":
                    shard.outstanding = 0
                shard.wake.set()
                return
            if shard.outstanding:
                shard.outstanding -= 1
            if member._aborted:
                return
            try:
                seq, count = reply_metadata(reply)
            except ValueError:
                return
            headers, key = decode_headers(msg.headers)
            delivery = NatsDelivery(
                WireMessage(msg.data, headers, key), count, reply, seq, shard, member
            )
            unsettled[delivery] = None
            if member._stopping:
                return  # given back at close
            if shard.barrier is not None and seq > shard.barrier:
                shard.buffer.append(delivery)
                return
            await member._hand(shard, delivery)

        return on_message

    async def _hand(self, shard: _Shard, delivery: NatsDelivery) -> None:
        delivery.handed = True
        shard.handed += 1
        try:
            await self._handler(delivery)
        except Exception:
            log.exception(
                "eventwire: the handler of %s/%s raised on a delivery; it stays unsettled",
                self.spec.channel,
                self.spec.group,
            )

    # -- settling ----------------------------------------------------------------------------

    async def _settle(self, delivery: NatsDelivery, verb: bytes) -> None:
        if delivery not in self._unsettled or self._aborted:
            return
        await self._backend.send(delivery._reply, verb)
        if self._unsettled.pop(delivery, 0) is None:
            shard = delivery._shard
            if delivery.handed:
                shard.handed -= 1
            shard.wake.set()
            if not shard.handed:
                shard.settled.set()

    async def _keep_alive(self) -> None:
        """Tell the server that old unsettled deliveries are still being worked on."""
        ack_wait = self._settings.ack_wait
        threshold = ack_wait / 3
        while not self._closed:
            await asyncio.sleep(ack_wait / 6)
            if self._aborted:
                return
            now = time.monotonic()
            refreshed: list[NatsDelivery] = []
            for delivery in self._unsettled:
                if now - delivery.since < threshold:
                    break
                refreshed.append(delivery)
            for delivery in refreshed:
                try:
                    await self._backend.send(delivery._reply, _WPI)
                except Exception:
                    break
                delivery.since = now
                # keep the dict ordered by the time of the last sign of life
                if self._unsettled.pop(delivery, 0) is None:
                    self._unsettled[delivery] = None


def _wrong_revision(exc: BaseException) -> bool:
    return type(exc).__name__ in ("KeyWrongLastSequenceError", "KeyNotFoundError")
