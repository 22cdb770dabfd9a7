"""The README's examples are true: every Python block runs, and the quick start matches its file."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"```python\n(.*?)```", README, flags=re.S)


def test_readme_has_python_examples() -> None:
    assert BLOCKS, "README.md lost its Python examples"


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_python_block_runs(index: int, tmp_path: Path) -> None:
    script = tmp_path / f"block{index}.py"
    script.write_text(BLOCKS[index])
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr


def test_quickstart_block_is_the_example_file_and_prints_its_outcome() -> None:
    example = (ROOT / "docs/examples/quickstart.py").read_text()
    assert example.split('"""', 2)[2].lstrip() in BLOCKS
    result = subprocess.run(
        [sys.executable, "docs/examples/quickstart.py"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    assert "reserved: ['o-1']" in result.stdout
    assert "dead letter: max-attempts ValueError after 5 attempts" in result.stdout


def test_readme_quick_start_has_exactly_two_commands() -> None:
    quick = README.split("## Quick start", 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in quick.splitlines()]
    assert [c for c in commands if c] == ["make demo", "make test"]
    ci = (ROOT / ".ci/run").read_text()
    assert "make test" in ci
