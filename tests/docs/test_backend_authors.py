"""The backend-author guide's examples run: its ``python`` blocks, in order, in one process."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GUIDE = (ROOT / "docs" / "backend-authors.md").read_text()
BLOCKS = re.findall(r"```python\n(.*?)```", GUIDE, flags=re.S)


def test_the_guide_has_runnable_examples_and_they_run(tmp_path: Path) -> None:
    assert len(BLOCKS) >= 2, "docs/backend-authors.md lost its runnable examples"
    script = tmp_path / "guide.py"
    script.write_text("\n\n".join(BLOCKS))
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr[-3000:]
