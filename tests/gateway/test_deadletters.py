"""Dead letters over HTTP: the semantics of `bus.dead_letters` / `bus.replay_dead_letters`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.gateway._domain import AUTH, Domain
from tests.gateway._letters import Refunds, fill
from tests.gateway.conftest import build_app, serve, until

pytestmark = pytest.mark.anyio


async def test_list_filter_page_get_and_replay(
    domain: Domain, memory_url: Callable[[], str]
) -> None:
    url = memory_url()
    refunds = Refunds(url, domain)
    async with refunds.bus:
        await fill(url, domain, refunds, rejected=3, failed=2)
        async with serve(build_app(url, domain)) as client:
            channels = (await client.get("/dead-letters")).json()["channels"]
            assert {c["channel"]: c["count"] for c in channels} == {
                domain.orders: 5,
                f"{domain.tag}.shipping.commands": 0,
            }

            base = f"/dead-letters/{domain.orders}"
            page = (await client.get(base)).json()
            assert page["total"] == 5 and len(page["items"]) == 5
            assert [i["reason"] for i in page["items"]].count("rejected") == 3

            failed = (await client.get(base, params={"reason": "max-attempts"})).json()
            assert failed["total"] == 2
            assert {i["error_type"] for i in failed["items"]} == {"ValueError"}
            assert (await client.get(base, params={"error_type": "NonRetryableError"})).json()[
                "total"
            ] == 3
            assert (await client.get(base, params={"group": "nobody"})).json()["total"] == 0
            future = (await client.get(base, params={"since": "2999-01-01T00:00:00Z"})).json()
            past = (await client.get(base, params={"until": "2000-01-01T00:00:00Z"})).json()
            assert future["total"] == past["total"] == 0

            second = (await client.get(base, params={"offset": 2, "limit": 2})).json()
            assert [i["id"] for i in second["items"]] == [i["id"] for i in page["items"][2:4]]

            one = next(i for i in page["items"] if i["key"] == "r-0")
            letter = (await client.get(f"{base}/{one['id']}")).json()
            assert letter["payload"] == {"order_id": "r-0", "reason": "customer-request"}
            assert letter["reason"] == "rejected" and letter["attempts"] == 1
            assert letter["group"] == "refunds" and letter["type"] == "OrderCancelled"
            assert letter["error"] == "refund desk closed"

            refunds.healed = True
            replayed = await client.post(f"{base}/{one['id']}/replay", headers=AUTH)
            assert replayed.json() == {"replayed": 1}
            await until(lambda: refunds.handled == ["r-0"])

            filtered = await client.post(
                f"{base}/replay", params={"reason": "max-attempts"}, headers=AUTH
            )
            assert filtered.json() == {"replayed": 2}
            await until(lambda: sorted(refunds.handled) == ["f-0", "f-1", "r-0"])

            everything = await client.post(f"{base}/replay", headers=AUTH)
            assert everything.json() == {"replayed": 5}
            await until(lambda: len(refunds.handled) == 8)
            # the dead-letter channel is an audit log: replaying keeps its entries
            assert (await client.get(base)).json()["total"] == 5


@pytest.mark.parametrize(
    ("method", "path", "status", "kind"),
    [
        ("GET", "/dead-letters/{orders}/{missing}", 404, "unknown-letter"),
        ("POST", "/dead-letters/{orders}/{missing}/replay", 404, "unknown-letter"),
        ("GET", "/dead-letters/{orders}/not-a-letter-id", 404, "not-found"),
        ("GET", "/dead-letters/{orders}/replay", 405, "method-not-allowed"),
        ("GET", "/dead-letters/nowhere", 404, "unknown-channel"),
        ("POST", "/dead-letters/nowhere/replay", 404, "unknown-channel"),
        ("POST", "/dead-letters/nowhere/purge", 404, "unknown-channel"),
        ("GET", "/dead-letters/{orders}/purge", 405, "method-not-allowed"),
        ("POST", "/dead-letters/{orders}/purge?reason=rejected", 400, "invalid-parameter"),
        ("GET", "/dead-letters/{orders}?limit=0", 400, "invalid-parameter"),
        ("GET", "/dead-letters/{orders}?limit=501", 400, "invalid-parameter"),
        ("GET", "/dead-letters/{orders}?offset=-1", 400, "invalid-parameter"),
        ("GET", "/dead-letters/{orders}?since=yesterday", 400, "invalid-filter"),
        ("POST", "/dead-letters/{orders}/replay?until=2026-13-01T00:00:00Z", 400, "invalid-filter"),
        ("DELETE", "/dead-letters/{orders}", 405, "method-not-allowed"),
        ("POST", "/dead-letters/{orders}/replay?reson=invalid", 400, "invalid-parameter"),
        ("POST", "/dead-letters/{orders}/replay?reason=a&reason=b", 400, "invalid-parameter"),
        ("GET", "/dead-letters/{orders}?page=2", 400, "invalid-parameter"),
        ("GET", "/health/ready?verbose=1", 400, "invalid-parameter"),
    ],
)
async def test_bad_requests(
    domain: Domain, memory_url: Callable[[], str], method: str, path: str, status: int, kind: str
) -> None:
    target = path.format(orders=domain.orders, missing="0123456789abcdef0123")
    async with serve(build_app(memory_url(), domain)) as client:
        response = await client.request(method, target, headers=AUTH)
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["type"].endswith("/" + kind) and body["status"] == status


async def test_a_replayed_letter_that_is_gone_is_404(
    domain: Domain, memory_url: Callable[[], str]
) -> None:
    """A letter listed, then removed by the broker's retention: replay answers 404."""
    url = memory_url()
    refunds = Refunds(url, domain)
    async with refunds.bus:
        await fill(url, domain, refunds, rejected=1, failed=0)
        async with serve(build_app(url, domain)) as client:
            base = f"/dead-letters/{domain.orders}"
            letter = (await client.get(base)).json()["items"][0]["id"]
            from eventwire_memory import get_broker

            assert get_broker(url.removeprefix("memory://")).delete_channel(domain.orders + ".dlq")
            response = await client.post(f"{base}/{letter}/replay", headers=AUTH)
        assert response.status_code == 404, response.text
        assert refunds.handled == []


