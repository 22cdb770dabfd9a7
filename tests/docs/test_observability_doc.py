"""docs/observability.md: every Python block runs and prints what the page says."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TEXT = (ROOT / "docs/observability.md").read_text()
BLOCKS = re.findall(r"```python\n(.*?)```", TEXT, re.S)


def _run(index: int, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    script = tmp_path / f"block{index}.py"
    script.write_text(BLOCKS[index])
    return subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )


def _block(marker: str) -> int:
    return next(i for i, block in enumerate(BLOCKS) if marker in block)


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_block_runs(index: int, tmp_path: Path) -> None:
    result = _run(index, tmp_path)
    assert result.returncode == 0, result.stderr


def test_the_tracing_example_prints_one_chain_of_spans(tmp_path: Path) -> None:
    result = _run(_block("InMemorySpanExporter()"), tmp_path)
    lines = result.stdout.splitlines()
    names = [line.split(" parent=")[0] for line in lines]
    assert names == [
        "send orders [PRODUCER]",
        "process orders [CONSUMER]",
        "send shipments [PRODUCER]",
    ], result.stdout + result.stderr
    assert lines[0].endswith("parent=None")
    assert lines[1].split("parent=")[1] != lines[2].split("parent=")[1]


def test_the_prometheus_example_prints_the_documented_counters(tmp_path: Path) -> None:
    result = _run(_block("prometheus.serve"), tmp_path)
    shown = re.sub(r'type="[^"]*"', 'type="..."', result.stdout).strip()
    documented = re.search(r"prints\n\n```\n(.*?)```", TEXT[TEXT.index("prometheus.serve") :], re.S)
    assert documented is not None
    assert shown == documented.group(1).strip(), result.stdout + result.stderr


def test_the_json_log_line_lists_the_documented_fields() -> None:
    line = re.search(r"```json\n(.*?)\n```", TEXT, re.S)
    assert line is not None
    from eventwire.observability.logs import FIELDS

    for field in FIELDS:
        assert f'"{field}"' in line.group(1)


PERF = (ROOT / "docs/performance.md").read_text()
RUN_PY = re.search(r"with `run.py`:\n\n```python\n(.*?)```", PERF, re.S)


@pytest.mark.parametrize("mode", ["api-noop", "sdk-unsampled", "sdk-recording"])
def test_the_cost_measurement_script_runs(mode: str, tmp_path: Path) -> None:
    assert RUN_PY is not None
    script = tmp_path / "run.py"
    script.write_text(RUN_PY.group(1))
    args = ["bench", "memory://", "--runners", "eventwire", "--only", "drain", "-n", "100"]
    result = subprocess.run(
        [sys.executable, str(script), mode, *args, "--rounds", "1", "--json", "out.json"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr + result.stdout
    assert (tmp_path / "out.json").exists()
