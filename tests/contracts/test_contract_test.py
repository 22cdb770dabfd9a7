"""``eventwire contracts test``: each planted bug is found, the correct twin passes."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest
from click.testing import Result
from eventwire import EventBus
from eventwire.contracts import generate_asyncapi, read_document, validate_document
from eventwire.errors import ConfigurationError
from eventwire.testing.contract import assert_honours_contract, check_contract

from tests.contracts.conftest import ROOT
from tests.contracts.services import inventory

pytestmark = pytest.mark.anyio

SERVICES = Path(__file__).parent / "services"
CONTRACT = SERVICES / "inventory.yaml"
APP = SERVICES / "inventory.py"
FAST = ("--max-cases", "5", "--timeout", "0.1")

#: planted bug -> (the check that must find it, a piece of the problem it must report)
BUGS = {
    "crashes_on_gbp": ("handler", "raised KeyError: 'no exchange rate for GBP'"),
    "omits_field": (
        "publish",
        "InventoryReservationFailed breaks its payload schema at $: "
        "'reason' is a required property",
    ),
    "undeclared_channel": (
        "publish",
        "published StockAudited to channel 'audit', which no "
        "send operation of the contract declares",
    ),
    "forgets_follow_up": (
        "follow-up",
        "no InventoryReserved or InventoryReservationFailed with correlation id",
    ),
    "lets_invalid_through": (
        "invalid",
        "group 'inventory': the handler received it ($.currency: \"not-a-member\" is not one of",
    ),
}


def test_the_correct_twin_passes(run: Callable[..., Result], tmp_path: Path) -> None:
    result = run(
        "contracts",
        "test",
        CONTRACT,
        "--app",
        f"{APP}:correct",
        *FAST,
        "--json",
        tmp_path / "r.json",
        "--junit",
        tmp_path / "r.xml",
    )
    assert result.exit_code == 0, result.output
    assert "ok: 5 checks passed" in result.output
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["ok"] is True
    checks = {r["check"]: r["cases"] for r in report["results"]}
    assert set(checks) == {"receive", "handler", "publish", "follow-up", "invalid"}
    assert checks["handler"] >= 8  # example + coverage cases + generated ones
    coverage = {c["name"]: c["status"] for c in report["coverage"]}
    assert coverage == {
        "OrderPlaced": "exercised",
        "InventoryReserved": "produced",
        "InventoryReservationFailed": "produced",
    }
    suite = ElementTree.parse(tmp_path / "r.xml").getroot()
    assert suite.get("failures") == "0" and len(suite.findall("testcase")) == 5


@pytest.mark.parametrize("bug", sorted(BUGS))
def test_each_planted_bug_is_found(run: Callable[..., Result], tmp_path: Path, bug: str) -> None:
    result = run(
        "contracts",
        "test",
        CONTRACT,
        "--app",
        f"{APP}:{bug}",
        *FAST,
        "--json",
        tmp_path / "r.json",
        "--junit",
        tmp_path / "r.xml",
    )
    assert result.exit_code == 1, result.output
    check, problem = BUGS[bug]
    report = json.loads((tmp_path / "r.json").read_text())
    findings = [f for r in report["results"] for f in r["findings"]]
    assert {f["check"] for f in findings} == {check}, findings
    assert any(problem in f["problem"] for f in findings), findings
    assert f"FAIL {check} OrderPlaced" in result.output
    failing = [
        case.get("name")
        for case in ElementTree.parse(tmp_path / "r.xml").getroot().findall("testcase")
        if case.find("failure") is not None
    ]
    assert failing == [f"{check} OrderPlaced"]


def _shrunk_crash(run: Callable[..., Result], tmp_path: Path) -> tuple[Result, list[Any]]:
    """Contract-test the service that crashes on GBP: the result and its shrunk findings."""
    result = run(
        "contracts",
        "test",
        CONTRACT,
        "--app",
        f"{APP}:crashes_on_gbp",
        "--max-cases",
        "40",
        "--json",
        tmp_path / "r.json",
    )
    report = json.loads((tmp_path / "r.json").read_text())
    findings = [f for r in report["results"] for f in r["findings"]]
    return result, [f for f in findings if f["case"] == "generated (shrunk)"]


def test_a_handler_failure_is_shrunk_and_printed_with_its_traceback(
    run: Callable[..., Result], tmp_path: Path
) -> None:
    result, shrunk = _shrunk_crash(run, tmp_path)
    assert shrunk, "the generated phase found the crash too"
    assert shrunk[0]["payload"]["currency"] == "GBP"
    assert shrunk[0]["payload"]["quantity"] == 1  # minimal: every other field at its simplest
    assert 'raise KeyError("no exchange rate for GBP")' in shrunk[0]["detail"]
    assert "inventory.py" in result.output and "in reserve" in result.output


def test_examples_only_sends_only_the_examples(run: Callable[..., Result], tmp_path: Path) -> None:
    result = run(
        "contracts",
        "test",
        CONTRACT,
        "--app",
        f"{APP}:crashes_on_gbp",
        "--examples-only",
        "--json",
        tmp_path / "r.json",
    )
    assert result.exit_code == 0, result.output  # the example is in EUR
    report = json.loads((tmp_path / "r.json").read_text())
    assert {r["check"]: r["cases"] for r in report["results"]}["handler"] == 1


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("info: {title: t}\n", "not an AsyncAPI document"),
        (None, "no such contract file"),
        (
            "asyncapi: 2.6.0\ninfo: {title: t, version: '1'}\nchannels: {}\n",
            "$.asyncapi is '2.6.0'",
        ),
    ],
)
def test_a_bad_document_is_one_line_exit_2(
    run: Callable[..., Result], tmp_path: Path, text: str | None, expected: str
) -> None:
    document = tmp_path / "doc.yaml"
    if text is not None:
        document.write_text(text)
    result = run("contracts", "test", document, "--app", f"{APP}:correct")
    assert result.exit_code == 2
    assert expected in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("app", "expected"),
    [
        ("no_such_module_here:bus", "importing no_such_module_here failed"),
        (f"{APP}:OrderPlaced", "not an eventwire EventBus"),
        (f"{APP}:nothing", "has no attribute 'nothing'"),
    ],
)
def test_a_bad_app_is_one_line_exit_2(run: Callable[..., Result], app: str, expected: str) -> None:
    result = run("contracts", "test", CONTRACT, "--app", app)
    assert result.exit_code == 2
    assert expected in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_a_message_without_schema_is_one_line_exit_2(
    run: Callable[..., Result], tmp_path: Path
) -> None:
    text = CONTRACT.read_text().replace(
        "      payload:\n        $ref: '#/components/schemas/OrderPlaced'\n", ""
    )
    assert text != CONTRACT.read_text()
    broken = tmp_path / "no-schema.yaml"
    broken.write_text(text)
    result = run("contracts", "test", broken, "--app", f"{APP}:correct")
    assert result.exit_code == 2
    assert "'OrderPlaced'" in result.output and "has no payload schema" in result.output


def test_a_receive_operation_without_handler_is_a_violation(
    run: Callable[..., Result], tmp_path: Path
) -> None:
    result = run(
        "contracts", "test", CONTRACT, "--app", f"{ROOT}/contracts/reference_app.py:bus", *FAST
    )
    assert result.exit_code == 1
    assert "no handler of the bus receives OrderPlaced on channel 'orders'" in result.output


def test_generate_writes_emits_from_code() -> None:
    document = generate_asyncapi(inventory.build())
    operation = document["operations"]["receive_orders_inventory"]
    assert operation["x-eventwire-emits"] == ["InventoryReserved", "InventoryReservationFailed"]
    assert (
        read_document(CONTRACT)["operations"]["receive_orders_inventory"]["x-eventwire-emits"]
        == operation["x-eventwire-emits"]
    )


def test_validate_names_an_unknown_emitted_message(
    run: Callable[..., Result], tmp_path: Path
) -> None:
    text = CONTRACT.read_text().replace("    - InventoryReservationFailed\n", "    - Nope\n")
    broken = tmp_path / "emits.yaml"
    broken.write_text(text)
    result = run("asyncapi", "validate", broken)
    assert result.exit_code != 0
    assert "x-eventwire-emits[1]" in result.output and "'Nope' is not a message" in result.output


async def test_the_pytest_helpers_pass_the_twin_and_fail_each_bug() -> None:
    await assert_honours_contract(inventory.correct, CONTRACT, max_cases=5, timeout=0.1)
    for bug, (check, _) in BUGS.items():
        with pytest.raises(AssertionError, match=f"- {check} OrderPlaced"):
            await assert_honours_contract(
                getattr(inventory, bug), CONTRACT, max_cases=5, timeout=0.1
            )
    # the buses are put back: the same bus can be checked again
    report = await check_contract(inventory.correct, read_document(CONTRACT), max_cases=2)
    assert report.ok


def _follow_up_variant(replace: dict[str, Any]) -> dict[str, Any]:
    document = read_document(CONTRACT)
    operation = document["operations"]["receive_orders_inventory"]
    del operation["x-eventwire-emits"]
    operation.update(replace)
    return document


REPLY = {
    "reply": {
        "channel": {"$ref": "#/channels/inventory"},
        "messages": [
            {"$ref": "#/channels/inventory/messages/InventoryReserved"},
            {"$ref": "#/channels/inventory/messages/InventoryReservationFailed"},
        ],
    }
}
MAPPING = {"x-eventwire-emits": {"OrderPlaced": ["InventoryReservationFailed"]}}


async def test_an_asyncapi_reply_is_a_follow_up_on_its_channel() -> None:
    document = _follow_up_variant(REPLY)

    assert (await check_contract(inventory.correct, document, max_cases=3, timeout=0.1)).ok
    report = await check_contract(inventory.forgets_follow_up, document, max_cases=3, timeout=0.1)
    problems = {f.problem.split(" with ")[0] for f in report.findings}
    assert problems == {
        "no InventoryReserved on 'inventory' or InventoryReservationFailed on 'inventory'"
    }


async def test_the_mapping_form_of_emits_names_the_follow_up_per_message() -> None:
    document = _follow_up_variant(MAPPING)

    report = await check_contract(inventory.correct, document, max_cases=3, timeout=0.1)
    # the correct service reserves most orders: InventoryReserved is not what was promised
    assert {f.check for f in report.findings} == {"follow-up"}
    assert all(
        "no InventoryReservationFailed with correlation id" in f.problem for f in report.findings
    )


def test_emits_of_a_group_with_several_messages_is_a_mapping() -> None:
    bus = EventBus(source="order")

    @bus.subscribe(inventory.InventoryReserved, group="g", emits=[inventory.StockAudited])
    async def reserved(event: inventory.InventoryReserved) -> None: ...

    @bus.subscribe(inventory.InventoryReservationFailed, group="g")
    async def failed(event: inventory.InventoryReservationFailed) -> None: ...

    @bus.subscribe(inventory.OrderPlaced, group="g2", emits=[inventory.StockAudited])
    async def placed(event: inventory.OrderPlaced) -> None: ...

    document = generate_asyncapi(bus)
    assert validate_document(document) == []  # what is emitted is published: in the document
    operations = document["operations"]
    assert "sendStockAudited" in operations
    assert operations["receive_inventory_g"]["x-eventwire-emits"] == {
        "InventoryReserved": ["StockAudited"]
    }
    assert operations["receive_orders_g2"]["x-eventwire-emits"] == ["StockAudited"]


def test_emits_takes_message_classes_only() -> None:
    with pytest.raises(ConfigurationError, match="expected an Event or Command subclass"):
        EventBus().subscribe(inventory.OrderPlaced, emits=[dict])  # type: ignore[list-item]


def test_shrinking_is_not_blamed_for_the_random_draws_of_other_threads(
    run: Callable[..., Result], tmp_path: Path
) -> None:
    """Shrinking runs in a worker thread while the bus's loop (and a broker client on it)
    runs: their draws from the global `random` are not the strategies' doing, and Hypothesis
    must not report them as such."""
    import random
    import threading
    import warnings

    from hypothesis.errors import HypothesisDeprecationWarning

    stop = threading.Event()

    def draw() -> None:  # another thread of the process that uses the global `random`
        while not stop.is_set():
            random.random()

    drawer = threading.Thread(target=draw, daemon=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        drawer.start()
        try:
            result, shrunk = _shrunk_crash(run, tmp_path)
        finally:
            stop.set()
            drawer.join()
    assert result.exit_code == 1, result.output
    assert shrunk, "the generated phase found the crash too"
    blamed = [w for w in caught if issubclass(w.category, HypothesisDeprecationWarning)]
    assert not blamed, [str(w.message) for w in blamed]
