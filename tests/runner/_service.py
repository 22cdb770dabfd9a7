"""Helpers to run ``eventwire run`` as a real process and talk to it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

EVENTWIRE = [sys.executable, "-m", "eventwire.cli"]


def start(args: list[str], cwd: Path, **env: str) -> subprocess.Popen[str]:
    """``eventwire run ARGS`` in `cwd`; its output goes to ``out.txt`` and ``err.txt`` there."""
    with (cwd / "out.txt").open("w") as out, (cwd / "err.txt").open("w") as err:
        return subprocess.Popen(
            [*EVENTWIRE, "run", *args],
            cwd=cwd,
            stdout=out,
            stderr=err,
            text=True,
            env={**os.environ, **env},
        )


def run(args: list[str], cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*EVENTWIRE, "run", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


def wait_until(condition: Any, what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def health_port(log_file: Path) -> int | None:
    found = re.search(
        r"http://[\d.]+:(\d+)/livez", log_file.read_text() if log_file.exists() else ""
    )
    return int(found.group(1)) if found else None


def get(port: int, path: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())
