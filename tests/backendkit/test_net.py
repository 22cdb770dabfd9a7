"""Server addresses, TLS contexts and the plugin's AsyncAPI protocol, as the kit reads them."""

from __future__ import annotations

import pytest
from eventwire.asyncapi import AsyncAPIProtocol
from eventwire.backend import BackendInfo, Capabilities
from eventwire.backendkit import BackendPlugin, address, join_host
from eventwire.errors import InvalidURLError
from eventwire_memory import MemoryBackend


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ("broker", ("broker", 9092)),
        ("broker:9093", ("broker", 9093)),
        (" [::1]:9094 ", ("::1", 9094)),
        ("[fe80::1]", ("fe80::1", 9092)),
    ],
)
def test_an_address_gets_the_default_port(item: str, expected: tuple[str, int]) -> None:
    assert address(item, 9092, "the URL") == expected


@pytest.mark.parametrize("item", ["", "host:port", "host:70000", "user@host", "host/path"])
def test_a_bad_address_says_what_to_write(item: str) -> None:
    with pytest.raises(InvalidURLError, match=r"invalid server address .*; write host:port"):
        address(item, 9092, "the servers option")


def test_join_host_brackets_ipv6() -> None:
    assert join_host("::1", 4222) == "[::1]:4222"
    assert join_host("nats", 4222) == "nats:4222"


def test_the_plugin_protocol_is_the_url_scheme_or_what_it_declares() -> None:
    info = BackendInfo(
        name="memory", schemes=("memory",), description="", capabilities=Capabilities()
    )
    backend = MemoryBackend("memory://")
    plain = BackendPlugin(info, "eventwire_memory._backend:MemoryBackend")
    assert plain.eventwire_asyncapi_protocol(backend) == AsyncAPIProtocol("memory")
    declared = AsyncAPIProtocol("memory", description="in the process")
    fixed = BackendPlugin(info, "eventwire_memory._backend:MemoryBackend", declared)
    assert fixed.eventwire_asyncapi_protocol(backend) is declared
    other = BackendInfo(
        name="other", schemes=("other",), description="", capabilities=Capabilities()
    )
    assert BackendPlugin(other, "x:y").eventwire_asyncapi_protocol(backend) is None
    assert BackendPlugin(other, "x:y").eventwire_make_backend("memory://", "memory", {}) is None
