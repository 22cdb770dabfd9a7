"""The redis backend's `Publisher` against a server that stops answering (no broker needed):
the replies of a pipelined publish are awaited for `socket_timeout`, then retried until
`reconnect_timeout`, and the publish fails; it never waits forever."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from eventwire.backend import WireMessage
from eventwire_redis._publish import Publisher
from eventwire_redis._settings import RedisSettings
from eventwire_redis._topology import ChannelKeys
from redis.asyncio import Redis
from redis.exceptions import TimeoutError as RedisTimeoutError

pytestmark = pytest.mark.anyio


class SilentOnXadd:
    """A RESP server on loopback: ``+OK`` to every command until the first ``XADD``, then
    reads on and answers nothing."""

    def __init__(self) -> None:
        self.xadds = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        silent = False
        while data := await reader.read(65536):
            self.xadds += data.count(b"XADD")
            silent = silent or b"XADD" in data
            if not silent:
                writer.write(b"+OK\r\n" * data.count(b"*"))
                await writer.drain()
        writer.close()


@pytest.fixture
async def silent_server() -> AsyncIterator[tuple[SilentOnXadd, int]]:
    server_state = SilentOnXadd()
    server = await asyncio.start_server(server_state.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield server_state, port
        server.close()


async def test_a_publish_whose_replies_never_come_fails_after_the_reconnect_timeout(
    silent_server: tuple[SilentOnXadd, int],
) -> None:
    state, port = silent_server
    settings = RedisSettings.parse(
        f"redis://127.0.0.1:{port}/0?socket_timeout=0.5&block=0.2&reconnect_timeout=1.5"
    )
    client = Redis(host="127.0.0.1", port=port, socket_timeout=settings.socket_timeout)
    publisher = Publisher(client, settings)
    keys = ChannelKeys("", "orders", 1)
    messages = [WireMessage(b'{"n":%d}' % n, {"ce_id": str(n)}, f"k{n}") for n in range(3)]
    started = time.monotonic()
    publish = asyncio.ensure_future(publisher.publish(keys, messages))
    try:
        done, _ = await asyncio.wait({publish}, timeout=20)
        assert publish in done, "the publish was still waiting for its replies after 20 s"
        with pytest.raises((TimeoutError, RedisTimeoutError)):
            publish.result()
    finally:
        publish.cancel()
        await publisher.close(0.1)
        await client.aclose()
    # retried after each missed deadline, and given up once reconnect_timeout had passed
    assert state.xadds >= 2 * len(messages)
    assert 1.5 <= time.monotonic() - started < 15
