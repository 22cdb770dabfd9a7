"""The plugin manager: loads the ``eventwire`` entry points and creates backends and
idempotency stores by URL."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any, cast
from urllib.parse import urlsplit

import pluggy

from eventwire import hookspecs
from eventwire._extras import DEFAULT_PORTS, SCHEME_EXTRAS, STORE_EXTRAS, install_hint
from eventwire.backend import Backend, BackendInfo
from eventwire.errors import ConfigurationError, InvalidURLError, UnknownBackendError
from eventwire.idempotency import IdempotencyStore, MemoryIdempotencyStore
from eventwire.urls import redact_url, url_scheme

__all__ = [
    "available_backends",
    "check_plugins",
    "create_backend",
    "get_plugin_manager",
    "hookimpl",
    "missing_client",
    "open_idempotency_store",
]

PROJECT = "eventwire"
hookimpl = pluggy.HookimplMarker(PROJECT)


@functools.cache
def get_plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager, with every installed plugin loaded and checked."""
    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(hookspecs)
    try:
        pm.load_setuptools_entrypoints(PROJECT)
        check_plugins(pm)
    except ConfigurationError:
        raise
    except pluggy.PluginValidationError as exc:
        raise ConfigurationError(
            f"an eventwire plugin is invalid: {exc}; check the hook names against "
            "eventwire.hookspecs"
        ) from exc
    except Exception as exc:  # a broken third-party entry point
        raise ConfigurationError(
            f"an eventwire plugin failed to load ({type(exc).__name__}: {exc}); reinstall "
            "it or uninstall the package that registers it in the 'eventwire' entry-point group"
        ) from exc
    return pm


def check_plugins(pm: pluggy.PluginManager) -> None:
    """Refuse hook implementations that would never be called.

    pluggy rejects a ``@hookimpl`` whose name matches no hook spec (`check_pending`); this
    also rejects a function named ``eventwire_*`` *without* ``@hookimpl`` (pluggy would
    silently ignore it): a forgotten decorator, or a misspelt name.
    """
    pm.check_pending()
    specs = {name for name in dir(hookspecs) if name.startswith(PROJECT + "_")}
    for name, plugin in pm.list_name_plugin():
        for attr in dir(plugin):
            if not attr.startswith(PROJECT + "_"):
                continue
            value = getattr(plugin, attr, None)
            if not callable(value) or getattr(value, PROJECT + "_impl", None) is not None:
                continue
            hint = (
                "mark it with @eventwire.hookimpl"
                if attr in specs
                else "no hook has that name: check it against eventwire.hookspecs"
            )
            raise ConfigurationError(
                f"the eventwire plugin {name!r} defines {attr}() without @hookimpl, so it "
                f"would never be called; {hint}"
            )


def available_backends(pm: pluggy.PluginManager | None = None) -> list[BackendInfo]:
    """Every backend the installed plugins declare, sorted by name."""
    pm = pm or get_plugin_manager()
    infos: list[BackendInfo] = []
    for result in pm.hook.eventwire_backend_info():
        if isinstance(result, BackendInfo):
            infos.append(result)
        else:
            infos.extend(result)
    return sorted(infos, key=lambda info: info.name)


def create_backend(
    url: str, options: Mapping[str, Any] | None = None, pm: pluggy.PluginManager | None = None
) -> Backend:
    """The backend for `url`; `UnknownBackendError` lists the installed schemes."""
    pm = pm or get_plugin_manager()
    scheme = url_scheme(url)
    if scheme in DEFAULT_PORTS and not urlsplit(url).netloc.rsplit("@", 1)[-1].split(":")[0]:
        # Every built-in broker URL names its host: none defaults to this machine.
        raise InvalidURLError(
            f"{redact_url(url)!r} names no broker host; write {scheme}://host:"
            f"{DEFAULT_PORTS[scheme]} (e.g. {scheme}://127.0.0.1:{DEFAULT_PORTS[scheme]})"
        )
    try:
        backend = pm.hook.eventwire_make_backend(
            url=url, scheme=scheme, options=dict(options or {})
        )
    except ModuleNotFoundError as exc:
        raise missing_client(exc, scheme) from None
    if backend is None:
        schemes = sorted({s for info in available_backends(pm) for s in info.schemes})
        listed = ", ".join(f"{s}://" for s in schemes) or "none"
        extra = SCHEME_EXTRAS.get(scheme)
        how = (
            f"pip install 'eventwire[{extra}]'"
            if extra
            else "install a plugin that registers the scheme in the 'eventwire' entry-point group"
        )
        raise UnknownBackendError(
            f"no installed backend serves {redact_url(url)!r} (scheme {scheme!r}); installed "
            f"schemes: {listed}; {how}"
        )
    return cast(Backend, backend)


def missing_client(error: ModuleNotFoundError, scheme: str) -> ConfigurationError:
    """The error for a backend whose broker client is not installed, naming the extra."""
    return ConfigurationError(
        install_hint(error, f"the {scheme}:// backend", prefer=SCHEME_EXTRAS.get(scheme))
    )


#: Store URL schemes served without a plugin.
_IN_PROCESS_STORE = "memory"


def open_idempotency_store(url: str, pm: pluggy.PluginManager | None = None) -> IdempotencyStore:
    """The idempotency store `url` names (not connected yet).

    ``memory://`` is the in-process `MemoryIdempotencyStore`; the installed plugins serve
    the rest (``redis://``, ``nats://``, ``sqlite:///path``, ``postgresql://`` ...).
    """
    scheme = url_scheme(url)
    if scheme == _IN_PROCESS_STORE:
        return MemoryIdempotencyStore()
    pm = pm or get_plugin_manager()
    try:
        store = pm.hook.eventwire_make_idempotency_store(url=url, scheme=scheme)
    except ModuleNotFoundError as exc:
        raise ConfigurationError(
            install_hint(exc, f"the {scheme}:// idempotency store", prefer=STORE_EXTRAS.get(scheme))
        ) from None
    if store is None:
        extra = STORE_EXTRAS.get(scheme)
        how = (
            f"pip install 'eventwire[{extra}]'"
            if extra
            else "use memory://, redis://, nats://, sqlite:///path or postgresql://"
        )
        raise UnknownBackendError(
            f"no installed plugin serves the idempotency store {redact_url(url)!r} "
            f"(scheme {scheme!r}); {how}"
        )
    return cast(IdempotencyStore, store)
