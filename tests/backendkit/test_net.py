"""Server addresses, TLS contexts and the plugin's AsyncAPI protocol, as the kit reads them."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from eventwire.asyncapi import AsyncAPIProtocol
from eventwire.backend import BackendInfo, Capabilities
from eventwire.backendkit import (
    BackendPlugin,
    CredentialOptions,
    HostPort,
    Location,
    TlsOptions,
    address,
    join_host,
    join_hosts,
    server_url,
    with_port,
)
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


@dataclasses.dataclass(frozen=True, kw_only=True)
class ClusterSettings(CredentialOptions, TlsOptions):
    """A backend of several nodes whose default port follows TLS (7000, 7001 with TLS)."""

    backend = "cluster"
    schemes = ("cluster",)

    nodes: tuple[HostPort, ...] = ()

    @classmethod
    def from_location(cls, location: Location) -> dict[str, Any]:
        example = "cluster://node1:7000,node2:7000"
        return {"nodes": location.nodes(0, example=example), **location.credentials()}

    def __post_init__(self) -> None:
        super().__post_init__()
        nodes = with_port(self.nodes, 7001 if self.tls else 7000)
        object.__setattr__(self, "nodes", nodes)
        object.__setattr__(self, "url", server_url("cluster", nodes, "/"))


def test_nodes_of_a_url_get_the_port_that_follows_tls() -> None:
    plain = ClusterSettings.parse("cluster://me:pw@a,b:7005,[::1]/")
    assert plain.nodes == (("a", 7000), ("b", 7005), ("::1", 7000))
    assert plain.url == "cluster://a:7000,b:7005,[::1]:7000/"
    assert join_hosts(plain.nodes) == "a:7000,b:7005,[::1]:7000"
    assert (plain.username, plain.password) == ("me", "pw")
    secure = ClusterSettings.parse("cluster://a,b:7005?tls=true&tls_verify=false")
    assert secure.nodes == (("a", 7001), ("b", 7005))
    assert secure.username is None and secure.password is None  # the URL gave none


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("cluster://", "'cluster://' names no host; write cluster://node1:7000,node2:7000"),
        ("cluster://me:pw@/", "'cluster:///' names no host; write cluster://node1:7000"),
        ("cluster://a,,b", "'cluster://a,,b' names an empty host; write cluster://node1:7000"),
        ("cluster://a,", "'cluster://a,' names an empty host; write"),
        ("cluster://me:pw@a, ,b", "'cluster://a, ,b' names an empty host; write"),
        (
            "cluster://me:pw@a,b:7000:1",
            "'cluster://a,b:7000:1' (has an invalid server address|is not a valid)",
        ),
    ],
)
def test_a_url_without_a_usable_node_says_what_to_write(url: str, message: str) -> None:
    with pytest.raises(InvalidURLError, match=message) as caught:
        ClusterSettings.parse(url)
    assert "pw" not in str(caught.value)


def test_nodes_are_optional_where_the_backend_has_a_default() -> None:
    location = Location(raw="x://", scheme="x", username=None, password=None, hosts=(), path="")
    assert location.nodes(1, example="x://h", required=False) == ()
    assert location.credentials() == {}
    with pytest.raises(InvalidURLError, match="'x://' names no broker; write x://h"):
        location.nodes(1, example="x://h", noun="broker")


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
