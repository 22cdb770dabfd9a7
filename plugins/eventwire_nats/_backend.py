"""`NatsBackend`: the `eventwire.backend.Backend` protocol over NATS JetStream."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

from eventwire.backend import MessageHandler, SubscriptionSpec, WireMessage
from eventwire.backendkit import (
    BaseBackend,
    ConnectionState,
    ErrorMap,
    connect_failure,
    describe_exception,
    describe_permission_failure,
    shard_of,
)
from eventwire.errors import (
    BackendUnavailableError,
    ConfigurationError,
    MessageTooLargeError,
    PublishError,
)

from eventwire_nats._admin import purge_stream, read_stream
from eventwire_nats._idempotency import NatsIdempotencyStore
from eventwire_nats._info import CAPABILITIES
from eventwire_nats._publisher import Prepared, Publisher
from eventwire_nats._settings import NatsSettings
from eventwire_nats._subscription import NatsSubscription
from eventwire_nats._topology import (
    ChannelTopology,
    Topology,
    cluster_replicas,
    durable_name,
    stream_name,
)
from eventwire_nats._wire import header_block, parse_header_lines

__all__ = ["NatsBackend"]

log = logging.getLogger("eventwire.nats")

_NO_JETSTREAM = (
    "JetStream is required: the NATS server at {url} answered, but JetStream is not enabled "
    "for this account. Start nats-server with -js (or a 'jetstream {{}}' block in its "
    "configuration) and give the account JetStream access"
)


class NatsBackend(BaseBackend[NatsSettings]):
    """A connection to a NATS server (or cluster) with JetStream.

    Built on FastStream's `NatsBroker` for the connection (servers, authentication, TLS,
    reconnects); streams, consumers, pull requests, acks and publish confirmations go
    through the nats-py client underneath it (docs/backends/nats.md says why).
    """

    name = "nats"
    binding = "nats"
    capabilities = CAPABILITIES

    def __init__(self, url: str, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(NatsSettings.parse(url, options))
        self._args = (url, options)
        self.nc: Any = None
        self.js: Any = None
        self.topology: Topology = None  # type: ignore[assignment]  # set by connect
        self.publisher: Publisher = None  # type: ignore[assignment]  # set by connect
        self._round_robin = itertools.count()
        self._last_error: BaseException | None = None
        self._disconnected_at: float | None = None

    @classmethod
    def idempotency_store(
        cls, url: str, options: Mapping[str, Any] | None = None
    ) -> NatsIdempotencyStore:
        """A `NatsIdempotencyStore` on the server of `url`, on a connection of its own."""
        return NatsIdempotencyStore(cls(url, options))

    def shared_idempotency_store(self) -> NatsIdempotencyStore:
        """A `NatsIdempotencyStore` on this server (the bus's default store)."""
        return self.idempotency_store(*self._args)

    def client_errors(self) -> ErrorMap:
        import nats.errors
        import nats.js.errors

        return {
            nats.errors.MaxPayloadError: MessageTooLargeError,
            nats.js.errors.BadRequestError: ConfigurationError,
            nats.errors.Error: BackendUnavailableError,
        }

    # -- connection ----------------------------------------------------------------------

    async def _connect(self) -> None:
        from faststream.nats import NatsBroker

        s = self.settings
        broker = NatsBroker(
            list(s.addresses),
            name=s.name,
            connect_timeout=s.connect_timeout,  # type: ignore[arg-type]
            reconnect_time_wait=s.reconnect_wait,  # type: ignore[arg-type]
            max_reconnect_attempts=-1,
            allow_reconnect=True,
            security=s.security(),
            error_cb=self._on_error,
            disconnected_cb=self._on_disconnected,
            reconnected_cb=self._on_reconnected,
            logger=None,
            specification_url=[self.url],
        )
        try:
            nc = await asyncio.wait_for(broker.connect(), s.connect_timeout)
        except Exception as exc:
            advice = "check username/password, token or credentials"
            where, cause = f"NATS at {self.url}", self._last_error
            raise connect_failure(exc, where, s, cause=cause, login_advice=advice) from exc
        # Connected: from now on reconnect as configured (forever by default).
        nc.options["max_reconnect_attempts"] = s.max_reconnect_attempts
        if hasattr(nc, "_parse_header_lines"):
            setattr(nc, "_parse_header_lines", parse_header_lines)  # noqa: B010
        self.nc = nc
        self.js = nc.jetstream(timeout=s.request_timeout)
        try:
            await self.js.account_info()
        except Exception as exc:
            await self._abort()
            if "503" in str(exc) or type(exc).__name__ in (
                "ServiceUnavailableError",
                "NoRespondersError",
                "NoStreamResponseError",
            ):
                raise BackendUnavailableError(_NO_JETSTREAM.format(url=self.url)) from exc
            last = self._last_error
            if last is not None and (refused := describe_permission_failure(last)):
                raise BackendUnavailableError(
                    f"NATS at {self.url} refused the JetStream API ($JS.API.>): {refused}"
                ) from exc
            raise BackendUnavailableError(
                f"NATS at {self.url} did not answer a JetStream request "
                f"({describe_exception(exc)}); JetStream is required"
            ) from exc
        self.capabilities = dataclasses.replace(CAPABILITIES, max_message_bytes=nc.max_payload)
        replicas = s.replicas or cluster_replicas(getattr(nc, "_server_info", {}) or {})
        self.topology = Topology(self.js, s, replicas)
        self.publisher = Publisher(nc, s)
        await self.publisher.start()

    async def _on_error(self, exc: Exception) -> None:
        self._last_error = exc
        log.debug("eventwire: nats connection error: %s", describe_exception(exc))

    async def _on_disconnected(self) -> None:
        if self.state is ConnectionState.CONNECTED and self._disconnected_at is None:
            self._disconnected_at = time.monotonic()
            log.warning("eventwire: lost the connection to NATS at %s; reconnecting", self.url)

    async def _on_reconnected(self) -> None:
        if self._disconnected_at is not None:
            log.warning(
                "eventwire: reconnected to NATS at %s after %.1fs",
                self.url,
                time.monotonic() - self._disconnected_at,
            )
        self._disconnected_at = None
        for subscription in self.subscriptions:
            if isinstance(subscription, NatsSubscription):
                subscription.reset_requests()

    async def _close(self) -> None:
        if self.nc is not None and not self.nc.is_closed:
            with contextlib.suppress(Exception):
                await self.nc.flush(timeout=self.settings.request_timeout)
        await self._abort()

    async def _abort(self) -> None:
        nc, self.nc = self.nc, None
        if nc is not None:
            with contextlib.suppress(Exception):
                await nc.close()

    # -- publishing ----------------------------------------------------------------------

    async def publish(self, channel: str, messages: Sequence[WireMessage]) -> None:
        self.check_publish(channel, messages)
        if not messages:
            return
        limit = self.nc.max_payload
        with self.map_errors(f"publish to {channel!r}", into=PublishError):
            topology = await self.topology.channel(channel)
            assert topology is not None
            prepared = [self._prepare(topology, i, m, limit) for i, m in enumerate(messages)]
            await self.publisher.publish(channel, prepared, lambda: self._recreate(channel))

    def _prepare(
        self, topology: ChannelTopology, index: int, message: WireMessage, limit: int
    ) -> Prepared:
        header = header_block(message)
        body = message.body if type(message.body) is bytes else bytes(message.body)
        if len(header) + len(body) > limit:  # what the server counts: the encoded headers
            raise MessageTooLargeError(
                f"message {index} for channel {topology.channel!r} is {len(header) + len(body)} "
                f"bytes as NATS sends it (body and headers), over the server's max_payload of "
                f"{limit} bytes; nothing was sent. Send a reference to the data instead, or "
                "raise max_payload in the server configuration (at most 64 MB)"
            )
        key = message.key
        shard = shard_of(key, topology.shards) if key is not None else next(self._round_robin)
        return topology.subject(shard % topology.shards).encode(), header, body

    async def _recreate(self, channel: str) -> None:
        self.topology.forget(channel)
        await self.topology.channel(channel)

    async def delete_channel(self, channel: str) -> bool:
        """Delete the channel's stream: its messages and every group's consumers (the leases
        of its groups expire with the lease bucket's ``max_age``); ``False`` if none."""
        from nats.js.errors import NotFoundError

        self.check_channel(channel)
        self.topology.forget(channel)
        with self.map_errors(f"delete {channel!r}"):
            try:
                return bool(await self.js.delete_stream(stream_name(channel)))
            except NotFoundError:
                return False

    async def purge_channel(self, channel: str) -> int:
        """Purge the channel's stream (`eventwire.backend.ChannelPurger`): JetStream's
        ``STREAM.PURGE`` drops every message, keeps the stream and its consumers, and answers
        how many it removed; ``0`` if there is no stream."""
        self.check_channel(channel)
        with self.map_errors(f"purge {channel!r}"):
            return await purge_stream(self.nc, channel, self.settings.request_timeout)

    async def lag(self, channel: str, group: str) -> int | None:
        """Messages `group`'s durable consumers on `channel` have not had acked: JetStream's
        ``num_pending`` (not delivered yet) plus ``num_ack_pending`` (delivered, not acked),
        summed over the shards (`eventwire.backend.LagReporter`); ``None`` if there is no
        such consumer."""
        from nats.js.errors import NotFoundError

        self.check_channel(channel)
        with self.map_errors(f"lag of group {group!r} on {channel!r}"):
            topology = await self.topology.channel(channel, create=False)
            if topology is None:
                return None
            total: int | None = None
            for shard in range(topology.shards):
                try:
                    info = await self.js.consumer_info(topology.stream, durable_name(group, shard))
                except NotFoundError:
                    continue
                total = (total or 0) + (info.num_pending or 0) + (info.num_ack_pending or 0)
            return total

    async def delete_group(self, channel: str, group: str) -> None:
        """Delete `group`'s durable consumers on `channel` (one per shard)."""
        from nats.js.errors import NotFoundError

        self.check_channel(channel)
        with self.map_errors(f"delete group {group!r} of {channel!r}"):
            topology = await self.topology.channel(channel, create=False)
            if topology is None:
                return
            for shard in range(topology.shards):
                with contextlib.suppress(NotFoundError):
                    await self.js.delete_consumer(topology.stream, durable_name(group, shard))

    # -- consuming -----------------------------------------------------------------------

    async def subscribe(self, spec: SubscriptionSpec, handler: MessageHandler) -> NatsSubscription:
        self.check_subscribe(spec)
        with self.map_errors(f"subscribe to {spec.channel!r}"):
            topology, kv = await self.topology.prepare(spec)
            subscription = NatsSubscription(
                spec,
                handler,
                topology,
                kv,
                settings=self.settings,
                nc=self.nc,
                js=self.js,
                send=self.publisher.send,
                lease_ttl=self.topology.lease_ttl,
            )
            return await self.started(subscription)

    async def browse(self, channel: str, limit: int = 1000) -> list[WireMessage]:
        self.check_channel(channel)
        if limit <= 0:
            return []
        with self.map_errors(f"browse {channel!r}"):
            topology = await self.topology.channel(channel, create=False)
            if topology is None:
                return []
            return await read_stream(
                self.js, self.nc, topology.stream, limit, self.settings.request_timeout
            )
