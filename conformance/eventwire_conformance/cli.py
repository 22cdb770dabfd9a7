"""``eventwire conformance``: run the suite against brokers and print the guarantee matrix.

``eventwire conformance run URL [URL ...]`` checks its input, makes sure every broker
answers, runs the suite with pytest in a child process (`eventwire_conformance._session`:
a crashing or hanging broker client cannot take the runner down), shows progress, and
prints the guarantee x backend matrix. Exit status: 0 when no guarantee failed,
1 when one did, 2 for bad input or an unreachable broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import importlib.util
import os
import sys
import time
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from eventwire_conformance._session import SessionResult, SuiteRun, run_phases
from eventwire_conformance._targets import backend_ids
from eventwire_conformance.guarantees import GUARANTEES, IDS, parse_ids
from eventwire_conformance.report import Report, aggregate, render, write_reports

__all__ = ["conformance"]

CONNECT_TIMEOUT = 15.0


class InputError(click.ClickException):
    """Bad input or an unreachable broker, found before the suite runs (exit status 2)."""

    exit_code = 2


@click.group(name="conformance")
def conformance() -> None:
    """Check that a broker gives eventwire's guarantees (G01-G23)."""


@conformance.command("list")
def list_guarantees() -> None:
    """List the guarantees the suite checks."""
    table = Table(title="eventwire guarantees", title_justify="left")
    table.add_column("id", style="bold")
    table.add_column("name")
    table.add_column("guarantee")
    for guarantee in GUARANTEES.values():
        table.add_row(guarantee.id, guarantee.name, guarantee.statement)
    Console().print(table)


