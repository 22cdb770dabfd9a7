"""The sqlite backend: its URL and options, durability across processes, sharing a file
between processes, retention, dead letters and an unavailable file.

Every guarantee of the conformance suite is checked by tests/backends/test_conformance_matrix
(the whole suite on a sqlite file); these tests cover what the suite does not see.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from eventwire import Event, EventBus, NonRetryableError
from eventwire.backend import Backend, Inbound, SubscriptionSpec, WireMessage
from eventwire.errors import (
    BackendUnavailableError,
    ConfigurationError,
    InvalidURLError,
    PublishError,
)
from eventwire.plugins import create_backend
from eventwire_sqlite import SqliteBackend, SqliteSettings
from eventwire_sqlite._leases import SqliteLeaseStore
from eventwire_sqlite.outage import SCRATCH_TABLE, crashing_writer
from eventwire_sqlite.outage import main as outage_main

from tests.backendkit._lease_contract import check_lease_store

pytestmark = pytest.mark.anyio
ROOT = Path(__file__).resolve().parents[2]


def url(path: Path, **options: object) -> str:
    query = "&".join(f"{k}={v}" for k, v in options.items())
    return f"sqlite://{path}" + (f"?{query}" if query else "")


class Ping(Event, channel="pings", key="key"):
    key: str
    seq: int


async def eventually(check: object, within: float = 10.0) -> None:
    assert callable(check)
    for _ in range(int(within / 0.01)):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"condition not met within {within}s")


# -- URL and options ------------------------------------------------------------------------


def test_urls_name_a_file(tmp_path: Path) -> None:
    s = SqliteSettings.parse(f"sqlite://{tmp_path}/a.db?shards=4&lease_ttl=500ms")
    assert (s.path, s.shards, s.lease_ttl) == (f"{tmp_path}/a.db", 4, 0.5)
    assert s.url == f"sqlite://{tmp_path}/a.db"
    assert SqliteSettings.parse("sqlite://rel/a.db").path == "rel/a.db"
    backend = create_backend(f"sqlite://{tmp_path}/a.db", {"retention": "none"})
    assert isinstance(backend, SqliteBackend) and isinstance(backend, Backend)
    assert backend.settings.retention is None


@pytest.mark.parametrize(
    ("text", "error", "message"),
    [
        ("sqlite://", InvalidURLError, "names no database file; write sqlite:///absolute"),
        ("sqlite:///", InvalidURLError, "names no database file"),
        ("sqlite:///:memory:", InvalidURLError, "use memory://"),
        ("sqlite:///t.db?shard=2", ConfigurationError, "did you mean 'shards'"),
        ("sqlite:///t.db?synchronous=off", ConfigurationError, "give one of full, normal"),
        ("sqlite:///t.db?lease_ttl=1&poll_interval=2", ConfigurationError, "must be shorter"),
    ],
)
def test_bad_urls_say_what_to_write(text: str, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        SqliteBackend(text)


async def test_a_missing_folder_is_unavailable_and_named(tmp_path: Path) -> None:
    backend = SqliteBackend(url(tmp_path / "nowhere" / "a.db"))
    with pytest.raises(BackendUnavailableError, match="nowhere' of the database file") as caught:
        await backend.connect()
    assert isinstance(caught.value.__cause__, sqlite3.OperationalError)


# -- durability and sharing -----------------------------------------------------------------

PUBLISH = """
import asyncio, sys
from eventwire.backend import WireMessage
from eventwire_sqlite import SqliteBackend

async def main():
    backend = SqliteBackend(sys.argv[1])
    await backend.connect()
    await backend.publish("orders", [WireMessage(str(i).encode(), {"n": str(i)}, f"k{i % 3}")
                                     for i in range(int(sys.argv[2]))])
    await backend.abort()  # no clean close: the events are on disk already

asyncio.run(main())
"""

CONSUME = """
import asyncio, sys
from eventwire.backend import SubscriptionSpec
from eventwire_sqlite import SqliteBackend

async def main():
    url, group, out, ack = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "ack"
    backend = SqliteBackend(url)
    await backend.connect()
    never = asyncio.Event()

    async def handler(inbound):
        with open(out, "a") as file:
            file.write(f"{inbound.message.body.decode()} {inbound.delivery_count}\\n")
        if ack:
            await inbound.ack()

    await backend.subscribe(SubscriptionSpec("orders", group, from_beginning=True), handler)
    print("ready", flush=True)
    await never.wait()

