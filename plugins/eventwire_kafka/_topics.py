"""Topics: names Kafka accepts, creation when missing, and each topic's size limit."""

from __future__ import annotations

import asyncio
import functools
import re
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

from aiokafka import TopicPartition
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError, for_code
from eventwire._naming import check_name
from eventwire.backendkit import Memo
from eventwire.deadletter import dead_letter_channel
from eventwire.errors import BackendUnavailableError, ConfigurationError

from eventwire_kafka._log import log
from eventwire_kafka._settings import KafkaSettings

__all__ = ["MAX_TOPIC_LENGTH", "TopicManager", "check_topic", "read_topic"]


#: Kafka rejects longer topic names.
MAX_TOPIC_LENGTH = 249
_LEGAL = re.compile(r"^[A-Za-z0-9._-]+$")
_TOPIC_ALREADY_EXISTS = 36
_UNKNOWN_TOPIC = 3
#: Kafka error code of DeleteGroups for a group that does not exist (already gone).
_GROUP_ID_NOT_FOUND = 69
#: Bytes a record batch adds around one record (batch header 61, record framing).
RECORD_OVERHEAD = 128

T = TypeVar("T")


def check_topic(channel: str) -> str:
    """`channel` if Kafka accepts it as a topic (and its ``.dlq``), else `ConfigurationError`."""
    check_name("channel", channel)
    if not _LEGAL.match(channel) or channel in (".", ".."):
        raise ConfigurationError(
            f"channel {channel!r} is not a legal Kafka topic name; use letters, digits, "
            "'.', '_' and '-'"
        )
    dlq = dead_letter_channel(channel) if not channel.endswith(".dlq") else channel
    if len(dlq) > MAX_TOPIC_LENGTH:
        raise ConfigurationError(
            f"channel {channel!r} is too long for Kafka: its dead-letter topic {dlq!r} would "
            f"have {len(dlq)} characters, over Kafka's limit of {MAX_TOPIC_LENGTH}"
        )
    if channel.startswith("__"):
        raise ConfigurationError(
            f"channel {channel!r} starts with '__', which Kafka reserves for internal topics"
        )
    return channel


class _NewTopic:
    """What `AIOKafkaAdminClient.create_topics` reads (``NewTopic`` refuses
    ``replication_factor=-1``, the broker's default, which CreateTopics v4+ accepts)."""

    def __init__(self, name: str, partitions: int, replication: int, configs: dict[str, str]):
        self.name = name
        self.num_partitions = partitions
        self.replication_factor = replication
        self.replica_assignments: dict[int, list[int]] = {}
        self.topic_configs = configs


