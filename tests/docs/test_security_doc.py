"""docs/security.md: every Python block runs and shows what the page says; its options
tables are those of the backend kit's shared option groups."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from eventwire.backendkit import sync_options_tables

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "security.md"
BLOCKS = re.findall(r"```python\n(.*?)```", PAGE.read_text(), re.S)


def _run(index: int, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    script = tmp_path / f"block{index}.py"
    script.write_text(BLOCKS[index])
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr
    return result


def test_the_page_has_its_examples() -> None:
    assert len(BLOCKS) == 4


def test_the_password_comes_from_a_file_and_shows_nowhere(tmp_path: Path) -> None:
    result = _run(0, tmp_path)
    assert "password read from the file, shown nowhere" in result.stdout, result.stderr


def test_the_same_options_work_on_four_backends(tmp_path: Path) -> None:
    result = _run(1, tmp_path)
    assert "the same options on four backends" in result.stdout, result.stderr


def test_tls_verify_false_logs_a_warning(tmp_path: Path) -> None:
    result = _run(2, tmp_path)
    assert "TLS certificate verification is OFF (tls_verify=false)" in result.stderr


def test_an_unreadable_password_file_is_the_one_line_error_shown(tmp_path: Path) -> None:
    result = _run(3, tmp_path)
    shown = re.search(
        r"prints a one-line error that names the option and the file:\n`(.*?)`",
        PAGE.read_text(),
        re.S,
    )
    assert shown is not None
    assert result.stdout.strip() == " ".join(shown.group(1).split())


def test_the_options_tables_match_the_code() -> None:
    assert sync_options_tables([PAGE]) == [], (
        "run python -m eventwire.backendkit.docs --write docs/security.md"
    )
