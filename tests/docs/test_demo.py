"""``make demo`` (the README's first command) keeps working: its recipe runs and produces output."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _recipe(target: str) -> list[str]:
    text = (ROOT / "Makefile").read_text()
    body = re.search(rf"^{target}:.*\n((?:\t.*\n)+)", text, flags=re.M)
    assert body, f"Makefile has no {target} target"
    return [line.strip() for line in body.group(1).splitlines()]


def test_demo_recipe_runs_the_conformance_matrix_and_writes_the_docs() -> None:
    venv = str(Path(sys.executable).parent.parent)
    for line in _recipe("demo"):
        command = line.replace("$(VENV)", venv)
        done = subprocess.run(
            shlex.split(command), cwd=ROOT, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, f"{command}\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
    report = json.loads((ROOT / "build/conformance-memory.json").read_text())
    results = report["backends"]["memory"]["results"]
    assert sorted(results) == [f"G{i:02d}" for i in range(1, 24)]
    assert {r["status"] for r in results.values()} <= {"passed", "unsupported"}
    assert "OrderPlaced" in (ROOT / "build/asyncapi/orders.yaml").read_text()
    assert (ROOT / "build/asyncapi/html/index.html").stat().st_size > 0
