"""The report: a rich table (median and min-max of the rounds, ratios) and the same as JSON."""

from __future__ import annotations

import datetime
import json
import statistics
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from eventwire.urls import redact_url
from rich.console import Console
from rich.table import Table

from eventwire_conformance.bench.harness import BenchResult, Spread
from eventwire_conformance.bench.model import KINDS
from eventwire_conformance.bench.validation import TARGET_US

__all__ = ["SHORT_ROUND", "TARGETS", "print_table", "short_rounds", "to_json", "write_json"]

MIB = 1024 * 1024
TITLES = {
    "publish": "publish awaited, msg/s",
    "publish_many": "publish_many, msg/s",
    "e2e": "e2e consume, msg/s",
    "drain": "drain, msg/s",
    "latency": "latency p50, ms",
}
LEGEND = (
    "publish awaited: one publish at a time, each confirmed by the broker. publish_many: "
    "pipelined batches. e2e: consumer running while the events are published (first publish "
    "to last handled). drain: consume a pre-filled channel (first to last handled). latency: "
    "publish -> handler, one event at a time. RSS growth: peak process RSS while draining "
    "minus RSS before. Cells: median, below it min-max of the rounds."
)
NAMES = {
    "eventwire": "eventwire",
    "eventwire_batch": "eventwire batch API",
    "faststream": "FastStream",
    "faststream_confirmed": "FastStream, same guarantees",
    "raw": "raw client",
}
#: Always a column (shown with a dash when not measured); the others only when measured.
ALWAYS = ("eventwire", "faststream", "raw")
#: The ratio columns: (mine, other).
RATIOS = (
    ("eventwire", "faststream"),
    ("eventwire", "faststream_confirmed"),
    ("eventwire", "raw"),
    ("eventwire_batch", "raw"),
)
#: What "faststream_confirmed" adds to FastStream's default, per backend.
_HELD = {
    "rabbit": "persistent, confirmed, quorum queue",
    "kafka": "idempotent acks=all producer, commit after the handler",
}
#: (id, figure, metric, mine, other, minimum ratio mine/other, wording). A target against
#: "faststream" is held against "faststream_confirmed" instead where that row was measured
#: (RabbitMQ and Kafka: FastStream's default does less than eventwire promises).
TARGETS = (
    ("publish-vs-faststream", "publish", "rate", "eventwire", "faststream", 1.0,
     "publish awaited >= 1.0x FastStream"),
    ("publish-many-vs-faststream", "publish_many", "rate", "eventwire", "faststream", 1.0,
     "publish_many >= 1.0x FastStream"),
    ("consume-e2e-vs-faststream", "e2e", "rate", "eventwire", "faststream", 1.0,
     "consume while publishing >= 1.0x FastStream"),
    ("consume-drain-vs-faststream", "drain", "rate", "eventwire", "faststream", 1.0,
     "drain >= 1.0x FastStream"),
    ("drain-vs-raw", "drain", "rate", "eventwire", "raw", 0.5, "drain >= 0.5x raw drain"),
    ("publish-many-vs-raw", "publish_many", "rate", "eventwire", "raw", 0.8,
     "publish_many >= 0.8x raw pipelined"),
    ("batch-drain-vs-raw", "drain", "rate", "eventwire_batch", "raw", 0.8,
     "drain with the batch API >= 0.8x raw drain"),
)  # fmt: skip
#: Rounds shorter than this many seconds move a lot from one run to the next on a shared
#: machine (Kafka publish_many at N=20,000: 0.55x to 0.94x raw in two runs a minute apart;
#: at N=100,000, 0.77x to 0.93x over seven runs); the report says which figures had them.
SHORT_ROUND = 1.0
_VERSIONS = (
    "eventwire",
    "faststream",
    "aiokafka",
    "aio-pika",
    "redis",
    "hiredis",
    "nats-py",
    "pydantic",
)


def _ratio(
    result: BenchResult, figure: str, metric: str, other: str, mine: str = "eventwire"
) -> float | None:
    ours = result.stat(figure, mine, metric)
    theirs = result.stat(figure, other, metric)
    if ours is None or theirs is None or theirs.median == 0:
        return None
    return ours.median / theirs.median


def _spread_json(stat: Spread | None, scale: float = 1.0) -> dict[str, Any] | None:
    if stat is None:
        return None
    return {
        "median": stat.median / scale,
        "min": stat.low / scale,
        "max": stat.high / scale,
        "rounds": [v / scale for v in stat.values],
    }


def _versions() -> dict[str, str]:
    found: dict[str, str] = {}
    for name in _VERSIONS:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found


