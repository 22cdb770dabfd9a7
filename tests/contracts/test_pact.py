"""Pact V4 message pacts: a consumer's expectations exported with pact-python, and eventwire
providers (a correct one and broken twins) verified with pact-python's verifier."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import Result
from eventwire import Event
from eventwire.contracts._pact import (
    PactMessage,
    eventwire_message,
    interaction_name,
    verify_pacts,
)

from tests.contracts._live import as_consumer, contract
from tests.contracts.conftest import V1

pytestmark = pytest.mark.usefixtures("no_tracking")


@pytest.fixture
def no_tracking(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PACT_DO_NOT_TRACK", "true")


def _provider(
    channel: str, *, currency: str = "EUR", total: Any = 12.5, reason: str | None = "customer"
) -> Callable[[str, Mapping[str, Any]], PactMessage]:
    """An order service built with eventwire; the keyword arguments plant its bugs."""

    class OrderPlaced(Event, channel=channel, key="order_id"):
        order_id: str
        total: Any
        currency: str

    class OrderCancelled(Event, channel=channel, key="order_id"):
        order_id: str
        reason: str | None

    events: dict[str, Event] = {
        interaction_name("OrderPlaced", channel): OrderPlaced(
            order_id="ord-9", total=total, currency=currency
        ),
        interaction_name("OrderCancelled", channel): OrderCancelled(
            order_id="ord-9", reason=reason
        ),
    }
    return lambda description, _metadata: eventwire_message(events[description])


def _export(tmp_path: Path, run: Callable[..., Result]) -> tuple[Path, str]:
    path, orders, _ = contract(tmp_path)
    consumer = as_consumer(path, "shop-frontend")
    result = run(
        "contracts",
        "pact",
        "export",
        consumer,
        "--provider",
        "order-service",
        "-o",
        tmp_path / "pacts",
    )
    assert result.exit_code == 0, result.output
    return tmp_path / "pacts" / "shop-frontend-order-service.json", orders


def test_export_writes_a_v4_message_pact(tmp_path: Path, run: Callable[..., Result]) -> None:
    file, orders = _export(tmp_path, run)
    pact = json.loads(file.read_text())
    assert pact["metadata"]["pactSpecification"]["version"].startswith("4")
    assert (pact["consumer"]["name"], pact["provider"]["name"]) == (
        "shop-frontend",
        "order-service",
    )
    by_name = {i["description"]: i for i in pact["interactions"]}
    assert set(by_name) == {f"OrderPlaced on {orders}", f"OrderCancelled on {orders}"}
    placed = by_name[f"OrderPlaced on {orders}"]
    assert placed["type"] == "Asynchronous/Messages"
    assert placed["metadata"]["type"] == "OrderPlaced"
    rules = placed["matchingRules"]["body"]
    assert rules["$.currency"]["matchers"][0] == {"match": "regex", "regex": "^(EUR|USD)$"}
    assert rules["$.order_id"]["matchers"][0]["match"] == "type"
    # only what the consumer requires is expected ("note" is optional)
    assert set(placed["contents"]["content"]) == {"order_id", "total", "currency"}


def test_correct_provider_verifies(tmp_path: Path, run: Callable[..., Result]) -> None:
    file, orders = _export(tmp_path, run)
    result = verify_pacts("order-service", [file], _provider(orders))
    assert result.ok, result.output
    assert result.mismatches == []


@pytest.mark.parametrize(
    ("bug", "path"),
    [
        ({"currency": "GBP"}, "$.currency"),  # a value outside the consumer's enum
        ({"total": "12.50"}, "$.total"),  # a number sent as text
        ({"reason": None}, "$.reason"),  # a required field left empty on one branch
    ],
)
def test_broken_provider_fails_with_the_path(
    tmp_path: Path, run: Callable[..., Result], bug: dict[str, Any], path: str
) -> None:
    file, orders = _export(tmp_path, run)
    result = verify_pacts("order-service", [file], _provider(orders, **bug))
    assert not result.ok
    assert [m[1] for m in result.mismatches] == [path], result.mismatches


def test_missing_pact_python_names_the_extra(
    tmp_path: Path, run: Callable[..., Result], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, _, _ = contract(tmp_path)
    consumer = as_consumer(path, "shop")
    monkeypatch.setitem(sys.modules, "pact", None)
    result = run("contracts", "pact", "export", consumer, "--provider", "p", "-o", tmp_path)
    assert result.exit_code == 2
    assert "pip install 'eventwire[contract]'" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_export_of_a_contract_without_receive_operations_is_bad_input(
    tmp_path: Path, run: Callable[..., Result]
) -> None:
    path, _, _ = contract(tmp_path)
    document = path.read_text().replace("action: receive", "action: send")
    path.write_text(document)
    result = run("contracts", "pact", "export", path, "--provider", "p", "-o", tmp_path)
    assert result.exit_code == 2
    assert "no receive operation" in result.output


def test_alternatives_match_either_branch(tmp_path: Path, run: Callable[..., Result]) -> None:
    """v1's PaymentCharged.amount is a number or a decimal string (anyOf): both verify, a
    list does not."""
    from contracts.reference_app import PaymentCharged

    result = run(
        "contracts",
        "pact",
        "export",
        V1,
        "--provider",
        "payments",
        "--consumer-name",
        "orders",
        "-o",
        tmp_path,
    )
    assert result.exit_code == 0, result.output
    file = tmp_path / "orders-payments.json"

    def provider(amount: Any) -> Callable[[str, Mapping[str, Any]], PactMessage]:
        def produce(description: str, _metadata: Mapping[str, Any]) -> PactMessage:
            event = PaymentCharged(
                order_id="o-1", payment_id="p-1", amount=Decimal(1), currency="EUR"
            )
            message = eventwire_message(event)
            body = json.loads(message.body)
            body["amount"] = amount
            return PactMessage(json.dumps(body).encode(), message.metadata)

        return produce

    for amount in ("19.90", 19.9):
        checked = verify_pacts(
            "payments", [file], provider(amount), only="PaymentCharged on payments"
        )
        assert checked.ok, (amount, checked.mismatches)
    broken = verify_pacts("payments", [file], provider([1]), only="PaymentCharged on payments")
    assert {m[1] for m in broken.mismatches} == {"$.amount"}


def test_pact_verify_command_checks_a_provider_contract(
    tmp_path: Path, run: Callable[..., Result]
) -> None:
    file, _ = _export(tmp_path, run)
    provider = next(p for p in tmp_path.glob("shop-*.yaml") if p.name != "shop-frontend.yaml")
    ok = run("contracts", "pact", "verify", provider, file, "--provider-name", "order-service")
    assert ok.exit_code == 0, ok.output
    assert "every interaction verified" in ok.output

    # a provider whose example sends a currency the consumer's pact does not accept, and that
    # no longer sends OrderCancelled
    document = yaml.safe_load(provider.read_text())
    placed = document["components"]["schemas"]["OrderPlaced"]
    placed["properties"]["currency"]["enum"].append("GBP")
    document["components"]["messages"]["OrderPlaced"]["examples"][0]["payload"]["currency"] = "GBP"
    del document["operations"]["sendOrderCancelled"]
    broken = tmp_path / "broken-provider.yaml"
    broken.write_text(yaml.safe_dump(document, sort_keys=False))
    bad = run("contracts", "pact", "verify", broken, file, "--provider-name", "order-service")
    assert bad.exit_code == 1, bad.output
    assert "OrderPlaced" in bad.output and "$.currency" in bad.output
    assert "OrderCancelled" in bad.output
