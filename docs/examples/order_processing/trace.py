"""One order's trace across the four service processes, and its picture.

Runs the orchestration version's four services as processes on a real broker, each
exporting its OpenTelemetry spans to a file (``--trace-file``); places one order that
completes and one whose payment is declined (so the saga compensates); then reads the
span files back and draws the declined order's trace as an SVG timeline::

    python -m docs.examples.order_processing.trace --url redis://127.0.0.1:6379/0 \\
        --out /tmp/order-trace --svg docs/images/order-trace.svg

``tests/examples/test_order_trace.py`` runs the same on each real broker and checks the
traces' structure.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import html
import json
import subprocess
import sys
import uuid
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from pathlib import Path

from eventwire import EventBus

from docs.examples.order_processing.observer import Observer, wait_for
from docs.examples.order_processing.system import make_order

ROOT = Path(__file__).resolve().parents[3]
SERVICES = ("inventory", "payment", "shipping", "order")
LIMIT = "500"  # payment declines any order over this
CLIENT = "checkout"  # the process placing the orders (this one)


@dataclasses.dataclass(frozen=True)
class Span:
    """One exported span, as much of it as the checks and the picture need."""

    service: str
    name: str
    kind: str
    trace_id: str
    span_id: str
    parent_id: str | None
    start: float
    end: float
    attributes: dict[str, object]

    @property
    def message_type(self) -> str:
        """The short CloudEvents type of the message sent or processed ("" for others)."""
        return str(self.attributes.get("cloudevents.event_type", "")).rsplit(".", 1)[-1]

    @classmethod
    def from_json(cls, data: dict[str, object]) -> Span:
        context = data["context"]
        resource = data["resource"]
        assert isinstance(context, dict) and isinstance(resource, dict)
        return cls(
            service=str(resource["attributes"].get("service.name", "?")),
            name=str(data["name"]),
            kind=str(data["kind"]).removeprefix("SpanKind."),
            trace_id=str(context["trace_id"]),
            span_id=str(context["span_id"]),
            parent_id=str(data["parent_id"]) if data.get("parent_id") else None,
            start=_seconds(str(data["start_time"])),
            end=_seconds(str(data["end_time"])),
            attributes=dict(data.get("attributes") or {}),  # type: ignore[call-overload]
        )


def _seconds(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def load(paths: Iterable[Path]) -> list[Span]:
    """Every span in the files (one JSON object a line)."""
    spans = []
    for path in paths:
        if path.exists():
            for line in path.read_text().splitlines():
                if line.strip():
                    spans.append(Span.from_json(json.loads(line)))
    return spans


def trace_of(spans: Sequence[Span], order_id: str) -> list[Span]:
    """The spans of the trace the order's ``send orders`` (its root) started, by start."""
    (root,) = [
        s
        for s in spans
        if s.parent_id is None
        and s.kind == "PRODUCER"
        and s.attributes.get("messaging.message.conversation_id") == order_id
    ]
    return sorted((s for s in spans if s.trace_id == root.trace_id), key=lambda s: s.start)


# -- running the system ------------------------------------------------------------------


@contextlib.contextmanager
def services(url: str, out: Path, seed: str) -> Iterator[None]:
    """The four services as processes, each exporting to ``out/<name>.jsonl``."""
    procs: list[subprocess.Popen[str]] = []
    try:
        for name in SERVICES:
            args = [
                sys.executable,
                "-m",
                f"docs.examples.order_processing.orchestration.{name}",
                "--url",
                url,
                "--db",
                str(out / f"{name}.db"),
                "--saga-db",
                str(out / "sagas.db"),
                "--limit",
                LIMIT,
                "--seed",
                seed,
                "--trace-file",
                str(out / f"{name}.jsonl"),
            ]
            log = (out / f"{name}.log").open("a")
            proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=log, text=True)
            procs.append(proc)
            assert proc.stdout is not None
            line = proc.stdout.readline()
            if not line.startswith("ready"):
                raise RuntimeError(f"{name} did not start: {(out / f'{name}.log').read_text()}")
        yield
    finally:
        for proc in procs:  # SIGTERM: each closes its bus; its spans are already written
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()


def _client_provider(path: Path) -> object:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": CLIENT}))
    out = path.open("a", encoding="utf-8")
    provider.add_span_processor(
        SimpleSpanProcessor(
            ConsoleSpanExporter(out=out, formatter=lambda span: span.to_json(indent=None) + "\n")
        )
    )
    return provider


