"""Subcommands are entry points of ``eventwire.commands``: the SDK imports none of them."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import EntryPoint
from pathlib import Path

import click
import eventwire.cli as cli_module
import pytest
from click.testing import CliRunner
from eventwire.cli import GROUP, cli, commands

ROOT = Path(__file__).resolve().parents[2]


def test_every_subcommand_is_registered_through_the_entry_point_group() -> None:
    assert set(commands()) >= {"asyncapi", "backends", "bench", "conformance", "contracts", "flow"}
    assert commands()["conformance"].value == "eventwire_conformance.cli:conformance"


def test_the_sdk_names_and_imports_nothing_of_the_suite() -> None:
    source = (ROOT / "sdk" / "eventwire" / "cli" / "__init__.py").read_text()
    assert "eventwire_conformance" not in source
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys\nfrom eventwire.cli import main\n"
            "try:\n    main(['backends'])\nexcept SystemExit:\n    pass\n"
            "assert not [m for m in sys.modules if m.startswith('eventwire_conformance')]",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "memory://" in done.stdout


def test_a_command_that_cannot_load_says_why_and_what_to_do(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    broken = EntryPoint(name="broken", value="no_such_module_xyz:command", group=GROUP)
    not_click = EntryPoint(name="odd", value="os:getcwd", group=GROUP)
    monkeypatch.setattr(cli_module, "commands", lambda: {"broken": broken, "odd": not_click})
    runner = CliRunner()
    result = runner.invoke(cli, ["broken"])
    assert result.exit_code == 1
    assert "'eventwire broken' cannot load (ModuleNotFoundError" in result.output
    assert "reinstall no_such_module_xyz" in result.output
    result = runner.invoke(cli, ["odd"])
    assert "os:getcwd is not a click command" in result.output
    assert isinstance(cli.get_command(click.Context(cli), "missing"), type(None))
