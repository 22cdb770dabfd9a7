"""A backend written outside eventwire: ``outside://NAME``.

It stores messages in an in-process broker of its own name space, by composing eventwire's
public memory backend, and declares different capabilities, to show that a plugin found
through the ``eventwire`` entry-point group is used by URL like a built-in one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from eventwire import Backend, BackendInfo, Capabilities, hookimpl
from eventwire.backend import MessageHandler, Subscription, SubscriptionSpec, WireMessage

CAPABILITIES = Capabilities(unsupported={"G16": "outside test backend"}, cross_process=False)


class OutsideBackend:
    name = "outside"
    binding = "nats"
    capabilities = CAPABILITIES

    def __init__(self, url: str) -> None:
        from eventwire_memory import MemoryBackend

        host = url.split("://", 1)[1].rsplit("@", 1)[-1]
        self._url = "outside://" + host
        self._inner = MemoryBackend("memory://outside-" + host)

    @property
    def url(self) -> str:
        return self._url

    async def connect(self) -> None:
        await self._inner.connect()

    async def close(self) -> None:
        await self._inner.close()

    async def abort(self) -> None:
        await self._inner.abort()

    async def publish(self, channel: str, messages: Sequence[WireMessage]) -> None:
        await self._inner.publish(channel, messages)

    async def subscribe(self, spec: SubscriptionSpec, handler: MessageHandler) -> Subscription:
        return await self._inner.subscribe(spec, handler)

    async def browse(self, channel: str, limit: int = 1000) -> list[WireMessage]:
        return await self._inner.browse(channel, limit)


@hookimpl
def eventwire_backend_info() -> BackendInfo:
    return BackendInfo("outside", ("outside",), "third-party test backend", CAPABILITIES, "nats")


@hookimpl
def eventwire_make_backend(url: str, scheme: str, options: Mapping[str, Any]) -> Backend | None:
    return OutsideBackend(url) if scheme == "outside" else None
