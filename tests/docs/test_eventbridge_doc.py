"""docs/backends/eventbridge.md: its AsyncAPI example is what `eventwire asyncapi generate`
writes, and its tables of unsupported guarantees are the ones the backend declares."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from eventwire_eventbridge import CAPABILITIES
from eventwire_eventbridge._info import EMULATOR_UNSUPPORTED

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs/backends/eventbridge.md").read_text()


def _contains(whole: Any, part: Any, path: str = "") -> list[str]:
    """Where `part` is not in `whole` (dicts: every key of `part`; lists: item by item)."""
    if isinstance(part, dict):
        if not isinstance(whole, dict):
            return [f"{path}: not a mapping"]
        return [
            problem
            for key, value in part.items()
            for problem in (
                _contains(whole[key], value, f"{path}/{key}")
                if key in whole
                else [f"{path}/{key}: missing"]
            )
        ]
    if isinstance(part, list):
        if not isinstance(whole, list) or len(whole) != len(part):
            return [f"{path}: {whole!r} is not a list of {len(part)}"]
        return [
            p
            for i, (w, v) in enumerate(zip(whole, part, strict=True))
            for p in _contains(w, v, f"{path}/{i}")
        ]
    return [] if whole == part else [f"{path}: {whole!r} != {part!r}"]


def test_the_asyncapi_example_is_what_the_cli_writes(tmp_path: Path) -> None:
    (source,) = re.findall(r"```python\n(.*?)```", DOC, flags=re.S)
    (excerpt,) = re.findall(r"```yaml\n(.*?)```", DOC, flags=re.S)
    (tmp_path / "shop.py").write_text(source)
    out = tmp_path / "shop.yaml"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "eventwire.cli",
            "asyncapi",
            "generate",
            "shop.py:bus",
            "-o",
            str(out),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert _contains(yaml.safe_load(out.read_text()), yaml.safe_load(excerpt)) == []


def _table_ids(heading: str) -> set[str]:
    section = DOC.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| (G\d\d) ", section, flags=re.M))


def test_the_tables_list_what_the_backend_declares() -> None:
    assert _table_ids("Guarantees and limits") == set(CAPABILITIES.unsupported)
    assert _table_ids("What the emulator is not") == set(EMULATOR_UNSUPPORTED)
