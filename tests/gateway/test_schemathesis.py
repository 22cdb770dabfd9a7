"""Schemathesis 4 against the OpenAPI document the gateway generates from its contracts.

In-process (ASGI), every default check (no 5xx, status codes, content types, response
schemas and headers, valid data accepted, invalid data rejected, missing auth refused,
unsupported methods answered 405 with Allow...), positive and negative cases, on the
embedded broker and on Redis. A few dead letters are there so that the letter endpoints
have something to find; every test has its own broker (purge empties a dead-letter channel).
"""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from eventwire import EventBus, NonRetryableError
from hypothesis import HealthCheck, settings

from tests.gateway._domain import AUTH, make_domain
from tests.gateway.conftest import build_app

#: Generated cases per operation; the whole run stays within seconds.
MAX_EXAMPLES = int(os.environ.get("EVENTWIRE_FUZZ_EXAMPLES", "10"))
CASES: dict[str, int] = {}


def _fill_dead_letters(url: str, domain: Any) -> None:
    async def fill() -> None:
        bus = EventBus(url, source="shop")

        @bus.subscribe(domain.OrderCancelled, group="refunds", from_beginning=True)
        async def refund(event: Any) -> None:
            raise NonRetryableError("refunds are closed", reason="rejected")

        async with bus:
            for i in range(3):
                await bus.publish(domain.OrderCancelled(order_id=f"o-{i}", reason="out-of-stock"))
            for _ in range(500):
                if len(await bus.dead_letters(domain.orders)) == 3:
                    break
                await asyncio.sleep(0.02)

    # kept: called by the sync schema fixtures of the sync schemathesis tests
    asyncio.run(fill())


#: The broker URL and the channel of each schema made by `_schema`.
BROKERS: dict[int, tuple[str, str]] = {}


async def _letters(url: str, channel: str) -> list[Any]:
    async with EventBus(url, source="check") as bus:
        return await bus.dead_letters(channel)


def _schema(url: str, tag: str) -> Any:
    folder = Path(os.environ.get("TMPDIR", "/tmp")) / f"eventwire-fuzz-{tag}"
    folder.mkdir(parents=True, exist_ok=True)
    domain = make_domain(folder, tag)
    _fill_dead_letters(url, domain)
    app = build_app(url, domain, max_body_bytes=64 * 1024)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    BROKERS[id(schema)] = (url, domain.orders)
    return schema


# Function-scoped: each test gets a broker of its own, with fresh letters. Purging is one of
# the operations, so a shared broker would leave the next test an empty dead-letter channel.
@pytest.fixture
def memory_schema() -> Any:
    tag = f"fz-{uuid.uuid4().hex[:8]}"
    return _schema(f"memory://{tag}", tag)


@pytest.fixture
def redis_schema() -> Any:
    tag = f"fzr-{uuid.uuid4().hex[:8]}"
    return _schema(f"redis://127.0.0.1:6379/0?prefix={tag}:", tag)


@pytest.fixture(autouse=True)
def _node_id(request: pytest.FixtureRequest) -> None:
    # schemathesis 4.32's lazy schemas read `node._nodeid`, which pytest 9 no longer has
    if not hasattr(request.node, "_nodeid"):
        request.node._nodeid = request.node.nodeid


@pytest.fixture(scope="module", autouse=True)
def _report_cases() -> Any:
    yield
    print(f"\nschemathesis cases: {CASES}")


@schemathesis.pytest.from_fixture("memory_schema").parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_memory(case: Any) -> None:
    CASES["memory"] = CASES.get("memory", 0) + 1
    case.call_and_validate(headers=dict(AUTH))


@pytest.mark.broker
@schemathesis.pytest.from_fixture("redis_schema").parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_redis(case: Any) -> None:
    """The same run against the gateway on a real broker (Redis)."""
    CASES["redis"] = CASES.get("redis", 0) + 1
    case.call_and_validate(headers=dict(AUTH))


@pytest.mark.anyio
async def test_stateful_memory(memory_schema: Any) -> None:
    """Sequences that follow the document's links: list -> one letter -> replay it."""
    url, channel = BROKERS[id(memory_schema)]
    # This test's broker has its own letters (no other test purged them).
    assert len(await _letters(url, channel)) == 3
    workflow = memory_schema.as_state_machine()

    class Authorized(workflow):  # type: ignore[misc,valid-type]
        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            CASES["stateful"] = CASES.get("stateful", 0) + 1
            return {"headers": dict(AUTH)}

    Authorized.run(
        settings=settings(
            max_examples=MAX_EXAMPLES,
            stateful_step_count=4,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        )
    )
