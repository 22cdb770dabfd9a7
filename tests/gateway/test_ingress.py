"""Ingress: CloudEvents over HTTP checked against the contract, then published.

Every bad input of the gateway issue has its status code here; the events that pass reach a
real handler on the embedded broker (the same pipeline as every backend).
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Callable
from typing import Any

import pytest
from eventwire import EventBus
from eventwire.envelope import Envelope

from tests.gateway._domain import AUTH, Domain
from tests.gateway.conftest import build_app, serve, until

pytestmark = pytest.mark.anyio

PLACED = {
    "order_id": "o-1",
    "total": "12.50",
    "currency": "EUR",
    "placed_at": "2026-11-30T08:00:00Z",
}


async def _consumer(url: str, domain: Domain) -> tuple[EventBus, list[tuple[Any, Envelope]]]:
    got: list[tuple[Any, Envelope]] = []
    bus = EventBus(url, source="shop-consumer")

    @bus.subscribe(domain.OrderPlaced, group="placed-reader", from_beginning=True)
    async def on_placed(event: Any, delivery: Any) -> None:
        got.append((event, delivery.envelope))

    await bus.start()
    return bus, got


def _problem(response: Any, status: int, kind: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["type"].endswith("/" + kind)
    return body


async def test_binary_mode_reaches_the_handler_with_the_attributes(
    domain: Domain, memory_url: Callable[[], str]
) -> None:
    url = memory_url()
    bus, got = await _consumer(url, domain)
    try:
        async with serve(build_app(url, domain)) as client:
            response = await client.post(
                "/events/OrderPlaced",
                json=PLACED,
                headers={
                    **AUTH,
                    "ce-id": "evt-1",
                    "ce-source": "/web/checkout",
                    "ce-specversion": "1.0",
                    "ce-type": "OrderPlaced",
                    "ce-correlationid": "corr-9",
                    "ce-tenant": "acme",
                },
            )
            assert response.status_code == 202, response.text
            assert response.json() == {
                "id": "evt-1",
                "type": "OrderPlaced",
                "channel": domain.orders,
                "source": "/web/checkout",
                "duplicate": False,
            }
            await until(lambda: len(got) == 1)
    finally:
        await bus.close()
    event, envelope = got[0]
    assert event.order_id == "o-1" and str(event.total) == "12.50"
    assert (envelope.id, envelope.source, envelope.correlationid) == (
        "evt-1",
        "/web/checkout",
        "corr-9",
    )
    assert envelope.subject == "o-1"  # the ordering key comes from the contract's key field
    assert envelope.dataversion == "1"
    assert envelope.headers["ce_tenant"] == "acme"  # an extension travels with the event


async def test_structured_mode_and_plain_json(
    domain: Domain, memory_url: Callable[[], str]
) -> None:
    url = memory_url()
    bus, got = await _consumer(url, domain)
    try:
        async with serve(build_app(url, domain)) as client:
            event = {
                "specversion": "1.0",
                "id": "evt-2",
                "source": "/batch",
                "type": "OrderPlaced",
                "time": "2026-11-30T08:00:00+01:00",
                "data": PLACED,
                "tenant": "acme",
            }
            response = await client.post(
                "/events/OrderPlaced",
                content=json.dumps(event),
                headers={**AUTH, "content-type": "application/cloudevents+json; charset=utf-8"},
            )
            assert response.status_code == 202, response.text
            plain = await client.post("/events/OrderPlaced", json=PLACED, headers=AUTH)
            assert plain.status_code == 202, plain.text
            assert plain.json()["source"] == "eventwire-gateway"
            await until(lambda: len(got) == 2)
    finally:
        await bus.close()
    envelopes = {e.id: e for _, e in got}
    assert envelopes["evt-2"].source == "/batch"
    assert envelopes["evt-2"].time.isoformat() == "2026-11-30T07:00:00+00:00"
    assert plain.json()["id"] in envelopes


async def test_a_retried_post_is_published_once(
    domain: Domain, memory_url: Callable[[], str]
) -> None:
    url = memory_url()
    bus, got = await _consumer(url, domain)
    headers = {**AUTH, "ce-id": "evt-once", "ce-source": "/web"}
    try:
        async with serve(build_app(url, domain)) as client:
            first = await client.post("/events/OrderPlaced", json=PLACED, headers=headers)
            again = await asyncio.gather(
                *(
                    client.post("/events/OrderPlaced", json=PLACED, headers=headers)
                    for _ in range(3)
                )
            )
            other_source = await client.post(
                "/events/OrderPlaced", json=PLACED, headers={**headers, "ce-source": "/app"}
            )
            await until(lambda: len(got) == 2)
            await asyncio.sleep(0.2)
    finally:
        await bus.close()
    assert first.status_code == 202 and first.json()["duplicate"] is False
    assert [r.json()["duplicate"] for r in again] == [True, True, True]
    assert other_source.json()["duplicate"] is False  # CloudEvents: source + id identify an event
    assert sorted(e.source for _, e in got) == ["/app", "/web"]


@pytest.mark.parametrize(
    ("content_type", "body", "status", "kind"),
    [
        ("application/json", b'{"order_id": "o-1",', 400, "malformed-json"),
        ("application/json", b'{"total": NaN}', 400, "malformed-json"),
        ("application/json", b"\xff\xfe", 400, "malformed-json"),
        ("application/cloudevents+json", b"[1, 2]", 400, "malformed-event"),
        ("text/plain", b"hello", 415, "unsupported-media-type"),
        ("application/xml", b"<order/>", 415, "unsupported-media-type"),
        ("application/cloudevents-batch+json", b"[]", 415, "unsupported-media-type"),
    ],
)
async def test_unreadable_requests(
    domain: Domain,
    memory_url: Callable[[], str],
    content_type: str,
    body: bytes,
    status: int,
    kind: str,
) -> None:
    async with serve(build_app(memory_url(), domain)) as client:
        response = await client.post(
            "/events/OrderPlaced", content=body, headers={**AUTH, "content-type": content_type}
        )
    _problem(response, status, kind)


async def test_no_content_type_is_415(domain: Domain, memory_url: Callable[[], str]) -> None:
    async with serve(build_app(memory_url(), domain)) as client:
        response = await client.post("/events/OrderPlaced", content=b"{}", headers=AUTH)
    _problem(response, 415, "unsupported-media-type")


async def test_contract_violations_are_each_named(
    domain: Domain, memory_url: Callable[[], str]
) -> None:
    url = memory_url()
    bus, got = await _consumer(url, domain)
    bad = {"order_id": "", "total": -1, "currency": "JPY"}
    try:
        async with serve(build_app(url, domain)) as client:
            response = await client.post("/events/OrderPlaced", json=bad, headers=AUTH)
            attrs = await client.post(
                "/events/OrderPlaced",
                json=PLACED,
                headers={
                    **AUTH,
                    "ce-specversion": "0.3",
                    "ce-type": "OrderCancelled",
                    "ce-time": "yesterday",
                    "ce-subject": "o-2",
                    "ce-dataversion": "7",
                },
            )
            structured = await client.post(
                "/events/OrderPlaced",
                content=json.dumps({"type": "OrderPlaced", "Bad-Name": 1}),
                headers={**AUTH, "content-type": "application/cloudevents+json"},
            )
            await asyncio.sleep(0.2)
    finally:
        await bus.close()
    body = _problem(response, 422, "invalid-payload")
    paths = sorted(e["path"] for e in body["errors"])
    assert paths == ["$", "$.currency", "$.order_id", "$.total"]  # $: placed_at is missing
    body = _problem(attrs, 422, "invalid-event")
    assert sorted(e["path"] for e in body["errors"]) == [
        "ce-dataversion",
        "ce-specversion",
        "ce-subject",
        "ce-time",
        "ce-type",
    ]
    body = _problem(structured, 422, "invalid-event")
    assert {e["path"] for e in body["errors"]} == {
        '$["Bad-Name"]',
        "$.data",
        "$.id",
        "$.source",
        "$.specversion",
    }
    assert got == []  # nothing reached a handler


async def test_unknown_event_type_is_404(domain: Domain, memory_url: Callable[[], str]) -> None:
    async with serve(build_app(memory_url(), domain)) as client:
        response = await client.post("/events/OrderShipped", json={}, headers=AUTH)
        received = await client.post("/events/Nothing", json={}, headers=AUTH)
    body = _problem(response, 404, "unknown-event-type")
    assert "OrderPlaced" in body["detail"] and "ShipOrder" in body["detail"]
    _problem(received, 404, "unknown-event-type")


async def test_a_body_over_the_limit_is_413(domain: Domain, memory_url: Callable[[], str]) -> None:
    big = {**PLACED, "order_id": "o" * 5000}
    async with serve(build_app(memory_url(), domain, max_body_bytes=4096)) as client:
        response = await client.post("/events/OrderPlaced", json=big, headers=AUTH)

        async def chunks() -> Any:  # no Content-Length: the limit holds while streaming
            for _ in range(10):
                yield b" " * 1000

        streamed = await client.post(
            "/events/OrderPlaced",
            content=chunks(),
            headers={**AUTH, "content-type": "application/json"},
        )
    _problem(response, 413, "body-too-large")
    _problem(streamed, 413, "body-too-large")


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-token-0123456789"},
        {"Authorization": "Basic abc"},
        {"Authorization": "Bearer "},
    ],
    ids=["missing", "wrong", "basic", "empty"],
)
async def test_every_mutating_endpoint_needs_the_token(
    domain: Domain, memory_url: Callable[[], str], headers: dict[str, str]
) -> None:
    async with serve(build_app(memory_url(), domain)) as client:
        responses = [
            await client.post("/events/OrderPlaced", json=PLACED, headers=headers),
            await client.post(f"/dead-letters/{domain.orders}/replay", headers=headers),
            await client.post(f"/dead-letters/{domain.orders}/{'0' * 20}/replay", headers=headers),
        ]
    for response in responses:
        body = _problem(response, 401, "unauthorized")
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert "test-token" not in response.text and "wrong-token" not in response.text
        assert "detail" in body


async def test_broker_unreachable_is_503_with_retry_after(domain: Domain) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"redis://127.0.0.1:{port}/0?connect_timeout=0.5"
    async with serve(build_app(url, domain, retry_after=7)) as client:
        response = await client.post("/events/OrderPlaced", json=PLACED, headers=AUTH)
        ready = await client.get("/health/ready")
        live = await client.get("/health/live")
        letters = await client.get(f"/dead-letters/{domain.orders}")
    for r in (response, ready, letters):
        assert r.status_code == 503, r.text
        assert r.headers["retry-after"] == "7"
    assert live.status_code == 200


async def test_broker_down_during_a_post_is_503(
    domain: Domain, memory_url: Callable[[], str]
) -> None:
    """The broker goes away after the gateway connected: 503, and a retry publishes."""
    url = memory_url()
    app = build_app(url, domain)
    async with serve(app) as client:
        link = app.state.gateway.link
        assert (await client.get("/health/ready")).status_code == 200
        await link.bus.backend.close()  # the connection is gone
        response = await client.post(
            "/events/OrderPlaced", json=PLACED, headers={**AUTH, "ce-id": "evt-down"}
        )
    body = _problem(response, 503, "broker-unavailable")
    assert response.headers["retry-after"] == "5"
    assert "nothing was published" in body["detail"]
    bus, got = await _consumer(url, domain)
    try:
        async with serve(build_app(url, domain)) as client:  # the broker is back
            retry = await client.post(
                "/events/OrderPlaced", json=PLACED, headers={**AUTH, "ce-id": "evt-down"}
            )
            assert retry.status_code == 202 and retry.json()["duplicate"] is False
            await until(lambda: len(got) == 1)
    finally:
        await bus.close()
    assert got[0][1].id == "evt-down"


@pytest.mark.broker
async def test_real_broker_gone_during_a_post(domain: Domain) -> None:
    """Redis goes away between two POSTs (a proxy is cut): 503 with Retry-After, nothing
    published; the retried POST once Redis is back is published exactly once."""
    from tests.gateway._proxy import Proxy

    prefix = f"gwp-{domain.tag}:"
    proxy = Proxy(6379)
    await proxy.start()
    direct = f"redis://127.0.0.1:6379/0?prefix={prefix}"
    via_proxy = (
        f"redis://127.0.0.1:{proxy.port}/0?prefix={prefix}&reconnect_timeout=1&connect_timeout=0.5"
    )
    bus, got = await _consumer(direct, domain)
    try:
        async with serve(build_app(via_proxy, domain, retry_after=2)) as client:
            first = await client.post(
                "/events/OrderPlaced", json=PLACED, headers={**AUTH, "ce-id": "evt-a"}
            )
            assert first.status_code == 202, first.text
            await proxy.stop()
            down = await client.post(
                "/events/OrderPlaced", json=PLACED, headers={**AUTH, "ce-id": "evt-b"}
            )
            _problem(down, 503, "broker-unavailable")
            assert down.headers["retry-after"] == "2"
            await asyncio.sleep(0.5)
            assert [e.id for _, e in got] == ["evt-a"]  # nothing of evt-b was published
            await proxy.start()
            again = await client.post(
                "/events/OrderPlaced", json=PLACED, headers={**AUTH, "ce-id": "evt-b"}
            )
            assert again.status_code == 202, again.text
            assert again.json()["duplicate"] is False
            await until(lambda: len(got) == 2)
            await asyncio.sleep(0.3)
    finally:
        await bus.close()
        await proxy.stop()
    assert [e.id for _, e in got] == ["evt-a", "evt-b"]


@pytest.mark.broker
async def test_an_event_over_the_backends_limit_is_413(domain: Domain) -> None:
    """Under the body limit but over what the broker takes (Redis max_message_bytes)."""
    url = f"redis://127.0.0.1:6379/0?prefix=gwl-{domain.tag}:&max_message_bytes=2048"
    extensions = {f"ce-note{i}": "x" * 200 for i in range(12)}
    async with serve(build_app(url, domain)) as client:
        small = await client.post("/events/OrderPlaced", json=PLACED, headers=AUTH)
        large = await client.post(
            "/events/OrderPlaced", json=PLACED, headers={**AUTH, **extensions}
        )
    assert small.status_code == 202, small.text
    body = _problem(large, 413, "event-too-large")
    assert "2048" in body["detail"] and "nothing was published" in body["detail"]
    async with EventBus(url) as bus:
        stored = await bus.backend.browse(domain.orders)
    assert [m.headers["ce_id"] for m in stored] == [small.json()["id"]]
