"""What the docs tests share: a guide whose Python blocks, put together, are a pytest module
(run it and count passes), and a script of ``docs/examples`` run as a module."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def python_blocks(text: str) -> list[str]:
    """The ```python blocks of a Markdown text, in order."""
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def run_as_test_module(
    blocks: list[str], tmp_path: Path, *, name: str, at_least: int, timeout: float
) -> None:
    """Write `blocks` as one test module and assert that every test function in it passes."""
    source = "\n\n".join(blocks)
    tests = re.findall(r"^def (test_\w+)", source, flags=re.M)
    assert len(tests) >= at_least, f"{name} lost its examples"
    stem = re.sub(r"\W", "_", name)
    module = tmp_path / f"test_{stem}.py"
    module.write_text(source)
    pytest = [sys.executable, "-m", "pytest", "-q", "-p", "no:xdist", "-p", "no:cacheprovider"]
    result = subprocess.run(
        [*pytest, "--rootdir", str(tmp_path), str(module)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )
    assert f"{len(tests)} passed" in result.stdout, result.stdout[-4000:] + result.stderr


def run_example(module: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``python -m docs.examples.<module> <args>`` from the repository root, its output kept."""
    return subprocess.run(
        [sys.executable, "-m", f"docs.examples.{module}", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
