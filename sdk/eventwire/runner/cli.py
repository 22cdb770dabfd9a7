"""``eventwire run MODULE:BUS``: run a service until SIGTERM, then drain and exit 0."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import shlex
import sys
from pathlib import Path

import click

from eventwire.errors import ConfigurationError
from eventwire.observability import prometheus
from eventwire.runner._load import load_target
from eventwire.runner._logs import LEVELS, configure_logging
from eventwire.runner._serve import serve
from eventwire.runner._workers import STATUS_FD, WORKER, supervise, worker_command
from eventwire.urls import url_scheme

log = logging.getLogger("eventwire.run")


@click.command()
@click.argument("target")
@click.option(
    "--factory", is_flag=True, help="TARGET is a function (sync or async) returning the bus."
)
@click.option("--url", help="Broker URL to use instead of the bus's own (e.g. kafka://host:9092).")
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Worker processes, each a member of the bus's consumer groups.",
)
@click.option(
    "--reload",
    is_flag=True,
    help="Restart when a .py file under the current folder changes (development).",
)
@click.option(
    "--health-port",
    type=click.IntRange(0, 65535),
    help="Serve GET /livez and /readyz on this port (0: any free port, logged).",
)
@click.option(
    "--health-host", default="0.0.0.0", show_default=True, help="Address of the health endpoint."
)
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    help="Serve Prometheus metrics at /metrics on this port (0: any free port, logged); "
    "needs eventwire[prometheus].",
)
@click.option("--metrics-host", default="0.0.0.0", show_default=True, help="Address of /metrics.")
@click.option(
    "--drain-timeout",
    type=click.FloatRange(min=0),
    help="Seconds in-flight handlers get after SIGTERM (default: the bus's close_timeout).",
)
@click.option(
    "--no-gc-freeze",
    is_flag=True,
    help="Leave Python's garbage collector alone. By default what exists once the service is "
    "loaded (modules, the app) is exempted from its full collections (gc.freeze).",
)
@click.option(
    "--log-level",
    type=click.Choice(LEVELS, case_sensitive=False),
    default="info",
    show_default=True,
)
@click.option(
    "--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True
)
def run(
    target: str,
    factory: bool,
    url: str | None,
    workers: int,
    reload: bool,
    health_port: int | None,
    health_host: str,
    metrics_port: int | None,
    metrics_host: str,
    drain_timeout: float | None,
    no_gc_freeze: bool,
    log_level: str,
    log_format: str,
) -> None:
    """Run the EventBus TARGET (module:bus or file.py:bus) as a service.

    Starts it (on_startup hooks, then every subscription), serves until SIGTERM or SIGINT,
    then stops fetching, lets in-flight handlers finish and settle, runs the on_shutdown
    hooks, disconnects and exits 0. A second signal stops at once (exit 1).
    """
    worker = os.environ.get(WORKER, "")
    configure_logging(log_level, log_format, worker=worker)
    if url is not None:
        url_scheme(url)  # a malformed URL is a usage error, before anything starts
    if reload and workers > 1:
        raise click.UsageError("--reload runs one process; use it without --workers")
    if metrics_port is not None and workers > 1:
        raise click.UsageError(
            "--metrics-port serves the metrics of one process; with --workers run one "
            "'eventwire run --metrics-port' per process instead"
        )
    argv = ["run", target, "--log-level", log_level, "--log-format", log_format]
    argv += ["--factory"] if factory else []
    argv += ["--url", url] if url is not None else []
    argv += ["--drain-timeout", str(drain_timeout)] if drain_timeout is not None else []
    argv += ["--no-gc-freeze"] if no_gc_freeze else []
    if metrics_port is not None:
        argv += ["--metrics-port", str(metrics_port), "--metrics-host", metrics_host]
    if reload:
        _reload(argv + _health_args(health_port, health_host), drain_timeout)
        return
    if workers > 1:
        bus = asyncio.run(load_target(target, factory=factory))
        backend = bus.backend if url is None else None
        scheme = url_scheme(url) if url is not None else None
        shared = backend.capabilities.cross_process if backend is not None else scheme != "memory"
        if not shared:
            raise ConfigurationError(
                f"--workers {workers}: the {url or bus.url} broker lives inside one process, "
                "so workers cannot share it; run one worker, or give a broker URL with --url"
            )
        code = asyncio.run(
            supervise(
                worker_command(argv),
                workers,
                health_port=health_port,
                health_host=health_host,
            )
        )
        sys.exit(code)
    fd = os.environ.get(STATUS_FD)
    code = asyncio.run(
        _serve_target(
            target,
            factory=factory,
            url=url,
            health_port=health_port,
            health_host=health_host,
            metrics_port=metrics_port,
            metrics_host=metrics_host,
            drain_timeout=drain_timeout,
            gc_freeze=not no_gc_freeze,
            status_fd=int(fd) if fd else None,
        )
    )
    sys.exit(code)


async def _serve_target(
    target: str,
    *,
    factory: bool,
    url: str | None,
    health_port: int | None,
    health_host: str,
    metrics_port: int | None,
    metrics_host: str,
    drain_timeout: float | None,
    gc_freeze: bool,
    status_fd: int | None,
) -> int:
    if metrics_port is not None:
        port = prometheus.serve(metrics_port, metrics_host)
        log.info("metrics on http://%s:%d/metrics", metrics_host, port)
    bus = await load_target(target, factory=factory)
    if url is not None:
        bus._rebind(url)
    if gc_freeze:
        # What is loaded now lives as long as the process: left in the collector's oldest
        # generation, every full collection would walk it again (most of their cost in a
        # busy consumer). Frozen objects are still freed when nothing refers to them.
        gc.collect()
        gc.freeze()
    return await serve(
        bus,
        health_port=health_port,
        health_host=health_host,
        drain_timeout=drain_timeout,
        status_fd=status_fd,
    )


def _health_args(port: int | None, host: str) -> list[str]:
    return [] if port is None else ["--health-port", str(port), "--health-host", host]


def _reload(argv: list[str], drain_timeout: float | None) -> None:
    try:
        import watchfiles
    except ImportError:
        raise ConfigurationError(
            "--reload needs the watchfiles package: pip install 'eventwire[reload]'"
        ) from None
    command = shlex.join(worker_command(argv))
    log.info("reloading on changes to .py files under %s", Path.cwd())

    def changed(changes: set[tuple[watchfiles.Change, str]]) -> None:
        log.info("changed: %s; restarting", ", ".join(sorted({path for _, path in changes})))

    watchfiles.run_process(
        Path.cwd(),
        target=command,
        target_type="command",
        callback=changed,
        watch_filter=watchfiles.PythonFilter(),
        sigint_timeout=int((drain_timeout or 30) + 5),
    )
