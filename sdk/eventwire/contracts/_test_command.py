"""``eventwire contracts test``: the service's code against its contract, in process."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import click
from rich.console import Console
from rich.table import Table

from eventwire.contracts._commands import clear_errors, make_console
from eventwire.contracts._runner import CHECKS, ContractTestReport, Options, run_contract_test

__all__ = ["render_junit", "render_report", "test"]


@click.command("test")
@click.argument("document", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--app", "target", required=True, help="The service's bus: MODULE:BUS or file.py:BUS."
)
@click.option("--examples-only", is_flag=True, help="Send only the contract's examples.")
@click.option(
    "--max-cases",
    type=click.IntRange(min=0),
    default=25,
    show_default=True,
    help="Generated valid messages per received message (on top of the examples and one "
    "case per coverage target).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    default=2.0,
    show_default=True,
    help="Seconds to wait for a declared follow-up message.",
)
@click.option(
    "--url",
    help="Run the service's bus on this broker (kafka://, amqp://, redis://, nats://, "
    "sqlite://...) instead of a fresh embedded memory:// one; the contract's channels must "
    "carry nothing else while it runs.",
)
@click.option("--junit", type=click.Path(dir_okay=False, path_type=Path), help="Write JUnit XML.")
@click.option(
    "--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), help="Write JSON."
)
@clear_errors
def test(
    document: Path,
    target: str,
    examples_only: bool,
    max_cases: int,
    timeout: float,
    url: str | None,
    junit: Path | None,
    json_path: Path | None,
) -> None:
    """Run the service's handlers (--app) against the messages DOCUMENT says it receives.

    Sends the examples, one case per coverage target and --max-cases generated messages
    through the real pipeline, then one invalid message per violation; checks that handlers
    never fail on valid messages (a failure is shrunk to a minimal case), that everything
    published is declared by a send operation and valid, that declared follow-ups (reply,
    x-eventwire-emits) come with the correlation id, and that invalid messages are
    dead-lettered as 'invalid' without reaching a handler. Exit 1 on any violation.
    """
    from eventwire.contracts._bus_target import load_bus
    from eventwire.contracts._load import load_document

    loaded = load_document(document)
    bus = load_bus(target)
    options = Options(examples_only=examples_only, max_cases=max_cases, timeout=timeout, url=url)
    console = make_console()
    where = f" on {url}" if url else ""
    title = [f"contract tests of {target} against {document}{where}"]

    def progress(line: str) -> None:
        while title:  # once the bus runs: a broker that cannot be reached prints one line
            console.print(title.pop(), style="bold", markup=False)
        console.print(f"  {line}", style="dim", markup=False)

    quiet = logging.getLogger("eventwire")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)  # dead letters and retries are what the report is about
    try:
        report = asyncio.run(
            run_contract_test(loaded, bus, options, progress=progress, source=str(document))
        )
    finally:
        quiet.setLevel(level)
    render_report(console, report)
    if junit is not None:
        junit.parent.mkdir(parents=True, exist_ok=True)
        junit.write_text(render_junit(report), encoding="utf-8")
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(report.to_json(), indent=2, default=str), "utf-8")
    if not report.ok:
        raise click.exceptions.Exit(1)


def render_report(console: Console, report: ContractTestReport) -> None:
    """The findings, the checks and the coverage table."""
    for finding in report.findings:
        console.print(
            f"FAIL {finding.check} {finding.message} (operation {finding.operation}), "
            f"case {finding.case}: {finding.problem}",
            style="red",
            markup=False,
        )
        if finding.payload is not None:
            payload = json.dumps(finding.payload, default=str)
            console.print(f"     payload: {payload}", markup=False)
        for line in finding.detail.splitlines():
            console.print(f"     {line}", style="dim", markup=False)
    checks = Table(title="checks", title_justify="left")
    for column in ("message", "operation", "check", "cases", "result"):
        checks.add_column(column)
    for result in report.results:
        verdict = f"[red]{len(result.findings)} violation(s)[/]" if result.findings else "ok"
        checks.add_row(result.message, result.operation, result.check, str(result.cases), verdict)
    console.print(checks)
    coverage = Table(title="coverage", title_justify="left")
    for column in ("message", "channel", "exercised", "produced", ""):
        coverage.add_column(column)
    for item in report.coverage:
        style = "" if item.exercised or item.produced else "yellow"
        coverage.add_row(
            item.name,
            ", ".join(c for c in item.channels if not c.endswith(".dlq")),
            str(item.exercised),
            str(item.produced),
            item.status,
            style=style,
        )
    console.print(coverage)
    total = sum(r.cases for r in report.results if r.check == "handler")
    if report.ok:
        console.print(
            f"ok: {len(report.results)} checks passed ({total} valid cases) on {report.url}",
            style="green bold",
            markup=False,
        )
    else:
        console.print(
            f"FAILED: {len(report.findings)} violation(s) ({total} valid cases) on {report.url}",
            style="red bold",
            markup=False,
        )


def render_junit(report: ContractTestReport) -> str:
    """JUnit XML: one test case per check and received message."""
    suite = ElementTree.Element(
        "testsuite",
        name=f"eventwire contracts test {report.document}",
        tests=str(len(report.results)),
        failures=str(sum(1 for r in report.results if r.findings)),
    )
    for result in report.results:
        case = ElementTree.SubElement(
            suite,
            "testcase",
            classname=result.operation,
            name=f"{result.check} {result.message}",
        )
        ElementTree.SubElement(case, "properties").extend(
            [_property("cases", str(result.cases)), _property("means", CHECKS[result.check])]
        )
        if result.findings:
            failure = ElementTree.SubElement(
                case, "failure", message=result.findings[0].problem, type=result.check
            )
            failure.text = "\n\n".join(
                f"case {f.case}: {f.problem}\npayload: {json.dumps(f.payload, default=str)}"
                + (f"\n{f.detail}" if f.detail else "")
                for f in result.findings
            )
    return ElementTree.tostring(suite, encoding="unicode", xml_declaration=True) + "\n"


def _property(name: str, value: Any) -> ElementTree.Element:
    return ElementTree.Element("property", name=name, value=str(value))
