"""`BackendPlugin`: a backend's whole ``eventwire`` entry point in one declaration."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast

from eventwire.plugins import hookimpl

if TYPE_CHECKING:
    from eventwire.asyncapi import AsyncAPIProtocol
    from eventwire.backend import Backend, BackendInfo

__all__ = ["BackendPlugin"]


def _load(target: str) -> Any:
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


class BackendPlugin:
    """The hooks of a backend plugin, from its `BackendInfo` and two dotted names.

    :param info: what ``eventwire backends`` lists; its ``schemes`` are the URLs served.
    :param backend: ``"package.module:Class"``, called as ``Class(url, options)``; imported
        only when a URL of the backend is used (the client library loads then).
    :param asyncapi: ``"package.module:function"``, called with the backend, returning its
        `eventwire.asyncapi.AsyncAPIProtocol`; ``None``: protocol ``info.name``, no bindings.

    In the plugin module (the entry point)::

        plugin = BackendPlugin(BACKEND_INFO, "eventwire_example._backend:ExampleBackend")
        eventwire_backend_info = plugin.eventwire_backend_info
        eventwire_make_backend = plugin.eventwire_make_backend
        eventwire_asyncapi_protocol = plugin.eventwire_asyncapi_protocol
    """

    def __init__(self, info: BackendInfo, backend: str, asyncapi: str | None = None) -> None:
        self.info = info
        self.backend = backend
        self.asyncapi = asyncapi

    @hookimpl
    def eventwire_backend_info(self) -> BackendInfo:
        return self.info

    @hookimpl
    def eventwire_make_backend(
        self, url: str, scheme: str, options: Mapping[str, Any]
    ) -> Backend | None:
        if scheme not in self.info.schemes:
            return None
        return cast("Backend", _load(self.backend)(url, options))

    @hookimpl
    def eventwire_asyncapi_protocol(self, backend: Backend) -> AsyncAPIProtocol | None:
        if backend.name != self.info.name:
            return None
        if self.asyncapi is None:
            from eventwire.asyncapi import AsyncAPIProtocol

            return AsyncAPIProtocol(self.info.name)
        return cast("AsyncAPIProtocol", _load(self.asyncapi)(backend))