@conformance.command("run")
@click.argument("urls", nargs=-1, required=True, metavar="URL [URL ...]")
@click.option(
    "--only",
    "only",
    multiple=True,
    metavar="IDS",
    help="Only these guarantees, e.g. --only G05,G08 (repeatable).",
)
@click.option(
    "--json",
    "json_path",
    type=click.Path(path_type=Path),
    metavar="PATH",
    help="Write the matrix as JSON.",
)
@click.option(
    "--markdown",
    "markdown_path",
    type=click.Path(path_type=Path),
    metavar="PATH",
    help="Write the matrix as a Markdown table.",
)
@click.option(
    "--junit",
    "junit_path",
    type=click.Path(path_type=Path),
    metavar="PATH",
    help="Write a JUnit XML report (one test case per test and backend).",
)
@click.option(
    "--restart-cmd",
    metavar="CMD",
    help="Shell command that restarts the broker ({backend} is replaced by the "
    "backend's name); without it G16 is not run (reported unsupported).",
)
@click.option(
    "--kill-cmd",
    metavar="CMD",
    help="Shell command that kills the broker with SIGKILL and starts it again, returning "
    "once it answers ({backend} is replaced by the backend's name); without it G22 is "
    "not run (reported unsupported).",
)
@click.option(
    "--node-kill-cmd",
    metavar="CMD",
    help="Shell command that SIGKILLs the cluster node leading a channel ({channel}, {url} "
    "and {backend} are replaced) and prints that node's name as its last line; with "
    "--node-start-cmd it enables G23, otherwise G23 is not run (reported unsupported).",
)
@click.option(
    "--node-start-cmd",
    metavar="CMD",
    help="Shell command that starts a killed cluster node again ({node} is replaced by the "
    "name --node-kill-cmd printed, {backend} by the backend's name), returning once it runs.",
)
@click.option(
    "--load",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    metavar="N",
    help="Multiply the events of G21, G22 and G23 by N (1: a few hundred, seconds).",
)
@click.option(
    "--idempotency-store",
    metavar="URL",
    help="The shared idempotency store every bus uses (redis://, nats://, sqlite:///path, "
    "postgresql://...); default: the backend's own. Without either, G11 is unsupported on "
    "a backend whose members may run in several processes.",
)
@click.option(
    "-n",
    "--workers",
    default="1",
    show_default=True,
    metavar="N|auto",
    help="Run tests in N processes (pytest-xdist).",
)
@click.option(
    "-p",
    "--plugin",
    "plugins",
    multiple=True,
    metavar="MODULE",
    help="Import MODULE first, in the runner and in pytest (e.g. a module that "
    "registers extra backends). Repeatable.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=1),
    default=120.0,
    show_default=True,
    help="Time limit of one test, in seconds.",
)
@click.option(
    "--patience",
    type=click.FloatRange(min=0.1),
    default=30.0,
    show_default=True,
    help="How long a test waits for an expected delivery, in seconds.",
)
@click.option("-v", "--verbose", is_flag=True, help="Show pytest's own output too.")
@click.pass_context
def run(
    ctx: click.Context,
    urls: tuple[str, ...],
    only: tuple[str, ...],
    json_path: Path | None,
    markdown_path: Path | None,
    junit_path: Path | None,
    restart_cmd: str | None,
    kill_cmd: str | None,
    node_kill_cmd: str | None,
    node_start_cmd: str | None,
    load: int,
    idempotency_store: str | None,
    workers: str,
    plugins: tuple[str, ...],
    timeout: float,
    patience: float,
    verbose: bool,
) -> None:
    """Run the conformance suite against each broker URL and print the guarantee matrix."""
    console = Console()
    try:
        selected = parse_ids(only) if only else list(IDS)
    except ValueError as exc:
        raise InputError(f"--only: {exc}") from None
    for option, path in (
        ("--json", json_path),
        ("--markdown", markdown_path),
        ("--junit", junit_path),
    ):
        if path is not None:
            _check_writable(path, option)
    workers = _check_workers(workers)
    _import_plugins(plugins)
    if idempotency_store is not None:
        _check_store(idempotency_store)
    targets = backend_ids(urls)
    shown = _preflight(targets, console)

    started = time.monotonic()
    session = run_phases(
        SuiteRun(
            targets=targets,
            selected=selected,
            restart_cmd=restart_cmd,
            kill_cmd=kill_cmd,
            node_kill_cmd=node_kill_cmd,
            node_start_cmd=node_start_cmd,
            load=load,
            idempotency_store=idempotency_store,
            workers=workers,
            plugins=plugins,
            timeout=timeout,
            patience=patience,
            junit_path=junit_path,
        ),
        console,
    )
    if verbose:
        console.print(session.output, markup=False, highlight=False)
    report = aggregate(session.records, shown, selected)
    report.duration = time.monotonic() - started
    _add_notes(report, session, console)
    render(report, console)
    write_reports(report, json_path=json_path, markdown_path=markdown_path)
    for label, path in (("JSON", json_path), ("Markdown", markdown_path), ("JUnit", junit_path)):
        if path is not None:
            console.print(f"{label} report: {path}")
    ctx.exit(1 if report.failed else 0)


@conformance.command("soak")
@click.argument("url", metavar="URL")
@click.option(
    "--duration",
    default="10m",
    show_default=True,
    help="How long to publish and make chaos: 30s, 10m, 1h.",
)
@click.option("--kill-cmd", metavar="CMD", help="Shell command that SIGKILLs the broker and "
              "starts it again (broker crashes are part of the chaos when given).")  # fmt: skip
@click.option("--restart-cmd", metavar="CMD", help="Shell command that restarts the broker "
              "gracefully (broker restarts are part of the chaos when given).")  # fmt: skip
@click.option("--consumers", type=click.IntRange(min=1), default=2, show_default=True)
@click.option("--publishers", type=click.IntRange(min=1), default=4, show_default=True)
@click.option("--keys", type=click.IntRange(min=1), default=32, show_default=True)
@click.option("--seed", type=int, help="Seed of the random chaos (to repeat a run).")
@click.option(
    "-p", "--plugin", "plugins", multiple=True, metavar="MODULE",
    help="Import MODULE first (e.g. a module that registers extra backends). Repeatable.",
)  # fmt: skip
@click.pass_context
def soak_command(
    ctx: click.Context,
    url: str,
    duration: str,
    kill_cmd: str | None,
    restart_cmd: str | None,
    consumers: int,
    publishers: int,
    keys: int,
    seed: int | None,
    plugins: tuple[str, ...],
) -> None:
    """Bounded chaos against one broker: publishers and competing consumers on many keys,
    consumers SIGKILLed (and the broker killed or restarted, with the commands) at random;
    then what was lost, duplicated or out of order. Exit 1 on any loss or order violation."""
    from eventwire_conformance._crash_consumer import PLUGINS_VARIABLE
    from eventwire_conformance.soak import SoakOptions, parse_duration, soak

    try:
        seconds = parse_duration(duration)
    except ValueError as exc:
        raise InputError(f"--duration: {exc}") from None
    _import_plugins(plugins)
    os.environ[PLUGINS_VARIABLE] = ",".join(plugins)  # the consumer processes load them too
    console = Console()
    _preflight({"soak": url}, console)
    options = SoakOptions(url, seconds, kill_cmd, restart_cmd, publishers, keys, consumers, seed)
    result = asyncio.run(soak(options, lambda line: console.print(line, highlight=False)))
    for line in result.lines():
        console.print(line, highlight=False)
    console.print("[green]no loss, no order violation[/]" if result.ok else "[bold red]FAILED[/]")
    ctx.exit(0 if result.ok else 1)


