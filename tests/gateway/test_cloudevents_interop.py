"""What the CloudEvents Python SDK sends over HTTP, in both content modes, the gateway takes."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from cloudevents.core.bindings import http
from cloudevents.core.v1.event import CloudEvent
from eventwire import EventBus
from eventwire.envelope import Envelope

from tests.gateway._domain import AUTH, Domain
from tests.gateway.conftest import build_app, serve, until

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("mode", ["binary", "structured"])
async def test_cloudevents_sdk_http_message(
    domain: Domain, memory_url: Callable[[], str], mode: str
) -> None:
    url = memory_url()
    got: list[tuple[Any, Envelope]] = []
    consumer = EventBus(url, source="shop")

    @consumer.subscribe(domain.OrderCancelled, group="sdk-reader", from_beginning=True)
    async def on_cancelled(event: Any, delivery: Any) -> None:
        got.append((event, delivery.envelope))

    event = CloudEvent(
        attributes={
            "type": "OrderCancelled",
            "source": "https://shop.example/orders",
            "id": f"sdk-{mode}",
            "time": datetime(2026, 11, 30, 8, 0, tzinfo=UTC),
            "datacontenttype": "application/json",
            "correlationid": "corr-42",
            "tenant": "acme",
        },
        data={"order_id": "o-7", "reason": "customer-request"},
    )
    message = http.to_binary_event(event) if mode == "binary" else http.to_structured_event(event)
    async with consumer, serve(build_app(url, domain)) as client:
        response = await client.post(
            "/events/OrderCancelled", content=message.body, headers={**message.headers, **AUTH}
        )
        assert response.status_code == 202, response.text
        await until(lambda: got)
    received, envelope = got[0]
    assert (received.order_id, received.reason) == ("o-7", "customer-request")
    assert (envelope.id, envelope.source, envelope.type) == (
        f"sdk-{mode}",
        "https://shop.example/orders",
        "OrderCancelled",
    )
    assert envelope.time == datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
    assert envelope.correlationid == "corr-42"
    assert envelope.subject == "o-7"
    assert envelope.headers["ce_tenant"] == "acme"
