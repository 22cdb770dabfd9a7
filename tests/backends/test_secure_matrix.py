"""The whole conformance suite over TLS with authentication, on the secure brokers
(`conformance/brokers/brokers up --secure`): every guarantee but G23 (node failure, which
needs a cluster) must pass, and none of the reports or the runner's output may carry a
password, the NKEY seed or a private key.

G16 restarts the secure broker (``brokers restart --secure``), G22 kills it (``brokers kill
--secure``) and starts it again. Kafka and RabbitMQ keep their idempotency ids where the
plain matrix keeps them (`idempotency_store`: PostgreSQL, an SQLite file). These runs take
minutes per broker, so they are marked ``secure_matrix`` and left out of ``make test``
(which keeps CI under 20 minutes): ``make secure-matrix`` starts the secure brokers and
PostgreSQL and runs them, one at a time.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from eventwire_conformance.guarantees import IDS

from tests.backends.test_conformance_matrix import idempotency_store
from tests.brokers.conftest import load_brokers_script

ROOT = Path(__file__).resolve().parents[2]
BROKERS = load_brokers_script()
NAMES = ("kafka", "nats", "rabbit", "redis")


def secret_texts() -> list[str]:
    """Every secret of the secure setup: passwords, the NKEY seed, private keys' bytes."""
    found = [BROKERS.secure_password(user) for user in ("eventwire", "denied")]
    found.append(BROKERS.secure_file("nkey.seed").read_text().strip())
    for key in ("client.key", "server.key", "other-client.key", "expired-client.key"):
        body = BROKERS.secure_file(key).read_text().splitlines()
        found += [line for line in body if line and not line.startswith("-----")]
    return found


@pytest.mark.broker
@pytest.mark.secure_matrix
@pytest.mark.timeout(1200)
@pytest.mark.parametrize("name", NAMES)
def test_every_guarantee_passes_over_tls_with_authentication(name: str, tmp_path: Path) -> None:
    url = BROKERS.secure_urls(name, BROKERS.secure_ports(name))[0]
    reports = {kind: tmp_path / f"{name}.{kind}" for kind in ("json", "md", "xml")}
    command = [
        sys.executable, "-m", "eventwire.cli", "conformance", "run", url, "-n", "2",
        "--json", str(reports["json"]), "--markdown", str(reports["md"]),
        "--junit", str(reports["xml"]),
        "--restart-cmd", f"conformance/brokers/brokers restart --secure {name}",
        "--kill-cmd",
        f"conformance/brokers/brokers kill --secure {name} && "
        f"conformance/brokers/brokers up --secure {name}",
        *idempotency_store(name, tmp_path),
    ]  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, timeout=1100, capture_output=True, text=True)
    assert reports["json"].exists(), done.stdout[-4000:] + done.stderr[-4000:]
    (backend,) = json.loads(reports["json"].read_text())["backends"].values()
    results = backend["results"]
    assert sorted(results) == sorted(IDS)
    assert results["G23"]["status"] == "unsupported"  # one broker: no cluster node to fail
    failed = {gid: r for gid, r in results.items() if gid != "G23" and r["status"] != "passed"}
    assert failed == {}, done.stdout[-4000:]
    assert done.returncode == 0
    outputs = {kind: path.read_text() for kind, path in reports.items()}
    outputs.update(stdout=done.stdout, stderr=done.stderr)
    for secret in secret_texts():
        leaked = [kind for kind, text in outputs.items() if secret in text]
        assert leaked == [], f"a secret of the secure setup is in the {leaked} output"
