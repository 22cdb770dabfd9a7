"""``eventwire contracts test --url``: the same checks with the service's bus on a real broker.

Each run reads through group names of its own (``<group>-test-<hex>``), so runs on one broker
do not take each other's messages; the planted bugs are found there as on memory://.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result
from eventwire.testing.contract import assert_honours_contract, check_contract

from tests.contracts.services import inventory
from tests.contracts.test_contract_test import APP, BUGS, CONTRACT, FAST

URLS = {
    "redis": ("EVENTWIRE_REDIS_URL", "redis://127.0.0.1:6379/0"),
    "kafka": ("EVENTWIRE_KAFKA_URL", "kafka://127.0.0.1:9092"),
}
#: one bug found by a handler (middleware outcome), one by the dead-letter channel
PLANTED = ("crashes_on_gbp", "lets_invalid_through")


def _url(name: str) -> str:
    variable, default = URLS[name]
    return os.environ.get(variable) or default


@pytest.mark.broker
@pytest.mark.parametrize("broker", sorted(URLS))
def test_on_a_real_broker_the_twin_passes_and_the_bugs_are_found(
    run: Callable[..., Result], tmp_path: Path, broker: str
) -> None:
    url = _url(broker)
    # kept sync: the CLI starts its own event loop, which cannot run inside a running one
    asyncio.run(assert_honours_contract(inventory.correct, CONTRACT, max_cases=3, url=url))
    for bug in PLANTED:
        out = tmp_path / f"{bug}.json"
        result = run(
            "contracts", "test", CONTRACT, "--app", f"{APP}:{bug}", *FAST, "--url", url,
            "--json", out,
        )  # fmt: skip
        assert result.exit_code == 1, result.output
        report = json.loads(out.read_text())
        assert report["url"] == url
        check, problem = BUGS[bug]
        findings = [f for r in report["results"] for f in r["findings"]]
        assert {f["check"] for f in findings} == {check}, findings
        if bug == "lets_invalid_through":  # the group name is the session's own
            assert any(
                "the handler received it" in f["problem"] and "'inventory-test-" in f["problem"]
                for f in findings
            ), findings
        else:
            assert any(problem in f["problem"] for f in findings), findings
        assert f"on {url}" in result.output


@pytest.mark.broker
@pytest.mark.anyio
async def test_the_groups_of_a_run_are_its_own_and_removed_afterwards() -> None:
    # A Redis database of its own: the test above may be running on the same server at the
    # same time, with session groups of its own on the same channel.
    url = _url("redis").rsplit("/", 1)[0] + "/15"
    bus = inventory.correct
    report = await check_contract(bus, CONTRACT, examples_only=True, url=url)
    assert report.ok, report.findings
    assert list(bus.subscriptions) == [("orders", "inventory")]  # put back

    async def groups() -> list[str]:
        from redis.asyncio import Redis

        client = Redis.from_url(url)
        try:
            # the Redis backend keeps a channel in streams "<channel>:<partition>"
            return [g["name"].decode() for g in await client.xinfo_groups("orders:0")]
        finally:
            await client.aclose()

    assert not [g for g in await groups() if g.startswith("inventory-test-")]


def test_an_unreachable_url_is_one_line_exit_2(run: Callable[..., Result]) -> None:
    result = run(
        "contracts", "test", CONTRACT, "--app", f"{APP}:correct", "--url", "redis://127.0.0.1:1"
    )
    assert result.exit_code == 2
    assert "cannot connect to redis at redis://127.0.0.1:1" in result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
