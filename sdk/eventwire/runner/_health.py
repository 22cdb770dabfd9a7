"""Liveness and readiness over HTTP, on the stdlib's asyncio server.

``GET /livez``: 200 while the process serves requests. ``GET /readyz``: 200 when the service
is ready (connected, every subscription running, not draining), 503 otherwise. Both answer
a small JSON document; anything else is 404.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["HealthServer"]

_REASONS = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}


class HealthServer:
    """Serves `status()` (``{"ready": bool, ...}``) on ``host:port`` (0: any free port)."""

    def __init__(
        self, status: Callable[[], Mapping[str, Any]], host: str = "0.0.0.0", port: int = 0
    ) -> None:
        self._status = status
        self._host = host
        self._port = port
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        """The port it listens on (known once started)."""
        if self._server is None:
            return self._port
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self._host, self._port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readline(), timeout=5)
            while (await asyncio.wait_for(reader.readline(), timeout=5)) not in (b"\r\n", b""):
                pass  # headers: not needed
            parts = request.decode("latin-1").split()
            method, path = (parts[0], parts[1].split("?", 1)[0]) if len(parts) >= 2 else ("", "")
            status, body = self._answer(method, path)
            data = json.dumps(body).encode()
            writer.write(
                f"HTTP/1.1 {status} {_REASONS[status]}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n".encode()
                + (data if method != "HEAD" else b"")
            )
            await writer.drain()
        except (TimeoutError, ConnectionError, UnicodeDecodeError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    def _answer(self, method: str, path: str) -> tuple[int, Mapping[str, Any]]:
        if path not in ("/livez", "/readyz"):
            return 404, {"error": f"no such endpoint {path!r}; use /livez or /readyz"}
        if method not in ("GET", "HEAD"):
            return 405, {"error": "use GET"}
        if path == "/livez":
            return 200, {"alive": True}
        status = dict(self._status())
        return (200 if status.get("ready") else 503), status
