"""validate_document and ``eventwire asyncapi validate``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import Result
from eventwire.contracts import validate_document

from .conftest import V1, V2, V3


def _v1() -> dict[str, Any]:
    return yaml.safe_load(V1.read_text())  # type: ignore[no-any-return]


@pytest.mark.parametrize("path", [V1, V2, V3])
def test_reference_contracts_are_valid(path: Path) -> None:
    assert validate_document(yaml.safe_load(path.read_text())) == []


def test_every_schema_error_with_its_path() -> None:
    doc = _v1()
    doc["info"]["version"] = 3
    doc["operations"]["sendOrderPlaced"]["action"] = "publish"
    del doc["servers"]["memory"]["host"]
    problems = validate_document(doc)
    paths = {p.path for p in problems if p.rule == "asyncapi-schema"}
    assert "$.info.version" in paths
    assert "$.operations.sendOrderPlaced.action" in paths
    assert any(p.startswith("$.servers.memory") for p in paths)


def test_dangling_ref_and_foreign_operation_message() -> None:
    doc = _v1()
    doc["channels"]["orders"]["messages"]["OrderPlaced"]["$ref"] = "#/components/messages/Gone"
    doc["operations"]["sendOrderCancelled"]["messages"] = [
        {"$ref": "#/channels/payments/messages/PaymentCharged"}
    ]
    problems = validate_document(doc)
    rules = {(p.rule, p.path) for p in problems}
    assert ("ref-resolves", "$.channels.orders.messages.OrderPlaced.$ref") in rules
    assert ("operation-messages", "$.operations.sendOrderCancelled.messages[0]") in rules


def test_invalid_json_schema() -> None:
    doc = _v1()
    doc["components"]["schemas"]["OrderLine"]["required"] = "sku"
    problems = validate_document(doc)
    assert any(
        p.rule == "json-schema" and p.path.startswith("$.components.schemas.OrderLine")
        for p in problems
    )


def test_external_ref() -> None:
    doc = _v1()
    doc["components"]["messages"]["OrderPlaced"]["payload"] = {"$ref": "other.yaml#/X"}
    assert any(p.rule == "ref-external" for p in validate_document(doc))


def test_cli_valid(run: Callable[..., Result]) -> None:
    result = run("asyncapi", "validate", V1, V2)
    assert result.exit_code == 0
    assert "valid AsyncAPI 3.0" in result.output


def test_cli_invalid_exits_1_and_prints_every_problem(
    run: Callable[..., Result], tmp_path: Path
) -> None:
    doc = _v1()
    doc["info"]["version"] = 3
    doc["channels"]["orders"]["messages"]["OrderPlaced"]["$ref"] = "#/components/messages/Gone"
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(doc))
    result = run("asyncapi", "validate", path)
    assert result.exit_code == 1
    assert "$.info.version" in result.output
    assert "$.channels.orders.messages.OrderPlaced.$ref" in result.output


BAD_FILES = {
    "bad.yaml": ("asyncapi: 3.0.0\ninfo: {title: [\n", "not valid YAML/JSON"),
    "bad.json": ('{"asyncapi": "3.0.0",}', "not valid JSON"),
    "old.yaml": ("asyncapi: 2.6.0\ninfo: {title: x, version: '1'}\nchannels: {}\n", "2.6.0"),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
@pytest.mark.parametrize(
    "command",
    [
        ("asyncapi", "validate"),
        ("contracts", "lint"),
        ("contracts", "diff", "{v1}"),
        ("contracts", "check", "{app}"),
        ("contracts", "codegen", "-o", "{out}"),
        ("asyncapi", "html", "-o", "{out}"),
    ],
)
def test_bad_input_exits_2_naming_the_file(
    run: Callable[..., Result], tmp_path: Path, name: str, command: tuple[str, ...]
) -> None:
    from .conftest import REFERENCE_APP

    text, expected = BAD_FILES[name]
    path = tmp_path / name
    path.write_text(text)
    args = [a.format(v1=V1, app=f"{REFERENCE_APP}:bus", out=tmp_path / "out") for a in command]
    if args[1] == "codegen" or args[1] == "html":
        args = [args[0], args[1], str(path), *args[2:]]
    else:
        args.append(str(path))
    result = run(*args)
    assert result.exit_code == 2, result.output
    assert str(path) in result.output and expected in result.output
    assert "Traceback" not in result.output


def test_missing_file_exits_2(run: Callable[..., Result], tmp_path: Path) -> None:
    result = run("asyncapi", "validate", tmp_path / "absent.yaml")
    assert result.exit_code == 2
    assert "no such contract file" in result.output
