"""What the NATS backend creates on the server (a stream per channel, a durable pull
consumer per group and shard, the lease bucket), and how it names it: the table in "What the
backend creates" in ``docs/backends/nats.md``. The shard count is written in the stream's
description, so every publisher and consumer agrees on it whatever its own ``shards`` says.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import re
import zlib
from typing import Any

from eventwire.backend import SubscriptionSpec
from eventwire.backendkit import Memo, retrying
from eventwire.errors import ConfigurationError

from eventwire_nats._settings import NatsSettings

__all__ = [
    "ChannelTopology",
    "Topology",
    "cluster_replicas",
    "durable_name",
    "group_token",
    "stream_name",
]

log = logging.getLogger("eventwire.nats")

_DESCRIPTION = re.compile(r"^eventwire channel (\S+) shards=(\d+)$")


def _token(name: str) -> str:
    """`name` as a NATS name token: ``orders``; ``shop_orders_1a2b3c4d`` for ``shop.orders``
    (the dots replaced, and a hash of the name so that ``shop.orders`` and ``shop_orders``
    stay apart)."""
    if "." in name:
        return f"{name.replace('.', '_')}_{zlib.crc32(name.encode()):08x}"
    return name


def stream_name(channel: str) -> str:
    """``EW_orders``; ``EW_shop_orders_1a2b3c4d`` for ``shop.orders``."""
    return f"EW_{_token(channel)}"


def durable_name(group: str, shard: int) -> str:
    """``billing_3``; ``shop_billing_1a2b3c4d_3`` for the group ``shop.billing``."""
    return f"{_token(group)}_{shard}"


def group_token(stream: str, group: str) -> str:
    """A key-value-safe token naming one group on one stream."""
    return hashlib.sha1(f"{stream}\0{group}".encode()).hexdigest()[:20]


def cluster_replicas(server_info: dict[str, Any]) -> int:
    """The default replicas of what the backend creates: three on a cluster of three or more
    servers, fewer on a smaller one. A clustered server lists every server's client address
    in ``connect_urls`` (unless it was told not to advertise them: then say ``replicas``)."""
    if not server_info.get("cluster"):
        return 1
    return max(1, min(3, len(server_info.get("connect_urls") or ())))


@dataclasses.dataclass(frozen=True, slots=True)
class ChannelTopology:
    """A channel's stream as publishers and consumers need it."""

    channel: str
    stream: str
    shards: int

    def subject(self, shard: int) -> str:
        return f"{self.channel}.{shard}"


