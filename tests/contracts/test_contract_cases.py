"""Property-based cases from a contract (`eventwire.testing.contract`)."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import pytest
from eventwire.contracts import ContractValidator, generate_asyncapi, read_document
from eventwire.contracts._bus_target import load_bus
from eventwire.errors import ContractError
from eventwire.testing.contract import (
    ContractMessage,
    UnsupportedSchemaError,
    coverage_messages,
    example_messages,
    invalid_cases,
    invalid_messages,
    valid_messages,
)
from hypothesis import HealthCheck, Phase, given, settings
from jsonschema import Draft202012Validator

from tests.contracts.conftest import REFERENCE_APP, V1, V2

FAST = settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck))


def _documents() -> Iterator[tuple[str, dict[str, Any]]]:
    yield "v1", read_document(V1)
    yield "v2", read_document(V2)
    yield "generated", generate_asyncapi(load_bus(f"{REFERENCE_APP}:bus"))


DOCUMENTS = dict(_documents())
#: Every message of v1; in v2 and the generated document, those that differ from v1.
CASES = [
    *(("v1", name) for name in ContractValidator(DOCUMENTS["v1"]).message_types),
    ("v2", "OrderPlaced"),
    ("v2", "OrderConfirmed"),
    ("generated", "OrderPlaced"),
    ("generated", "PaymentCharged"),
]


def _problems(document: dict[str, Any], message: ContractMessage | Any) -> list[str]:
    return ContractValidator(document).errors(message.name, json.dumps(message.payload).encode())


def _headers_schema(document: dict[str, Any]) -> dict[str, Any]:
    schema: dict[str, Any] = document["components"]["messageTraits"]["envelope"]["headers"]
    return schema


@pytest.mark.parametrize(("label", "name"), CASES)
def test_every_valid_case_follows_the_schema(label: str, name: str) -> None:
    document = DOCUMENTS[label]
    headers = Draft202012Validator(_headers_schema(document))

    @FAST
    @given(valid_messages(document, name))
    def check(message: ContractMessage) -> None:
        assert message.name == name
        assert _problems(document, message) == []
        assert list(headers.iter_errors(message.headers)) == []
        if message.key is not None:
            assert message.key == str(message.payload["order_id"])

    check()


@pytest.mark.parametrize(("label", "name"), CASES)
def test_every_invalid_case_breaks_the_schema(label: str, name: str) -> None:
    document = DOCUMENTS[label]
    fixed = invalid_cases(document, name)
    assert fixed, "each message has required fields, so there are violations"
    for case in fixed:
        assert _problems(document, case), case.violation

    @FAST
    @given(invalid_messages(document, name))
    def check(case: Any) -> None:
        assert _problems(document, case), case.violation

    check()


def test_invalid_cases_name_each_required_field_type_and_bound() -> None:
    violations = {case.violation for case in invalid_cases(V1, "ReserveInventory")}
    assert {
        "$.order_id: required property missing",
        "$.lines: required property missing",
        "$.lines[0].sku: required property missing",
        "$.lines[0].quantity: required property missing",
        "$.lines[0].quantity: string instead of integer",
        "$.lines: string instead of array",
        "$.lines[0].quantity: 0 is below minimum 1",
        "$.lines[0].sku: 0 characters, under minLength 1",
        "$.lines[0].unit_price: -0.5 is below minimum 0.0",
    } <= violations


def test_examples_come_first() -> None:
    cases = coverage_messages(V2, "OrderPlaced")
    assert cases[0].example == "OrderPlaced"
    assert cases[0].payload["order_id"] == "ord-7f3a"
    assert all(case.example is None for case in cases[1:])
    assert [m.example for m in example_messages(V2, "OrderPlaced")] == ["OrderPlaced"]

    first: list[ContractMessage] = []

    @settings(max_examples=1, phases=[Phase.generate], derandomize=True, database=None)
    @given(valid_messages(V2, "OrderPlaced"))
    def grab(message: ContractMessage) -> None:
        first.append(message)

    grab()
    assert first[0].example == "OrderPlaced"


def test_every_enum_member_and_branch_appears() -> None:
    reasons = {m.payload["reason"] for m in coverage_messages(V1, "OrderCancelled")}
    assert reasons == {"out-of-stock", "payment-declined", "customer-request"}
    placed = coverage_messages(V2, "OrderPlaced")
    assert {m.payload.get("currency") for m in placed} >= {"EUR", "USD", "GBP"}
    coupons = {type(m.payload.get("coupon_code", ...)) for m in placed}
    assert {str, type(None), type(...)} <= coupons  # string, null and absent
    totals = {type(m.payload["total"]) for m in placed}
    assert str in totals and (int in totals or float in totals)
    covers = {m.covers for m in placed}
    assert "$.lines[0].quantity = 1 (minimum)" in covers
    assert "$.placed_at with format date-time" in covers


def test_bounds_are_exercised() -> None:
    document = copy.deepcopy(DOCUMENTS["v1"])
    schema = document["components"]["schemas"]["OrderCancelled"]
    schema["properties"]["note"] = {"type": "string", "minLength": 2, "maxLength": 5}
    schema["properties"]["count"] = {"type": "integer", "exclusiveMinimum": 0, "maximum": 9}
    cases = coverage_messages(document, "OrderCancelled")
    assert {len(m.payload["note"]) for m in cases if "note" in m.payload} >= {2, 5}
    assert {m.payload["count"] for m in cases if "count" in m.payload} >= {1, 9}


def test_a_loaded_document_and_a_path_give_the_same_cases() -> None:
    assert coverage_messages(V1, "OrderPlaced") == coverage_messages(
        read_document(V1), "OrderPlaced"
    )


def _with_payload(schema: dict[str, Any]) -> dict[str, Any]:
    document = copy.deepcopy(DOCUMENTS["v1"])
    document["components"]["schemas"]["OrderCancelled"] = schema
    del document["components"]["messages"]["OrderCancelled"]["examples"]
    return document


def test_an_unsupported_keyword_is_named_with_its_path() -> None:
    document = _with_payload(
        {"type": "object", "properties": {"a": {"type": "object", "unevaluatedProperties": False}}}
    )
    with pytest.raises(UnsupportedSchemaError) as info:
        valid_messages(document, "OrderCancelled")
    message = str(info.value)
    assert "#/components/schemas/OrderCancelled/properties/a/unevaluatedProperties" in message
    assert "'unevaluatedProperties' is not supported" in message


def test_an_unknown_format_is_named_with_its_path() -> None:
    document = _with_payload({"type": "object", "properties": {"a": {"format": "isbn"}}})
    with pytest.raises(UnsupportedSchemaError, match=r"properties/a/format: the format 'isbn'"):
        valid_messages(document, "OrderCancelled")


def test_a_recursive_schema_is_refused_with_its_path() -> None:
    document = _with_payload(
        {
            "type": "object",
            "properties": {"child": {"$ref": "#/components/schemas/OrderCancelled"}},
        }
    )
    with pytest.raises(UnsupportedSchemaError, match="recursive schema"):
        valid_messages(document, "OrderCancelled")


def test_2020_keywords_with_a_draft_07_spelling_are_translated() -> None:
    document = _with_payload(
        {
            "type": "object",
            "required": ["pair"],
            "properties": {
                "pair": {
                    "type": "array",
                    "prefixItems": [{"type": "string"}, {"type": "integer"}],
                    "items": False,
                    "minItems": 2,
                }
            },
            "dependentRequired": {"a": ["b"]},
        }
    )

    @FAST
    @given(valid_messages(document, "OrderCancelled"))
    def check(message: ContractMessage) -> None:
        assert _problems(document, message) == []
        pair = message.payload["pair"]
        assert isinstance(pair[0], str) and isinstance(pair[1], int) and len(pair) == 2

    check()


def test_an_example_that_breaks_its_schema_is_a_clear_error() -> None:
    document = copy.deepcopy(DOCUMENTS["v1"])
    document["components"]["messages"]["OrderCancelled"]["examples"][0]["payload"]["reason"] = "x"
    with pytest.raises(ContractError, match=r"example 'OrderCancelled' .* at \$.reason"):
        valid_messages(document, "OrderCancelled")


def test_a_message_without_payload_or_unknown_is_a_clear_error() -> None:
    document = copy.deepcopy(DOCUMENTS["v1"])
    del document["components"]["messages"]["OrderCancelled"]["payload"]
    with pytest.raises(ContractError, match=r"'OrderCancelled'.*has no payload schema"):
        valid_messages(document, "OrderCancelled")
    with pytest.raises(ContractError, match="no message 'Nope'"):
        valid_messages(V1, "Nope")
    with pytest.raises(ContractError, match="not on channel 'payments'"):
        valid_messages(V1, "OrderCancelled", channel="payments")


def test_the_channel_is_the_live_one_not_the_dead_letter_one() -> None:
    assert {m.channel for m in coverage_messages(V1, "OrderCancelled")} == {"orders"}
    dlq = example_messages(V1, "OrderCancelled", channel="orders.dlq")
    assert {m.channel for m in dlq} == {"orders.dlq"}


@FAST
@given(valid_messages(DOCUMENTS["v1"], "PaymentCharged"))
def test_generated_ids_and_correlation_headers_are_set(message: ContractMessage) -> None:
    assert message.headers["ce_type"] == "PaymentCharged"
    assert message.headers["ce_id"]
    if message.example is None:
        assert message.headers["ce_correlationid"]
