"""`RabbitBackend`: the `eventwire.backend.Backend` protocol over RabbitMQ."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, cast

import aiormq
from aiormq.abc import DeliveredMessage
from eventwire._naming import check_name
from eventwire.backend import (
    Capabilities,
    MessageHandler,
    SubscriptionSpec,
    WireMessage,
)
from eventwire.errors import (
    BackendUnavailableError,
    BusClosedError,
    ConfigurationError,
    MessageTooLargeError,
    PublishError,
)
from faststream.rabbit import RabbitBroker
from faststream.rabbit.security import RabbitExternalAuth
from faststream.security import BaseSecurity

from eventwire_rabbit._consumer import RabbitSubscription
from eventwire_rabbit._history import scan
from eventwire_rabbit._info import CAPABILITIES
from eventwire_rabbit._topology import (
    declare_channel,
    declare_hash_exchange,
    declare_shards,
    group_exchange,
    history_queue,
    init_lock_queue,
    shard_queue,
)
from eventwire_rabbit._url import RabbitSettings, parse_settings
from eventwire_rabbit._wire import from_delivery, properties, routing_key

__all__ = ["RabbitBackend"]

log = logging.getLogger("eventwire.rabbit")

#: A from_beginning copy stops catching up once a round copies fewer messages than this.
_CATCH_UP = 50


class RabbitBackend:
    """A connection to one RabbitMQ virtual host: ``amqp://user:password@host:5672/vhost``."""

    name = "rabbit"
    binding = "amqp"

    def __init__(self, url: str, options: Mapping[str, Any] | None = None) -> None:
        self.settings: RabbitSettings = parse_settings(url, options)
        unsupported = dict(CAPABILITIES.unsupported)
        if not self.settings.history:
            unsupported["G14"] = (
                "history=false: channels keep no history stream, so a new group cannot "
                "start from the oldest event"
            )
        self.capabilities: Capabilities = dataclasses.replace(
            CAPABILITIES,
            unsupported=unsupported,
            max_message_bytes=self.settings.max_message_size,
        )
        self._broker: RabbitBroker | None = None
        self._connection: Any = None
        self._publisher: aiormq.Channel | None = None
        self._publisher_lock = asyncio.Lock()
        self._declared: dict[str, asyncio.Future[None]] = {}
        self._subscriptions: list[RabbitSubscription] = []
        self._state = "new"

    def __repr__(self) -> str:
        return f"<RabbitBackend {self.settings.safe_url} {self._state}>"

    @property
    def url(self) -> str:
        return self.settings.safe_url

    @property
    def subscriptions(self) -> list[RabbitSubscription]:
        return list(self._subscriptions)

    # -- connection ----------------------------------------------------------------------

    async def connect(self) -> None:
        if self._state == "closed":
            raise BusClosedError(f"the {self.url} backend is closed; create a new backend")
        if self._state == "connected":
            return
        settings = self.settings
        broker = RabbitBroker(
            settings.amqp_url(),
            timeout=settings.connect_timeout,
            reconnect_interval=settings.reconnect_interval,
            fail_fast=True,
            security=self._security(),
            logger=None,
            app_id="eventwire",
            specification_url=self.url,
        )
        self._broker = broker
        try:
            self._connection = await asyncio.wait_for(
                broker.connect(), settings.connect_timeout + 1
            )
            amqp = await self.amqp()
            self._publisher = cast(aiormq.Channel, await amqp.channel(publisher_confirms=True))
        except BaseException as exc:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(broker.stop(), 5)
            self._broker = None
            if isinstance(exc, asyncio.CancelledError):
                raise
            raise self._connect_error(exc) from None
        self._state = "connected"

    def _security(self) -> BaseSecurity | None:
        settings = self.settings
        context = settings.ssl_context()
        if settings.external_auth:
            return RabbitExternalAuth(ssl_context=context)
        if context is not None:
            return BaseSecurity(ssl_context=context, use_ssl=True)
        return None

    def _connect_error(self, exc: BaseException) -> BackendUnavailableError:
        where = f"RabbitMQ at {self.settings.host}:{self.settings.port}"
        vhost = self.settings.vhost
        text = str(exc)
        if isinstance(exc, TimeoutError):
            return BackendUnavailableError(
                f"{where} did not accept a connection within "
                f"{self.settings.connect_timeout:g}s; is the broker running and reachable? "
                "(option connect_timeout)"
            )
        if (
            isinstance(
                exc,
                aiormq.exceptions.ProbableAuthenticationError
                | (aiormq.exceptions.AuthenticationError),
            )
            or "ACCESS_REFUSED" in text
        ):
            return BackendUnavailableError(
                f"{where} refused the login: wrong user name or password (ACCESS_REFUSED); "
                "check the credentials in the URL or the username/password options"
            )
        if "Connection.Close" in text or "NOT_ALLOWED" in text:
            return BackendUnavailableError(
                f"{where} refused to open virtual host {vhost!r}: it does not exist or the "
                "user may not use it (NOT_ALLOWED); create it (rabbitmqctl add_vhost) or fix "
                "the URL path"
            )
        if isinstance(exc, OSError | aiormq.exceptions.AMQPConnectionError):
            reason = text.replace(self.settings.password, "***") if self.settings.password else text
            return BackendUnavailableError(
                f"cannot connect to {where}: {type(exc).__name__}: {reason}"
            )
        return BackendUnavailableError(f"cannot connect to {where}: {type(exc).__name__}")

    async def amqp(self, timeout: float | None = None) -> aiormq.abc.AbstractConnection:
        """The current AMQP connection, waiting while the robust connection reconnects."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if self._state == "closed" or self._connection is None:
                raise BusClosedError(f"the {self.url} backend is closed")
            transport = self._connection.transport
            if transport is not None and not transport.connection.is_closed:
                connection: aiormq.abc.AbstractConnection = transport.connection
                return connection
            if deadline is not None and time.monotonic() > deadline:
                raise BackendUnavailableError(
                    f"RabbitMQ at {self.settings.host}:{self.settings.port} is unreachable "
                    "(reconnecting)"
                )
            await asyncio.sleep(0.05)

    def _check_open(self) -> None:
        if self._state != "connected":
            raise BusClosedError(
                f"the {self.url} backend is {self._state}; call connect() first"
                if self._state == "new"
                else f"the {self.url} backend is closed"
            )

    async def _publisher_channel(self, deadline: float) -> aiormq.Channel:
        channel = self._publisher
        if channel is not None and not channel.is_closed:
            return channel
        async with self._publisher_lock:
            channel = self._publisher
            if channel is None or channel.is_closed:
                amqp = await self.amqp(max(0.0, deadline - time.monotonic()))
                channel = cast(aiormq.Channel, await amqp.channel(publisher_confirms=True))
                self._publisher = channel
            return channel

    async def _scratch(self) -> aiormq.abc.AbstractChannel:
        """A fresh channel for declarations (a failed one closes the channel)."""
        amqp = await self.amqp(self.settings.publish_timeout)
        return await amqp.channel()

    # -- topology --------------------------------------------------------------------------

    async def _ensure_channel(self, channel: str) -> None:
        known = self._declared.get(channel)
        if known is not None and known.done() and known.exception() is None:
            return
        if known is None or known.done():
            known = asyncio.get_running_loop().create_future()
            self._declared[channel] = known
            try:
                scratch = await self._scratch()
                try:
                    await declare_channel(scratch, self.settings, channel)
                finally:
                    await _close(scratch)
            except BaseException as exc:
                self._declared.pop(channel, None)
                known.set_exception(self._topology_error(exc, channel))
                known.exception()  # retrieved: waiters get it through await
                raise self._topology_error(exc, channel) from None
            known.set_result(None)
            return
        await asyncio.shield(known)

    def _topology_error(self, exc: BaseException, what: str) -> Exception:
        if isinstance(exc, aiormq.exceptions.ChannelPreconditionFailed):
            return ConfigurationError(
                f"RabbitMQ refused to declare the topology of {what!r}: {exc}. It exists with "
                "other settings (shards, history_*, delivery_limit, group_expires): use the "
                "same options everywhere or delete the old queues/exchanges"
            )
        if isinstance(exc, aiormq.exceptions.ChannelAccessRefused):
            return ConfigurationError(
                f"RabbitMQ refused access while declaring {what!r}: {exc}; give the user "
                "configure/write/read permissions on the virtual host"
            )
        if isinstance(exc, BusClosedError | BackendUnavailableError | ConfigurationError):
            return exc
        return BackendUnavailableError(
            f"declaring the topology of {what!r} failed: {type(exc).__name__}: {exc}"
        )

    async def _exists(self, exchange: str) -> bool:
        scratch = await self._scratch()
        try:
            await scratch.exchange_declare(exchange, passive=True)
            return True
        except aiormq.exceptions.ChannelNotFoundEntity:
            return False
        finally:
            await _close(scratch)

    async def _ensure_group(self, spec: SubscriptionSpec) -> None:
        """Create the group's shards and hash exchange once (and fill them from history for
        ``from_beginning``); the bound group exchange marks a finished group."""
        channel, group = spec.channel, spec.group
        name = group_exchange(channel, group)
        try:
            await self._ensure_channel(channel)
            await self._ensure_channel(channel + ".dlq")
            if await self._exists(name):
                await self._check_group(channel, group)
                return
            lock = await self._scratch()
            try:
                try:
                    await lock.queue_declare(
                        init_lock_queue(channel, group), exclusive=True, auto_delete=True
                    )
                except aiormq.exceptions.ChannelLockedResource:
                    await self._wait_for_group(name)
                    return
                if await self._exists(name):
                    return
                await self._create_group(spec)
            finally:
                await _close(lock)
        except (ConfigurationError, BusClosedError, BackendUnavailableError):
            raise
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError):
                raise
            raise self._topology_error(exc, f"{channel}/{group}") from None

    async def delete_group(self, channel: str, group: str) -> None:
        """Delete `group`'s hash exchange and shard queues on `channel`."""
        scratch = await self._scratch()
        try:
            await scratch.exchange_delete(group_exchange(channel, group))
            for shard in range(self.settings.shards):
                await scratch.queue_delete(shard_queue(channel, group, shard))
        finally:
            await _close(scratch)

    async def _check_group(self, channel: str, group: str) -> None:
        """The group exists: its shard count must be ours (last shard there, next absent)."""
        count = self.settings.shards
        last = await self._queue_exists(shard_queue(channel, group, count - 1))
        extra = await self._queue_exists(shard_queue(channel, group, count))
        if not last or extra:
            raise ConfigurationError(
                f"group {group!r} on channel {channel!r} was created with "
                f"{'fewer' if not last else 'more'} shards than shards={count}; give every "
                "member the group's original shard count"
            )

    async def _queue_exists(self, name: str) -> bool:
        scratch = await self._scratch()
        try:
            await scratch.queue_declare(name, passive=True)
            return True
        except aiormq.exceptions.ChannelNotFoundEntity:
            return False
        finally:
            await _close(scratch)

    async def _wait_for_group(self, name: str) -> None:
        deadline = time.monotonic() + max(60.0, self.settings.publish_timeout)
        while not await self._exists(name):
            if time.monotonic() > deadline:
                raise BackendUnavailableError(
                    f"another member has been creating {name!r} for too long; retry"
                )
            await asyncio.sleep(0.1)

    async def _create_group(self, spec: SubscriptionSpec) -> None:
        channel, group = spec.channel, spec.group
        settings = self.settings
        scratch = await self._scratch()
        try:
            shards = await declare_shards(scratch, settings, channel, group)
            copy = spec.from_beginning and (settings.history or channel.endswith(".dlq"))
            start: int | str = "first"
            temp = f"{group_exchange(channel, group)}:init-{uuid.uuid4().hex[:8]}"
            if copy:
                # Same shards bound in the same order: the same key lands in the same shard.
                await declare_hash_exchange(scratch, temp, shards, durable=False)
                for _ in range(8):  # catch up until a round is short
                    copied, start = await self._copy_history(channel, temp, start)
                    if copied < _CATCH_UP:
                        break
            name = group_exchange(channel, group)
            await declare_hash_exchange(scratch, name, shards, durable=True)
            await scratch.exchange_bind(name, channel, routing_key="#")
            if copy:
                # What arrived between the last round and the binding (a few may now be
                # in the shards twice: at-least-once).
                await self._copy_history(channel, temp, start)
                await scratch.exchange_delete(temp)
        finally:
            await _close(scratch)

    async def _copy_history(
        self, channel: str, target: str, start: int | str
    ) -> tuple[int, int | str]:
        publisher = await self._publisher_channel(time.monotonic() + self.settings.publish_timeout)
        amqp = await self.amqp(self.settings.publish_timeout)
        window: list[asyncio.Future[Any]] = []
        copied = 0

        async def visit(message: DeliveredMessage) -> bool:
            nonlocal copied
            props = message.header.properties
            headers = {
                k: v for k, v in (props.headers or {}).items() if not k.startswith("x-stream")
            }
            props.headers = headers
            window.append(
                asyncio.ensure_future(
                    publisher.basic_publish(
                        message.body,
                        exchange=target,
                        routing_key=message.delivery.routing_key or "",  # type: ignore[union-attr]
                        properties=props,
                        wait=False,
                    )
                )
            )
            copied += 1
            if len(window) >= 500:
                await _confirmed(window)
            return False

        try:
            end = await scan(
                amqp,
                publisher,
                history_queue(channel),
                start,
                visit,
                timeout=self.settings.publish_timeout,
            )
        except aiormq.exceptions.ChannelNotFoundEntity:
            end = None
        await _confirmed(window)
        return copied, (end if end is not None else start)

    # -- publishing ------------------------------------------------------------------------

    async def publish(self, channel: str, messages: Sequence[WireMessage]) -> None:
        self._check_open()
        limit = self.settings.max_message_size
        for index, message in enumerate(messages):
            if len(message.body) > limit:
                raise MessageTooLargeError(
                    f"message {index} for channel {channel!r} is {len(message.body)} bytes, "
                    f"over RabbitMQ's max_message_size of {limit} bytes; nothing was sent. "
                    "Publish a reference to the data instead (or raise the broker's limit "
                    "and the max_message_size option together)"
                )
        if channel not in self._declared or not self._declared[channel].done():
            check_name("channel", channel)
            await self._ensure_channel(channel)
        deadline = time.monotonic() + self.settings.publish_timeout
        todo = list(messages)
        while todo:
            publisher = await self._publisher_channel(deadline)
            results = await asyncio.gather(
                *(
                    publisher.basic_publish(
                        message.body,
                        exchange=channel,
                        routing_key=routing_key(message.key),
                        properties=properties(message),
                        wait=False,
                    )
                    for message in todo
                ),
                return_exceptions=True,
            )
            retry: list[WireMessage] = []
            for message, result in zip(todo, results, strict=True):
                if not isinstance(result, BaseException):
                    continue
                if isinstance(result, aiormq.exceptions.DeliveryError):
                    raise PublishError(
                        f"RabbitMQ refused a message for channel {channel!r} (publisher "
                        "confirm nack: a queue is full or unavailable); it was not stored"
                    )
                if isinstance(result, aiormq.exceptions.ChannelPreconditionFailed) or (
                    "max size" in str(result)
                ):
                    raise MessageTooLargeError(
                        f"RabbitMQ refused a message for channel {channel!r}: {result}"
                    )
                if isinstance(result, asyncio.CancelledError):
                    raise result
                retry.append(message)
            todo = retry
            if todo:
                if self._state != "connected":
                    raise PublishError(
                        f"the backend closed before RabbitMQ confirmed {len(todo)} message(s) "
                        f"for channel {channel!r}; they may not be stored"
                    )
                if time.monotonic() > deadline:
                    raise PublishError(
                        f"RabbitMQ did not confirm {len(todo)} message(s) for channel "
                        f"{channel!r} within {self.settings.publish_timeout:g}s (option "
                        "publish_timeout); they may not be stored"
                    )
                log.warning(
                    "eventwire: %d publish(es) to %s not confirmed (connection lost); "
                    "sending again",
                    len(todo),
                    channel,
                )
                await asyncio.sleep(0.1)

    # -- consuming -------------------------------------------------------------------------

    async def subscribe(
        self, spec: SubscriptionSpec, handler: MessageHandler
    ) -> RabbitSubscription:
        self._check_open()
        check_name("channel", spec.channel)
        check_name("group", spec.group)
        if spec.max_in_flight < 1:
            raise ConfigurationError(
                f"max_in_flight={spec.max_in_flight} for {spec.channel}/{spec.group} must be >= 1"
            )
        await self._ensure_group(spec)
        subscription = RabbitSubscription(self, self.settings, spec, handler)
        self._subscriptions.append(subscription)
        subscription.start()
        return subscription

    async def browse(self, channel: str, limit: int = 1000) -> list[WireMessage]:
        self._check_open()
        check_name("channel", channel)
        found: list[WireMessage] = []
        if limit <= 0:
            return found

        async def visit(message: DeliveredMessage) -> bool:
            found.append(from_delivery(message))
            return len(found) >= limit

        deadline = time.monotonic() + self.settings.publish_timeout
        publisher = await self._publisher_channel(deadline)
        amqp = await self.amqp(self.settings.publish_timeout)
        try:
            await scan(
                amqp,
                publisher,
                history_queue(channel),
                "first",
                visit,
                timeout=self.settings.publish_timeout,
            )
        except aiormq.exceptions.ChannelNotFoundEntity:
            return []
        except TimeoutError:
            raise BackendUnavailableError(
                f"reading the history of {channel!r} took longer than "
                f"{self.settings.publish_timeout:g}s"
            ) from None
        return found

    # -- shutdown --------------------------------------------------------------------------

    async def close(self) -> None:
        if self._state == "closed":
            return
        subscriptions, self._subscriptions = self._subscriptions, []
        await asyncio.gather(*(s.close() for s in subscriptions), return_exceptions=True)
        self._state = "closed"
        await self._disconnect()

    async def abort(self) -> None:
        if self._state == "closed":
            return
        for subscription in self._subscriptions:
            subscription.abort()
        self._subscriptions = []
        self._state = "closed"
        await self._disconnect()

    async def _disconnect(self) -> None:
        broker, self._broker = self._broker, None
        self._publisher = None
        if broker is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(broker.stop(), 10)
        self._connection = None


async def _close(channel: aiormq.abc.AbstractChannel) -> None:
    if not channel.is_closed:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(channel.close(), 5)


async def _confirmed(window: list[asyncio.Future[Any]]) -> None:
    pending = list(window)
    window.clear()
    results = await asyncio.gather(*pending, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise PublishError(f"copying history into a new group failed: {result}")
