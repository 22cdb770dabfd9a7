"""Running the suite in a child pytest process and following its results as they arrive.

The child loads only the suite's own plugins (plus pytest-xdist, pytest-timeout and the
modules given with ``--plugin``), so the caller's pytest configuration cannot change how the
suite runs. Broker URLs travel in a file only the user can read, never on a command line.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

from eventwire_conformance._crash_consumer import PLUGINS_VARIABLE, STORE_VARIABLE
from eventwire_conformance._support import RESTART_CWD
from eventwire_conformance.guarantees import IDS

__all__ = ["SessionResult", "SuiteRun", "run_phases", "run_suite"]

SUITE_DIR = Path(__file__).resolve().parent / "suite"
#: A run with no new result for this many test time limits (the longest test may take
#: three), plus `STALL_MARGIN` seconds, is considered hung and stopped.
STALL_LIMITS = 3
STALL_MARGIN = 90.0


@dataclasses.dataclass(frozen=True)
class SuiteRun:
    """What to run: the backends (id -> URL), the guarantees and the options."""

    targets: dict[str, str]
    selected: Sequence[str]
    restart_cmd: str | None = None
    kill_cmd: str | None = None
    node_kill_cmd: str | None = None
    node_start_cmd: str | None = None
    load: int = 1
    workers: str = "1"
    plugins: Sequence[str] = ()
    timeout: float = 120.0
    patience: float = 30.0
    junit_path: Path | None = None
    #: The shared idempotency store for G11 (passed in the environment: it may hold secrets).
    idempotency_store: str | None = None


@dataclasses.dataclass
class SessionResult:
    """What the child reported: result records, its exit status and its output."""

    records: list[dict[str, Any]]
    exitstatus: int
    output: str
    stalled: bool = False


def pytest_command(run: SuiteRun, workdir: Path) -> list[str]:
    """The child's command line (the URLs and results live in files in `workdir`)."""
    ini = workdir / "pytest.ini"
    ini.write_text("[pytest]\n", encoding="utf-8")
    suite = str(SUITE_DIR)
    command = [sys.executable, "-m", "pytest", suite, "-c", str(ini)]
    command += ["--rootdir", suite, "--confcutdir", suite, "-q", "-rfE"]
    command += ["-p", "eventwire_conformance.pytest_plugin", "-p", "eventwire_conformance._results"]
    command += ["-p", "no:cacheprovider"]
    command += ["--eventwire-urls-from", str(workdir / "urls.txt")]
    command += ["--eventwire-results", str(workdir / "results.jsonl")]
    command += ["--eventwire-timeout", str(run.timeout), "--eventwire-patience", str(run.patience)]
    if list(run.selected) != list(IDS):
        command += ["--eventwire-only", ",".join(run.selected)]
    if run.restart_cmd:
        command += ["--eventwire-restart-cmd", run.restart_cmd]
    if run.kill_cmd:
        command += ["--eventwire-kill-cmd", run.kill_cmd]
    if run.node_kill_cmd:
        command += ["--eventwire-node-kill-cmd", run.node_kill_cmd]
    if run.node_start_cmd:
        command += ["--eventwire-node-start-cmd", run.node_start_cmd]
    if run.load != 1:
        command += ["--eventwire-load", str(run.load)]
    for module in run.plugins:
        command += ["-p", module]
    if run.workers != "1":
        command += ["-p", "xdist.plugin", "-n", run.workers]
    if importlib.util.find_spec("pytest_timeout") is not None:
        command += ["-p", "pytest_timeout"]
    if run.junit_path is not None:
        command += ["--junitxml", str(run.junit_path.resolve())]
        command += ["-o", "junit_suite_name=eventwire-conformance"]
    return command


def run_phases(run: SuiteRun, console: Console) -> SessionResult:
    """Run the suite; with several workers, the guarantees that take the broker down run
    alone after everything else.

    G16 restarts the broker, G22 kills it and G23 kills one node of a cluster, which would
    break the connections of tests running beside them in other workers, so they get a
    session of their own with one worker (only when their command is given: without it they
    are not run anyway).
    """
    disruptive = {"G16": run.restart_cmd, "G22": run.kill_cmd, "G23": run.node_kill_cmd}
    serial = [gid for gid in run.selected if disruptive.get(gid)]
    rest = [gid for gid in run.selected if gid not in serial]
    if not serial or not rest or run.workers == "1":
        return run_suite(run, console)
    junit = run.junit_path
    first = run_suite(
        dataclasses.replace(run, selected=rest, junit_path=_part(junit, "rest")), console
    )
    second = run_suite(
        dataclasses.replace(run, selected=serial, workers="1", junit_path=_part(junit, "serial")),
        console,
    )
    if junit is not None:
        _merge_junit(junit, [_part(junit, "rest"), _part(junit, "serial")])
    return SessionResult(
        first.records + second.records,
        max(first.exitstatus, second.exitstatus),
        first.output + second.output,
        first.stalled or second.stalled,
    )


