"""Compatibility: schema rules (table-driven), structure, modes, ``eventwire contracts diff``."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import Result
from eventwire.contracts import diff_documents, schema_compatibility

from .conftest import V1, V2, V3

S = {"type": "string"}
I = {"type": "integer"}  # noqa: E741


def obj(
    props: dict[str, Any], required: tuple[str, ...] = (), closed: bool = False
) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": props, "required": list(required)}
    if closed:
        schema["additionalProperties"] = False
    return schema


# (old, new, expected compatibility class) — Confluent's JSON Schema rules
CASES: dict[str, tuple[Any, Any, str]] = {
    "unchanged": (obj({"a": S}, ("a",)), obj({"a": S}, ("a",)), "FULL"),
    "title only": (obj({"a": S}), obj({"a": {**S, "title": "A", "description": "x"}}), "FULL"),
    "open: add optional": (obj({"a": S}), obj({"a": S, "b": S}), "FORWARD"),
    "open: remove optional": (obj({"a": S, "b": S}), obj({"a": S}), "BACKWARD"),
    "closed: add optional": (
        obj({"a": S}, closed=True),
        obj({"a": S, "b": S}, closed=True),
        "BACKWARD",
    ),
    "closed: remove optional": (
        obj({"a": S, "b": S}, closed=True),
        obj({"a": S}, closed=True),
        "FORWARD",
    ),
    "open: add unconstrained optional": (obj({"a": S}), obj({"a": S, "b": {}}), "FULL"),
    "type change": (obj({"a": S}), obj({"a": I}), "NONE"),
    "integer to number": (obj({"a": I}), obj({"a": {"type": "number"}}), "BACKWARD"),
    "enum widened": (
        {"type": "string", "enum": ["a"]},
        {"type": "string", "enum": ["a", "b"]},
        "BACKWARD",
    ),
    "enum narrowed": (
        {"type": "string", "enum": ["a", "b"]},
        {"type": "string", "enum": ["a"]},
        "FORWARD",
    ),
    "required added": (obj({"a": S, "b": S}, ("a",)), obj({"a": S, "b": S}, ("a", "b")), "FORWARD"),
    "required removed": (
        obj({"a": S, "b": S}, ("a", "b")),
        obj({"a": S, "b": S}, ("a",)),
        "BACKWARD",
    ),
    "closed: add required": (
        obj({"a": S}, ("a",), True),
        obj({"a": S, "b": S}, ("a", "b"), True),
        "NONE",
    ),
    "made nullable": (obj({"a": S}), obj({"a": {"anyOf": [S, {"type": "null"}]}}), "BACKWARD"),
    "maximum raised": (
        {"type": "integer", "maximum": 5},
        {"type": "integer", "maximum": 10},
        "BACKWARD",
    ),
    "minLength raised": ({"type": "string"}, {"type": "string", "minLength": 1}, "FORWARD"),
    "format added": (S, {"type": "string", "format": "date-time"}, "FORWARD"),
    "nested type change": (obj({"a": obj({"x": S})}), obj({"a": obj({"x": I})}), "NONE"),
    "array items narrowed": (
        {"type": "array", "items": {"type": "number"}},
        {"type": "array", "items": I},
        "FORWARD",
    ),
    "open to closed": (obj({"a": S}), obj({"a": S}, closed=True), "FORWARD"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_schema_rules(case: str) -> None:
    old, new, expected = CASES[case]
    verdict, reasons = schema_compatibility(old, new)
    assert verdict == expected, reasons
    assert (reasons == []) == (expected == "FULL")


# where eventwire is stricter than jsoncompat on purpose
JSONCOMPAT_DIFFERS = {
    "format added": "jsoncompat treats 'format' as an annotation (the 2020-12 default); "
    "eventwire's payload validator asserts formats, so the diff does too",
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_agrees_with_jsoncompat(case: str) -> None:
    import jsoncompat

    if case in JSONCOMPAT_DIFFERS:
        pytest.skip(JSONCOMPAT_DIFFERS[case])
    old, new, expected = CASES[case]
    backward = jsoncompat.check_compat(json.dumps(old), json.dumps(new), "deserializer")
    forward = jsoncompat.check_compat(json.dumps(old), json.dumps(new), "serializer")
    classes = {
        (True, True): "FULL",
        (True, False): "BACKWARD",
        (False, True): "FORWARD",
        (False, False): "NONE",
    }
    assert classes[(backward, forward)] == expected


def test_refs_resolve_in_each_document() -> None:
    old = {"components": {"schemas": {"X": S}}}
    new = {"components": {"schemas": {"X": I}}}
    verdict, reasons = schema_compatibility(
        {"$ref": "#/components/schemas/X"}, {"$ref": "#/components/schemas/X"}, old, new
    )
    assert verdict == "NONE"
    assert "type changed" in reasons[0]


def test_recursive_schema_terminates() -> None:
    doc = {
        "components": {"schemas": {"Node": obj({"next": {"$ref": "#/components/schemas/Node"}})}}
    }
    verdict, _ = schema_compatibility(
        {"$ref": "#/components/schemas/Node"}, {"$ref": "#/components/schemas/Node"}, doc, doc
    )
    assert verdict == "FULL"


def _load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())  # type: ignore[no-any-return]


def _by_name(report: Any) -> dict[tuple[str, str], Any]:
    return {(v.kind, v.name): v for v in report.verdicts}


def test_reference_v2_is_forward_compatible() -> None:
    report = diff_documents([_load(V1)], _load(V2), "forward")
    assert report.ok
    verdicts = _by_name(report)
    assert verdicts[("message", "OrderPlaced")].change == "FORWARD"
    assert verdicts[("message", "OrderConfirmed")].change == "added"
    assert not diff_documents([_load(V1)], _load(V2), "backward").ok
    assert diff_documents([_load(V1)], _load(V2), "none").ok


def test_reference_v3_breaks() -> None:
    report = diff_documents([_load(V2)], _load(V3), "forward")
    breaking = {(v.kind, v.name): v for v in report.breaking}
    assert breaking[("message", "OrderPlaced")].change == "NONE"
    assert breaking[("message", "OrderCancelled")].change == "BACKWARD"
    assert breaking[("channel", "shipping")].change == "structural"
    assert (
        "address changed from 'shipping' to 'shipments'"
        in breaking[("channel", "shipping")].reasons[0]
    )
    assert ("operation", "receive_shipping_order-service") in breaking


def test_structural_changes() -> None:
    old = _load(V1)
    new = copy.deepcopy(old)
    del new["channels"]["inventory_commands"]
    del new["operations"]["sendReserveInventory"]
    new["operations"]["sendOrderPlaced"]["action"] = "receive"
    new["channels"]["orders"]["messages"].pop("OrderCancelled")
    new["channels"]["orders_dlq"]["messages"].pop("OrderCancelled")
    new["operations"].pop("sendOrderCancelled")
    del new["components"]["messages"]["OrderCancelled"]
    report = diff_documents([old], new, "full")
    verdicts = _by_name(report)
    assert verdicts[("channel", "inventory_commands")].breaks
    assert verdicts[("operation", "sendReserveInventory")].breaks
    assert (
        "action changed from send to receive" in verdicts[("operation", "sendOrderPlaced")].reasons
    )
    assert verdicts[("message", "OrderCancelled")].breaks  # removed: FORWARD only
    assert not diff_documents([old], new, "none").breaking


def test_transitive_compares_with_every_version() -> None:
    v1, v2 = _load(V1), _load(V2)
    # v1 -> v2 adds an optional property (FORWARD); back to v1 removes it (BACKWARD):
    # compatible with the latest under backward, not with all under backward-transitive.
    assert diff_documents([v2], v1, "backward").ok is False  # OrderConfirmed removed
    against = {
        v.against for v in diff_documents([v1, v2], v2, "forward-transitive", ["v1", "v2"]).verdicts
    }
    assert against == {"v1", "v2"}
    assert {v.against for v in diff_documents([v1, v2], v2, "forward", ["v1", "v2"]).verdicts} == {
        "v2"
    }


def test_cli_diff(run: Callable[..., Result]) -> None:
    ok = run("contracts", "diff", V1, V2, "--mode", "forward")
    assert ok.exit_code == 0, ok.output
    assert "message OrderPlaced: FORWARD" in ok.output
    broken = run("contracts", "diff", V1, V2, V3, "--mode", "forward-transitive")
    assert broken.exit_code == 1
    assert "BREAKS channel shipping: structural" in broken.output
    assert "type changed" in broken.output
    as_json = run("contracts", "diff", V2, V3, "--mode", "backward", "--format", "json")
    data = json.loads(as_json.output)
    assert data["ok"] is False and as_json.exit_code == 1


def test_cli_diff_needs_two_files(run: Callable[..., Result]) -> None:
    result = run("contracts", "diff", V1)
    assert result.exit_code == 2
