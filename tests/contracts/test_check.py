"""Contract first: ``eventwire contracts check`` and the reference application."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from click.testing import Result

from .conftest import REFERENCE_APP, V1, V2


def test_reference_app_matches_v1(run: Callable[..., Result]) -> None:
    result = run("contracts", "check", f"{REFERENCE_APP}:bus", V1)
    assert result.exit_code == 0, result.output
    assert "matches" in result.output


def test_generated_reference_is_v1_under_full(run: Callable[..., Result], tmp_path: Path) -> None:
    generated = tmp_path / "order-service.yaml"
    assert run("asyncapi", "generate", f"{REFERENCE_APP}:bus", "-o", generated).exit_code == 0
    result = run("contracts", "diff", V1, generated, "--mode", "full")
    assert result.exit_code == 0, result.output
    result = run("contracts", "diff", generated, V1, "--mode", "full")
    assert result.exit_code == 0, result.output


def test_drift_against_v2(run: Callable[..., Result]) -> None:
    result = run("contracts", "check", f"{REFERENCE_APP}:bus", V2)
    assert result.exit_code == 1
    assert "OrderConfirmed is in the contract but not used by the code" in result.output
    assert "OrderPlaced's payload schema differs from the contract" in result.output
    assert "coupon_code" in result.output
    assert "OrderPlaced is version 1 in the code, 2 in the contract" in result.output


def test_drift_code_only_message(run: Callable[..., Result], tmp_path: Path) -> None:
    app = tmp_path / "extra_app.py"
    app.write_text(
        "from eventwire import Event, EventBus\n"
        "class RefundIssued(Event, channel='refunds', key='order_id'):\n"
        "    order_id: str\n"
        "bus = EventBus('memory://', source='order-service')\n"
        "bus.declare(RefundIssued)\n"
    )
    result = run("contracts", "check", f"{app}:bus", V1, "--partial")
    assert result.exit_code == 1
    assert "RefundIssued is used by the code but not in the contract" in result.output
    assert "channel refunds is used by the code but not in the contract" in result.output
    assert "info:" in result.output  # contract-only messages are not errors with --partial


def test_check_bad_target(run: Callable[..., Result]) -> None:
    result = run("contracts", "check", "nosuch_module_abc:bus", V1)
    assert result.exit_code == 2
    assert "nosuch_module_abc" in result.output
