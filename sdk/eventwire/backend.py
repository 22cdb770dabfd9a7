"""The backend protocol: what a broker plugin implements.

A backend only moves bytes and settles deliveries with its broker's native means. Decoding,
validation, retries, dead-lettering, idempotency and key-ordered concurrency live in the SDK's
pipeline (`eventwire.pipeline`), written once for every backend.

Contract, for plugin authors (the conformance suite checks it):

- ``publish`` returns only once the broker has stored every message (confirm / PubAck /
  acks=all). It raises `eventwire.errors.PublishError` (or a subclass) otherwise.
- ``subscribe`` starts delivering the channel's messages to ``handler`` for one member of
  ``spec.group``. Calls to ``handler`` for messages of the same key are made one after another
  in publish order (await each call before making the next for that key); ``handler`` returns
  quickly unless the subscription has ``spec.max_in_flight`` unsettled messages, in which case
  it blocks — stop fetching while it does (backpressure).
- A delivered message stays unsettled until ``Inbound.ack()``. An unsettled message is
  delivered again (``delivery_count`` + 1) when its member stops, crashes or is aborted.
- Members of one group share the channel's messages; same-key messages always go to one
  member at a time. Every group receives every message.
- ``Subscription.stop()`` stops fetching; messages already handed to ``handler`` can still be
  acked until ``close()``; what is left unsettled is redelivered to a surviving member.
- ``abort()`` behaves as a crash: the connection is dropped, nothing further is settled.

Optional abilities are separate small protocols a backend may also implement:
`ChannelDeleter` (delete what a channel left on the broker; test runs and ``eventwire bench``
clean up with it), `ChannelPurger` (remove a channel's retained messages and keep the channel;
``EventBus.purge_dead_letters`` uses it on ``<channel>.dlq``), `Located` (an `Inbound` that
says where the broker keeps the message and when it stored it: the `Origin`, from which the
SDK derives a stable id for messages published by producers that are not eventwire, see
`eventwire.foreign`), `GroupAdmin` (remove a consumer group), `LagReporter` (how far a group
is behind; the consumer-lag metric reads it), `IdempotencyStoreProvider` (the broker can
remember handled event ids for every member of a group: the bus's default store),
`BrokerReset` (a broker that lives in this process can be forgotten whole; ``TestBus``
forgets the private broker of each session with it), `BulkAck` (an `Inbound` class that acks
several of its deliveries in one step: the pipeline settles a handled batch with it).

The other way round, the handler `subscribe` receives may be a `BatchReceiver`: a backend
that fetches in batches then hands over a fetched batch in one synchronous call
(``take_many``) instead of one awaited call per message (the kit's
``BaseSubscription.takes_batches`` says which, ``take_batch`` and ``wait_room`` hand over).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from types import MappingProxyType
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from eventwire.idempotency import IdempotencyStore

__all__ = [
    "Backend",
    "BackendInfo",
    "BatchReceiver",
    "BrokerReset",
    "BulkAck",
    "Capabilities",
    "ChannelDeleter",
    "ChannelPurger",
    "GroupAdmin",
    "IdempotencyStoreProvider",
    "Inbound",
    "LagReporter",
    "Located",
    "MessageHandler",
    "Origin",
    "Subscription",
    "SubscriptionSpec",
    "WireMessage",
]


@dataclasses.dataclass(frozen=True, slots=True, init=False)
class WireMessage:
    """One message as bytes on the wire: body, protocol headers and the ordering key."""

    body: bytes
    headers: Mapping[str, str]
    key: str | None = None

    def __init__(self, body: bytes, headers: Mapping[str, str], key: str | None = None) -> None:
        # The slots' own setters: the frozen dataclass's ``__init__`` goes through
        # ``object.__setattr__`` per field, and one of these is built per message each way.
        _SET_BODY(self, body)
        _SET_HEADERS(self, headers)
        _SET_KEY(self, key)


_SET_BODY, _SET_HEADERS, _SET_KEY = (
    getattr(WireMessage, name).__set__ for name in ("body", "headers", "key")
)


@runtime_checkable
class Inbound(Protocol):
    """A delivery from the broker, unsettled until `ack` is awaited."""

    @property
    def message(self) -> WireMessage:
        """The message as it arrived."""
        ...

    @property
    def delivery_count(self) -> int:
        """How many times the broker has delivered this message (1 = first delivery)."""
        ...

    async def ack(self) -> None:
        """Settle the delivery: the broker will not deliver it to this group again."""
        ...


MessageHandler = Callable[[Inbound], Awaitable[None]]


class BulkAck(Protocol):
    """Optional, on an `Inbound` class: ``ack_many`` acks several deliveries of that class in
    one step (e.g. marks them settled for the next commit), with the effect of awaiting
    ``ack()`` on each in turn; a delivery acked before is skipped, so a call that failed may
    be made again. The pipeline settles a handled batch with it when every delivery of the
    batch is of that class."""

    @staticmethod
    def ack_many(inbounds: Sequence[Inbound], /) -> Awaitable[None]:
        """Ack every delivery of `inbounds`."""
        ...


@runtime_checkable
class BatchReceiver(Protocol):
    """Optional: a `MessageHandler` that also takes a fetched batch in one step.

    ``take_many`` is equivalent to calling the handler with each delivery of a prefix of
    `inbounds` in turn (so per-key order holds as long as the backend hands a key's messages
    in order), except that it never waits: it takes as many as the handler's in-flight
    window has room for and returns that count; the backend keeps the rest and hands them
    over after ``room()`` returned. Stop fetching while the rest waits (backpressure).
    """

    def __call__(self, inbound: Inbound, /) -> Awaitable[None]:
        """Take one delivery (the `MessageHandler` call)."""
        ...

    def take_many(self, inbounds: Sequence[Inbound], /) -> int:
        """Take the longest prefix of `inbounds` there is room for; how many were taken."""
        ...

    async def room(self) -> bool:
        """Wait until a batch can be taken; ``False`` once the handler takes no more."""
        ...


_NO_PROPERTIES: Mapping[str, str] = MappingProxyType({})


@dataclasses.dataclass(frozen=True, slots=True)
class Origin:
    """Where the broker keeps a delivered message, and what it says about it besides headers.

    ``position`` names the stored message and is the same every time the broker delivers
    it again (to any member of the group, also after a crash): ``<topic>/<partition>/<offset>``
    on Kafka, ``<stream>/<entry id>`` on Redis, ``<stream>/<sequence>`` on NATS JetStream;
    ``None`` where the broker has no such thing (a RabbitMQ queue). ``timestamp`` is when
    the broker (or the producer, on Kafka) stamped it, if known. ``properties`` are the
    broker's own message properties that are not headers (AMQP 0-9-1: ``message_id``,
    ``correlation_id``, ``content_type``, ``type``, ``app_id``), as text.
    """

    position: str | None = None
    timestamp: datetime | None = None
    properties: Mapping[str, str] = dataclasses.field(default_factory=lambda: _NO_PROPERTIES)


@dataclasses.dataclass(frozen=True, slots=True)
class SubscriptionSpec:
    """Where and how one group member consumes."""

    channel: str
    group: str
    from_beginning: bool = False
    max_in_flight: int = 256
    #: The start of this member's id (the backend appends something unique): which host
    #: and process it runs in, for the broker's tools and the logs.
    member_prefix: str = "member"


class Subscription(Protocol):
    """A running subscription of one group member."""

    async def stop(self) -> None:
        """Stop fetching new messages. Unsettled ones stay pending for redelivery."""
        ...


@dataclasses.dataclass(frozen=True, slots=True)
class Capabilities:
    """What a backend declares about itself.

    ``unsupported`` maps a guarantee id (``"G16"``) to the reason this backend cannot give
    it; the conformance suite reports those as *unsupported* with that reason.
    ``cross_process`` is true when members in other processes share the broker (real
    brokers); the in-memory broker lives inside one process.
    ``max_message_bytes`` is the largest encoded message the backend accepts, if known.
    """

    unsupported: Mapping[str, str] = dataclasses.field(default_factory=lambda: MappingProxyType({}))
    cross_process: bool = True
    max_message_bytes: int | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class BackendInfo:
    """A backend plugin's self-description, listed by ``eventwire backends``."""

    name: str
    schemes: Sequence[str]
    description: str
    capabilities: Capabilities
    binding: str = "kafka"


