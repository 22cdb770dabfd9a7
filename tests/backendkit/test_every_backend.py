"""What every installed backend's settings promise, checked once for all of them: an unknown
option is refused with the closest valid name and the list of every option the backend
knows. (Each backend's own module tests its specific options.)"""

from __future__ import annotations

from typing import Any

import pytest
from eventwire.backendkit import BaseBackend
from eventwire.errors import ConfigurationError
from eventwire.plugins import available_backends, create_backend, get_plugin_manager

#: A URL each backend accepts without connecting (construction only parses it).
URLS = {
    "eventbridge": "eventbridge://default?region=eu-west-1",
    "kafka": "kafka://127.0.0.1:9092",
    "memory": "memory://",
    "nats": "nats://127.0.0.1:4222",
    "rabbit": "amqp://127.0.0.1:5672/",
    "redis": "redis://127.0.0.1:6379/0",
    "sqlite": "sqlite:///tmp/eventwire-settings-test.db",
}


#: The installed plugins alone (the process-wide manager may hold test backends too).
INSTALLED = get_plugin_manager.__wrapped__()


def test_every_installed_backend_has_a_url_here() -> None:
    assert {info.name for info in available_backends(INSTALLED)} <= set(URLS)


@pytest.mark.parametrize("name", sorted(URLS))
def test_an_unknown_option_names_the_closest_and_lists_every_option(name: str) -> None:
    backend: Any = create_backend(URLS[name], pm=INSTALLED)
    assert isinstance(backend, BaseBackend)
    known = list(type(backend.settings).option_specs())
    target = max(known, key=len)  # misspelt: its last letter doubled
    typo = target + target[-1]
    joiner = "&" if "?" in URLS[name] else "?"
    for url, options in ((URLS[name], {typo: "1"}), (f"{URLS[name]}{joiner}{typo}=1", None)):
        with pytest.raises(ConfigurationError) as caught:
            create_backend(url, options, pm=INSTALLED)
        text = str(caught.value)
        assert f"'{typo}' (did you mean '{target}'?)" in text
        assert text.endswith(f"the {name} backend knows: {', '.join(known)}")
