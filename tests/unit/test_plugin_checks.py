"""A hook implementation that would never be called is refused when plugins load."""

from __future__ import annotations

import types

import pluggy
import pytest
from eventwire import hookimpl, hookspecs
from eventwire.errors import ConfigurationError
from eventwire.plugins import check_plugins, get_plugin_manager


def manager(**functions: object) -> pluggy.PluginManager:
    pm = pluggy.PluginManager("eventwire")
    pm.add_hookspecs(hookspecs)
    pm.register(types.SimpleNamespace(**functions), name="example")
    return pm


def test_a_hook_without_hookimpl_is_refused_with_what_to_do() -> None:
    def eventwire_backend_info() -> None: ...

    with pytest.raises(ConfigurationError, match=r"eventwire_backend_info\(\) without @hookimpl"):
        check_plugins(manager(eventwire_backend_info=eventwire_backend_info))
    with pytest.raises(ConfigurationError, match=r"mark it with @eventwire\.hookimpl"):
        check_plugins(manager(eventwire_backend_info=eventwire_backend_info))


def test_a_misspelt_hook_without_hookimpl_is_refused() -> None:
    def eventwire_make_backed() -> None: ...

    with pytest.raises(ConfigurationError, match="no hook has that name"):
        check_plugins(manager(eventwire_make_backed=eventwire_make_backed))


def test_a_misspelt_hook_with_hookimpl_is_refused_by_pluggy() -> None:
    @hookimpl
    def eventwire_make_backed() -> None: ...

    with pytest.raises(pluggy.PluginValidationError, match="unknown hook"):
        check_plugins(manager(eventwire_make_backed=eventwire_make_backed))


def test_correct_plugins_and_other_names_pass() -> None:
    @hookimpl
    def eventwire_backend_info() -> None: ...

    def helper() -> None: ...

    check_plugins(manager(eventwire_backend_info=eventwire_backend_info, helper=helper))
    check_plugins(get_plugin_manager())  # every installed plugin