def run(url: str, out: Path) -> tuple[str, str]:
    """Place a completed and a declined order through the four processes; their ids.
    The spans are in ``out/*.jsonl`` afterwards."""
    out.mkdir(parents=True, exist_ok=True)
    seed = uuid.uuid4().hex[:8]
    completed = make_order(1, "40.00", prefix=f"t{seed}")
    declined = make_order(2, "900.00", prefix=f"t{seed}")

    async def place() -> None:
        seen = Observer(url, group=f"observer-{seed}")
        seen.bus.tracing = False
        client = EventBus(
            url,
            source="order",
            tracing=_client_provider(out / f"{CLIENT}.jsonl"),  # type: ignore[arg-type]
            metrics=False,
        )
        async with seen.bus, client:
            for order in (completed, declined):
                await client.publish(order, correlation_id=order.order_id)
            ids = {completed.order_id, declined.order_id}
            await wait_for(lambda: seen.finished(ids), timeout=120, what="both orders ended")
            await wait_for(
                lambda: declined.order_id in seen.released,
                timeout=30,
                what="the declined order's stock released",
            )

    with services(url, out, seed):  # on leaving, each closes its bus: in-flight spans end
        asyncio.run(place())
    return completed.order_id, declined.order_id


# -- the picture -------------------------------------------------------------------------

COLORS = {
    CLIENT: "#6b7280",
    "order": "#2563eb",
    "inventory": "#16a34a",
    "payment": "#dc2626",
    "shipping": "#d97706",
}
ROW, LABEL, BAR, PAD = 18, 560, 480, 10


def to_svg(spans: Sequence[Span], title: str) -> str:
    """A timeline: one row per span by start time, indented by depth, a bar per duration,
    coloured by service."""
    by_id = {s.span_id: s for s in spans}

    def depth(span: Span) -> int:
        d, seen = 0, span
        while seen.parent_id in by_id:
            seen, d = by_id[seen.parent_id], d + 1
        return d

    t0 = min(s.start for s in spans)
    total = max(s.end for s in spans) - t0 or 1.0
    width = LABEL + BAR + 2 * PAD
    top = 48
    height = top + ROW * len(spans) + 40
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'font-family="sans-serif" font-size="11">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{PAD}" y="20" font-size="14" font-weight="bold">{html.escape(title)}</text>',
        f'<text x="{PAD + LABEL}" y="40" fill="#555">0 ms</text>',
        f'<text x="{width - PAD}" y="40" fill="#555" text-anchor="end">'
        f"{total * 1000:.0f} ms</text>",
    ]
    for i, span in enumerate(spans):
        y = top + i * ROW
        color = COLORS.get(span.service, "#7c3aed")
        x = PAD + LABEL + (span.start - t0) / total * BAR
        w = max(2.0, (span.end - span.start) / total * BAR)
        label = f"{span.service}: {span.name}"
        if span.message_type:
            label += f" ({span.message_type})"
        if i % 2 == 0:
            parts.append(f'<rect x="0" y="{y}" width="{width}" height="{ROW}" fill="#f5f5f5"/>')
        parts.append(
            f'<text x="{PAD + 12 * depth(span)}" y="{y + 13}" fill="{color}">'
            f"{html.escape(label)}</text>"
        )
        parts.append(
            f'<rect x="{x:.1f}" y="{y + 4}" width="{w:.1f}" height="{ROW - 8}" '
            f'fill="{color}"><title>{html.escape(label)} '
            f"({(span.end - span.start) * 1000:.1f} ms)</title></rect>"
        )
    y = top + ROW * len(spans) + 24
    x = PAD
    for service, color in COLORS.items():
        if any(s.service == service for s in spans):
            parts.append(f'<rect x="{x}" y="{y - 10}" width="10" height="10" fill="{color}"/>')
            parts.append(f'<text x="{x + 14}" y="{y}">{service}</text>')
            x += 24 + 7 * len(service)
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--url", required=True, help="a real broker, e.g. redis://127.0.0.1:6379/0")
    p.add_argument("--out", type=Path, required=True, help="directory for the span files")
    p.add_argument("--svg", type=Path, required=True, help="where to write the picture")
    options = p.parse_args(argv)
    _, declined = run(options.url, options.out)
    spans = trace_of(load(options.out.glob("*.jsonl")), declined)
    processes = len({s.service for s in spans})
    title = (
        f"Order {declined}, payment declined: one trace, {len(spans)} spans, {processes} processes"
    )
    options.svg.write_text(to_svg(spans, title))
    print(f"{len(spans)} spans of trace {spans[0].trace_id} -> {options.svg}")


if __name__ == "__main__":
    main()
