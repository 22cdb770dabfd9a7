"""Fixtures of the gateway tests: a domain on channels of its own, the app, an HTTP client."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from eventwire.gateway import GatewaySettings, create_app
from starlette.applications import Starlette

from tests.gateway._domain import TOKEN, Domain, make_domain


@pytest.fixture
def domain(tmp_path: Path) -> Domain:
    return make_domain(tmp_path)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def build_app(url: str, domain: Domain, **settings: Any) -> Starlette:
    """The gateway app for `domain` on `url` (token `TOKEN` unless read-only)."""
    options: dict[str, Any] = {"token": None if settings.get("read_only") else TOKEN}
    options.update(settings)
    return create_app(url, [domain.contract], GatewaySettings(**options))


@contextlib.asynccontextmanager
async def serve(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    """The app started (its lifespan) and an HTTP client talking to it in-process."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            yield client


async def until(check: Callable[[], Any], timeout: float = 10.0) -> None:
    """Wait until `check()` (or the awaitable it returns) is true; fail after `timeout`."""
    async with asyncio.timeout(timeout):
        for _ in itertools.count():
            result = check()
            if inspect.isawaitable(result):
                result = await result
            if result:
                return
            await asyncio.sleep(0.02)


@pytest.fixture
def memory_url() -> Callable[[], str]:
    import uuid

    return lambda: f"memory://gw-{uuid.uuid4().hex[:8]}"


@contextlib.contextmanager
def http_server(app: Starlette) -> Iterator[str]:
    """`app` served by uvicorn on a free loopback port (in a thread); yields its base URL."""
    import socket
    import threading
    import time

    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the gateway did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()