async def test_read_only_serves_no_mutation(domain: Domain, memory_url: Callable[[], str]) -> None:
    async with serve(build_app(memory_url(), domain, read_only=True)) as client:
        posted = await client.post("/events/OrderCancelled", json={}, headers=AUTH)
        replay = await client.post(f"/dead-letters/{domain.orders}/replay", headers=AUTH)
        purge = await client.post(f"/dead-letters/{domain.orders}/purge", headers=AUTH)
        listed = await client.get(f"/dead-letters/{domain.orders}")
        openapi = (await client.get("/openapi.json")).json()
        console = (await client.get("/console")).text
    assert posted.status_code == replay.status_code == purge.status_code == 403
    assert posted.json()["type"].endswith("/read-only")
    assert listed.status_code == 200
    assert not any(
        p.startswith("/events/") or p.endswith(("/replay", "/purge")) for p in openapi["paths"]
    )
    assert 'id="token"' not in console


async def test_console_pages(domain: Domain, memory_url: Callable[[], str]) -> None:
    """The pages render what the API says; the filter form's empty fields mean no filter."""
    url = memory_url()
    refunds = Refunds(url, domain)
    async with refunds.bus:
        await fill(url, domain, refunds, rejected=2, failed=1)
        async with serve(build_app(url, domain)) as client:
            home = await client.get("/", follow_redirects=True)
            assert home.status_code == 200 and domain.orders in home.text
            page = f"/console/{domain.orders}"
            everything = await client.get(page, params={"reason": "", "group": "", "since": ""})
            rejected = await client.get(page, params={"reason": "rejected"})
            bad = await client.get(page, params={"since": "noon"})
            letter = (await client.get(f"/dead-letters/{domain.orders}")).json()["items"][0]
            detail = await client.get(f"{page}/{letter['id']}")
            missing = await client.get(f"{page}/{'0' * 20}")
            for asset in ("console.css", "console.js"):
                assert (await client.get(f"/console/static/{asset}")).status_code == 200
            assert (await client.get("/flow.svg")).text.startswith("<svg")
            assert "AsyncApiStandalone" in (await client.get("/asyncapi/0/index.html")).text
    # rows + replay all + purge
    assert everything.text.count('data-post="/dead-letters/') == 3 + 1 + 1
    assert f'data-post="/dead-letters/{domain.orders}/purge"' in everything.text
    assert rejected.text.count("refund desk closed") == 2 and "no stock record" not in rejected.text
    assert "Replay all 2 matching letters" in rejected.text
    assert bad.status_code == 400 and "since: &#x27;noon&#x27; is not an RFC 3339" in bad.text
    assert bad.headers["content-type"].startswith("text/html")
    assert detail.status_code == 200 and letter["event_id"] in detail.text
    assert missing.status_code == 404
    assert "<script" not in detail.text.replace('<script src="/console/static/console.js">', "")
