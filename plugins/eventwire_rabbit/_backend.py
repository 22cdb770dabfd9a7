"""`RabbitBackend`: the `eventwire.backend.Backend` protocol over RabbitMQ."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, ClassVar, cast

import aiormq
from aiormq.abc import DeliveredMessage
from eventwire import backendkit
from eventwire.backend import Capabilities, MessageHandler, SubscriptionSpec, WireMessage
from eventwire.backendkit import BaseBackend, ConnectionState, ErrorMap, connect_failure
from eventwire.errors import BackendUnavailableError, BusClosedError
from faststream.rabbit import RabbitBroker
from faststream.rabbit.security import RabbitExternalAuth
from faststream.security import BaseSecurity

from eventwire_rabbit._channels import Bounded, close_channel
from eventwire_rabbit._failover import failover_connection
from eventwire_rabbit._groups import Groups
from eventwire_rabbit._history import Visitor
from eventwire_rabbit._info import CAPABILITIES
from eventwire_rabbit._publisher import Publisher
from eventwire_rabbit._settings import RabbitSettings
from eventwire_rabbit._subscription import RabbitSubscription
from eventwire_rabbit._topology import history_queue
from eventwire_rabbit._wire import from_delivery, properties, routing_key

__all__ = ["RabbitBackend"]


class RabbitBackend(BaseBackend[RabbitSettings]):
    """A connection to one RabbitMQ virtual host: ``amqp://user:password@host:5672/vhost``."""

    name = "rabbit"
    binding = "amqp"
    messaging_system = "rabbitmq"
    error_map: ClassVar[ErrorMap] = {
        aiormq.exceptions.AMQPError: BackendUnavailableError,
        aiormq.exceptions.ChannelInvalidStateError: BackendUnavailableError,
    }

    def __init__(self, url: str, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(RabbitSettings.parse(url, options))
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
        self.publisher = Publisher(
            self.amqp,
            lambda: self.state is ConnectionState.CONNECTED,
            self.settings.publish_timeout,
        )
        self._groups = Groups(self)

    # -- connection ----------------------------------------------------------------------

    async def _connect(self) -> None:
        """Connect to the first node of the URL that answers (each node in turn)."""
        last = len(self.settings.nodes) - 1
        for node in range(last + 1):
            try:
                return await self._connect_to(node)
            except BackendUnavailableError:
                if node == last:
                    raise

    async def _connect_to(self, node: int) -> None:
        settings = self.settings
        broker = RabbitBroker(
            settings.amqp_url(node),
            timeout=settings.connect_timeout,
            reconnect_interval=settings.reconnect_interval,
            fail_fast=True,
            security=self._security(),
            logger=None,
            app_id="eventwire",
            specification_url=self.url,
        )
        # later reconnections move on to the other nodes when this one is down
        broker._connection_kwargs["connection_class"] = failover_connection(settings.nodes, node)
        self._broker = broker
        try:
            self._connection = await asyncio.wait_for(
                broker.connect(), settings.connect_timeout + 1
            )
            await self.publisher.channel(time.monotonic() + settings.connect_timeout)
        except BaseException as exc:
            await backendkit.quietly(broker.stop(), "rabbit broker stop")
            self._broker = None
            if isinstance(exc, asyncio.CancelledError):
                raise
            raise self._connect_error(exc, node) from exc

    def _security(self) -> BaseSecurity | None:
        settings = self.settings
        context = settings.tls_context() if settings.tls else None
        if settings.external_auth:
            return RabbitExternalAuth(ssl_context=context)
        if context is not None:
            return BaseSecurity(ssl_context=context, use_ssl=True)
        return None

    def _connect_error(self, exc: BaseException, node: int) -> BackendUnavailableError:
        s = self.settings
        return connect_failure(
            exc,
            f"RabbitMQ at {backendkit.join_host(*s.nodes[node])}",
            s,
            login=("authentication", "access_refused"),
            login_advice="wrong user name or password; check the credentials in the URL or "
            "the username/password options",
            refusals=dict.fromkeys(
                ("NOT_ALLOWED", "Connection.Close"),
                f"refused to open virtual host {s.vhost!r}: it does not exist or the user may "
                "not use it (NOT_ALLOWED); create it (rabbitmqctl add_vhost) or fix the URL path",
            ),
        )

    async def amqp(self, timeout: float | None = None) -> aiormq.abc.AbstractConnection:
        """The current AMQP connection, waiting while the robust connection reconnects."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if self.state is ConnectionState.CLOSED or self._connection is None:
                raise BusClosedError(f"the {self.url} backend is closed")
            transport = self._connection.transport
            if transport is not None and not transport.connection.is_closed:
                connection: aiormq.abc.AbstractConnection = transport.connection
                return connection
            if deadline is not None and time.monotonic() > deadline:
                raise BackendUnavailableError(
                    f"RabbitMQ at {backendkit.join_hosts(self.settings.nodes)} is unreachable "
                    "(reconnecting)"
                )
            await asyncio.sleep(0.05)

    @contextlib.asynccontextmanager
    async def scratch(self) -> AsyncIterator[aiormq.abc.AbstractChannel]:
        """A fresh channel for declarations (a failed one closes the channel), closed after.
        Opening it, and each declaration or query on it, waits at most ``publish_timeout``
        (`BackendUnavailableError` after that)."""
        timeout = self.settings.publish_timeout
        amqp = await self.amqp(timeout)
        hosts = backendkit.join_hosts(self.settings.nodes)
        try:
            channel = await amqp.channel(publisher_confirms=False, timeout=timeout)
        except TimeoutError as exc:
            raise BackendUnavailableError(
                f"RabbitMQ at {hosts} opened no channel within {timeout:g}s (option "
                "publish_timeout); nothing was declared"
            ) from exc
        try:
            yield cast(aiormq.abc.AbstractChannel, Bounded(channel, timeout))
        except TimeoutError as exc:
            raise BackendUnavailableError(
                f"RabbitMQ at {hosts} did not answer a declaration within {timeout:g}s "
                "(option publish_timeout); retry once the broker answers again"
            ) from exc
        finally:
            await close_channel(channel)

    # -- publishing ------------------------------------------------------------------------

    async def publish(self, channel: str, messages: Sequence[WireMessage]) -> None:
        self.check_publish(channel, messages)
        await self._groups.ensure_channel(channel)
        await self.publisher.send(
            channel, [(m.body, routing_key(m.key), properties(m)) for m in messages]
        )

    # -- consuming -------------------------------------------------------------------------

    async def subscribe(
        self, spec: SubscriptionSpec, handler: MessageHandler
    ) -> RabbitSubscription:
        self.check_subscribe(spec)
        await self._groups.ensure_group(spec)
        return await self.started(RabbitSubscription(self, spec, handler))

    async def delete_group(self, channel: str, group: str) -> None:
        """Delete `group`'s exchanges and shard queues on `channel`."""
        self.check_channel(channel)
        with self.map_errors(f"delete group {group!r} of {channel!r}"):
            await self._groups.delete_group(channel, group)

    async def delete_channel(self, channel: str) -> bool:
        """Delete the channel (`eventwire.backend.ChannelDeleter`): every group recorded in
        ``<channel>:groups`` (exchanges and shard queues), the channel's exchange and its
        history stream; ``False`` if the exchange did not exist. A group created before
        that record existed is not found: delete it with `delete_group`."""
        self.check_channel(channel)
        with self.map_errors(f"delete {channel!r}"):
            return await self._groups.delete_channel(channel)

    async def lag(self, channel: str, group: str) -> int | None:
        """Messages ready in `group`'s shard queues on `channel` (a passive declare's
        ``message_count``), summed over the shards (`eventwire.backend.LagReporter`).
        AMQP does not count delivered, unacked messages (at most the prefetch window per
        member); ``None`` if the group has no queues."""
        self.check_channel(channel)
        with self.map_errors(f"lag of group {group!r} on {channel!r}"):
            return await self._groups.lag(channel, group)

    async def browse(self, channel: str, limit: int = 1000) -> list[WireMessage]:
        self.check_channel(channel)
        found: list[WireMessage] = []
        if limit <= 0:
            return found

        async def visit(message: DeliveredMessage) -> bool:
            found.append(from_delivery(message))
            return len(found) >= limit

        await self._read_history(channel, visit, "reading")
        return found

    async def purge_channel(self, channel: str) -> int:
        """Delete the channel's history stream and declare it again through the channel's
        topology (`eventwire.backend.ChannelPurger`): a stream cannot drop entries. Returns
        how many messages the stream held when read just before (``0`` without a stream).
        Messages routed to the channel while the stream is briefly absent are not kept."""
        self.check_channel(channel)
        count = 0

        async def visit(message: DeliveredMessage) -> bool:
            nonlocal count
            count += 1
            return False

        if await self._read_history(channel, visit, "purging"):
            timeout = self.settings.publish_timeout
            with self.map_errors(f"purging the history of {channel!r} within {timeout:g}s"):
                async with self.scratch() as scratch:  # each call bounded by publish_timeout
                    await scratch.queue_delete(history_queue(channel))
                self._groups.declared.forget(channel)
                await self._groups.ensure_channel(channel)
        return count

    async def _read_history(self, channel: str, visit: Visitor, doing: str) -> bool:
        """Visit `channel`'s history stream; whether there is one."""
        timeout = self.settings.publish_timeout
        with self.map_errors(f"{doing} the history of {channel!r} within {timeout:g}s"):
            try:
                await self._groups.read_history(channel, visit)
            except aiormq.exceptions.ChannelNotFoundEntity:
                return False
        return True

    # -- shutdown --------------------------------------------------------------------------

    async def _close(self) -> None:
        broker, self._broker = self._broker, None
        self.publisher.forget()
        if broker is not None:
            await backendkit.quietly(broker.stop(), "rabbit broker stop", timeout=10)
        self._connection = None
