"""The ``sqlite`` entry point of the ``eventwire`` plugin group: serves ``sqlite://`` URLs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from eventwire import hookimpl

from eventwire_sqlite._info import BACKEND_INFO, SCHEME

if TYPE_CHECKING:
    from eventwire.backend import Backend, BackendInfo

__all__ = ["eventwire_backend_info", "eventwire_make_backend"]


@hookimpl
def eventwire_backend_info() -> BackendInfo:
    return BACKEND_INFO


@hookimpl
def eventwire_make_backend(url: str, scheme: str, options: Mapping[str, Any]) -> Backend | None:
    if scheme != SCHEME:
        return None
    from eventwire_sqlite._backend import SqliteBackend

    return SqliteBackend(url, options)
