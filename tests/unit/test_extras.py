"""The table of extras matches pyproject.toml, and every module it names is real."""

from __future__ import annotations

import importlib.util
import tomllib
from pathlib import Path

import pytest
from eventwire import ConfigurationError, EventBus, UnknownBackendError
from eventwire._extras import EXTRAS, SCHEME_EXTRAS, extra_for, install_hint

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def test_every_extra_is_in_pyproject_and_in_all() -> None:
    declared = set(PROJECT["optional-dependencies"]) - {"all", "dev"}
    assert set(EXTRAS) == declared
    [everything] = PROJECT["optional-dependencies"]["all"]
    assert set(everything.split("[", 1)[1].rstrip("]").split(",")) == declared
    assert set(SCHEME_EXTRAS.values()) <= declared


@pytest.mark.parametrize("module", sorted({m for ms in EXTRAS.values() for m in ms}))
def test_every_module_named_is_importable_in_the_full_install(module: str) -> None:
    assert importlib.util.find_spec(module) is not None


def test_the_hint_prefers_the_backend_for_a_shared_client() -> None:
    error = ModuleNotFoundError("No module named 'faststream'", name="faststream")
    assert install_hint(error, "the nats:// backend", prefer="nats") == (
        "the nats:// backend needs 'faststream', which is not installed: "
        "pip install 'eventwire[nats]'"
    )
    assert extra_for("pytest.main") == "conformance"
    unknown = ModuleNotFoundError("No module named 'confluent_kafka'", name="confluent_kafka")
    assert install_hint(unknown, "x").endswith("install the 'confluent_kafka' package")


def test_an_unknown_scheme_does_not_suggest_an_extra_that_does_not_exist() -> None:
    with pytest.raises(UnknownBackendError) as info:
        EventBus("foo://x")
    assert "eventwire[" not in str(info.value)
    assert "plugin that registers the scheme" in str(info.value)
    assert isinstance(info.value, ConfigurationError)
