"""docs/running.md: its service runs under ``eventwire run`` as described, and its option
table is the command's."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

from tests.runner._service import lines, start, wait_until

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs/running.md").read_text()
BLOCKS = re.findall(r"```python\n(.*?)```", DOC, flags=re.S)


def test_the_documented_service_starts_handles_and_drains(tmp_path: Path) -> None:
    [service] = BLOCKS
    (tmp_path / "svc.py").write_text(service)
    process = start(["svc.py:bus"], tmp_path)
    try:
        wait_until(lambda: "invoicing o-1" in lines(tmp_path / "out.txt"), "the handler")
        process.send_signal(signal.SIGTERM)  # the handler is still sleeping: it must finish
        assert process.wait(timeout=30) == 0, (tmp_path / "err.txt").read_text()
    finally:
        process.kill()
    assert lines(tmp_path / "out.txt") == [
        "startup: pool open",
        "invoicing o-1",
        "invoiced o-1 with connected pool",
        "shutdown: pool closed",
    ]


def test_the_option_table_lists_exactly_the_commands_options() -> None:
    table = DOC.split("## Options", 1)[1].split("##", 1)[0]
    documented = set(re.findall(r"`(--[a-z-]+)", table))
    help_text = subprocess.run(
        [sys.executable, "-m", "eventwire.cli", "run", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    offered = set(re.findall(r"^\s+(--[a-z-]+)", help_text, flags=re.M)) - {"--help"}
    assert documented == offered
