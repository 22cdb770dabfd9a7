"""An AsyncAPI round trip through a generator written elsewhere: eventwire writes the reference
service's AsyncAPI document (on RabbitMQ), ``asyncapi-python`` (its codegen extra) generates a
client from it, and what that client sends reaches an eventwire subscriber.

What the generated client does (asyncapi-python 0.3.1, read from its AMQP wire): for a channel
with the AMQP binding ``is: routingKey`` and ``exchange: {name, type: topic}``, as eventwire
writes it, its publisher declares that durable topic exchange (the one eventwire declares for
the channel) and publishes the encoded payload with the channel address as routing key, no
headers, no correlation id, no content type and no type; aiormq gives the message a random message
id, new on every send. So eventwire reads it with ``PlainJSON``, typed by the group's only message
type, with a payload field as the event id (a resent order is one event). It ignores the operations'
``messages`` and sends any message of the channel from any send operation: a group that handles one
type dead-letters the others as ``invalid``.

The channel addresses of the document are prefixed so that test runs never share exchanges.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from eventwire import Claim, Delivery, EventBus, PlainJSON
from eventwire.contracts import generate_asyncapi
from eventwire.idempotency import MemoryIdempotencyStore
from eventwire_conformance.suite.test_idempotency import Ledger, RecordingStore

from tests.interop._sides import RABBIT_URL
from tests.interop.test_interop import dead_letters, wait_for

pytestmark = [pytest.mark.broker, pytest.mark.anyio]

ROOT = Path(__file__).resolve().parents[2]
REFERENCE_APP = ROOT / "contracts" / "reference_app.py"


def reference_module(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, REFERENCE_APP)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # its annotations are resolved through the module
    spec.loader.exec_module(module)
    return module


def prefixed_document(bus: EventBus, prefix: str) -> dict[str, Any]:
    document = generate_asyncapi(bus)
    for channel in document["channels"].values():
        channel["address"] = prefix + channel["address"]
        exchange = channel.get("bindings", {}).get("amqp", {}).get("exchange")
        if exchange is not None:
            exchange["name"] = prefix + exchange["name"]
    return document


def generate_client(document: dict[str, Any], where: Path, package: str) -> Any:
    from asyncapi_python_codegen import CodeGenerator

    spec = where / "orders.yaml"
    spec.write_text(yaml.safe_dump(document, sort_keys=False))
    generator = CodeGenerator()
    # The generator type-checks its output with mypy in a subprocess (10-20 s here): its own
    # concern, not this round trip's.
    generator.template_renderer.run_mypy = lambda output_dir: None
    generator.generate(spec, where / package)
    sys.path.insert(0, str(where))
    try:
        return importlib.import_module(package)
    finally:
        sys.path.remove(str(where))


def generated_message(model: Any, example: dict[str, Any]) -> Any:
    """The generated client's message for `example`, validated by its model. Some releases
    of datamodel-code-generator (0.97 does not) turn the ``lines`` array (minItems 1) into a
    RootModel and repeat min_length on the field, which pydantic refuses (TypeError) when
    the model validates: such a client's message is built without validation."""
    try:
        return model.model_validate(example)
    except TypeError as exc:
        if "min_length" not in str(exc):
            raise
        return model.model_construct(**example)


async def test_a_client_generated_by_asyncapi_python_reaches_an_eventwire_subscriber(
    tmp_path: Path,
) -> None:
    from asyncapi_python.contrib.wire.amqp import AmqpWire

    tag = uuid.uuid4().hex[:10]
    prefix = f"ewt-ap-{tag}-"
    reference: Any = reference_module(f"reference_app_{tag}")
    reference.bus._rebind(RABBIT_URL)
    client = generate_client(prefixed_document(reference.bus, prefix), tmp_path, f"ap_{tag}")

    class OrderPlaced(reference.OrderPlaced, channel=prefix + "orders", type="OrderPlaced"):  # type: ignore[misc,call-arg]
        pass

    ledger = Ledger()

    store = RecordingStore(MemoryIdempotencyStore(), ledger)
    bus = EventBus(RABBIT_URL, source="billing", idempotency_store=store)
    handled: list[tuple[Any, Delivery]] = []
    accept = PlainJSON(ids=("field",), id_field="order_id", source="generated")

    @bus.subscribe(OrderPlaced, group="billing", idempotent=True, accept=accept)
    async def bill(event: Any, delivery: Delivery) -> None:
        handled.append((event, delivery))

    example = reference.OrderPlaced.model_config["json_schema_extra"]["examples"][0]
    wire = AmqpWire(RABBIT_URL.rstrip("/"))
    app = client.Application(wire)
    send_placed = app.producer.send_order_placed
    send_cancelled = app.producer.send_order_cancelled
    async with bus:
        await send_placed.start()
        await send_cancelled.start()
        try:
            placed = generated_message(client.messages.json.OrderPlaced, example)
            await send_placed(placed)
            # Sent twice (a producer retry): the order id is the event id, handled once.
            await send_placed(placed)
            # The generated router sends any message of the channel from any operation.
            cancelled = {"order_id": example["order_id"], "reason": "customer-request"}
            await send_placed(client.messages.json.OrderCancelled.model_validate(cancelled))
        finally:
            await send_placed.stop()
            await send_cancelled.stop()
            await wire.close()
        [letter] = await dead_letters(bus, OrderPlaced.__eventwire__.channel or "", 1)
        await wait_for(
            lambda: ledger.count(example["order_id"], Claim.DONE) == 1,
            "the copy of the generated client's OrderPlaced, recognised by the store",
        )
    [(event, delivery)] = handled
    assert event == OrderPlaced.model_validate_json(json.dumps(example))
    assert delivery.envelope.id == example["order_id"]
    assert delivery.envelope.source == "generated"
    assert letter.reason == "invalid"
    assert "not a valid OrderPlaced" in letter.error
