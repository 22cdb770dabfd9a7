"""docs/testing.md: its Python blocks, put together, are a test module that passes."""

from __future__ import annotations

from pathlib import Path

from tests.docs._guide import ROOT, python_blocks, run_as_test_module

DOC = (ROOT / "docs/testing.md").read_text()


def test_the_testing_guide_runs_as_a_test_module(tmp_path: Path) -> None:
    run_as_test_module(
        python_blocks(DOC), tmp_path, name="docs/testing.md", at_least=8, timeout=120
    )
