"""The whole conformance suite on ``eventbridge://`` against a local AWS endpoint.

Each test starts its own moto_server (`tests.backends._moto`), so it needs no broker step.
They take minutes (G15 alone publishes and consumes 10,000 events through the emulator), so
``make test-aws`` runs them, not ``make test``. G15 runs on its own: beside other tests it
floods the one emulator process, whose other callers then wait past the suite's connect
timeout. Every guarantee must pass, or be unsupported for one of the reasons the backend
declares: a documented EventBridge or SQS limit, or, on this emulator endpoint only, G04
(docs/backends/eventbridge.md); nothing fails and nothing is skipped for another reason.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from eventwire_eventbridge import CAPABILITIES
from eventwire_eventbridge._info import EMULATOR_UNSUPPORTED

from tests.backends._moto import bus_url, moto_server, set_credentials

ROOT = Path(__file__).resolve().parents[2]
ALL = [f"G{i:02d}" for i in range(1, 24)]
DECLARED = "declared by the eventbridge backend: "

pytestmark = [pytest.mark.slow, pytest.mark.aws_matrix]


def _run(tmp_path: Path, only: list[str], workers: int) -> tuple[dict[str, Any], str]:
    """`eventwire conformance run` of `only` on a moto_server of its own: the results by
    guarantee, and the run's output (for a failure's message)."""
    report = tmp_path / "eventbridge.json"
    with moto_server(tmp_path / "moto.log") as endpoint:
        # G12's crashed member's events come back after 20 s, within the patience; a
        # shorter timeout lets a loaded machine's slow calls expire messages still held.
        url = bus_url(endpoint, extra="&visibility_timeout=20s")
        command = [
            sys.executable, "-m", "eventwire.cli", "conformance", "run", url,
            "--only", ",".join(only), "--json", str(report), "-n", str(workers),
            # G15 waits patience x 2 for the events still queued when publishing ends.
            "--timeout", "1500", "--patience", "120",
            # SQS holds no idempotency store: members share an SQLite file, as on one host.
            "--idempotency-store", f"sqlite:///{tmp_path / 'ids.db'}",
        ]  # fmt: skip
        done = subprocess.run(
            command, cwd=ROOT, env=set_credentials(), timeout=1700, capture_output=True, text=True
        )
    output = done.stdout[-6000:] + done.stderr[-3000:]
    assert report.exists(), output
    (backend,) = json.loads(report.read_text())["backends"].values()
    results: dict[str, Any] = backend["results"]
    ran = {gid: r for gid, r in results.items() if gid in only}
    assert sorted(ran) == sorted(only), output
    assert done.returncode == 0 or any(r["status"] == "failed" for r in ran.values()), output
    return ran, output


@pytest.mark.timeout(1800)
def test_every_guarantee_passes_or_is_unsupported_for_an_aws_limit(tmp_path: Path) -> None:
    results, output = _run(tmp_path, [gid for gid in ALL if gid != "G15"], workers=2)
    failed = {gid: r for gid, r in results.items() if r["status"] not in ("passed", "unsupported")}
    assert failed == {}, output
    unsupported = {gid: r["detail"] for gid, r in results.items() if r["status"] == "unsupported"}
    declared = {**CAPABILITIES.unsupported, **EMULATOR_UNSUPPORTED}
    assert unsupported == {gid: DECLARED + reason for gid, reason in declared.items()}
    assert sorted(unsupported) == ["G04", "G05", "G14", "G16", "G17", "G21", "G22", "G23"]


@pytest.mark.timeout(1800)
def test_g15_ten_thousand_concurrent_publishes_lose_nothing(tmp_path: Path) -> None:
    results, output = _run(tmp_path, ["G15"], workers=1)
    assert results["G15"]["status"] == "passed", output
