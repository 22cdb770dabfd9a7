"""The runner and the pytest plugin: input checks, reports, unsupported guarantees, and
staying out of the way of other test suites."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from eventwire_conformance.guarantees import IDS, UNSUPPORTED_PREFIX, parse_ids
from eventwire_conformance.report import aggregate, to_json, to_markdown

from tests.conformance._runner import (
    FAULTY,
    NODE_DOWN_VARIABLE,
    REPO,
    run_cli,
    run_pytest,
    run_suite,
)


def _result(
    gid: str,
    outcome: str,
    when: str = "call",
    detail: str = "",
    backend: str = "memory",
    test: str = "",
) -> dict[str, Any]:
    return {
        "event": "result",
        "nodeid": f"test_x.py::{test or 'test_' + gid}[{backend}]",
        "guarantee": gid,
        "backend": backend,
        "when": when,
        "outcome": outcome,
        "detail": detail,
        "duration": 0.1,
    }


# -- the matrix ------------------------------------------------------------------------------


def test_aggregate_maps_every_outcome() -> None:
    records = [
        _result("G01", "passed"),
        _result("G02", "passed"),
        _result("G02", "error", when="teardown", detail="RuntimeError: boom"),
        _result("G03", "skipped", when="setup", detail=f"{UNSUPPORTED_PREFIX} not here"),
        _result("G04", "skipped", when="setup", detail="some other reason"),
        _result("G05", "failed", detail="AssertionError: out of order"),
        _result("G06", "passed", test="test_G06_a"),
        _result("G06", "failed", test="test_G06_b", detail="lost one"),
    ]
    selected = [gid for gid in IDS if gid != "G20"]
    report = aggregate(records, {"memory": "memory://"}, selected)
    results = report.backends["memory"].results
    assert set(results) == set(IDS)
    status = {gid: o.status for gid, o in results.items()}
    assert status["G01"] == "passed"
    assert status["G02"] == "failed" and "teardown" in results["G02"].detail
    assert status["G03"] == "unsupported" and results["G03"].detail == "not here"
    assert status["G04"] == "failed" and "without a declared reason" in results["G04"].detail
    assert status["G05"] == "failed" and "out of order" in results["G05"].detail
    assert status["G06"] == "failed" and "test_G06_b" in results["G06"].detail
    assert status["G07"] == "failed" and "no result" in results["G07"].detail
    assert status["G20"] == "not-run"
    assert report.failed
    data = to_json(report)
    assert data["backends"]["memory"]["results"]["G03"] == {
        "status": "unsupported",
        "detail": "not here",
        "title": "fan-out",
        "tests": {"test_G03[memory]": "unsupported"},
    }
    assert "| G05 key-order | **FAILED** |" in to_markdown(report)


def test_parse_ids_normalises_and_rejects() -> None:
    assert parse_ids(["g5, G08", "G05"]) == ["G05", "G08"]
    with pytest.raises(ValueError, match="G99, X1; valid ids: G01, G02"):
        parse_ids(["G99,X1"])


# -- bad input ---------------------------------------------------------------------------------


def test_unknown_guarantee_id_is_refused() -> None:
    done = run_cli("conformance", "run", "memory://", "--only", "G05,G24", timeout=30)
    assert done.returncode == 2, done
    assert "unknown guarantee id(s): G24" in done.stderr
    assert "valid ids: G01" in done.stderr and "G23" in done.stderr


@pytest.mark.parametrize("where", ["missing-dir/report.json", "."])
def test_unwritable_report_path_is_refused_before_the_run(where: str, tmp_path: Path) -> None:
    target = tmp_path / where
    started = time.monotonic()
    done = run_cli("conformance", "run", "memory://", "--json", str(target), timeout=30)
    assert done.returncode == 2, done
    assert "--json" in done.stderr
    assert time.monotonic() - started < 20
    assert "G01" not in done.stdout  # nothing ran


def test_unreachable_broker_fails_fast(tmp_path: Path) -> None:
    started = time.monotonic()
    done = run_cli(
        "conformance",
        "run",
        "down://",
        "--plugin",
        FAULTY,
        "--json",
        str(tmp_path / "r.json"),
        timeout=60,
    )
    assert done.returncode == 2, done
    assert "cannot reach the down broker" in done.stderr and "is down" in done.stderr
    assert time.monotonic() - started < 20
    assert not (tmp_path / "r.json").exists()


def test_credentials_stay_out_of_reports_and_output(tmp_path: Path) -> None:
    code, report, output = run_suite(
        "restartable://alice:s3cret@broker.example/", tmp_path, "--only", "G01"
    )
    assert code == 0, output
    assert report["backends"]["restartable"]["url"] == "restartable://broker.example/"
    assert "s3cret" not in output and "s3cret" not in json.dumps(report)


# -- G16 and unsupported guarantees ------------------------------------------------------------


def test_g16_without_restart_command_is_unsupported_with_reason(tmp_path: Path) -> None:
    code, report, _ = run_suite("restartable://", tmp_path, "--only", "G16")
    g16 = report["backends"]["restartable"]["results"]["G16"]
    assert g16["status"] == "unsupported"
    assert "no broker restart command" in g16["detail"]
    assert code == 0


@pytest.mark.parametrize(("command", "status"), [("sleep 0.3", "passed"), ("exit 3", "failed")])
def test_g16_runs_the_restart_command(command: str, status: str, tmp_path: Path) -> None:
    code, report, output = run_suite(
        "restartable://", tmp_path, "--only", "G16", "--restart-cmd", command
    )
    g16 = report["backends"]["restartable"]["results"]["G16"]
    assert g16["status"] == status, (g16, output[-2000:])
    if status == "failed":
        assert "exited with 3" in g16["detail"]
    assert code == (0 if status == "passed" else 1)


def test_g16_runs_alone_from_the_callers_folder_after_the_rest(tmp_path: Path) -> None:
    """With several workers G16 gets a session of its own (a restart would break the other
    tests' connections), and a relative restart command runs from where the runner started."""
    script = Path("tests/conformance/.restart-probe.sh")
    marker = tmp_path / "restarted"
    (REPO / script).write_text(f"#!/bin/sh\ntouch {marker}\n")
    (REPO / script).chmod(0o755)
    junit = tmp_path / "junit.xml"
    try:
        code, report, output = run_suite(
            "restartable://",
            tmp_path,
            "--only",
            "G01,G02,G16",
            "--restart-cmd",
            str(script),
            "--junit",
            str(junit),
            workers=2,
        )
    finally:
        (REPO / script).unlink()
    results = report["backends"]["restartable"]["results"]
    assert {gid: r["status"] for gid, r in results.items() if r["status"] != "not-run"} == {
        "G01": "passed",
        "G02": "passed",
        "G16": "passed",
    }, output[-2000:]
    assert code == 0
    assert marker.exists()
    names = junit.read_text()
    assert "test_G16" in names and "test_G01" in names
    assert not list(junit.parent.glob(".junit.xml.*"))


# -- G22 and its kill command -----------------------------------------------------------------


def test_g22_without_kill_command_is_not_run_with_reason(tmp_path: Path) -> None:
    code, report, _ = run_suite("restartable://", tmp_path, "--only", "G22")
    g22 = report["backends"]["restartable"]["results"]["G22"]
    assert g22["status"] == "unsupported"
    assert "not run: no broker kill command" in g22["detail"]
    assert code == 0


@pytest.mark.parametrize(("command", "status"), [("sleep 0.3", "passed"), ("exit 3", "failed")])
def test_g22_runs_the_kill_command_and_reports_duplicates(
    command: str, status: str, tmp_path: Path
) -> None:
    code, report, output = run_suite(
        "restartable://", tmp_path, "--only", "G22", "--kill-cmd", command
    )
    g22 = report["backends"]["restartable"]["results"]["G22"]
    assert g22["status"] == status, (g22, output[-2000:])
    if status == "failed":
        assert "the kill command exited with 3" in g22["detail"]
        assert code == 1
    else:
        # a pass still says what it counted
        assert "duplicate runs of 400 confirmed events" in g22["detail"], g22
        assert "G22 restartable passed" in output
        assert code == 0


def test_g16_says_when_no_publish_was_refused_during_the_restart(tmp_path: Path) -> None:
    """A restart command that restarts nothing passes G16, and the report says so."""
    code, report, _ = run_suite(
        "restartable://", tmp_path, "--only", "G16", "--restart-cmd", "sleep 0.3"
    )
    g16 = report["backends"]["restartable"]["results"]["G16"]
    assert g16["status"] == "passed", g16
    assert "0 publish attempts refused during the restart" in g16["detail"], g16
    assert "or the command did not restart the broker" in g16["detail"]
    assert code == 0


def test_g22_reports_events_stalled_after_the_crash(tmp_path: Path) -> None:
    # the member that dies with the broker keeps its partitions: their events never come
    code, report, output = run_suite(
        "stuckcrash://", tmp_path, "--only", "G22", "--kill-cmd", "sleep 0.3", "--patience", "2"
    )
    g22 = report["backends"]["stuckcrash"]["results"]["G22"]
    assert g22["status"] == "failed", (g22, output[-2000:])
    assert "stalled: " in g22["detail"], g22
    assert "after the broker was back" in g22["detail"], g22
    assert code == 1


def test_g16_and_g22_run_alone_after_the_rest(tmp_path: Path) -> None:
    """With several workers the guarantees that take the broker down get a session of
    their own, one test at a time, after the others."""
    marker = tmp_path / "commands"
    code, report, output = run_suite(
        "restartable://",
        tmp_path,
        "--only",
        "G01,G16,G22",
        "--restart-cmd",
        f"echo restart >> {marker}",
        "--kill-cmd",
        f"echo kill >> {marker}",
        workers=2,
    )
    results = report["backends"]["restartable"]["results"]
    statuses = {gid: r["status"] for gid, r in results.items() if r["status"] != "not-run"}
    assert statuses == {"G01": "passed", "G16": "passed", "G22": "passed"}, output[-2000:]
    assert code == 0
    assert sorted(marker.read_text().split()) == ["kill", "restart"]


# -- the pytest form ---------------------------------------------------------------------------


def test_plugin_is_inert_without_a_url(tmp_path: Path) -> None:
    (tmp_path / "test_own.py").write_text("def test_own():\n    assert True\n")
    done = run_pytest(str(tmp_path), "-q", cwd=tmp_path)
    assert done.returncode == 0, done.stdout
    assert "1 passed" in done.stdout
    assert "G0" not in done.stdout


def test_pytest_form_parametrizes_by_backend(tmp_path: Path) -> None:
    done = run_pytest(
        "--eventwire-url",
        "memory://",
        "--eventwire-url",
        "memory://other",
        "--eventwire-only",
        "G05,G16",
        "--collect-only",
        "-q",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    ids = [line.split("::")[-1] for line in done.stdout.splitlines() if "::" in line]
    assert ids == [
        "test_G05_key_order[memory]",
        "test_G05_key_order[memory-2]",
        "test_G16_broker_restart_loses_nothing[memory]",
        "test_G16_broker_restart_loses_nothing[memory-2]",
    ], done.stdout


def test_pytest_form_reports_unsupported_and_unreachable(tmp_path: Path) -> None:
    done = run_pytest(
        "--eventwire-url",
        "memory://",
        "--eventwire-url",
        "down://",
        "-p",
        FAULTY,
        "--eventwire-only",
        "G01,G16",
        "-rsf",
        "-q",
        cwd=tmp_path,
    )
    assert done.returncode == 1, done.stdout
    assert f"{UNSUPPORTED_PREFIX} declared by the memory backend" in done.stdout
    assert "1 passed, 1 skipped" in done.stdout and "2 errors" in done.stdout, done.stdout
    assert "down:// is down" in done.stdout


# -- G23 and its node commands ----------------------------------------------------------------


def test_g23_without_node_commands_is_not_run_with_reason(tmp_path: Path) -> None:
    code, report, _ = run_suite(
        "restartable://", tmp_path, "--only", "G23", "--node-kill-cmd", "echo n1"
    )
    g23 = report["backends"]["restartable"]["results"]["G23"]
    assert g23["status"] == "unsupported"
    assert "not run: no cluster node commands" in g23["detail"]
    assert code == 0


@pytest.mark.parametrize(
    ("kill", "start", "status", "said"),
    [
        # the start command gets the node the kill command printed last
        ("echo killing; echo node-2", "test {node} = node-2", "passed", "node node-2 killed"),
        ("echo node-2", "exit 4", "failed", "the node start command exited with 4"),
        ("true", "true", "failed", "printed no node name"),
    ],
)
def test_g23_runs_the_node_commands(
    kill: str, start: str, status: str, said: str, tmp_path: Path
) -> None:
    code, report, output = run_suite(
        "restartable://", tmp_path, "--only", "G23",
        "--node-kill-cmd", kill, "--node-start-cmd", start,
    )  # fmt: skip
    g23 = report["backends"]["restartable"]["results"]["G23"]
    assert g23["status"] == status, (g23, output[-2000:])
    assert said in g23["detail"], g23
    assert code == (0 if status == "passed" else 1)


def test_g23_fails_a_backend_that_confirms_before_replicating(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``unreplicated://`` confirms a publish before the leader replicated it: the events
    confirmed just before the leading node is killed are lost."""
    marker = tmp_path / "node-down"
    monkeypatch.setenv(NODE_DOWN_VARIABLE, str(marker))
    code, report, output = run_suite(
        "unreplicated://", tmp_path, "--only", "G23",
        "--node-kill-cmd", f"touch {marker} && echo leader-1",
        "--node-start-cmd", f"rm {marker}",
    )  # fmt: skip
    g23 = report["backends"]["unreplicated"]["results"]["G23"]
    assert g23["status"] == "failed", (g23, output[-2000:])
    assert "with node leader-1 down" in g23["detail"] and "not handled" in g23["detail"], g23
    assert code == 1
