"""docs/middlewares.md: every Python block runs; the last one prints what it claims."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BLOCKS = re.findall(r"```python\n(.*?)```", (ROOT / "docs/middlewares.md").read_text(), re.S)


def _run(index: int, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    script = tmp_path / f"block{index}.py"
    script.write_text(BLOCKS[index])
    return subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, cwd=ROOT
    )


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_block_runs(index: int, tmp_path: Path) -> None:
    result = _run(index, tmp_path)
    assert result.returncode == 0, result.stderr


def test_the_tenant_travels_into_logs_and_the_next_message(tmp_path: Path) -> None:
    result = _run(len(BLOCKS) - 1, tmp_path)
    assert "tenant carried: acme" in result.stdout, result.stdout + result.stderr
    assert "acme invoicing o-1" in result.stderr
