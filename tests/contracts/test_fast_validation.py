"""The compiled payload check (jsonschema-rs) never changes what `ContractValidator` answers.

It may only say "valid" where jsonschema says valid; these tests compare the validator with
its compiled checks against the same validator without them, on the reference contracts and
on generated payloads, and check the formats trusted to jsonschema-rs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
from eventwire.contracts import load_validator
from eventwire.contracts._fast import NATIVE_FORMATS, compile_payload_check, plain_date_time
from eventwire.contracts._load import ContractValidator, load_document
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "contracts" / "order-service.v1.yaml"
ORDER = {
    "currency": "EUR",
    "customer_id": "cus-118",
    "lines": [{"quantity": 2, "sku": "SKU-1042", "unit_price": "19.90"}],
    "order_id": "ord-7f3a",
    "placed_at": "2024-05-01T12:00:00Z",
    "total": "39.80",
}
TRICKY = {
    "email": ["a@b", "a@b.c", "@", "a@", "ab", "a b@c.d", "a@b@c", "\n@x"],
    "idn-email": ["ü@b.c", "a@ü", "@", "ab"],
    "ipv4": ["1.2.3.4", "01.2.3.4", "1.2.3", "256.1.1.1", "1.2.3.4\n", "1.2.3.4.5", "0.0.0.0"],
    "uuid": [
        "12345678-1234-1234-1234-123456789abc",
        "12345678123412341234123456789abc",
        "{12345678-1234-1234-1234-123456789abc}",
        "12345678-1234-1234-1234-123456789ABC",
        "12345678-1234-1234-1234-123456789abc\n",
        "g2345678-1234-1234-1234-123456789abc",
    ],
}


def plain(validator: ContractValidator) -> ContractValidator:
    """The same validator with jsonschema alone."""
    validator._compiled.clear()
    return validator


@pytest.fixture(scope="module")
def both() -> tuple[ContractValidator, ContractValidator]:
    return load_validator(REFERENCE), plain(load_validator(REFERENCE))


def test_every_message_of_the_reference_contract_is_compiled() -> None:
    validator = load_validator(REFERENCE)
    assert sorted(validator._compiled) == validator.message_types


@pytest.mark.parametrize("fmt", sorted(NATIVE_FORMATS))
def test_native_formats_are_never_more_lenient_than_jsonschema(fmt: str) -> None:
    checker = Draft202012Validator.FORMAT_CHECKER
    native = jsonschema_rs.Draft202012Validator({"format": fmt}, validate_formats=True)
    for value in TRICKY[fmt]:
        if native.is_valid(value):
            assert checker.conforms(value, fmt), f"{fmt}: {value!r}"


def test_dates_are_not_native_because_jsonschema_rs_takes_a_leap_second_and_year_0() -> None:
    """Why `date-time` and `date` go through jsonschema's function: jsonschema-rs alone would
    let these through, jsonschema rejects them, and so must the contract validator."""
    native_date = jsonschema_rs.Draft202012Validator({"format": "date"}, validate_formats=True)
    assert native_date.is_valid("0000-01-01")
    assert not Draft202012Validator.FORMAT_CHECKER.conforms("0000-01-01", "date")
    native = jsonschema_rs.Draft202012Validator({"format": "date-time"}, validate_formats=True)
    validator = load_validator(REFERENCE)
    for value in ("2024-05-01T23:59:60Z", "0000-01-01T00:00:00Z"):
        assert native.is_valid(value)
        problems = validator.errors(
            "OrderPlaced", json.dumps({**ORDER, "placed_at": value}).encode()
        )
        assert problems == [f"$.placed_at: {value!r} is not a 'date-time'"]
    assert not {"date-time", "date"} & NATIVE_FORMATS


def _date_time_text(
    y: int, m: int, d: int, hh: int, mm: int, ss: int, sep: str, frac: str, zone: str
) -> str:
    return f"{y:04d}-{m:02d}-{d:02d}{sep}{hh:02d}:{mm:02d}:{ss:02d}{frac}{zone}"


#: Date-times around every edge of the format: year 0, month 13, day 29-32, hour 24, second
#: 60, other separators and zones, a final newline.
DATE_TIME_LIKE = st.builds(
    _date_time_text,
    st.integers(0, 9999),
    st.integers(0, 13),
    st.integers(0, 32),
    st.integers(0, 24),
    st.integers(0, 60),
    st.integers(0, 60),
    st.sampled_from(["T", "t", " "]),
    st.sampled_from(["", ".5", ".123456"]),
    st.sampled_from(["Z", "z", "+02:00", "-23:59", "+24:00", "+02:60", "", "Z\n"]),
)


@given(value=DATE_TIME_LIKE | st.text(max_size=30))
@settings(max_examples=2000, suppress_health_check=[HealthCheck.too_slow])
def test_a_plain_date_time_is_one_jsonschema_accepts(value: str) -> None:
    if plain_date_time(value):
        assert Draft202012Validator.FORMAT_CHECKER.conforms(value, "date-time"), value


@pytest.mark.parametrize(
    ("value", "plain", "valid"),
    [
        ("2024-05-01T12:00:00Z", True, True),
        ("2024-05-01t12:00:00.123456+02:00", True, True),
        ("2024-02-29T12:00:00Z", False, True),  # a leap day: rfc3339-validator decides
        ("2023-02-29T12:00:00Z", False, False),
        ("2024-04-31T12:00:00Z", False, False),
        ("0000-01-01T00:00:00Z", False, False),
        ("2024-05-01T12:00:00Z\n", False, True),  # jsonschema's `$` takes a final newline
        ("2024-05-01 12:00:00Z", False, False),
    ],
)
def test_date_times_the_shortcut_does_not_take_get_the_answer_of_jsonschema(
    value: str, plain: bool, valid: bool
) -> None:
    assert plain_date_time(value) is plain
    problems = load_validator(REFERENCE).errors(
        "OrderPlaced", json.dumps({**ORDER, "placed_at": value}).encode()
    )
    assert problems == ([] if valid else [f"$.placed_at: {value!r} is not a 'date-time'"])


@pytest.mark.parametrize(
    "payload",
    [
        ORDER,
        {**ORDER, "total": 39.8},
        {**ORDER, "total": -1},
        {**ORDER, "total": "39,80"},
        {**ORDER, "currency": "CHF"},
        {**ORDER, "lines": []},
        {**ORDER, "lines": [{"quantity": 0, "sku": "", "unit_price": "1"}]},
        {**ORDER, "placed_at": "yesterday"},
        {k: v for k, v in ORDER.items() if k != "order_id"},
        {**ORDER, "order_id": 7},
        {**ORDER, "extra": True},
        [],
        "text",
    ],
)
def test_answers_are_the_ones_of_jsonschema(
    both: tuple[ContractValidator, ContractValidator], payload: Any
) -> None:
    fast, slow = both
    body = json.dumps(payload).encode()
    assert fast.errors("OrderPlaced", body) == slow.errors("OrderPlaced", body)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(field=st.sampled_from([*ORDER, "lines.0.quantity", "lines.0.unit_price"]), value=JSON)
def test_any_value_in_any_field_gets_the_answer_of_jsonschema(
    both: tuple[ContractValidator, ContractValidator], field: str, value: Any
) -> None:
    payload = json.loads(json.dumps(ORDER))
    if field.startswith("lines."):
        payload["lines"][0][field.rsplit(".", 1)[1]] = value
    else:
        payload[field] = value
    body = json.dumps(payload).encode()
    fast, slow = both
    assert fast.errors("OrderPlaced", body) == slow.errors("OrderPlaced", body)


def test_a_schema_jsonschema_rs_cannot_compile_is_left_to_jsonschema() -> None:
    document = load_document(REFERENCE)
    assert compile_payload_check(document, "/components/schemas/OrderPlaced") is not None
    broken = {**document, "components": {"schemas": {"Bad": {"$ref": "https://invalid./x"}}}}
    assert compile_payload_check(broken, "/components/schemas/Bad") is None


@pytest.mark.parametrize(
    "body",
    [
        b'{"order_id":"x\x01y"}',
        b'{"order_id":"\\ud800"}',
        b'{"total":NaN}',
        b'\xef\xbb\xbf{"order_id":"o"}',
        '{"order_id":"o"}'.encode("utf-16"),
        b'{"order_id":"\xff"}',
        b'{"a":1,}',
        b'{"a":1} x',
        b'{"a":01}',
        b"[1,2",
        json.dumps(ORDER).encode() + b"\n",
        json.dumps({**ORDER, "total": 10**30}).encode(),
        json.dumps({**ORDER, "order_id": "\u00e9\u4e2d"}, ensure_ascii=False).encode(),
    ],
)
def test_bodies_the_fast_parser_refuses_get_the_answer_of_json_loads(
    both: tuple[ContractValidator, ContractValidator], body: bytes
) -> None:
    fast, slow = both
    assert fast.errors("OrderPlaced", body) == slow.errors("OrderPlaced", body)
