"""`BackendPlugin`: a backend's whole ``eventwire`` entry point in one declaration."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping, MutableMapping
from typing import TYPE_CHECKING, Any, cast

from eventwire.plugins import hookimpl
from eventwire.urls import url_scheme

if TYPE_CHECKING:
    from eventwire.asyncapi import AsyncAPIProtocol
    from eventwire.backend import Backend, BackendInfo
    from eventwire.idempotency import IdempotencyStore

__all__ = ["BackendPlugin", "lazy_exports"]


def _load(target: str) -> Any:
    """``"package.module:name"`` or ``"package.module:Class.attribute"``, imported."""
    module, _, path = target.partition(":")
    found: Any = importlib.import_module(module)
    for name in path.split("."):
        found = getattr(found, name)
    return found


def lazy_exports(package: str, modules: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for `package` that imports each name of `modules` (name →
    module holding it) on first use, so importing the plugin package never loads the client
    library::

        __getattr__ = lazy_exports(__name__, {"ExampleBackend": "eventwire_example._backend"})
    """

    def __getattr__(name: str) -> Any:
        module = modules.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__


class BackendPlugin:
    """The hooks of a backend plugin, from its `BackendInfo` and two dotted names.

    :param info: what ``eventwire backends`` lists; its ``schemes`` are the URLs served.
    :param backend: ``"package.module:Class"``, called as ``Class(url, options)``; imported
        only when a URL of the backend is used (the client library loads then).
    :param asyncapi: ``"package.module:function"``, called with the backend, returning its
        `eventwire.asyncapi.AsyncAPIProtocol` (bindings); or the `AsyncAPIProtocol` itself
        when it does not depend on the backend; ``None``: the protocol is the URL's scheme
        (``redis``, ``rediss`` ...), no bindings.
    :param asyncapi_document: ``"package.module:function"``, called as ``function(document,
        bus)`` for a bus of this backend after its AsyncAPI document is built, to add what
        bindings cannot say (``x-`` extensions, security schemes); edits in place.
    :param idempotency_store: ``"package.module:Class"`` (or ``"package.module:Class.factory"``),
        called with the URL, when the
        broker can hold an idempotency store too: then ``idempotency_store="<scheme>://..."``
        on any bus opens one (the ``eventwire_make_idempotency_store`` hook).

    The instance is the plugin: name it as the entry point, in a module that does not
    import the client library (``_info.py`` next to `BackendInfo`)::

        plugin = BackendPlugin(BACKEND_INFO, "eventwire_example._backend:ExampleBackend")

        # pyproject.toml
        [project.entry-points.eventwire]
        example = "eventwire_example._info:plugin"
    """

    def __init__(
        self,
        info: BackendInfo,
        backend: str,
        asyncapi: str | AsyncAPIProtocol | None = None,
        *,
        asyncapi_document: str | None = None,
        idempotency_store: str | None = None,
    ) -> None:
        self.info = info
        self.backend = backend
        self.asyncapi = asyncapi
        self.asyncapi_document = asyncapi_document
        self.idempotency_store = idempotency_store

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

            return AsyncAPIProtocol(url_scheme(backend.url))
        if not isinstance(self.asyncapi, str):
            return self.asyncapi
        return cast("AsyncAPIProtocol", _load(self.asyncapi)(backend))

    @hookimpl
    def eventwire_make_idempotency_store(self, url: str, scheme: str) -> IdempotencyStore | None:
        if self.idempotency_store is None or scheme not in self.info.schemes:
            return None
        return cast("IdempotencyStore", _load(self.idempotency_store)(url))

    @hookimpl
    def eventwire_asyncapi_document(self, document: MutableMapping[str, Any], bus: Any) -> None:
        if self.asyncapi_document is not None and bus.backend.name == self.info.name:
            _load(self.asyncapi_document)(document, bus)
