"""docs/contract-testing.md: its Python blocks make a passing test module, its command passes."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs/contract-testing.md").read_text()
PYTHON = re.findall(r"```python\n(.*?)```", DOC, flags=re.S)
SHELL = re.findall(r"```sh\n(.*?)```", DOC, flags=re.S)


def test_the_guide_runs_as_a_test_module(tmp_path: Path) -> None:
    source = "\n\n".join(PYTHON)
    tests = re.findall(r"^def (test_\w+)", source, flags=re.M)
    assert len(tests) >= 4, "docs/contract-testing.md lost its examples"
    module = tmp_path / "test_contract_testing_guide.py"
    module.write_text(source)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:xdist",
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(tmp_path),
            str(module),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=ROOT,
    )
    assert f"{len(tests)} passed" in result.stdout, result.stdout[-4000:] + result.stderr


def test_the_guide_command_passes_on_the_reference_system() -> None:
    commands = [shlex.split(block.replace("\\\n", " ")) for block in SHELL]
    assert commands and all(c[:3] == ["eventwire", "contracts", "test"] for c in commands)
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