asyncio.run(main())
"""


def python(code: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )


def lines(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


async def test_events_survive_the_publishing_process(tmp_path: Path) -> None:
    target = url(tmp_path / "a.db")
    assert python(PUBLISH, target, "30").wait(timeout=60) == 0
    backend = SqliteBackend(target)
    await backend.connect()
    got: list[Inbound] = []

    async def handler(inbound: Inbound) -> None:
        got.append(inbound)
        await inbound.ack()

    await backend.subscribe(SubscriptionSpec("orders", "g", from_beginning=True), handler)
    await eventually(lambda: len(got) == 30)
    assert sorted(int(d.message.body) for d in got) == list(range(30))
    by_key: dict[str | None, list[int]] = {}
    for d in got:
        by_key.setdefault(d.message.key, []).append(int(d.message.body))
    assert all(seqs == sorted(seqs) for seqs in by_key.values())  # key order
    assert got[0].message.headers["n"] == got[0].message.body.decode()
    await backend.close()


async def test_a_killed_consumer_process_leaves_its_events_to_the_next_one(
    tmp_path: Path,
) -> None:
    target = url(tmp_path / "a.db", lease_ttl=1)
    assert python(PUBLISH, target, "12").wait(timeout=60) == 0
    first_out, second_out = tmp_path / "first.txt", tmp_path / "second.txt"
    first = python(CONSUME, target, "g", str(first_out), "hold")
    try:
        assert first.stdout is not None and first.stdout.readline().strip() == "ready"
        await eventually(lambda: len(lines(first_out)) >= 2)
    finally:
        first.kill()  # SIGKILL: nothing is settled, no lease is given back
        first.wait()
    second = python(CONSUME, target, "g", str(second_out), "ack")
    try:
        await eventually(lambda: len(lines(second_out)) >= 24)  # 12 events, "body count"
    finally:
        second.kill()
        second.wait()
    seen = lines(second_out)
    bodies, counts = seen[::2], seen[1::2]
    assert sorted(map(int, bodies)) == list(range(12))
    held = set(lines(first_out)[::2])
    assert {b for b, c in zip(bodies, counts, strict=True) if c == "2"} == held


async def test_processes_share_a_file_as_members_and_as_groups(tmp_path: Path) -> None:
    target = url(tmp_path / "a.db", lease_ttl=1)
    outs = [tmp_path / f"{name}.txt" for name in ("g1", "g2", "h")]
    procs = [
        python(CONSUME, target, group, str(out), "ack")
        for group, out in zip(("g", "g", "h"), outs, strict=True)
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        publisher = SqliteBackend(target)
        await publisher.connect()
        messages = [WireMessage(b"%d" % i, {}, f"key-{i % 24}") for i in range(96)]
        await publisher.publish("orders", messages)
        await publisher.close()
        await eventually(
            lambda: len(lines(outs[0])) + len(lines(outs[1])) >= 192 and len(lines(outs[2])) >= 192
        )
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
    g1, g2, h = (sorted(map(int, lines(out)[::2])) for out in outs)
    assert sorted(g1 + g2) == list(range(96))  # the group g got every event once
    assert g1 and g2  # ... split between its two members
    assert h == list(range(96))  # the group h got every event too


async def test_the_lease_store_keeps_the_kits_promises(tmp_path: Path) -> None:
    backend = SqliteBackend(url(tmp_path / "leases.db"))
    await backend.connect()
    try:
        await check_lease_store(SqliteLeaseStore(backend._db, "orders", "billing"))
    finally:
        await backend.close()


# -- retention, dead letters, outages, clean-up ---------------------------------------------


async def test_retention_deletes_old_events(tmp_path: Path) -> None:
    backend = SqliteBackend(url(tmp_path / "a.db", retention=1))
    await backend.connect()
    await backend.publish("orders", [WireMessage(b"old", {})])
    await asyncio.sleep(1.2)  # older than the retention now
    await backend.publish("orders", [WireMessage(b"new", {})])
    assert [m.body for m in await backend.browse("orders")] == [b"new"]
    await backend.close()


async def test_dead_letters_are_kept_in_the_file(tmp_path: Path) -> None:
    target = url(tmp_path / "a.db")
    bus = EventBus(target, source="test")

    @bus.subscribe(Ping, group="g")
    async def refuse(event: Ping) -> None:
        raise NonRetryableError("no", reason="refused")

    async with bus:
        await bus.publish(Ping(key="a", seq=1))
        for _ in range(500):
            if await bus.dead_letters(Ping):
                break
            await asyncio.sleep(0.01)
    reader = EventBus(target, source="test")
    async with reader:
        (letter,) = await reader.dead_letters(Ping)
    assert letter.reason == "refused"


async def test_publishing_while_a_writer_crashes_fails_cleanly_then_works(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    backend = SqliteBackend(url(path, busy_timeout="200ms"))
    await backend.connect()
    await backend.publish("orders", [WireMessage(b"before", {})])
    log = path.with_name("a.db-wal")
    with crashing_writer(path):
        # the writer's uncommitted transaction is in the log, and it holds the write lock
        assert log.stat().st_size > 32 * 4096
        with pytest.raises(PublishError, match="database is locked") as caught:
            await backend.publish("orders", [WireMessage(b"refused", {})])
        assert isinstance(caught.value.__cause__, sqlite3.OperationalError)
    await backend.publish("orders", [WireMessage(b"after", {})])
    assert [m.body for m in await backend.browse("orders")] == [b"before", b"after"]
    await backend.close()
    with contextlib.closing(sqlite3.connect(path)) as connection:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
    assert SCRATCH_TABLE not in tables and "messages" in tables


def test_the_outage_command_crashes_a_writer_and_says_when_it_cannot(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as connection:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("CREATE TABLE t (x)")
        assert outage_main([str(path), "--seconds", "0.1"]) == 0
        tables = [row[0] for row in connection.execute("SELECT name FROM sqlite_master")]
        assert tables == ["t"]  # the writer's uncommitted table is gone
        connection.execute("BEGIN IMMEDIATE")  # the writer cannot take the lock now
        with pytest.raises(RuntimeError, match="could not take"), crashing_writer(path, wait=0.2):
            pass


async def test_close_hands_shards_over_at_once_and_delete_channel_forgets(
    tmp_path: Path,
) -> None:
    target = url(tmp_path / "a.db", lease_ttl=30)  # an expiry would take far too long
    one, two = SqliteBackend(target), SqliteBackend(target)
    await one.connect()
    await two.connect()
    got: list[bytes] = []

    async def handler(inbound: Inbound) -> None:
        got.append(inbound.message.body)
        await inbound.ack()

    first = await one.subscribe(SubscriptionSpec("orders", "g"), handler)
    assert len(first.coordinator.owned()) == 8
    await one.close()
    second = await two.subscribe(SubscriptionSpec("orders", "g"), handler)
    assert len(second.coordinator.owned()) == 8  # no wait for first's leases to expire
    await two.publish("orders", [WireMessage(b"x", {}, "k")])
    await eventually(lambda: got == [b"x"])
    assert await two.delete_channel("orders") is True
    assert await two.browse("orders") == []
    assert await two.delete_channel("orders") is False
    await two.close()


def test_the_outage_command_refuses_a_missing_file(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "eventwire_sqlite.outage", str(tmp_path / "none.db")],
        capture_output=True,
        text=True,
        env={**os.environ},
    )
    assert done.returncode == 2 and "is not a database file" in done.stderr


async def test_a_recovery_in_a_new_epoch_skips_what_the_member_still_has_in_flight(
    tmp_path: Path,
) -> None:
    """A member recovers its own shards again (its lease taken back after a stall, or its
    fetch loop restarted): the rows its handler still holds are not handed out twice."""
    backend = SqliteBackend(url(tmp_path / "a.db"))
    await backend.connect()
    held: list[Inbound] = []

    async def hold(inbound: Inbound) -> None:
        held.append(inbound)  # taken, not acked yet

    subscription = await backend.subscribe(SubscriptionSpec("orders", "g"), hold)
    await backend.publish("orders", [WireMessage(b"a", {}, "k"), WireMessage(b"b", {}, "k")])
    await eventually(lambda: len(held) == 2)
    coordinator = subscription.coordinator
    epochs = [shard.epoch for shard in coordinator.owned()]
    coordinator.recover_again()
    await eventually(
        lambda: all(
            s.recovered and s.epoch > e for s, e in zip(coordinator.owned(), epochs, strict=True)
        )
    )
    await backend.publish("orders", [WireMessage(b"c", {}, "k")])
    await eventually(lambda: len(held) == 3)
    await asyncio.sleep(0.2)
    assert [inbound.message.body for inbound in held] == [b"a", b"b", b"c"]
    assert [inbound.delivery_count for inbound in held] == [1, 1, 1]
    for inbound in held:
        await inbound.ack()
    await backend.close()
