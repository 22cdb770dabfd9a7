"""Generated documents and the reference contracts pass the official @asyncapi/parser.

Needs Node.js and npm; the first run installs tests/contracts/parser/node_modules from the
npm registry (``npm ci``).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result

from tests._tools import missing

from .conftest import REFERENCE_APP, V1, V2, V3

PARSER = Path(__file__).parent / "parser"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def parser() -> Callable[..., list[dict[str, object]]]:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        missing("Node.js and npm are needed for the official AsyncAPI parser")
    if not (PARSER / "node_modules" / "@asyncapi" / "parser").is_dir():
        command = "ci" if (PARSER / "package-lock.json").exists() else "install"
        subprocess.run(
            [npm, command, "--no-audit", "--no-fund"],
            cwd=PARSER,
            check=True,
            capture_output=True,
            timeout=600,
        )

    def parse(*files: Path) -> list[dict[str, object]]:
        done = subprocess.run(
            [node, "validate.mjs", *map(str, files)],
            cwd=PARSER,
            capture_output=True,
            text=True,
            timeout=120,
        )
        return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]

    return parse


def test_reference_contracts(parser: Callable[..., list[dict[str, object]]]) -> None:
    results = parser(V1, V2, V3)
    assert [r["errors"] for r in results] == [[], [], []]


def test_generated_document(
    parser: Callable[..., list[dict[str, object]]], run: Callable[..., Result], tmp_path: Path
) -> None:
    out = tmp_path / "generated.json"
    assert (
        run("asyncapi", "generate", f"{REFERENCE_APP}:bus", "--format", "json", "-o", out).exit_code
        == 0
    )
    assert parser(out)[0]["errors"] == []


def test_parser_catches_errors(
    parser: Callable[..., list[dict[str, object]]], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(V1.read_text().replace("action: send", "action: publish", 1))
    assert parser(bad)[0]["errors"]
