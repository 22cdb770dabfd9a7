"""docs/batch-handlers.md: the example runs and prints what the page says it prints."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TEXT = (ROOT / "docs/batch-handlers.md").read_text()


def test_the_example_prints_what_the_page_shows(tmp_path: Path) -> None:
    (example,) = re.findall(r"```python\n(.*?)```", TEXT, re.S)
    shown = re.search(r"prints\n\n```\n(.*?)```", TEXT, re.S)
    assert shown is not None
    script = tmp_path / "example.py"
    script.write_text(example)
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == shown.group(1)
