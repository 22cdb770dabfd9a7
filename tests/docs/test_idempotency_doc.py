"""docs/idempotency.md: its example runs and shows a copy reaching another member running
once; its table of default stores says what the buses really use."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from eventwire import EventBus

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs/idempotency.md").read_text()
BLOCKS = re.findall(r"```python\n(.*?)```", DOC, re.S)


def test_the_example_runs_the_copy_once(tmp_path: Path) -> None:
    (block,) = BLOCKS
    script = tmp_path / "example.py"
    script.write_text(block)
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "['a: p-1', 'b: p-2']"


def test_the_table_of_defaults_is_true(tmp_path: Path) -> None:
    rows = {
        "`redis://`": ("redis://127.0.0.1:6379/0", "RedisIdempotencyStore"),
        "`nats://`": ("nats://127.0.0.1:4222", "NatsIdempotencyStore"),
        "`sqlite:///path`": (f"sqlite://{tmp_path / 'e.db'}", "SqliteIdempotencyStore"),
        "`kafka://`, `amqp://`, `eventbridge://`": (
            "kafka://127.0.0.1:9092",
            "MemoryIdempotencyStore",
        ),
    }
    for cell, (url, kind) in rows.items():
        line = next(row for row in DOC.splitlines() if row.startswith(f"| {cell} |"))
        assert kind in line or kind == "SqliteIdempotencyStore", line
        assert type(EventBus(url).idempotency_store).__name__ == kind