def _import_plugins(plugins: tuple[str, ...]) -> None:
    if plugins and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # like python -m: modules of the current directory
    for module in plugins:
        try:
            importlib.import_module(module)
        except Exception as exc:
            raise InputError(f"--plugin {module}: cannot import it: {exc}") from None


# -- checks before the run ---------------------------------------------------------------------


def _check_store(url: str) -> None:
    """A store URL no installed plugin serves (or whose client is missing) is bad input."""
    from eventwire import EventwireError
    from eventwire.plugins import open_idempotency_store

    try:
        open_idempotency_store(url)
    except EventwireError as exc:
        raise InputError(f"--idempotency-store: {exc}") from None


def _check_writable(path: Path, option: str) -> None:
    if path.is_dir():
        raise InputError(f"{option} {path}: is a directory; give a file name")
    parent = path.parent
    if not parent.is_dir():
        raise InputError(f"{option} {path}: directory {parent} does not exist")
    existed = path.exists()
    try:
        with path.open("a", encoding="utf-8"):
            pass
    except OSError as exc:
        raise InputError(f"{option} {path}: cannot be written: {exc.strerror or exc}") from None
    if not existed:
        path.unlink()


def _check_workers(workers: str) -> str:
    value = workers.strip().lower()
    if value != "auto" and not (value.isdigit() and int(value) >= 1):
        raise InputError(f"-n {workers}: give a number of workers >= 1 or 'auto'")
    if value != "1" and importlib.util.find_spec("xdist") is None:
        raise InputError(f"-n {workers} needs pytest-xdist: pip install pytest-xdist")
    return value


def _preflight(targets: dict[str, str], console: Console) -> dict[str, str]:
    """Check every URL is served by a backend whose broker answers; returns redacted URLs."""
    from eventwire import EventwireError, create_backend, redact_url

    shown: dict[str, str] = {}
    for name, url in targets.items():
        try:
            backend = create_backend(url)
        except EventwireError as exc:
            raise InputError(str(exc)) from None
        shown[name] = redact_url(backend.url or url)
        problem = asyncio.run(_connect(backend))
        if problem is not None:
            raise InputError(f"cannot reach the {name} broker at {shown[name]}: {problem}")
        console.print(f"[green]ok[/] {name}: {shown[name]} answers")
    return shown


async def _connect(backend: Any) -> str | None:
    try:
        await asyncio.wait_for(backend.connect(), CONNECT_TIMEOUT)
    except TimeoutError:
        return f"no connection within {CONNECT_TIMEOUT:g}s; is the broker running?"
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(backend.close(), 10)
    return None


def _add_notes(report: Report, session: SessionResult, console: Console) -> None:
    errors = [r for r in session.records if r.get("event") == "collect-error"]
    for error in errors:
        report.notes.append(f"collection error in {error['nodeid']}: {error['detail']}")
    if session.stalled:
        report.notes.append("the test run hung and was stopped; tests without a result failed")
    status = session.exitstatus
    if status not in (0, 1) or errors:
        report.notes.append(f"pytest exited with status {status}")
        tail = "\n".join(session.output.strip().splitlines()[-30:])
        console.print(f"[red]pytest exited with status {status}; its last output:[/]")
        console.print(tail, markup=False, highlight=False)
