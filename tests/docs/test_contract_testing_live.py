"""The live, mock and between-teams sections of docs/contract-testing.md are true: every
Python block in them runs, and the can-i-deploy / pact commands they show work."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs/contract-testing.md").read_text()
SECTIONS = (
    "## Live traffic: verify",
    "## Mock producer",
    "## Between teams: can-i-deploy and Pact",
)


def _section(heading: str) -> str:
    text = DOC.split(heading, 1)[1]
    return re.split(r"\n## ", text, maxsplit=1)[0]


BLOCKS = [
    (heading, block)
    for heading in SECTIONS
    for block in re.findall(r"```python\n(.*?)```", _section(heading), flags=re.S)
]


def _run(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PACT_DO_NOT_TRACK": "true"}
    return subprocess.run(
        args, capture_output=True, text=True, timeout=120, cwd=ROOT, env=env, check=False
    )


def test_every_section_has_a_python_example() -> None:
    assert {heading for heading, _ in BLOCKS} == set(SECTIONS)


@pytest.mark.parametrize("index", range(len(BLOCKS)), ids=lambda i: BLOCKS[i][0][3:20])
def test_python_block_runs(index: int, tmp_path: Path) -> None:
    script = tmp_path / "block.py"
    script.write_text(BLOCKS[index][1])
    result = _run([sys.executable, str(script)], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_can_i_deploy_and_pact_commands(tmp_path: Path) -> None:
    section = _section(SECTIONS[2])
    assert "eventwire contracts can-i-deploy contracts/order-service.v1.yaml" in section
    eventwire = str(Path(sys.executable).with_name("eventwire"))
    for service in ("payment", "shipping"):
        made = _run(
            [
                eventwire,
                "asyncapi",
                "generate",
                f"docs.examples.order_processing.orchestration.{service}:bus",
                "-o",
                str(tmp_path / f"{service}.yaml"),
            ],
            tmp_path,
        )
        assert made.returncode == 0, made.stderr
    deploy = _run(
        [
            eventwire,
            "contracts",
            "can-i-deploy",
            "contracts/order-service.v1.yaml",
            "--consumer",
            str(tmp_path / "payment.yaml"),
            "--consumer",
            str(tmp_path / "shipping.yaml"),
        ],
        tmp_path,
    )
    # v1 does not send the payment service's RefundPayment: reported, exit 1
    assert deploy.returncode == 1, deploy.stdout + deploy.stderr
    assert "NOT SENT" in deploy.stdout and "RefundPayment" in deploy.stdout
    exported = _run(
        [
            eventwire,
            "contracts",
            "pact",
            "export",
            str(tmp_path / "payment.yaml"),
            "--provider",
            "order-service",
            "-o",
            str(tmp_path / "pacts"),
        ],
        tmp_path,
    )
    assert exported.returncode == 0, exported.stderr
    assert list((tmp_path / "pacts").glob("*.json"))
    verified = _run(
        [
            eventwire,
            "contracts",
            "pact",
            "verify",
            "contracts/order-service.v1.yaml",
            str(tmp_path / "pacts"),
            "--provider-name",
            "order-service",
        ],
        tmp_path,
    )
    assert verified.returncode == 1, verified.stdout + verified.stderr
    failed = [line for line in verified.stdout.splitlines() if line.startswith("FAILED")]
    assert failed == [
        "FAILED RefundPayment on payments.commands: contracts/order-service.v1.yaml does not "
        "send this message"
    ]
