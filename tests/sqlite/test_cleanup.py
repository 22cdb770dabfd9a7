"""A test run deletes the channels it created, through `eventwire.backend.ChannelDeleter`."""

from __future__ import annotations

from pathlib import Path

import pytest
from eventwire import EventBus
from eventwire.backend import ChannelDeleter, WireMessage
from eventwire_conformance._support import Harness, Target
from eventwire_memory import MemoryBackend, get_broker
from eventwire_sqlite import SqliteBackend

pytestmark = pytest.mark.anyio


def test_memory_and_sqlite_can_delete_channels(tmp_path: Path) -> None:
    assert isinstance(MemoryBackend("memory://"), ChannelDeleter)
    assert isinstance(SqliteBackend(f"sqlite://{tmp_path}/a.db"), ChannelDeleter)


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
async def test_the_conformance_harness_deletes_what_a_test_created(
    kind: str, tmp_path: Path
) -> None:
    url = "memory://cleanup" if kind == "memory" else f"sqlite://{tmp_path}/a.db"
    target = Target(kind, url, EventBus(url, source="probe").backend.capabilities)
    harness = Harness(target, patience=5.0)
    channel = harness.name("ch")
    derived = harness.channel(f"{channel}.eu")  # a name the test made up from its own
    backend = MemoryBackend(url) if kind == "memory" else SqliteBackend(url)
    await backend.connect()
    await backend.publish(channel, [WireMessage(b"x", {})])
    await backend.publish(channel + ".dlq", [WireMessage(b"y", {})])
    await backend.publish(derived, [WireMessage(b"z", {})])
    await harness.aclose()
    assert await backend.browse(channel) == []
    assert await backend.browse(channel + ".dlq") == []
    assert await backend.browse(derived) == []
    if kind == "memory":
        assert channel not in get_broker("cleanup").channel_names()
    await backend.close()
