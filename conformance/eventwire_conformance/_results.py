"""A pytest plugin that streams conformance results as JSON lines (used by the runner).

Load it with ``-p eventwire_conformance._results --eventwire-results PATH``. The controlling
process (not the xdist workers) appends one JSON object per line to PATH:

- ``{"event": "collected", "count": N}`` once the number of tests is known;
- ``{"event": "result", "nodeid", "guarantee", "backend", "when", "outcome", "detail",
  "duration"}`` for each test phase worth reporting (every call, any phase that failed or
  skipped); a passed call's detail is what the test noted (`NOTE_PROPERTY`), e.g. the
  duplicates it counted;
- ``{"event": "collect-error", "nodeid", "detail"}`` when a module cannot be collected;
- ``{"event": "finished", "exitstatus": N}`` at the end.
"""

from __future__ import annotations

import json
from typing import IO, Any

import pytest

from eventwire_conformance._support import NOTE_PROPERTY

DETAIL_LIMIT = 1500
WRITER_NAME = "eventwire-conformance-results"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("eventwire").addoption(
        "--eventwire-results",
        default=None,
        metavar="PATH",
        help="append conformance results to PATH as JSON lines (for the runner)",
    )


def pytest_configure(config: pytest.Config) -> None:
    path = config.getoption("eventwire_results")
    if path and not hasattr(config, "workerinput"):
        config.pluginmanager.register(ResultWriter(path), WRITER_NAME)


def report_detail(report: pytest.CollectReport | pytest.TestReport) -> str:
    """A short, single-purpose description of a failed or skipped phase."""
    longrepr = report.longrepr
    if longrepr is None:
        return ""
    if isinstance(longrepr, tuple):  # a skip: (path, line, "Skipped: reason")
        text = str(longrepr[2])
        return text.removeprefix("Skipped: ")
    crash = getattr(longrepr, "reprcrash", None)
    message = getattr(crash, "message", None)
    text = str(message) if message else str(longrepr)
    explained, _, _ = text.partition("\nassert ")  # keep the test's own message
    text = explained or text
    return text if len(text) <= DETAIL_LIMIT else text[:DETAIL_LIMIT] + " ..."


class ResultWriter:
    """Writes the JSON lines; registered in the controlling process only."""

    def __init__(self, path: str) -> None:
        self._file: IO[str] = open(path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115
        self._counted = False

    def _write(self, record: dict[str, Any]) -> None:
        self._file.write(json.dumps(record) + "\n")

    def _collected(self, count: int) -> None:
        if not self._counted:
            self._counted = True
            self._write({"event": "collected", "count": count})

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self._collected(len(session.items))

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: object, ids: list[str]) -> None:
        self._collected(len(ids))

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self._write(
                {"event": "collect-error", "nodeid": report.nodeid, "detail": report_detail(report)}
            )

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        props = dict(report.user_properties)
        guarantee = props.get("eventwire_guarantee")
        if guarantee is None:
            return
        if report.when != "call" and report.passed:
            return
        outcome = report.outcome if report.when == "call" or report.skipped else "error"
        self._write(
            {
                "event": "result",
                "nodeid": report.nodeid,
                "guarantee": guarantee,
                "backend": props.get("eventwire_backend"),
                "when": report.when,
                "outcome": outcome,
                "detail": report_detail(report)
                if not report.passed
                else "; ".join(str(v) for k, v in report.user_properties if k == NOTE_PROPERTY),
                "duration": round(report.duration, 3),
            }
        )

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        self._write({"event": "finished", "exitstatus": int(exitstatus)})

    def pytest_unconfigure(self) -> None:
        self._file.close()
