"""`NatsBackend`: the `eventwire.backend.Backend` protocol over NATS JetStream."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import json
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

from eventwire._naming import check_name
from eventwire.backend import Capabilities, MessageHandler, SubscriptionSpec, WireMessage
from eventwire.errors import (
    BackendUnavailableError,
    BusClosedError,
    ConfigurationError,
    MessageTooLargeError,
    PublishError,
)

from eventwire_nats._consumer import NatsSubscription
from eventwire_nats._info import CAPABILITIES
from eventwire_nats._topology import (
    ChannelTopology,
    consumer_config,
    durable_name,
    shards_from_description,
    stream_config,
    stream_name,
)
from eventwire_nats._url import NatsSettings, parse_nats_url
from eventwire_nats._wire import decode_headers, header_block, parse_header_lines

__all__ = ["NatsBackend"]

log = logging.getLogger("eventwire.nats")

_NO_JETSTREAM = (
    "JetStream is required: the NATS server at {url} answered, but JetStream is not enabled "
    "for this account. Start nats-server with -js (or a 'jetstream {{}}' block in its "
    "configuration) and give the account JetStream access"
)


class _PublishFailure(Exception):
    def __init__(self, kind: str, text: str) -> None:
        super().__init__(text)
        self.kind = kind


class _Batch:
    """The PubAcks one publish call is waiting for."""

    __slots__ = ("done", "errors", "waiting")

    def __init__(self, indexes: list[int], done: asyncio.Future[None]) -> None:
        self.waiting = set(indexes)
        self.errors: dict[int, _PublishFailure] = {}
        self.done = done
        if not indexes:
            done.set_result(None)


def _pub_ack_error(msg: Any) -> _PublishFailure:
    data = msg.data
    headers = msg.headers or {}
    if not data and headers.get("Status") == "503":
        return _PublishFailure("no-stream", "no stream captures the subject")
    try:
        error = json.loads(data).get("error") or {}
    except (ValueError, AttributeError):
        error = {"description": data[:200].decode(errors="replace")}
    text = str(error.get("description") or error)
    kind = "too-large" if "size" in text and "exceed" in text else "error"
    return _PublishFailure(kind, text)


def decode_headers_block(block: bytes) -> dict[str, str]:
    """A header block back as a dict (for the public publish API)."""
    lines = block.decode().split("\r\n")[1:]
    return dict(line.split(": ", 1) for line in lines if line)


class NatsBackend:
    """A connection to a NATS server (or cluster) with JetStream.

    Built on FastStream's `NatsBroker` for the connection (servers, authentication, TLS,
    reconnects); streams, consumers, pull requests, acks and publish confirmations go
    through the nats-py client underneath it (see the package docstring for why).
    """

    name = "nats"
    binding = "nats"

    def __init__(self, url: str, options: Mapping[str, Any] | None = None) -> None:
        self.settings: NatsSettings = parse_nats_url(url, options)
        self.capabilities: Capabilities = CAPABILITIES
        self.lease_ttl = self.settings.lease_ttl
        self.lease_bucket = self.settings.lease_bucket
        self.lease_stream = f"KV_{self.lease_bucket}"
        self._broker: Any = None
        self.nc: Any = None
        self.js: Any = None
        self.kv: Any = None
        self._state = "new"
        self._topologies: dict[str, ChannelTopology] = {}
        self._pending_topologies: dict[str, asyncio.Future[ChannelTopology]] = {}
        self._round_robin = itertools.count()
        self._subscriptions: list[NatsSubscription] = []
        self._reply_prefix = ""
        self._reply_sub: Any = None
        self._batches: dict[str, _Batch] = {}
        self._raw = False
        self._tokens = itertools.count()
        self._last_error: BaseException | None = None
        self._lease_lock = asyncio.Lock()
        self._disconnected_at: float | None = None

    def __repr__(self) -> str:
        return f"<NatsBackend {self.url} {self._state}>"

    @property
    def url(self) -> str:
        """The server list, without credentials or options."""
        return self.settings.display_url

    # -- connection ----------------------------------------------------------------------

    def _security(self) -> Any:
        from faststream.nats.security import (
            NatsCredentials,
            NatsNKey,
            NatsSecurity,
            NatsToken,
            NatsUserPassword,
        )

        s = self.settings
        tls: dict[str, Any] = {
            "ssl_context": s.ssl(),
            "use_ssl": bool(s.tls) or None,
            "tls_hostname": s.tls_hostname,
            "tls_handshake_first": s.tls_handshake_first,
        }
        try:
            if s.token:
                return NatsToken(s.token, **tls)
            if s.user and s.password is not None:
                return NatsUserPassword(s.user, s.password, **tls)
            if s.credentials_file:
                return NatsCredentials(s.credentials_file, **tls)
            if s.nkey_seed_file:
                return NatsNKey.from_file(s.nkey_seed_file, **tls)
            if s.nkey_seed:
                return NatsNKey.from_seed(s.nkey_seed, **tls)
        except ImportError:
            raise ConfigurationError(
                "nats backend: NKEY and .creds authentication need the 'nkeys' package; "
                "install it with: pip install nkeys"
            ) from None
        except (OSError, ValueError) as exc:
            raise ConfigurationError(
                f"nats backend: cannot read the NKEY / credentials given: {type(exc).__name__}"
            ) from None
        if s.tls:
            return NatsSecurity(**tls)
        return None

    async def connect(self) -> None:
        if self._state == "closed":
            raise BusClosedError(f"the {self.url} backend is closed; create a new backend")
        if self._state == "connected":
            return
        from faststream.nats import NatsBroker

        s = self.settings
        broker = NatsBroker(
            list(s.servers),
            name=s.name,
            connect_timeout=s.connect_timeout,  # type: ignore[arg-type]
            reconnect_time_wait=s.reconnect_wait,  # type: ignore[arg-type]
            max_reconnect_attempts=-1,
            allow_reconnect=True,
            security=self._security(),
            error_cb=self._on_error,
            disconnected_cb=self._on_disconnected,
            reconnected_cb=self._on_reconnected,
            logger=None,
            specification_url=[self.url],
        )
        try:
            nc = await asyncio.wait_for(broker.connect(), s.connect_timeout)
        except TimeoutError:
            cause = self._last_error
            detail = f" (last error: {_describe(cause)})" if cause is not None else ""
            raise BackendUnavailableError(
                f"could not connect to NATS at {self.url} within {s.connect_timeout:g}s"
                f"{detail}. Is nats-server running and reachable? Raise connect_timeout if "
                "the network is slow"
            ) from None
        except Exception as exc:
            raise BackendUnavailableError(
                f"could not connect to NATS at {self.url}: {_describe(exc)}"
                + (". Check user/password, token or credentials" if _is_auth(exc) else "")
            ) from None
        # Connected: from now on reconnect as configured (forever by default).
        nc.options["max_reconnect_attempts"] = s.max_reconnect_attempts
        if hasattr(nc, "_parse_header_lines"):
            setattr(nc, "_parse_header_lines", parse_header_lines)  # noqa: B010
        self._raw = hasattr(nc, "_send_command") and hasattr(nc, "_flush_queue")
        self._broker = broker
        self.nc = nc
        self.js = nc.jetstream(timeout=s.request_timeout)
        try:
            await self.js.account_info()
        except Exception as exc:
            await self._shutdown_connection()
            if type(exc).__name__ in (
                "ServiceUnavailableError",
                "NoRespondersError",
                "NoStreamResponseError",
            ) or "503" in str(exc):
                raise BackendUnavailableError(_NO_JETSTREAM.format(url=self.url)) from None
            raise BackendUnavailableError(
                f"NATS at {self.url} did not answer a JetStream request ({_describe(exc)}); "
                "JetStream is required"
            ) from None
        self.capabilities = dataclasses.replace(CAPABILITIES, max_message_bytes=nc.max_payload)
        self._reply_prefix = nc.new_inbox() + "."
        self._reply_sub = await nc.subscribe(self._reply_prefix + ">", cb=self._on_pub_ack)
        self._state = "connected"

    async def _on_error(self, exc: Exception) -> None:
        self._last_error = exc
        log.debug("eventwire: nats connection error: %s", _describe(exc))

    async def _on_disconnected(self) -> None:
        if self._state == "connected" and self._disconnected_at is None:
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
        for subscription in self._subscriptions:
            subscription.reset_requests()

    def _connected(self) -> Any:
        if self._state == "closed":
            raise BusClosedError(f"the {self.url} backend is closed; create a new backend")
        if self.nc is None:
            raise BusClosedError(f"the {self.url} backend is not connected; call connect() first")
        return self.nc

    async def _shutdown_connection(self) -> None:
        nc, self.nc = self.nc, None
        if nc is not None:
            with contextlib.suppress(Exception):
                await nc.close()

    # -- topology ------------------------------------------------------------------------

    async def topology(self, channel: str, *, create: bool = True) -> ChannelTopology | None:
        """The stream of `channel` (created if needed and `create`)."""
        found = self._topologies.get(channel)
        if found is not None:
            return found
        pending = self._pending_topologies.get(channel)
        if pending is not None:
            return await asyncio.shield(pending)
        check_name("channel", channel)
        future: asyncio.Future[ChannelTopology] = asyncio.get_running_loop().create_future()
        self._pending_topologies[channel] = future
        try:
            topology = await self._ensure_stream(channel, create)
        except BaseException as exc:
            if not future.done():
                future.set_exception(exc)
                future.exception()  # retrieved: other waiters get it too
            raise
        finally:
            self._pending_topologies.pop(channel, None)
        if topology is not None:
            self._topologies[channel] = topology
        future.set_result(topology)  # type: ignore[arg-type]
        return topology

    async def _ensure_stream(self, channel: str, create: bool) -> ChannelTopology | None:
        from nats.js import api
        from nats.js.errors import BadRequestError, NotFoundError

        js = self.js
        name = stream_name(channel)
        try:
            info = await js.stream_info(name)
        except NotFoundError:
            if not create:
                return None
            config = stream_config(channel, self.settings)
            try:
                info = await js.add_stream(
                    api.StreamConfig(
                        name=config["name"],
                        description=config["description"],
                        subjects=config["subjects"],
                        retention=api.RetentionPolicy.LIMITS,
                        storage=api.StorageType(config["storage"]),
                        num_replicas=config["num_replicas"],
                        max_age=config["max_age"],
                        max_bytes=config["max_bytes"],
                        max_msgs=config["max_msgs"],
                        duplicate_window=config["duplicate_window"],
                        discard=api.DiscardPolicy.OLD,
                        max_msg_size=-1,
                    )
                )
                log.info("eventwire: created NATS stream %s for channel %s", name, channel)
            except BadRequestError as exc:
                if "already in use" not in str(exc):
                    raise ConfigurationError(
                        f"NATS refused to create the stream {name} for channel {channel!r}: "
                        f"{exc.description}"
                    ) from None
                info = await js.stream_info(name)
        subjects = list(info.config.subjects or [])
        if f"{channel}.*" not in subjects:
            raise ConfigurationError(
                f"the NATS stream {name} exists but does not capture {channel}.* (its "
                f"subjects: {subjects}); it was not created by eventwire. Delete or rename it"
            )
        shards = shards_from_description(info.config.description) or self.settings.shards
        return ChannelTopology(channel, name, shards)

    async def _lease_store(self) -> Any:
        async with self._lease_lock:
            if self.kv is not None:
                return self.kv
            from nats.js import api
            from nats.js.errors import BucketNotFoundError, NotFoundError

            js = self.js
            try:
                kv = await js.key_value(self.lease_bucket)
            except (BucketNotFoundError, NotFoundError):
                try:
                    kv = await js.create_key_value(
                        bucket=self.lease_bucket,
                        description="eventwire group membership and shard leases",
                        ttl=self.settings.lease_ttl,
                        history=1,
                        storage=api.StorageType.FILE,
                        replicas=self.settings.replicas,
                    )
                except Exception:
                    kv = await js.key_value(self.lease_bucket)
            info = await js.stream_info(self.lease_stream)
            age = info.config.max_age or 0
            if age and abs(age - self.lease_ttl) > 1e-3:
                log.info(
                    "eventwire: the NATS lease bucket %s keeps leases for %gs; using that "
                    "instead of lease_ttl=%g",
                    self.lease_bucket,
                    age,
                    self.lease_ttl,
                )
                self.lease_ttl = float(age)
            self.kv = kv
            return kv

    async def _ensure_consumers(self, topology: ChannelTopology, spec: SubscriptionSpec) -> None:
        from nats.js import api
        from nats.js.errors import NotFoundError

        js = self.js

        async def ensure(shard: int) -> None:
            config = consumer_config(
                topology,
                spec.group,
                shard,
                from_beginning=spec.from_beginning,
                max_ack_pending=spec.max_in_flight,
                ack_wait=self.settings.ack_wait,
            )
            try:
                await js.consumer_info(topology.stream, config["durable_name"])
                return
            except NotFoundError:
                pass
            await js.add_consumer(
                topology.stream,
                api.ConsumerConfig(
                    durable_name=config["durable_name"],
                    description=config["description"],
                    filter_subject=config["filter_subject"],
                    deliver_policy=api.DeliverPolicy(config["deliver_policy"]),
                    ack_policy=api.AckPolicy.EXPLICIT,
                    ack_wait=config["ack_wait"],
                    max_deliver=-1,
                    max_ack_pending=config["max_ack_pending"],
                    max_waiting=config["max_waiting"],
                    replay_policy=api.ReplayPolicy.INSTANT,
                ),
            )

        await asyncio.gather(*(ensure(shard) for shard in range(topology.shards)))

    # -- publishing ----------------------------------------------------------------------

    async def publish(self, channel: str, messages: Sequence[WireMessage]) -> None:
        nc = self._connected()
        if not messages:
            return
        topology = self._topologies.get(channel) or await self.topology(channel)
        assert topology is not None
        limit = nc.max_payload
        prepared: list[tuple[bytes, bytes, bytes]] = []
        shards = topology.shards
        subjects = [f"{channel}.{shard}".encode() for shard in range(shards)]
        shard_of = topology.shard_of
        for index, message in enumerate(messages):
            header = header_block(message)
            body = message.body if type(message.body) is bytes else bytes(message.body)
            size = len(header) + len(body)
            if size > limit:
                raise MessageTooLargeError(
                    f"message {index} for channel {channel!r} is {size} bytes (body and "
                    f"headers), over the NATS server's max_payload of {limit} bytes; nothing "
                    "was sent. Send a reference to the data instead, or raise max_payload in "
                    "the server configuration (at most 64 MB)"
                )
            key = message.key
            shard = shard_of(key) if key is not None else next(self._round_robin) % shards
            prepared.append((subjects[shard], header, body))
        await self._publish_confirmed(channel, prepared)

    async def _on_pub_ack(self, msg: Any) -> None:
        batch_id, _, index_text = msg.subject[len(self._reply_prefix) :].partition(".")
        batch = self._batches.get(batch_id)
        if batch is None:
            return
        index = int(index_text)
        waiting = batch.waiting
        if index not in waiting:
            return
        data = msg.data
        if not (data.startswith(b'{"stream"') and b'"error"' not in data):
            batch.errors[index] = _pub_ack_error(msg)
        waiting.discard(index)
        if not waiting and not batch.done.done():
            batch.done.set_result(None)

    async def _publish_confirmed(
        self, channel: str, prepared: list[tuple[bytes, bytes, bytes]]
    ) -> None:
        """Send every message, then wait for every PubAck; resend what was not confirmed.

        Resending is safe: the stream drops a message id it has seen within its duplicate
        window, so a message whose PubAck was lost is stored once.
        """
        nc = self.nc
        deadline = time.monotonic() + self.settings.publish_timeout
        todo = list(range(len(prepared)))
        last = "no answer"
        while True:
            batch_id = str(next(self._tokens))
            batch = _Batch(todo, asyncio.get_running_loop().create_future())
            self._batches[batch_id] = batch
            try:
                try:
                    await self._send(nc, prepared, todo, f"{self._reply_prefix}{batch_id}.")
                except Exception as exc:  # connection closed, or outbound buffer full
                    last = _describe(exc)
                    if self._state == "closed" or nc.is_closed:
                        raise PublishError(
                            f"could not publish to {channel!r}: the NATS connection is closed "
                            f"({last})"
                        ) from None
                wait = min(
                    max(0.05, deadline - time.monotonic()),
                    self.settings.request_timeout + len(todo) / 20000,
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(batch.done), wait)
            finally:
                self._batches.pop(batch_id, None)
            failed = sorted(batch.waiting | set(batch.errors))
            if not failed:
                return
            recreate = False
            for error in batch.errors.values():
                if error.kind == "too-large":
                    raise MessageTooLargeError(
                        f"NATS refused a message for channel {channel!r} as too large: "
                        f"{error}; the server's max_payload is {nc.max_payload} bytes"
                    )
                recreate = recreate or error.kind == "no-stream"
                last = str(error)
            if time.monotonic() >= deadline:
                raise PublishError(
                    f"NATS did not confirm {len(failed)} of {len(prepared)} message(s) for "
                    f"channel {channel!r} within {self.settings.publish_timeout:g}s ({last}); "
                    "they may or may not be stored. Publishing them again is safe: the stream "
                    "drops repeated event ids within its duplicate window"
                )
            if recreate:
                self._topologies.pop(channel, None)
                with contextlib.suppress(Exception):
                    await self.topology(channel)
            todo = failed
            await asyncio.sleep(0.1)

    async def _send(
        self,
        nc: Any,
        prepared: list[tuple[bytes, bytes, bytes]],
        todo: list[int],
        reply_prefix: str,
    ) -> None:
        """Write the HPUB commands of `todo` in a few large writes.

        nats-py builds each command from a header dict, which costs more than the rest of a
        publish; the header blocks are built once here and the commands handed to the
        client's outbound buffer (its own flusher writes them), in chunks of about 1 MB.
        """
        if nc.is_closed:
            raise ConnectionError("the connection is closed")
        send = getattr(nc, "_send_command", None)
        if not self._raw or send is None or nc.is_draining_pubs:  # fall back to the public API
            for index in todo:
                subject, header, body = prepared[index]
                await nc.publish(
                    subject.decode(),
                    body,
                    reply=f"{reply_prefix}{index}",
                    headers=decode_headers_block(header),
                )
            return
        chunk: list[bytes] = []
        size = 0
        prefix = reply_prefix.encode()
        for index in todo:
            subject, header, body = prepared[index]
            header_size = len(header)
            command = b"HPUB %b %b%d %d %d\r\n%b%b\r\n" % (
                subject,
                prefix,
                index,
                header_size,
                header_size + len(body),
                header,
                body,
            )
            chunk.append(command)
            size += len(command)
            if size >= 1 << 20:
                await self._write(nc, send, chunk, size)
                chunk, size = [], 0
        if chunk:
            await self._write(nc, send, chunk, size)

    @staticmethod
    async def _write(nc: Any, send: Any, chunk: list[bytes], size: int) -> None:
        if not nc.is_connected and size + nc.pending_data_size > nc._max_pending_size:
            raise ConnectionError("disconnected and the outbound buffer is full")
        await send(b"".join(chunk))
        await nc._flush_pending()

    async def send(self, subject: str, payload: bytes) -> None:
        """Publish a small core NATS message (an ack, a pull request) with no reply.

        Written straight into the client's outbound buffer (what ``nc.publish`` does after
        validating and building the command), which halves the cost of an ack.
        """
        nc = self.nc
        if nc is None:
            raise ConnectionError("not connected")
        if not self._raw:
            await nc.publish(subject, payload)
            return
        if nc.is_closed:
            raise ConnectionError("the NATS connection is closed")
        command = b"PUB %b %d\r\n%b\r\n" % (subject.encode(), len(payload), payload)
        if not nc.is_connected and len(command) + nc._pending_data_size > nc._max_pending_size:
            raise ConnectionError("disconnected and the outbound buffer is full")
        await nc._send_command(command)
        if nc._flush_queue.empty():
            await nc._flush_pending()

    async def request_pull(self, subject: str, payload: bytes, reply: str) -> None:
        """Send a pull request (a publish with a reply subject)."""
        await self.nc.publish(subject, payload, reply=reply)

    # -- consuming -----------------------------------------------------------------------

    async def subscribe(self, spec: SubscriptionSpec, handler: MessageHandler) -> NatsSubscription:
        self._connected()
        check_name("group", spec.group)
        if spec.max_in_flight < 1:
            raise ConfigurationError(
                f"max_in_flight={spec.max_in_flight} for {spec.channel}/{spec.group} must be >= 1"
            )
        topology = await self.topology(spec.channel)
        assert topology is not None
        await self._lease_store()
        await self._ensure_consumers(topology, spec)
        subscription = NatsSubscription(self, spec, topology, handler)
        self._subscriptions.append(subscription)
        await subscription.start()
        return subscription

    async def browse(self, channel: str, limit: int = 1000) -> list[WireMessage]:
        self._connected()
        check_name("channel", channel)
        if limit <= 0:
            return []
        topology = await self.topology(channel, create=False)
        if topology is None:
            return []
        from nats.js import api

        js = self.js
        info = await js.add_consumer(
            topology.stream,
            api.ConsumerConfig(
                deliver_policy=api.DeliverPolicy.ALL,
                ack_policy=api.AckPolicy.NONE,
                inactive_threshold=30.0,
                mem_storage=True,
                num_replicas=1,
            ),
        )
        inbox = self.nc.new_inbox()
        sub = await self.nc.subscribe(inbox)
        out: list[WireMessage] = []
        try:
            subject = f"$JS.API.CONSUMER.MSG.NEXT.{topology.stream}.{info.name}"
            while len(out) < limit:
                want = min(limit - len(out), 1000)
                request = {"batch": want, "no_wait": True}
                await self.nc.publish(subject, json.dumps(request).encode(), reply=inbox)
                got = 0
                ended = False
                while got < want:
                    try:
                        msg = await sub.next_msg(timeout=self.settings.request_timeout)
                    except TimeoutError:
                        ended = True
                        break
                    if not msg.reply and (msg.headers or {}).get("Status"):
                        ended = True
                        break
                    headers, key = decode_headers(msg.headers)
                    out.append(WireMessage(msg.data, headers, key))
                    got += 1
                if ended:
                    break
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
            with contextlib.suppress(Exception):
                await js.delete_consumer(topology.stream, info.name)
        return out

    async def delete_group(self, channel: str, group: str) -> None:
        """Delete `group`'s durable consumers on `channel` (one per shard)."""
        from nats.js.errors import NotFoundError

        self._connected()
        topology = await self.topology(channel, create=False)
        if topology is None:
            return
        for shard in range(topology.shards):
            with contextlib.suppress(NotFoundError):
                await self.js.delete_consumer(topology.stream, durable_name(group, shard))

    # -- shutdown ------------------------------------------------------------------------

    async def close(self) -> None:
        """Stop every subscription (nak what is unsettled, release leases), then disconnect."""
        if self._state == "closed":
            return
        subscriptions, self._subscriptions = self._subscriptions, []
        await asyncio.gather(*(s.close() for s in subscriptions), return_exceptions=True)
        self._state = "closed"
        nc = self.nc
        if nc is not None and not nc.is_closed:
            with contextlib.suppress(Exception):
                await nc.flush(timeout=self.settings.request_timeout)
        await self._shutdown_connection()

    async def abort(self) -> None:
        """Crash: stop at once; leases run out and unacked messages come back after ack_wait."""
        if self._state == "closed":
            return
        self._state = "closed"
        tasks: list[asyncio.Task[None]] = []
        for subscription in self._subscriptions:
            tasks += subscription.abort()
        self._subscriptions = []
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._shutdown_connection()


def _describe(exc: BaseException | None) -> str:
    """An exception as text for an error message (the client library never sees secrets)."""
    if exc is None:
        return "unknown error"
    text = str(exc).strip() or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if type(exc).__name__ not in text else text


def _is_auth(exc: BaseException) -> bool:
    text = str(exc).lower()
    name = type(exc).__name__.lower()
    return "authorization" in text or "authentication" in text or "auth" in name
