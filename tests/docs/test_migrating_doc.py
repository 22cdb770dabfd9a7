"""docs/migrating-from-faststream.md: every Python block runs and prints what the page says.

The side-by-side block needs Kafka (``broker`` marker); the others run anywhere.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGE = (ROOT / "docs/migrating-from-faststream.md").read_text()
BLOCKS = re.findall(r"```python\n(.*?)```", PAGE, re.S)
MERMAID = re.findall(r"```mermaid\n(.*?)```", PAGE, re.S)


def _run(index: int, tmp_path: Path) -> str:
    script = tmp_path / f"block{index}.py"
    script.write_text(BLOCKS[index])
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return result.stdout


def test_the_page_keeps_its_three_examples() -> None:
    assert len(BLOCKS) == 3


def test_a_faststream_message_is_accepted_and_a_bad_one_dead_lettered(tmp_path: Path) -> None:
    out = _run(0, tmp_path)
    assert "shipping o-1: id orders/0, source legacy-orders, correlation req-1" in out
    assert "dead letter: invalid payload is not a valid OrderPlaced" in out
    for line in out.splitlines():
        assert line in PAGE, f"the page does not say what the example prints: {line!r}"


@pytest.mark.broker
def test_both_services_on_one_kafka_broker(tmp_path: Path) -> None:
    out = _run(1, tmp_path)
    assert "the FastStream service got ['o-1', 'warm-up']" in out
    assert out.strip() in PAGE


def test_both_asyncapi_documents_in_one_flow_picture(tmp_path: Path) -> None:
    out = _run(2, tmp_path)
    assert out.strip() == MERMAID[0].strip()
    assert 'legacy_orders -->|"OrderPlaced"| shipping' in out
    assert 'shipping -->|"OrderShipped"| legacy_orders' in out