@runtime_checkable
class Backend(Protocol):
    """A connection to one broker. See the module docstring for the contract."""

    #: Short backend name ("memory", "kafka", ...).
    name: str
    #: CloudEvents header binding used on the wire: "kafka", "nats" or "amqp".
    binding: str
    #: What this backend supports.
    capabilities: Capabilities

    @property
    def url(self) -> str:
        """The broker URL with any credentials removed (safe to log)."""
        ...

    async def connect(self) -> None:
        """Connect, failing within a bounded time with `BackendUnavailableError`."""
        ...

    async def close(self) -> None:
        """Stop every subscription and disconnect. Settled work stays settled."""
        ...

    async def abort(self) -> None:
        """Drop the connection as a crash would: settle nothing more."""
        ...

    async def publish(self, channel: str, messages: Sequence[WireMessage]) -> None:
        """Store `messages` on `channel`, returning once the broker confirmed all of them."""
        ...

    async def subscribe(self, spec: SubscriptionSpec, handler: MessageHandler) -> Subscription:
        """Start one group member on `spec.channel`; deliveries go to `handler`."""
        ...

    async def browse(self, channel: str, limit: int = 1000) -> list[WireMessage]:
        """Read up to `limit` retained messages of `channel`, oldest first, without consuming."""
        ...


