"""``eventwire contracts can-i-deploy``: consumers whose models reject something the
provider may send are found, with the JSON path and a concrete counter-example."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import Result
from eventwire.contracts._load import load_document

from tests.contracts._live import as_consumer, contract


def _consumer(tmp_path: Path, name: str, change: Callable[[dict[str, Any]], None]) -> Path:
    provider, _, _ = contract(tmp_path, "deploy")
    path = as_consumer(provider, name)
    document = yaml.safe_load(path.read_text())
    change(document["components"]["schemas"])
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def _deploy(run: Callable[..., Result], tmp_path: Path, *consumers: Path) -> tuple[int, Any]:
    provider = tmp_path / "shop-deploy.yaml"
    args = [a for c in consumers for a in ("--consumer", c)]
    result = run("contracts", "can-i-deploy", provider, *args, "--format", "json")
    return result.exit_code, json.loads(result.output)


def _placed(schemas: dict[str, Any]) -> dict[str, Any]:
    placed: dict[str, Any] = schemas["OrderPlaced"]
    return placed


def _narrow_enum(schemas: dict[str, Any]) -> None:
    _placed(schemas)["properties"]["currency"]["enum"] = ["EUR"]


def _requires_optional(schemas: dict[str, Any]) -> None:
    _placed(schemas)["required"].append("note")


def _tighter_max_length(schemas: dict[str, Any]) -> None:
    _placed(schemas)["properties"]["note"]["maxLength"] = 5


def _wider(schemas: dict[str, Any]) -> None:
    _placed(schemas)["properties"]["currency"]["enum"] = ["EUR", "USD", "GBP"]
    _placed(schemas)["properties"]["note"]["maxLength"] = 200


def _same(schemas: dict[str, Any]) -> None:
    pass


@pytest.mark.parametrize(
    ("change", "path", "rejected"),
    [
        (_narrow_enum, "$.currency", lambda v: v["currency"] != "EUR"),
        (_requires_optional, "$", lambda v: "note" not in v),
        (_tighter_max_length, "$.note", lambda v: len(v["note"]) > 5),
    ],
)
def test_a_consumer_that_rejects_a_provider_value_breaks(
    tmp_path: Path,
    run: Callable[..., Result],
    change: Callable[[dict[str, Any]], None],
    path: str,
    rejected: Callable[[Any], bool],
) -> None:
    consumer = _consumer(tmp_path, "strict", change)
    code, report = _deploy(run, tmp_path, consumer)
    assert code == 1
    assert not report["ok"]
    verdicts = {e["message"]: e for e in report["expectations"]}
    assert verdicts["OrderCancelled"]["status"] == "ok"
    placed = verdicts["OrderPlaced"]
    assert placed["status"] == "breaks"
    finding = next(f for f in placed["findings"] if f["path"] == path)
    assert finding["has_counter_example"], finding
    example = finding["counter_example"]
    assert rejected(example), example
    # the counter-example really is: valid for the provider, rejected by the consumer
    from eventwire.contracts._load import ContractValidator

    body = json.dumps(example).encode()
    provider = ContractValidator(load_document(tmp_path / "shop-deploy.yaml"))
    assert provider.errors("OrderPlaced", body) == []
    assert ContractValidator(load_document(consumer)).errors("OrderPlaced", body)


@pytest.mark.parametrize("change", [_same, _wider])
def test_a_compatible_consumer_passes(
    tmp_path: Path, run: Callable[..., Result], change: Callable[[dict[str, Any]], None]
) -> None:
    consumer = _consumer(tmp_path, "tolerant", change)
    code, report = _deploy(run, tmp_path, consumer)
    assert code == 0, report
    assert {e["status"] for e in report["expectations"]} == {"ok"}


def test_several_consumers_and_a_message_no_longer_sent(
    tmp_path: Path, run: Callable[..., Result]
) -> None:
    good = _consumer(tmp_path, "good", _same)
    strict = _consumer(tmp_path, "strict", _narrow_enum)
    provider = tmp_path / "shop-deploy.yaml"
    document = yaml.safe_load(provider.read_text())
    del document["operations"]["sendOrderCancelled"]
    provider.write_text(yaml.safe_dump(document, sort_keys=False))
    code, report = _deploy(run, tmp_path, good, strict)
    assert code == 1
    verdicts = {
        (Path(e["consumer"]).stem, e["message"]): e["status"] for e in report["expectations"]
    }
    assert verdicts == {
        ("good", "OrderPlaced"): "ok",
        ("good", "OrderCancelled"): "not-sent",
        ("strict", "OrderPlaced"): "breaks",
        ("strict", "OrderCancelled"): "not-sent",
    }


def test_table_output(tmp_path: Path, run: Callable[..., Result]) -> None:
    strict = _consumer(tmp_path, "strict", _narrow_enum)
    result = run("contracts", "can-i-deploy", tmp_path / "shop-deploy.yaml", "--consumer", strict)
    assert result.exit_code == 1
    assert "BREAKS" in result.output and "$.currency" in result.output
    assert "would break" in result.output


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ("openapi: 3.1.0\ninfo: {title: x, version: '1'}\npaths: {}\n", "not an AsyncAPI"),
        ("asyncapi: 2.6.0\ninfo: {title: x, version: '1'}\nchannels: {}\n", "3.0.0"),
    ],
)
def test_bad_input_exit_2(
    tmp_path: Path, run: Callable[..., Result], content: str, says: str
) -> None:
    good = _consumer(tmp_path, "good", _same)
    bad = tmp_path / "bad.yaml"
    bad.write_text(content)
    for args in ((bad, "--consumer", good), (tmp_path / "shop-deploy.yaml", "--consumer", bad)):
        result = run("contracts", "can-i-deploy", *args)
        assert result.exit_code == 2, result.output
        assert says in result.output
        assert len(result.output.strip().splitlines()) == 1