def targets(result: BenchResult) -> list[dict[str, Any]]:
    """Each target with the measured ratio and whether it is met (``None``: not measured)."""
    confirmed = any(s.kind == "faststream_confirmed" for s in result.samples)
    rows = []
    for ident, figure, metric, mine, other, minimum, text in TARGETS:
        if other == "faststream":
            if confirmed:
                other = "faststream_confirmed"
                text += f" held to eventwire's guarantees ({_HELD.get(result.backend, '')})"
            else:
                text += " default"
        ratio = _ratio(result, figure, metric, other, mine)
        rows.append(
            {
                "id": ident,
                "target": text,
                "against": other,
                "ratio": ratio,
                "minimum": minimum,
                "met": None if ratio is None else ratio >= minimum,
            }
        )
    return rows


def short_rounds(result: BenchResult) -> dict[str, float]:
    """The figures (latency aside) whose rounds took under `SHORT_ROUND` seconds for some
    row, with that row's median round in seconds."""
    short: dict[str, float] = {}
    for figure in result.config.figures:
        if figure == "latency":
            continue
        medians = [
            statistics.median(seconds)
            for kind in KINDS
            if (
                seconds := [
                    s.seconds for s in result.samples if (s.figure, s.kind) == (figure, kind)
                ]
            )
        ]
        if medians and min(medians) < SHORT_ROUND:
            short[figure] = min(medians)
    return short


def to_json(result: BenchResult) -> dict[str, Any]:
    """The run as a JSON-ready dict (the same numbers as the table)."""
    config = result.config
    figures: dict[str, Any] = {}
    for figure in config.figures:
        entry: dict[str, Any] = {"unit": "msg/s"}
        for kind in KINDS:
            samples = [s for s in result.samples if s.figure == figure and s.kind == kind]
            if not samples:
                entry[kind] = None
                continue
            row: dict[str, Any] = {
                "msg_per_s": _spread_json(result.stat(figure, kind)),
                "events": samples[0].events,
                "received": [s.received for s in samples],
                "duplicates": [s.duplicates for s in samples],
                "seconds": [s.seconds for s in samples],
            }
            if figure == "latency":
                row["p50_ms"] = _spread_json(result.stat(figure, kind, "p50_ms"))
                row["p99_ms"] = _spread_json(result.stat(figure, kind, "p99_ms"))
            if figure == "drain":
                row["rss_growth_mib"] = _spread_json(result.stat(figure, kind, "rss_growth"), MIB)
            entry[kind] = row
        metric = "p50_ms" if figure == "latency" else "rate"
        entry["ratio"] = {
            f"{mine}/{other}": _ratio(result, figure, metric, other, mine) for mine, other in RATIOS
        }
        if figure == "latency":
            entry["ratio_of"] = "p50 latency (above 1: eventwire is slower)"
        figures[figure] = entry
    return {
        "schema": "eventwire-bench/1",
        "run_id": result.run_id,
        "url": redact_url(config.url),
        "backend": result.backend,
        "started_at": datetime.datetime.fromtimestamp(result.started_at, datetime.UTC).isoformat(),
        "duration_s": result.duration,
        "config": {
            "events": config.events,
            "size": config.size,
            "keys": config.keys,
            "concurrency": config.concurrency,
            "rounds": config.rounds,
            "batch": config.batch,
            "latency_samples": min(config.events, config.latency_samples),
            "figures": list(config.figures),
        },
        "runners": {
            kind: {
                "available": kind in result.labels,
                "label": result.labels.get(kind),
                "reason": result.unavailable.get(kind),
            }
            for kind in KINDS
        },
        "figures": figures,
        "events_verified": all(s.received == s.events for s in result.samples),
        "peak_rss_bytes": result.peak_rss,
        "peak_rss_mib": result.peak_rss / MIB,
        "targets": targets(result),
        "short_rounds_s": short_rounds(result),
        "contract_validation": _validation_json(result),
        "cleanup": {"deleted": result.deleted, "error": result.cleanup_error},
        "versions": _versions(),
    }


def _validation_json(result: BenchResult) -> dict[str, Any] | None:
    cost = result.validation
    if cost is None:
        return None
    return {
        "unit": "us/event",
        "target_us": TARGET_US,
        "met": cost.met,
        "messages": {
            kind: {"compiled": compiled, "jsonschema_alone": alone}
            for kind, (compiled, alone) in cost.per_message.items()
        },
    }


def write_json(result: BenchResult, path: Path) -> None:
    path.write_text(json.dumps(to_json(result), indent=2) + "\n", encoding="utf-8")