class TopicManager:
    """Creates missing topics (``partitions``, ``max.message.bytes``) once per backend and
    remembers each topic's ``max.message.bytes``."""

    def __init__(
        self, admin: Any, partitions_for: Callable[[str], Awaitable[object]], s: KafkaSettings
    ) -> None:
        self._admin, self._partitions_for = admin, partitions_for
        self._partitions, self._replication = s.partitions, s.replication_factor
        self._min_insync = s.min_insync_replicas
        self._max_bytes, self._timeout = s.max_message_bytes, s.request_timeout_ms / 1000
        #: topic -> its max.message.bytes, for every topic known to exist.
        self._limits: Memo[str, int] = Memo()

    async def limit(self, topic: str) -> int:
        """`topic`'s ``max.message.bytes``, the topic created first if it does not exist
        (each topic is created once; concurrent callers wait for the same attempt)."""
        return await self._limits.get(topic, functools.partial(self._create, topic))

    async def ensure(self, topics: Iterable[str]) -> None:
        """Make sure every topic in `topics` exists and its limit is known (`limit`)."""
        for topic in topics:
            await self.limit(topic)

    async def _create(self, topic: str) -> int:
        check_topic(topic)
        try:
            replication, configs = await self._replication_configs()
            new = [_NewTopic(topic, self._partitions, replication, configs)]
            response = await asyncio.wait_for(
                self._admin.create_topics(new, timeout_ms=int(self._timeout * 1000)),
                self._timeout,
            )
            for item in response.topic_errors:
                code = item[1]
                if code and code != _TOPIC_ALREADY_EXISTS:
                    error = for_code(code)
                    message = item[2] if len(item) > 2 and item[2] else error.description
                    raise ConfigurationError(
                        f"Kafka refused to create topic {topic!r}: {error.__name__}: {message}"
                    )
            limit = await asyncio.wait_for(_until(lambda: self._limit(topic)), self._timeout)
            await asyncio.wait_for(_until(lambda: self._leaders_ready(topic)), self._timeout)
            await asyncio.wait_for(self._partitions_for(topic), self._timeout)
        except (KafkaError, TimeoutError, OSError) as exc:
            raise BackendUnavailableError(
                f"could not create or look up Kafka topic {topic}: {type(exc).__name__}: {exc}"
            ) from exc
        return limit

    async def _replication_configs(self) -> tuple[int, dict[str, str]]:
        """The replication factor and topic configs of a new topic: by default three
        replicas (fewer on a smaller cluster) and ``min.insync.replicas=2`` from three on, so
        a confirmed (``acks=all``) publish is on two brokers and survives losing one."""
        replication = self._replication
        if replication is None:
            cluster = await self._admin.describe_cluster()
            replication = max(1, min(3, len(cluster["brokers"])))
        configs = {"max.message.bytes": str(self._max_bytes)}
        min_insync = self._min_insync
        if min_insync is None and replication >= 3:
            min_insync = 2
        if min_insync is not None:
            configs["min.insync.replicas"] = str(min_insync)
        return replication, configs

    async def _leaders_ready(self, topic: str) -> bool:
        """Whether every partition of `topic` has a leader that answers for it. A fresh
        topic has no leader for a moment; then the metadata names one before that broker
        takes requests for the partition, and a first publish there would be refused
        (``NotLeaderForPartitionError``), logged by aiokafka and sent again 100 ms later."""
        from aiokafka.protocol.offset import OffsetRequest

        # leader -> [(partition, -1)] (timestamp -1: the latest offset)
        by_leader: dict[int, list[tuple[int, int]]] = {}
        for t in await self._metadata([topic]):
            parts = t["partitions"]
            if t["error_code"] or not parts:
                return False
            if any(p["leader"] < 0 or p["error_code"] for p in parts):
                return False
            for p in parts:
                by_leader.setdefault(p["leader"], []).append((p["partition"], -1))
        # Each leader must answer a ListOffsets request for its partitions (what a broker
        # refuses, like a publish, until it leads the partition).
        for leader, wanted in by_leader.items():
            request = OffsetRequest(-1, 0, [(topic, wanted)])
            response = await self._admin._send_request(request, leader)
            if any(part[1] for _topic, parts in response.topics for part in parts):
                return False
        return bool(by_leader)

    async def _limit(self, topic: str) -> int | None:
        """`topic`'s ``max.message.bytes``, or ``None`` while the broker asked does not know
        the topic yet: right after a create it may answer ``UNKNOWN_TOPIC_OR_PARTITION``
        (about one new topic in forty on a single local broker), and taking the default
        then would let an event over the topic's real limit reach the broker."""
        resource = ConfigResource(ConfigResourceType.TOPIC, topic, {"max.message.bytes": None})
        limit = self._max_bytes
        try:
            responses = await self._admin.describe_configs([resource])
        except KafkaError as exc:
            log.warning("eventwire: cannot read max.message.bytes of %s: %s", topic, exc)
            return limit
        for response in responses:
            for found in response.resources:
                if found[0] == _UNKNOWN_TOPIC:
                    return None
                for entry in found[4]:
                    if entry[0] == "max.message.bytes" and entry[1] is not None:
                        limit = int(entry[1])
        return limit

    async def delete(self, topic: str) -> bool:
        """Delete `topic` and wait until the broker has; ``False`` if there was none."""
        self._limits.forget(topic)
        response = await asyncio.wait_for(
            self._admin.delete_topics([topic], timeout_ms=int(self._timeout * 1000)),
            self._timeout,
        )
        for _name, code, *_ in response.topic_error_codes:
            if code == _UNKNOWN_TOPIC:
                return False
            if code:
                raise for_code(code)(f"Kafka refused to delete topic {topic!r}")
        await asyncio.wait_for(_until(lambda: self._unlisted(topic)), self._timeout)
        return True

    async def _unlisted(self, topic: str) -> bool:
        """Whether the metadata no longer lists `topic`: a deletion reaches the brokers'
        metadata a little after the controller confirms it, and a reader that still finds
        the topic there waits for offsets that no broker will give."""
        return all(t["error_code"] for t in await self._metadata([topic]))

    async def delete_group(self, group: str) -> None:
        """Delete the consumer group `group` (aiokafka's admin client has no call for this:
        the DeleteGroups request goes to the group's coordinator)."""
        from aiokafka.protocol.admin import DeleteGroupsRequest

        coordinator = await self._admin.find_coordinator(group)
        response = await self._admin._send_request(DeleteGroupsRequest([group]), coordinator)
        for _name, code in response.results:
            if code and code != _GROUP_ID_NOT_FOUND:
                raise for_code(code)(f"Kafka refused to delete the consumer group {group!r}")

    async def _metadata(self, topics: list[str]) -> list[Any]:
        """The metadata of `topics` (what the admin client's ``describe_topics`` answers),
        asked so that a broker with ``auto.create.topics.enable`` does not create them."""
        from aiokafka.protocol.metadata import MetadataRequest

        request = MetadataRequest(topics, allow_auto_topic_creation=False)
        response = await self._admin._send_request(request)
        found: list[Any] = response.to_object()["topics"]
        return found

    async def partitions(self, channel: str) -> list[TopicPartition]:
        """The partitions of topic `channel` in order (none if it does not exist)."""
        return sorted(
            TopicPartition(channel, p["partition"])
            for t in await self._metadata([channel])
            if t["topic"] == channel and not t["error_code"]
            for p in t["partitions"]
        )


async def _until(probe: Callable[[], Awaitable[T | None]]) -> T:
    """The first answer of `probe()` that is neither ``None`` nor ``False``, asking again
    after a pause growing from 10 ms to 200 ms."""
    delay = 0.01
    while (answer := await probe()) is None or answer is False:
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.2)
    return answer


async def read_topic(
    consumer: Any, tps: list[TopicPartition], limit: int, timeout: float
) -> list[Any]:
    """Every record of the partitions `tps` up to their end offsets now, `limit` per
    partition, read with the started group-less `consumer`."""
    records: list[Any] = []
    consumer.assign(tps)
    ends = await consumer.end_offsets(tps)
    starts = await consumer.beginning_offsets(tps)
    wanted = {tp for tp in tps if ends[tp] > starts[tp]}
    if wanted:
        await consumer.seek_to_beginning(*wanted)
    taken = dict.fromkeys(wanted, 0)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while wanted and loop.time() < deadline:
        batches = await consumer.getmany(*wanted, timeout_ms=200, max_records=limit)
        for tp, items in batches.items():
            kept = [record for record in items if record.offset < ends[tp]]
            records.extend(kept)
            taken[tp] += len(kept)
        # Done with a partition at `limit` records or once its position reached the end
        # (``getmany`` moves it past the records it returns).
        for tp in list(wanted):
            if taken[tp] >= limit or await consumer.position(tp) >= ends[tp]:
                wanted.discard(tp)
    return records
