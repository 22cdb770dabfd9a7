"""Running ``eventwire conformance run`` and the pytest form in child processes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
FAULTY = "tests.conformance.faulty_backends"
#: The file whose existence means "the leading node is down" to ``unreplicated://``.
NODE_DOWN_VARIABLE = "EVENTWIRE_TEST_NODE_DOWN"
CLI = "import sys; from eventwire.cli import main; sys.exit(main())"


def run_cli(*args: str, timeout: float = 170) -> subprocess.CompletedProcess[str]:
    """``eventwire *args`` from the repository root; never raises on a non-zero exit."""
    return subprocess.run(
        [sys.executable, "-c", CLI, *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def run_suite(
    url: str, tmp_path: Path, *options: str, workers: int = 1
) -> tuple[int, dict[str, Any], str]:
    """``eventwire conformance run URL`` with the faulty backends loaded and short waits;
    returns (exit status, JSON report, output)."""
    report = tmp_path / "report.json"
    done = run_cli(
        "conformance",
        "run",
        url,
        "--plugin",
        FAULTY,
        "--json",
        str(report),
        "--patience",
        "3",
        "--timeout",
        "60",
        "-n",
        str(workers),
        *options,
    )
    output = done.stdout + done.stderr
    assert report.exists(), f"no report written (exit {done.returncode}):\n{output[-3000:]}"
    return done.returncode, json.loads(report.read_text()), output


def run_pytest(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``python -m pytest *args`` in `cwd`, with the repository importable."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:hypothesispytest",
            *args,
        ],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=_env(),
    )


def _env() -> dict[str, str]:
    import os

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env
