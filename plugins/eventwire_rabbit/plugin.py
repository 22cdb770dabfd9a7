"""The ``rabbit`` entry point of the ``eventwire`` plugin group."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from eventwire import hookimpl

from eventwire_rabbit._info import BACKEND_INFO, SCHEMES

if TYPE_CHECKING:
    from eventwire.backend import Backend, BackendInfo

__all__ = ["eventwire_backend_info", "eventwire_make_backend"]


@hookimpl
def eventwire_backend_info() -> BackendInfo:
    return BACKEND_INFO


@hookimpl
def eventwire_make_backend(url: str, scheme: str, options: Mapping[str, Any]) -> Backend | None:
    if scheme not in SCHEMES:
        return None
    from eventwire_rabbit._backend import RabbitBackend  # the client library loads here

    return RabbitBackend(url, options)
