"""The guarantee x backend matrix: built from test results, written as JSON, Markdown or a
rich table.

Status of one guarantee on one backend:

- ``failed``: a test of it failed, errored, was skipped without a declared reason, or never
  reported a result (a crashed worker, a hung broker);
- ``unsupported``: its tests were skipped as unsupported (the backend declares it, or the run
  lacks what it needs, e.g. a restart command for G16), with the reason;
- ``passed``: every test of it ran and passed;
- ``not-run``: not selected (``--only``).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from rich.console import Console
from rich.table import Table
from rich.text import Text

from eventwire_conformance.guarantees import GUARANTEES, IDS, UNSUPPORTED_PREFIX

__all__ = [
    "BackendResults",
    "Outcome",
    "Report",
    "aggregate",
    "render",
    "to_json",
    "to_markdown",
    "write_reports",
]

Status = Literal["passed", "failed", "unsupported", "not-run"]


@dataclasses.dataclass
class Outcome:
    """The verdict for one guarantee on one backend, and why."""

    status: Status
    detail: str = ""
    tests: dict[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class BackendResults:
    """One backend's column of the matrix."""

    url: str
    results: dict[str, Outcome]


@dataclasses.dataclass
class Report:
    """The whole matrix plus run metadata."""

    backends: dict[str, BackendResults]
    selected: list[str]
    duration: float = 0.0
    notes: list[str] = dataclasses.field(default_factory=list)

    @property
    def failed(self) -> bool:
        """Whether any selected guarantee failed on any backend."""
        return any(o.status == "failed" for b in self.backends.values() for o in b.results.values())


def _test_name(nodeid: str) -> str:
    return nodeid.rsplit("::", 1)[-1]


def _test_verdict(phases: list[Mapping[str, Any]]) -> tuple[str, str]:
    """(``passed``/``failed``/``unsupported``, detail) of one test from its reported phases."""
    for phase in phases:
        if phase["outcome"] in ("failed", "error"):
            when = "" if phase["when"] == "call" else f" (in {phase['when']})"
            return "failed", f"{phase['detail']}{when}"
    for phase in phases:
        if phase["outcome"] == "skipped":
            detail = str(phase["detail"])
            if detail.startswith(UNSUPPORTED_PREFIX):
                return "unsupported", detail.removeprefix(UNSUPPORTED_PREFIX).strip()
            return "failed", f"skipped without a declared reason: {detail}"
    for phase in phases:
        if phase["when"] == "call" and phase["outcome"] == "passed":
            return "passed", str(phase.get("detail") or "")
    return "failed", "no result for the test body"


def aggregate(
    records: Iterable[Mapping[str, Any]],
    targets: Mapping[str, str],
    selected: Sequence[str],
    *,
    missing_reason: str = "no result: the test did not report (crashed, hung or not collected)",
) -> Report:
    """The matrix from the runner's result records (see `eventwire_conformance._results`).

    `targets` maps backend id to its (already redacted) URL; `selected` is the guarantees
    that were asked for. Every guarantee id appears for every backend.
    """
    phases: dict[tuple[str, str], dict[str, list[Mapping[str, Any]]]] = {}
    for record in records:
        if record.get("event") != "result":
            continue
        key = (str(record["backend"]), str(record["guarantee"]))
        phases.setdefault(key, {}).setdefault(str(record["nodeid"]), []).append(record)

    backends: dict[str, BackendResults] = {}
    for backend, url in targets.items():
        results: dict[str, Outcome] = {}
        for gid in IDS:
            if gid not in selected:
                results[gid] = Outcome("not-run", "not selected")
                continue
            tests = phases.get((backend, gid))
            if not tests:
                results[gid] = Outcome("failed", missing_reason)
                continue
            verdicts = {_test_name(n): _test_verdict(p) for n, p in sorted(tests.items())}
            outcome = _combine(verdicts)
            results[gid] = outcome
        backends[backend] = BackendResults(url, results)
    return Report(backends, list(selected))


def _combine(verdicts: Mapping[str, tuple[str, str]]) -> Outcome:
    tests = {name: status for name, (status, _) in verdicts.items()}
    failed = [(n, d) for n, (s, d) in verdicts.items() if s == "failed"]
    if failed:
        detail = "; ".join(f"{n}: {d}" for n, d in failed)
        return Outcome("failed", detail, tests)
    unsupported = [d for s, d in verdicts.values() if s == "unsupported"]
    if unsupported:
        return Outcome("unsupported", "; ".join(sorted(set(unsupported))), tests)
    count = len(verdicts)
    notes = [d for _, d in verdicts.values() if d]
    return Outcome(
        "passed", "; ".join([f"{count} test{'s' if count != 1 else ''} passed", *notes]), tests
    )