def _part(path: Path | None, name: str) -> Path | None:
    return None if path is None else path.with_name(f".{path.name}.{name}")


def _merge_junit(target: Path, parts: Sequence[Path | None]) -> None:
    """One JUnit file holding the test suites of every part (the parts are removed)."""
    merged = ElementTree.Element("testsuites")
    for part in parts:
        if part is None or not part.exists():
            continue
        root = ElementTree.parse(part).getroot()
        merged.extend(root if root.tag == "testsuites" else [root])
        part.unlink()
    ElementTree.ElementTree(merged).write(target, encoding="utf-8", xml_declaration=True)


def run_suite(run: SuiteRun, console: Console) -> SessionResult:
    """Run the suite in a child process, showing progress on `console`."""
    with tempfile.TemporaryDirectory(prefix="eventwire-conformance-") as tmp:
        workdir = Path(tmp)
        urls = workdir / "urls.txt"
        urls.touch(mode=0o600)
        urls.write_text("".join(url + "\n" for url in run.targets.values()), encoding="utf-8")
        results = workdir / "results.jsonl"
        results.touch()
        command = pytest_command(run, workdir)
        env = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1", RESTART_CWD: os.getcwd()}
        if run.plugins:  # --plugin modules may live in the current directory (as for -m)
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [os.getcwd(), env.get("PYTHONPATH")]))
            env[PLUGINS_VARIABLE] = ",".join(run.plugins)  # for G12's consumer process
        if run.idempotency_store:
            env[STORE_VARIABLE] = run.idempotency_store
        log_path = workdir / "pytest.log"
        with log_path.open("w", encoding="utf-8") as log:
            process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=workdir
            )
            try:
                records, stalled = _follow(
                    process, results, console, run.timeout * STALL_LIMITS + STALL_MARGIN
                )
            finally:
                if process.poll() is None:
                    process.terminate()
                    try:
                        process.wait(10)
                    except subprocess.TimeoutExpired:
                        process.kill()
                        process.wait()
        output = log_path.read_text(encoding="utf-8", errors="replace")
        return SessionResult(records, int(process.returncode), output, stalled)


def _follow(
    process: subprocess.Popen[bytes], results: Path, console: Console, stall: float
) -> tuple[list[dict[str, Any]], bool]:
    """Read the streamed results while pytest runs; returns them, and whether it hung."""
    records: list[dict[str, Any]] = []
    done = 0
    last = time.monotonic()
    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )
    with results.open("r", encoding="utf-8") as stream, progress:
        task = progress.add_task("collecting the suite", total=None)
        pending = ""
        while True:
            finished = process.poll() is not None
            pending += stream.read()
            *lines, pending = pending.split("\n")
            for line in filter(str.strip, lines):
                record = json.loads(line)
                records.append(record)
                last = time.monotonic()
                kind = record.get("event")
                if kind == "collected":
                    progress.update(task, total=record["count"], description="running")
                elif kind == "result" and record["when"] in ("setup", "call"):
                    done += 1
                    label = f"{record['guarantee']} {record['backend']}"
                    progress.update(task, completed=done, description=label)
                    if record["outcome"] in ("failed", "error"):
                        name = str(record["nodeid"]).rsplit("::", 1)[-1]
                        first = (str(record["detail"]).splitlines() or [""])[0][:160]
                        progress.console.print(
                            Text.assemble(("FAILED ", "red"), f"{name}: {first}")
                        )
                elif kind == "collect-error":
                    progress.console.print(
                        Text.assemble(("cannot collect ", "red"), str(record["nodeid"]))
                    )
            if finished:
                return records, False
            if time.monotonic() - last > stall:
                progress.console.print(
                    Text(f"no result for {stall:g}s: stopping the hung test run", style="red")
                )
                return records, True
            time.sleep(0.1)
