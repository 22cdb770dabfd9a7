"""``contracts check`` compares who sends and who receives, not only which messages exist;
``asyncapi generate`` warns about a bus that declares nothing it publishes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from click.testing import Result
from eventwire import Event, EventBus
from eventwire.contracts._check import check_bus
from eventwire.contracts._generate import generate_asyncapi

from .conftest import REFERENCE_APP, V1

SERVICES = "docs.examples.order_processing.choreography"


def test_a_service_that_consumes_what_the_contract_publishes_does_not_match(
    run: Callable[..., Result],
) -> None:
    # shipping sends ItemShipped, which the order service's contract receives
    result = run("contracts", "check", f"{SERVICES}.shipping:bus", str(V1), "--partial")
    assert result.exit_code == 1, result.output
    assert "the code sends ItemShipped; the contract receives it [drift-operation]" in result.output


def test_the_service_the_contract_describes_still_matches_it(
    run: Callable[..., Result],
) -> None:
    result = run("contracts", "check", f"{REFERENCE_APP}:bus", str(V1), "--partial")
    assert result.exit_code == 0, result.output
    assert "drift-operation" not in result.output


class Noticed(Event, channel="ops-notices"):
    text: str


def _bus(*, publishes: bool, consumes: bool) -> EventBus:
    bus = EventBus(source="ops")
    if publishes:
        bus.declare(Noticed)
    if consumes:

        @bus.subscribe(Noticed, group="ops")
        async def read(event: Noticed) -> None: ...

    return bus


def test_each_direction_of_operation_drift() -> None:
    sender = generate_asyncapi(_bus(publishes=True, consumes=False))
    receiver = _bus(publishes=False, consumes=True)
    both = _bus(publishes=True, consumes=True)
    [problem] = [p for p in check_bus(receiver, sender) if p.rule == "drift-operation"]
    assert (problem.severity, problem.message) == (
        "error",
        "the code receives Noticed; the contract sends it",
    )
    # doing more than the contract says is an error even in part; doing less is fine in part
    assert [
        p.severity for p in check_bus(both, sender, partial=True) if p.rule == "drift-operation"
    ] == ["error"]
    assert [
        p.severity
        for p in check_bus(
            _bus(publishes=True, consumes=False), generate_asyncapi(both), partial=True
        )
        if p.rule == "drift-operation"
    ] == ["info"]
    assert not [p for p in check_bus(both, generate_asyncapi(both)) if p.rule == "drift-operation"]


def test_generate_warns_when_a_bus_declares_nothing_it_publishes(
    run: Callable[..., Result], tmp_path: Path
) -> None:
    (tmp_path / "quiet.py").write_text(
        "from eventwire import Event, EventBus\n"
        "class Ping(Event, channel='pings'):\n    n: int\n"
        "bus = EventBus(source='quiet')\n"
        "@bus.subscribe(Ping, group='g')\nasync def h(e: Ping) -> None:\n    await bus.publish(e)\n"
        "loud = EventBus(source='loud')\nloud.declare(Ping)\n"
    )
    quiet = run("asyncapi", "generate", f"{tmp_path / 'quiet.py'}:bus")
    assert quiet.exit_code == 0
    assert "declares nothing it publishes" in quiet.output
    assert "bus.declare(...)" in quiet.output
    loud = run("asyncapi", "generate", f"{tmp_path / 'quiet.py'}:loud")
    assert "declares nothing" not in loud.output
