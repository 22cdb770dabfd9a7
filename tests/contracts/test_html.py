"""``eventwire asyncapi html``: an offline page, checked in headless Chromium.

Needs the Debian ``chromium`` package (``apt-get install -y chromium``, done by ``make test``);
without it the test is skipped, except in the full run (``EVENTWIRE_BROKERS=1``) where it fails.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result

from tests._tools import missing

from .conftest import V1

pytestmark = pytest.mark.slow

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    # any outside request fails: the page must render from its own files only
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--virtual-time-budget=10000",
    "--dump-dom",
]


def test_page_files(run: Callable[..., Result], tmp_path: Path) -> None:
    result = run("asyncapi", "html", V1, "-o", tmp_path / "site")
    assert result.exit_code == 0, result.output
    page = (tmp_path / "site" / "index.html").read_text()
    assert '<meta charset="utf-8">' in page
    assert "favicon" not in page and "http" not in page.split("<script>")[0]
    assert {p.name for p in (tmp_path / "site").iterdir()} >= {
        "index.html",
        "asyncapi-react.js",
        "asyncapi-react.min.css",
        "LICENSE",
    }


def test_renders_offline_in_chromium(run: Callable[..., Result], tmp_path: Path) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        missing("chromium is not installed (apt-get install -y chromium)")
    assert run("asyncapi", "html", V1, "-o", tmp_path / "site").exit_code == 0
    done = subprocess.run(
        [
            browser,
            *FLAGS,
            f"--user-data-dir={tmp_path / 'profile'}",
            (tmp_path / "site" / "index.html").as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    dom = done.stdout
    # ids the viewer renders (they are not in the embedded document)
    for rendered in (
        'id="operations"',
        'id="operation-send-sendOrderPlaced"',
        'id="server-memory"',
    ):
        assert rendered in dom, rendered
    for name in ("inventory.commands", "OrderPlaced", "ReserveInventory"):
        assert dom.count(name) > 1