def _cell(stat: Spread | None, digits: int = 0, scale: float = 1.0) -> str:
    if stat is None:
        return "—"
    fmt = f"{{:,.{digits}f}}"
    text = fmt.format(stat.median / scale)
    if len(stat.values) > 1:
        text += f"\n[dim]{fmt.format(stat.low / scale)}-{fmt.format(stat.high / scale)}[/dim]"
    return text


def _ratio_cell(ratio: float | None) -> str:
    return "—" if ratio is None else f"{ratio:.2f}x"


def print_table(result: BenchResult, console: Console | None = None) -> None:
    """Print the run as a table: medians with the min-max of the rounds, and the ratios."""
    console = console or Console()
    if not console.is_terminal:
        console.width = max(console.width, 120)
    config = result.config
    table = Table(
        title=f"eventwire bench {redact_url(config.url)} ({result.backend} backend): "
        f"N={config.events:,}, {config.size} B payload, {config.keys} keys, "
        f"concurrency {config.concurrency}, median of {config.rounds} round(s) (min-max)",
        title_justify="left",
    )
    measured = {s.kind for s in result.samples}
    kinds = [kind for kind in KINDS if kind in ALWAYS or kind in measured]
    ratios = [
        (mine, other)
        for mine, other in RATIOS
        if (mine == "eventwire" and (other in ALWAYS or other in measured))
        or (mine in measured and other in measured)
    ]
    table.add_column("figure", style="bold")
    for kind in kinds:
        table.add_column(NAMES[kind], justify="right")
    for mine, other in ratios:
        table.add_column(f"{NAMES[mine]} / {NAMES[other]}", justify="right")
    rows: list[tuple[str, str, str, int, float]] = []
    for figure in config.figures:
        if figure == "latency":
            rows.append((TITLES["latency"], figure, "p50_ms", 3, 1.0))
            rows.append(("latency p99, ms", figure, "p99_ms", 3, 1.0))
        else:
            rows.append((TITLES[figure], figure, "rate", 0, 1.0))
        if figure == "drain":
            rows.append(("drain RSS growth, MiB", figure, "rss_growth", 1, MIB))
    for title, figure, metric, digits, scale in rows:
        cells = [_cell(result.stat(figure, kind, metric), digits, scale) for kind in kinds]
        shares = [
            _ratio_cell(_ratio(result, figure, metric, other, mine)) for mine, other in ratios
        ]
        table.add_row(title, *cells, *shares)
    console.print(table)
    console.print(LEGEND, style="dim")
    verified = all(s.received == s.events for s in result.samples)
    duplicates = sum(s.duplicates for s in result.samples)
    console.print(
        f"every event received: {'yes' if verified else '[red]NO[/red]'} "
        f"({len(result.samples)} measurements, {duplicates} duplicate deliveries); "
        f"peak RSS {result.peak_rss / MIB:,.1f} MiB; {result.duration:,.1f} s; run {result.run_id}"
    )
    for kind in KINDS:
        if kind in result.labels:
            console.print(f"  [bold]{NAMES[kind]}[/bold]: {result.labels[kind]}")
        elif kind in result.unavailable:
            console.print(f"  [bold]{NAMES[kind]}[/bold]: [yellow]{result.unavailable[kind]}[/]")
    for row in targets(result):
        if row["met"] is None:
            continue
        mark = "[green]met[/green]" if row["met"] else "[yellow]not met[/yellow]"
        console.print(f"  target {row['target']}: {row['ratio']:.2f}x {mark}")
    cost = result.validation
    if cost is not None:
        mark = "[green]met[/green]" if cost.met else "[yellow]not met[/yellow]"
        each = ", ".join(
            f"{kind} {compiled:.1f} µs (jsonschema alone {alone:.0f} µs)"
            for kind, (compiled, alone) in cost.per_message.items()
        )
        console.print(
            f"  target contract validation < {TARGET_US:.0f} µs per event: {each}; {mark}"
        )
    if short := short_rounds(result):
        each = ", ".join(f"{figure} {seconds:.2f} s" for figure, seconds in short.items())
        console.print(
            f"  [yellow]short rounds[/yellow] ({each}, the shortest row's median): ratios from "
            f"rounds under {SHORT_ROUND:g} s move a lot between runs; raise -n for steadier ones"
        )
    deleted = len(result.deleted)
    if result.cleanup_error:
        console.print(f"[yellow]cleanup: {result.cleanup_error}[/yellow]")
    elif deleted:
        console.print(f"  cleanup: deleted {deleted} broker object(s) of this run")
