"""`lazy_exports`: a plugin's heavy classes load on first use, never at import."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest


def test_a_lazy_export_loads_its_module_on_first_use_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "lazy_plugin_example"
    package.mkdir()
    (package / "__init__.py").write_text(
        "from eventwire.backendkit import lazy_exports\n"
        "__getattr__ = lazy_exports(__name__, {'Heavy': 'lazy_plugin_example._heavy'})\n"
    )
    (package / "_heavy.py").write_text("class Heavy:\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "lazy_plugin_example._heavy", raising=False)
    plugin = importlib.import_module("lazy_plugin_example")
    assert "lazy_plugin_example._heavy" not in sys.modules
    heavy = plugin.Heavy
    assert heavy.__module__ == "lazy_plugin_example._heavy"
    assert vars(plugin)["Heavy"] is heavy  # kept: the next use is a plain attribute
    with pytest.raises(AttributeError, match="has no attribute 'Light'"):
        _ = plugin.Light
    monkeypatch.delitem(sys.modules, "lazy_plugin_example")
    monkeypatch.delitem(sys.modules, "lazy_plugin_example._heavy")
