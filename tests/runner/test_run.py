"""``eventwire run`` on the embedded broker: lifespan, drain on SIGTERM, health, bad input."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ._service import EVENTWIRE, get, health_port, lines, run, start, wait_until

APP = textwrap.dedent(
    """
    import asyncio
    from pathlib import Path

    from eventwire import Event, EventBus

    HERE = Path(__file__).parent


    class Job(Event, channel="run-jobs"):
        n: int


    bus = EventBus(source="worker")


    def note(text: str) -> None:
        with open(HERE / "trace.txt", "a") as trace:
            trace.write(text + "\\n")


    @bus.on_startup
    async def feed() -> None:
        note("startup")
        await bus.publish(Job(n=1))


    @bus.on_shutdown
    def bye() -> None:
        note("shutdown")


    @bus.subscribe(Job, group="jobs", from_beginning=True)
    async def work(job: Job) -> None:
        note(f"started {job.n}")
        while not (HERE / "release").exists():
            await asyncio.sleep(0.02)
        note(f"done {job.n}")


    def make() -> EventBus:
        return bus


    async def make_async() -> EventBus:
        return bus


    not_a_bus = 42
    """
)


@pytest.fixture
def app(tmp_path: Path) -> Path:
    (tmp_path / "app.py").write_text(APP)
    return tmp_path


def test_sigterm_drains_the_running_handler_then_exits_0(app: Path) -> None:
    process = start(["app.py:bus", "--health-port", "0", "--log-format", "json"], app)
    try:
        port = wait_until(lambda: health_port(app / "err.txt"), "the health endpoint")
        wait_until(lambda: get(port, "/readyz")[0] == 200, "readiness")
        assert get(port, "/livez") == (200, {"alive": True})
        wait_until(lambda: "started 1" in lines(app / "trace.txt"), "the handler to start")
        process.send_signal(signal.SIGTERM)
        status, body = wait_until(
            lambda: (answer := get(port, "/readyz"))[1]["state"] == "draining" and answer,
            "readiness to report the drain",
        )
        assert (status, body["ready"]) == (503, False)
        assert get(port, "/livez")[0] == 200  # alive while draining
        (app / "release").touch()
        assert process.wait(timeout=30) == 0, (app / "err.txt").read_text()
    finally:
        process.kill()
    assert lines(app / "trace.txt") == ["startup", "started 1", "done 1", "shutdown"]
    records = [json.loads(line) for line in lines(app / "err.txt")]  # --log-format json
    messages = [r["message"] for r in records]
    assert any(m.startswith("ready: worker on memory://") for m in messages)
    assert any(m.startswith("SIGTERM: draining") for m in messages)
    assert {r["level"] for r in records} == {"info"}


def test_a_second_signal_stops_without_waiting(app: Path) -> None:
    process = start(["app.py:make", "--factory"], app)
    try:
        wait_until(lambda: "started 1" in lines(app / "trace.txt"), "the handler to start")
        process.send_signal(signal.SIGINT)
        wait_until(lambda: "SIGINT: draining" in (app / "err.txt").read_text(), "the drain")
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 1
    finally:
        process.kill()
    assert "done 1" not in lines(app / "trace.txt")
    assert "stopping now, without draining" in (app / "err.txt").read_text()


def test_an_async_factory_is_awaited(app: Path) -> None:
    (app / "release").touch()
    process = start(["app.py:make_async", "--factory"], app)
    try:
        wait_until(lambda: "done 1" in lines(app / "trace.txt"), "the event to be handled")
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        process.kill()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["app"], "'app' is not MODULE:BUS; write e.g. 'shop.orders:bus'"),
        (["app.py:nothing"], "app.py:nothing: app.py has no attribute 'nothing'"),
        (["nosuch.py:bus"], "nosuch.py:bus: no such file nosuch.py"),
        (["no_such_module:bus"], "importing no_such_module failed: ModuleNotFoundError"),
        (
            ["app.py:make"],
            "app.py:make is a function, not an eventwire EventBus (it is callable: add --factory)",
        ),
        (["app.py:not_a_bus", "--factory"], "--factory needs a function that returns an EventBus"),
        (
            ["app.py:bus", "--workers", "2"],
            "--workers 2: the memory:// broker lives inside one process",
        ),
        (["app.py:bus", "--url", "nohost"], "'nohost' is not a backend URL"),
        (["app.py:bus", "--url", "foo://x"], "no installed backend serves 'foo://x'"),
        (["app.py:bus", "--reload", "--workers", "2"], "--reload runs one process"),
        (["app.py:bus", "--workers", "0"], "Invalid value for '--workers'"),
        (["app.py:bus", "--log-format", "xml"], "Invalid value for '--log-format'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(app: Path, args: list[str], message: str) -> None:
    result = run(args, app)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len([line for line in result.stderr.splitlines() if line]) <= 3  # usage, hint, error
    assert not (app / "trace.txt").exists()  # nothing started


def test_reload_without_watchfiles_names_the_extra(app: Path) -> None:
    code = (
        "import sys; sys.modules['watchfiles'] = None\n"
        "from eventwire.cli import main\n"
        "main(['run', 'app.py:bus', '--reload'])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=app, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert result.stderr.strip().endswith(
        "--reload needs the watchfiles package: pip install 'eventwire[reload]'"
    )
    assert "Traceback" not in result.stderr


def test_reload_restarts_the_service_when_a_file_changes(app: Path) -> None:
    (app / "release").touch()
    process = start(["app.py:bus", "--reload"], app)
    try:
        wait_until(lambda: lines(app / "trace.txt").count("done 1") == 1, "the first run")
        (app / "app.py").write_text(APP.replace('note("startup")', 'note("startup again")'))
        wait_until(lambda: "startup again" in lines(app / "trace.txt"), "the restart", 60)
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    finally:
        process.kill()
    trace = lines(app / "trace.txt")
    assert trace.index("shutdown") < trace.index("startup again")  # the old one drained first


def test_run_is_listed(app: Path) -> None:
    result = subprocess.run([*EVENTWIRE, "--help"], capture_output=True, text=True, timeout=60)
    assert "run" in result.stdout.split("Commands:", 1)[1]


FROZEN_APP = textwrap.dedent(
    """
    import gc
    from pathlib import Path

    from eventwire import EventBus

    bus = EventBus(source="frozen")


    @bus.on_startup
    def report() -> None:
        (Path(__file__).parent / "frozen.txt").write_text(str(gc.get_freeze_count()))
    """
)


@pytest.mark.parametrize(("flag", "frozen"), [([], True), (["--no-gc-freeze"], False)])
def test_the_loaded_service_is_exempt_from_full_collections_unless_told_not_to(
    tmp_path: Path, flag: list[str], frozen: bool
) -> None:
    (tmp_path / "frozen_app.py").write_text(FROZEN_APP)
    process = start(["frozen_app.py:bus", *flag], tmp_path)
    try:
        count = wait_until(lambda: "\n".join(lines(tmp_path / "frozen.txt")), "the startup hook")
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0, (tmp_path / "err.txt").read_text()
    finally:
        process.kill()
    assert (int(count) > 10_000) is frozen, count