class Topology:
    """Creates and remembers what the backend needs on the server (see the module docstring)."""

    def __init__(self, js: Any, settings: NatsSettings, replicas: int) -> None:
        self.js = js
        self.settings = settings
        #: Replicas of the streams and buckets created here (`cluster_replicas` by default).
        self.replicas = replicas
        #: The lease bucket's ``max_age``: how long a lease lives (see `lease_bucket`).
        self.lease_ttl = settings.lease_ttl
        self._channels: Memo[str, ChannelTopology | None] = Memo()
        self._buckets: Memo[str, Any] = Memo()

    def forget(self, channel: str) -> None:
        """Look the channel's stream up again next time (it was deleted)."""
        self._channels.forget(channel)

    async def channel(self, channel: str, *, create: bool = True) -> ChannelTopology | None:
        """The stream of `channel` (created if needed and `create`); one lookup at a time."""
        return await self._channels.get(
            channel, lambda: self._stream(channel, create), keep=lambda found: found is not None
        )

    async def _stream(self, channel: str, create: bool) -> ChannelTopology | None:
        from nats.js import api
        from nats.js.errors import BadRequestError, NotFoundError

        name, s = stream_name(channel), self.settings
        try:
            info = await self.js.stream_info(name)
        except NotFoundError:
            if not create:
                return None
            config = api.StreamConfig(
                name=name,
                description=f"eventwire channel {channel} shards={s.shards}",
                subjects=[f"{channel}.*"],
                retention=api.RetentionPolicy.LIMITS,
                storage=api.StorageType(s.storage),
                num_replicas=self.replicas,
                max_age=s.max_age or None,
                max_bytes=s.max_bytes,
                max_msgs=s.max_msgs,
                duplicate_window=s.duplicate_window,
                discard=api.DiscardPolicy.OLD,
                max_msg_size=-1,
            )
            try:
                info = await self.js.add_stream(config)
                log.info("eventwire: created NATS stream %s for channel %s", name, channel)
            except BadRequestError as exc:
                if "already in use" not in str(exc):
                    raise ConfigurationError(
                        f"NATS refused to create the stream {name} for channel {channel!r}: "
                        f"{exc.description}"
                    ) from exc
                info = await self.js.stream_info(name)
        subjects = list(info.config.subjects or [])
        if f"{channel}.*" not in subjects:
            raise ConfigurationError(
                f"the NATS stream {name} exists but does not capture {channel}.* (its "
                f"subjects: {subjects}); it was not created by eventwire. Delete or rename it"
            )
        described = _DESCRIPTION.match(info.config.description or "")
        return ChannelTopology(channel, name, int(described.group(2)) if described else s.shards)

    async def prepare(self, spec: SubscriptionSpec) -> tuple[ChannelTopology, Any]:
        """What a subscription needs: the channel's stream, the lease bucket and the group's
        consumers. Each step finds what exists, so the whole is tried again (`retrying`)
        when the JetStream API does not answer in time (a cluster electing a leader answers
        late), until ``publish_timeout``; then the last error is raised."""
        from nats.errors import TimeoutError as NatsTimeout
        from nats.js.errors import ServiceUnavailableError

        async def attempt() -> tuple[ChannelTopology, Any]:
            topology = await self.channel(spec.channel)
            assert topology is not None
            kv = await self.lease_bucket()
            await self.consumers(topology, spec)
            return topology, kv

        s = self.settings
        return await retrying(
            attempt,
            f"nats set-up of group {spec.group!r} on {spec.channel!r}",
            s.publish_timeout,
            (NatsTimeout, ServiceUnavailableError),
            s.scrub,
        )

    async def consumers(self, topology: ChannelTopology, spec: SubscriptionSpec) -> None:
        """Create the group's durable pull consumers, one per shard, unless they exist; a new
        group starts at the next message (or the first with ``from_beginning``)."""
        from nats.js import api
        from nats.js.errors import NotFoundError

        async def ensure(shard: int) -> None:
            durable = durable_name(spec.group, shard)
            try:
                await self.js.consumer_info(topology.stream, durable)
            except NotFoundError:
                policy = api.DeliverPolicy.ALL if spec.from_beginning else api.DeliverPolicy.NEW
                await self.js.add_consumer(
                    topology.stream,
                    api.ConsumerConfig(
                        durable_name=durable,
                        description=f"eventwire group {spec.group} shard {shard}",
                        filter_subject=topology.subject(shard),
                        deliver_policy=policy,
                        ack_policy=api.AckPolicy.EXPLICIT,
                        ack_wait=self.settings.ack_wait,
                        max_deliver=-1,
                        max_ack_pending=spec.max_in_flight,
                        max_waiting=64,
                        replay_policy=api.ReplayPolicy.INSTANT,
                    ),
                )

        await asyncio.gather(*(ensure(shard) for shard in range(topology.shards)))

    async def lease_bucket(self) -> Any:
        """The key-value bucket of memberships and leases (created by the first backend; its
        ``max_age`` is the lease lifetime every member uses, whatever its ``lease_ttl``)."""
        return await self._buckets.get(self.settings.lease_bucket, self._open_bucket)

    async def _open_bucket(self) -> Any:
        from nats.js import api
        from nats.js.errors import NotFoundError

        bucket, s = self.settings.lease_bucket, self.settings
        try:
            kv = await self.js.key_value(bucket)
        except NotFoundError:  # BucketNotFoundError is one
            try:
                kv = await self.js.create_key_value(
                    bucket=bucket,
                    description="eventwire group membership and shard leases",
                    ttl=s.lease_ttl,
                    history=1,
                    storage=api.StorageType.FILE,
                    replicas=self.replicas,
                )
            except Exception:  # created by another member meanwhile
                kv = await self.js.key_value(bucket)
        info = await self.js.stream_info(f"KV_{bucket}")
        age = info.config.max_age or 0
        if age and abs(age - s.lease_ttl) > 1e-3:
            log.info(
                "eventwire: the NATS lease bucket %s keeps leases for %gs; using that instead "
                "of lease_ttl=%g",
                bucket,
                age,
                s.lease_ttl,
            )
            self.lease_ttl = float(age)
        return kv
