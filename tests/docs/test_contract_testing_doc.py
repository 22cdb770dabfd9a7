"""docs/contract-testing.md, up to its live-traffic sections (tested in
test_contract_testing_live.py): its Python blocks make a passing test module, its command
passes."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.docs._guide import ROOT, python_blocks, run_as_test_module
from tests.examples._turns import one_run_at_a_time

DOC = (ROOT / "docs/contract-testing.md").read_text().split("\n## Live traffic: verify")[0]
SHELL = re.findall(r"```sh\n(.*?)```", DOC, flags=re.S)


def test_the_guide_runs_as_a_test_module(tmp_path: Path) -> None:
    run_as_test_module(
        python_blocks(DOC), tmp_path, name="docs/contract-testing.md", at_least=4, timeout=240
    )


def _commands(on_broker: bool) -> list[list[str]]:
    commands = [shlex.split(block.replace("\\\n", " ")) for block in SHELL]
    assert commands and all(c[:3] == ["eventwire", "contracts", "test"] for c in commands)
    chosen = [c for c in commands if ("--url" in c) == on_broker]
    assert chosen
    return chosen


def test_the_guide_command_passes_on_the_reference_system() -> None:
    _passes(_commands(on_broker=False))


@pytest.mark.broker
def test_the_guide_url_command_passes_on_the_reference_system() -> None:
    commands = _commands(on_broker=True)
    redis = os.environ.get("EVENTWIRE_REDIS_URL")
    if redis:  # the brokers of this run, where they are not the guide's
        commands = [[redis if a.startswith("redis://") else a for a in c] for c in commands]
    url = next(a for c in commands for a in c if a.startswith("redis://"))
    # the inventory service's channels are the order example's: while its services run on
    # this broker, each side would also handle the other's messages
    with one_run_at_a_time(url):
        _passes(commands)


def _passes(commands: list[list[str]]) -> None:
    for command in commands:
        result = subprocess.run(
            [sys.executable, "-m", "eventwire.cli", *command[1:]],
            capture_output=True,
            text=True,
            timeout=240,
            cwd=ROOT,
        )
        assert result.returncode == 0, result.stdout[-4000:] + result.stderr
        assert "checks passed" in result.stdout
        assert "coverage" in result.stdout
