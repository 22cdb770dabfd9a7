"""docs/testing.md: its Python blocks, put together, are a test module that passes."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs/testing.md").read_text()
BLOCKS = re.findall(r"```python\n(.*?)```", DOC, flags=re.S)


def test_the_testing_guide_runs_as_a_test_module(tmp_path: Path) -> None:
    source = "\n\n".join(BLOCKS)
    tests = re.findall(r"^def (test_\w+)", source, flags=re.M)
    assert len(tests) >= 8, "docs/testing.md lost its examples"
    module = tmp_path / "test_testing_guide.py"
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
        timeout=120,
        cwd=ROOT,
    )
    assert f"{len(tests)} passed" in result.stdout, result.stdout[-4000:] + result.stderr