@runtime_checkable
class ChannelDeleter(Protocol):
    """Optional: a backend that can delete a channel and everything the broker keeps for it."""

    async def delete_channel(self, channel: str) -> bool:
        """Delete `channel`: its retained messages, every group's position and unsettled
        deliveries, and any lease or membership record of it; ``False`` if there was nothing.

        Meant for channels nobody consumes any more (a finished test run or benchmark):
        members still subscribed may fail or wait on a channel that is gone. The caller
        deletes the dead-letter channel ``<channel>.dlq`` by name like any other.
        """
        ...


@runtime_checkable
class ChannelPurger(Protocol):
    """Optional: a backend that can remove every retained message of a channel in place."""

    async def purge_channel(self, channel: str) -> int:
        """Remove every message `channel` retains and return how many there were (``0`` if
        the channel does not exist).

        The channel stays usable: messages published afterwards are retained and browsed as
        before. All or nothing: brokers whose logs cannot drop single entries (Kafka topics,
        RabbitMQ streams) offer no selective form, so neither does this. Meant for
        dead-letter channels, which no group consumes: what a purge does to a group of
        `channel` is the broker's (RabbitMQ's group queues keep their own copies).
        """
        ...


@runtime_checkable
class Located(Protocol):
    """Optional: an `Inbound` that knows its `Origin` (computed when asked, off the hot path)."""

    @property
    def origin(self) -> Origin:
        """Where and when the broker stored this message."""
        ...


@runtime_checkable
class BrokerReset(Protocol):
    """Optional: a backend whose broker lives in this process and can be forgotten whole."""

    def reset_broker(self) -> None:
        """Forget the broker this backend's URL names: its channels, groups, messages and
        remembered event ids. Needs no connection; a backend connected to it afterwards
        starts on an empty broker. No member of it may be running."""
        ...


@runtime_checkable
class GroupAdmin(Protocol):
    """Optional: a backend that can remove a consumer group (throw-away readers use it)."""

    async def delete_group(self, channel: str, group: str) -> None:
        """Forget `group` on `channel` and its position; no member of it may be running."""
        ...


@runtime_checkable
class LagReporter(Protocol):
    """Optional: a backend that can tell how far a consumer group is behind its channel."""

    async def lag(self, channel: str, group: str) -> int | None:
        """How many messages of `channel` the broker holds for `group` that it has not
        acknowledged yet, summed over the channel's partitions or shards; ``None`` if the
        broker has no such group (or channel).

        Counted by the broker itself, from any process: the group's members need not run
        (a stopped group's lag grows with every publish). Whether messages delivered but not
        yet acknowledged count is the broker's to say (each backend's docstring says it);
        for a group whose members stopped after settling everything they took, every
        backend reports the same number: the messages published since.
        """


@runtime_checkable
class IdempotencyStoreProvider(Protocol):
    """Optional: a backend whose broker can hold the idempotency store of every member.

    ``EventBus`` uses it when no ``idempotency_store`` is given, so ``idempotent=True`` runs
    an effect once per group across member processes without more configuration.
    """

    def shared_idempotency_store(self) -> IdempotencyStore:
        """A new store on this backend's broker, shared by every process that uses the same
        broker (not connected yet; the bus that asked closes it). Claims must be atomic
        across processes and expire with their lease (`eventwire.idempotency`)."""
        ...
