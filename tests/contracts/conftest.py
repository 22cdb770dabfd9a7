"""Helpers for the contract tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from eventwire.cli import cli

ROOT = Path(__file__).resolve().parents[2]
CONTRACTS = ROOT / "contracts"
REFERENCE_APP = CONTRACTS / "reference_app.py"
V1 = CONTRACTS / "order-service.v1.yaml"
V2 = CONTRACTS / "order-service.v2.yaml"
V3 = CONTRACTS / "order-service.v3-breaking.yaml"


@pytest.fixture
def run() -> Callable[..., Result]:
    """Run ``eventwire ARGS...`` in-process; returns click's Result (exit_code, output)."""

    def invoke(*args: str) -> Result:
        return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)

    return invoke
