"""Code-first generation: generate_asyncapi and ``eventwire asyncapi generate``."""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest
import yaml
from click.testing import Result
from eventwire import Event, EventBus
from eventwire.contracts import generate_asyncapi, validate_document
from jsonschema import Draft202012Validator
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from .conftest import REFERENCE_APP, V1


def _reference() -> ModuleType:
    spec = importlib.util.spec_from_file_location("reference_app_for_tests", REFERENCE_APP)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return generate_asyncapi(_reference().bus, title="Order service")


def test_generated_document_is_valid(document: dict[str, Any]) -> None:
    assert validate_document(document) == []


def test_structure(document: dict[str, Any]) -> None:
    assert document["asyncapi"] == "3.0.0"
    assert document["info"] == {
        "title": "Order service",
        "version": "1.0.0",
        "description": "Messages published and consumed by order-service.",
    }
    server = document["servers"]["memory"]
    assert server["protocol"] == "memory" and server["x-eventwire-embedded"] is True
    addresses = {c["address"] for c in document["channels"].values()}
    for name in (
        "orders",
        "inventory",
        "payments",
        "shipping",
        "inventory.commands",
        "payments.commands",
        "shipping.commands",
    ):
        assert {name, name + ".dlq"} <= addresses
    ops = document["operations"]
    assert ops["sendOrderPlaced"]["action"] == "send"
    assert ops["sendOrderPlaced"]["messages"] == [
        {"$ref": "#/channels/orders/messages/OrderPlaced"}
    ]
    receive = ops["receive_payments_order-service"]
    assert receive["action"] == "receive"
    assert "bindings" not in receive  # the embedded broker has no AsyncAPI bindings
    assert receive["x-eventwire-group"] == "order-service"
    assert {m["$ref"].rsplit("/", 1)[-1] for m in receive["messages"]} == {
        "PaymentCharged",
        "PaymentDeclined",
    }


def test_messages(document: dict[str, Any]) -> None:
    components = document["components"]
    message = components["messages"]["OrderPlaced"]
    assert message["name"] == "OrderPlaced"
    assert message["title"] == "Order placed"
    assert message["contentType"] == "application/json"
    assert message["x-eventwire-version"] == 1
    assert message["x-eventwire-kind"] == "event"
    assert components["messages"]["ShipOrder"]["x-eventwire-kind"] == "command"
    assert "bindings" not in message
    assert message["traits"] == [{"$ref": "#/components/messageTraits/envelope"}]
    correlation = components["correlationIds"]["correlationId"]
    assert correlation["location"] == "$message.header#/ce_correlationid"
    headers = components["messageTraits"]["envelope"]["headers"]
    assert headers["required"] == ["ce_id", "ce_type", "ce_source", "ce_specversion"]
    assert "ce_time" in headers["properties"] and "content-type" in headers["properties"]
    # the payload schema is pydantic's, with nested models moved to components.schemas
    assert message["payload"] == {"$ref": "#/components/schemas/OrderPlaced"}
    assert components["schemas"]["OrderPlaced"]["properties"]["lines"]["items"] == {
        "$ref": "#/components/schemas/OrderLine"
    }
    assert "additionalProperties" not in components["schemas"]["OrderPlaced"]  # open model


def test_examples_validate(document: dict[str, Any]) -> None:
    registry: Registry[Any] = Registry().with_resource(
        "urn:doc", DRAFT202012.create_resource(document)
    )
    headers_schema = document["components"]["messageTraits"]["envelope"]["headers"]
    for key, message in document["components"]["messages"].items():
        assert message["examples"], key
        validator = Draft202012Validator(
            {"$ref": f"urn:doc#/components/messages/{key}/payload"}, registry=registry
        )
        for example in message["examples"]:
            assert list(validator.iter_errors(example["payload"])) == [], key
            assert list(Draft202012Validator(headers_schema).iter_errors(example["headers"])) == []
    # json_schema_extra examples win over generated ones
    placed = document["components"]["messages"]["OrderPlaced"]["examples"][0]["payload"]
    assert placed["order_id"] == "ord-7f3a"


class Shipped(Event, channel="shipping", key="order_id"):
    order_id: str


