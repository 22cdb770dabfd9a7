"""How the kafka backend learns a topic's ``max.message.bytes``."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from eventwire_kafka._settings import KafkaSettings
from eventwire_kafka._topics import TopicManager

pytestmark = pytest.mark.anyio

_UNKNOWN_TOPIC = 3


class _Admin:
    """Answers DescribeConfigs as a broker does: `unknown_first` times with
    ``UNKNOWN_TOPIC_OR_PARTITION`` (a topic created a moment ago), then with its config."""

    def __init__(self, unknown_first: int, limit: str) -> None:
        self.unknown_first, self.limit, self.asked = unknown_first, limit, 0

    async def describe_configs(self, resources: list[Any]) -> list[Any]:
        self.asked += 1
        (resource,) = resources
        found: tuple[Any, ...]
        if self.asked <= self.unknown_first:
            found = (_UNKNOWN_TOPIC, "", 2, resource.name, [])
        else:
            found = (0, "", 2, resource.name, [("max.message.bytes", self.limit, False)])
        return [SimpleNamespace(resources=[found])]


async def _nothing(topic: str) -> None:
    return None


def _manager(admin: _Admin) -> TopicManager:
    return TopicManager(admin, _nothing, KafkaSettings.parse("kafka://127.0.0.1:9092"))


async def test_a_topic_the_broker_does_not_know_yet_has_no_limit_rather_than_the_default() -> None:
    admin = _Admin(unknown_first=1, limit="20000")
    assert await _manager(admin)._limit("fresh") is None
    assert await _manager(admin)._limit("fresh") == 20000


async def test_a_known_topic_reports_its_own_limit() -> None:
    assert await _manager(_Admin(unknown_first=0, limit="20000"))._limit("small") == 20000


async def test_creating_waits_until_the_broker_reports_the_topics_limit() -> None:
    """A broker that does not know the new topic yet is asked again, so publish checks an
    event against the topic's own limit and never against the backend's default."""
    admin = _Admin(unknown_first=2, limit="20000")
    manager = _manager(admin)

    async def created(new: Any, timeout_ms: int) -> Any:
        return SimpleNamespace(topic_errors=[("fresh", 36, "exists")])

    async def ready(topic: str) -> bool:
        return True

    admin.create_topics = created  # type: ignore[attr-defined]
    manager._leaders_ready = ready  # type: ignore[method-assign]
    manager._replication = 1
    async with asyncio.timeout(10):
        assert await manager.limit("fresh") == 20000
    assert admin.asked == 3
