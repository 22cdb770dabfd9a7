"""Running one service as its own process: options, start, wait for a signal, close."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from decimal import Decimal
from typing import Any

from eventwire import EventBus


def parser(name: str) -> argparse.ArgumentParser:
    """The options every service understands (a service ignores those it does not use)."""
    p = argparse.ArgumentParser(prog=name, description=f"the {name} of the order example")
    p.add_argument("--url", default="memory://", help="broker URL, e.g. redis://127.0.0.1:6379/0")
    p.add_argument("--db", default=":memory:", help="SQLite file of the service's ledger")
    p.add_argument("--saga-db", default=":memory:", help="SQLite file of the saga store")
    p.add_argument(
        "--limit",
        type=Decimal,
        default=Decimal(1000),
        help="payments over this amount are declined",
    )
    p.add_argument(
        "--failure-rate",
        type=float,
        default=0.0,
        help="share of the other payments declined (deterministic by order id)",
    )
    p.add_argument("--seed", default="eventwire", help="seed of the injected declines")
    p.add_argument("--log-level", default="WARNING")
    p.add_argument(
        "--trace-file",
        default=None,
        help="export this service's OpenTelemetry spans to this file, one JSON "
        "object a line (needs opentelemetry-sdk)",
    )
    return p


def export_spans(name: str, path: str) -> None:
    """Install a global tracer provider that writes every span, as it ends, to `path`
    (the SDK's own console exporter, one JSON line each; service.name = `name`)."""
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor

    out = open(path, "a", encoding="utf-8")  # noqa: SIM115 - open for the process's life
    provider = TracerProvider(resource=Resource.create({"service.name": name}))
    provider.add_span_processor(
        SimpleSpanProcessor(
            ConsoleSpanExporter(out=out, formatter=lambda span: span.to_json(indent=None) + "\n")
        )
    )
    trace.set_tracer_provider(provider)


async def serve(bus: EventBus, *extra: AbstractAsyncContextManager[Any], name: str) -> None:
    """Run until SIGINT or SIGTERM, then close cleanly. Prints ``ready <name>`` once up."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(bus)
        for manager in extra:
            await stack.enter_async_context(manager)
        print(f"ready {name}", flush=True)
        await stop.wait()


def main(
    name: str,
    build: Callable[[argparse.Namespace], tuple[EventBus, Sequence[Any]]],
    argv: Sequence[str] | None = None,
) -> None:
    """Parse options, build the service with `build`, run it."""
    options = parser(name).parse_args(argv)
    logging.basicConfig(
        level=options.log_level.upper(), format=f"%(asctime)s {name} %(levelname)s %(message)s"
    )
    if options.trace_file:
        export_spans(name, options.trace_file)
    bus, extra = build(options)
    asyncio.run(serve(bus, *extra, name=name))


async def publish_after(bus: EventBus, event: Any, cause: Any) -> None:
    """Publish `event` in reaction to the delivery `cause`: same correlation id, caused by it."""
    await bus.publish(event, correlation_id=cause.correlation_id, causation_id=cause.id)