@pytest.mark.parametrize(
    ("name", "binding", "url", "protocol"),
    [
        ("nats", "nats", "nats://localhost:4222", "nats"),
        ("rabbit", "amqp", "amqp://localhost:5672/shop", "amqp"),
        ("rabbit", "amqp", "amqps://localhost:5671/shop", "amqps"),
        ("redis", "kafka", "redis://localhost:6379/0", "redis"),
        ("redis", "kafka", "rediss://localhost:6380/0", "rediss"),
        ("kafka", "kafka", "kafka://localhost:9092", "kafka"),
        ("memory", "kafka", "memory://", "memory"),
        ("sqlite", "kafka", "sqlite:///tmp/events.db", "sqlite"),
        ("unknown", "kafka", "unknown://host", "unknown"),
    ],
)
def test_backend_bindings(name: str, binding: str, url: str, protocol: str) -> None:
    bus = EventBus("memory://", source="shipper")
    bus.declare(Shipped)

    @bus.subscribe(Shipped, group="billing")
    async def handle(event: Shipped) -> None: ...

    bus.backend = SimpleNamespace(name=name, binding=binding, url=url)
    document = generate_asyncapi(bus)
    assert validate_document(document) == []
    server = next(iter(document["servers"].values()))
    assert server["protocol"] == protocol
    receive = document["operations"]["receive_shipping_billing"]
    prefix = {"nats": "ce-", "amqp": "cloudEvents:", "kafka": "ce_"}[binding]
    trait = document["components"]["messageTraits"]["envelope"]["headers"]
    assert prefix + "id" in trait["required"]
    channel = document["channels"]["shipping"]
    message = document["components"]["messages"]["Shipped"]
    if name == "nats":
        assert receive["bindings"] == {"nats": {"queue": "billing", "bindingVersion": "0.1.0"}}
    elif name == "rabbit":
        assert server["pathname"] == "/shop"
        assert channel["bindings"]["amqp"]["exchange"]["name"] == "shipping"
        assert message["bindings"]["amqp"]["messageType"] == "Shipped"
    elif name == "kafka":
        assert receive["bindings"]["kafka"]["groupId"]["enum"] == ["billing"]
        assert channel["bindings"]["kafka"]["topic"] == "shipping"
        assert message["bindings"]["kafka"]["key"]["type"] == "string"
    # only the plugin of the protocol supplies bindings, and only its own protocol's
    found = json.dumps(document)
    others = {"kafka", "amqp", "nats"} - {{"rabbit": "amqp"}.get(name, name)}
    assert not any(f'"{other}": {{' in found for other in others), found
    if name not in ("kafka", "rabbit", "nats"):
        assert '"bindings"' not in found
    if name in ("memory", "sqlite"):
        assert server["x-eventwire-embedded"] is True


def test_the_document_generator_names_no_backend() -> None:
    import eventwire.contracts._generate as generate

    source = Path(generate.__file__).read_text()
    for name in ("memory", "rabbit", "redis", "nats", "sqlite", "backend.name =="):
        assert name not in source


# -- CLI ---------------------------------------------------------------------------------------


def test_cli_generate_file_target_yaml(run: Callable[..., Result], tmp_path: Path) -> None:
    out = tmp_path / "gen.yaml"
    result = run(
        "asyncapi", "generate", f"{REFERENCE_APP}:bus", "--title", "Order service", "-o", out
    )
    assert result.exit_code == 0, result.output
    assert yaml.safe_load(out.read_text()) == yaml.safe_load(V1.read_text())


def test_cli_generate_dotted_module_json(
    run: Callable[..., Result], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "shopapp.py").write_text(
        "from eventwire import Event, EventBus\n"
        "class OrderPlaced(Event, channel='orders', key='order_id'):\n"
        "    order_id: str\n"
        "bus = EventBus('memory://', source='shop')\n"
        "bus.declare(OrderPlaced)\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    result = run("asyncapi", "generate", "shopapp:bus", "--format", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["operations"]["sendOrderPlaced"]["action"] == "send"


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("nosuchmodule_xyz:bus", "importing nosuchmodule_xyz failed: ModuleNotFoundError"),
        ("missing/file.py:bus", "no such file"),
        ("eventwire:nothing", "has no attribute 'nothing'"),
        ("eventwire:Event", "not an eventwire EventBus"),
        ("no-colon", "is not MODULE:BUS"),
    ],
)
def test_cli_generate_bad_target(run: Callable[..., Result], target: str, expected: str) -> None:
    result = run("asyncapi", "generate", target)
    assert result.exit_code == 2
    assert expected in result.output
    assert "Traceback" not in result.output


def test_cli_generate_module_that_raises(run: Callable[..., Result], tmp_path: Path) -> None:
    app = tmp_path / "broken_app.py"
    app.write_text("raise RuntimeError('boom')\n")
    result = run("asyncapi", "generate", f"{app}:bus")
    assert result.exit_code == 2
    assert "RuntimeError: boom" in result.output and str(app) in result.output