# -- output ------------------------------------------------------------------------------------


def to_json(report: Report) -> dict[str, Any]:
    """The JSON report: ``{"backends": {name: {"url", "results": {id: {...}}}}, ...}``."""
    return {
        "backends": {
            name: {
                "url": backend.url,
                "results": {
                    gid: {
                        "status": o.status,
                        "detail": o.detail,
                        "title": GUARANTEES[gid].name,
                        "tests": o.tests,
                    }
                    for gid, o in backend.results.items()
                },
                "summary": _summary(backend),
            }
            for name, backend in report.backends.items()
        },
        "guarantees": {
            gid: {"name": g.name, "statement": g.statement} for gid, g in GUARANTEES.items()
        },
        "selected": report.selected,
        "duration_seconds": round(report.duration, 2),
        "failed": report.failed,
        "notes": report.notes,
    }


def _summary(backend: BackendResults) -> dict[str, int]:
    counts = {"passed": 0, "failed": 0, "unsupported": 0, "not-run": 0}
    for outcome in backend.results.values():
        counts[outcome.status] += 1
    return counts


_MD_STATUS = {
    "passed": "passed",
    "failed": "**FAILED**",
    "unsupported": "unsupported",
    "not-run": "not run",
}


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(report: Report) -> str:
    """The matrix as a Markdown table, followed by the detail of every non-pass."""
    names = list(report.backends)
    lines = ["# eventwire conformance", ""]
    for name in names:
        lines.append(f"- **{name}**: `{report.backends[name].url}`")
    lines += ["", "| guarantee | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for gid, guarantee in GUARANTEES.items():
        cells = [_MD_STATUS[report.backends[n].results[gid].status] for n in names]
        lines.append(f"| {gid} {guarantee.name} | " + " | ".join(cells) + " |")
    details = [
        f"- {gid} on {name} ({o.status}): {_md_escape(o.detail)}"
        for name in names
        for gid, o in report.backends[name].results.items()
        if o.status in ("failed", "unsupported")
    ]
    if details:
        lines += ["", "## Details", "", *details]
    if report.notes:
        lines += ["", "## Notes", "", *(f"- {_md_escape(n)}" for n in report.notes)]
    return "\n".join(lines) + "\n"


_STYLE = {"passed": "green", "failed": "bold red", "unsupported": "yellow", "not-run": "dim"}
_MARK = {"passed": "passed", "failed": "FAILED", "unsupported": "unsupported", "not-run": "-"}


def render(report: Report, console: Console) -> None:
    """Print the matrix and the detail of every failed or unsupported guarantee (and of a
    pass that carries a note, such as the duplicates G22 counted)."""
    table = Table(title="eventwire conformance", title_justify="left")
    table.add_column("guarantee", style="bold", no_wrap=True, min_width=18)
    for name, backend in report.backends.items():
        table.add_column(f"{name}\n{backend.url}", overflow="fold")
    for gid, guarantee in GUARANTEES.items():
        cells = [
            Text(_MARK[b.results[gid].status], style=_STYLE[b.results[gid].status])
            for b in report.backends.values()
        ]
        table.add_row(f"{gid} {guarantee.name}", *cells)
    console.print(table)
    for name, backend in report.backends.items():
        for gid, outcome in backend.results.items():
            noted = outcome.status == "passed" and "; " in outcome.detail
            if outcome.status in ("failed", "unsupported") or noted:
                label = Text(f"{gid} {name} {outcome.status}: ", style=_STYLE[outcome.status])
                console.print(label + Text(outcome.detail))
    for note in report.notes:
        console.print(Text(note, style="dim"))


def write_reports(
    report: Report,
    *,
    json_path: Path | None = None,
    markdown_path: Path | None = None,
) -> None:
    """Write the JSON and/or Markdown report files that were asked for."""
    if json_path is not None:
        json_path.write_text(json.dumps(to_json(report), indent=2) + "\n", encoding="utf-8")
    if markdown_path is not None:
        markdown_path.write_text(to_markdown(report), encoding="utf-8")
