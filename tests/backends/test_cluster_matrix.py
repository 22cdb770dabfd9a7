"""The whole conformance suite on the project's three-node clusters, G23 included.

Each test starts its cluster with ``conformance/brokers/brokers up --cluster NAME`` (on the
cluster ports, apart from the single brokers), runs G01-G23 with the cluster's restart, crash
and node-kill commands, and stops the cluster. G23's kill command SIGKILLs the node leading
the channel (``python -m eventwire_conformance.leader`` on NATS and Kafka, the master the
sentinels name on Redis) and prints its number for the start command. RabbitMQ spreads its
shard queues' leaders over the nodes; its G23 kills node 1, which leads some of them.

Marked ``cluster``: ``make test-clusters`` runs all four; ``make test`` runs the NATS one
(marked ``cluster_ci`` too), the cluster that starts in about a second.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.backends.test_conformance_matrix import IDS, idempotency_store

ROOT = Path(__file__).resolve().parents[2]
BROKERS = "conformance/brokers/brokers"
LEADER = (
    f"n=$({sys.executable} -m eventwire_conformance.leader {{url}} {{channel}} | grep -o '[0-9]*$')"
)
#: How each cluster's G23 finds the node to kill (the shell variable ``n``).
FIND_NODE = {
    "nats": LEADER,
    "kafka": LEADER,
    "redis": "n=$(( $(redis-cli -p 19479 SENTINEL get-master-addr-by-name mymaster "
    "| tail -1) - 19378 ))",
    "rabbit": "n=1",
}
CLUSTERS = [
    pytest.param("nats", marks=pytest.mark.cluster_ci),
    "kafka",
    "redis",
    "rabbit",
]


def brokers(*args: str, timeout: float = 600) -> str:
    done = subprocess.run(
        [BROKERS, *args], cwd=ROOT, timeout=timeout, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


@pytest.fixture
def cluster_url(request: pytest.FixtureRequest) -> Iterator[str]:
    name = request.node.callspec.params["name"]
    out = brokers("up", "--cluster", name)
    urls = [word for word in out.split() if "://" in word]
    assert urls, out
    try:
        yield urls[-1]
    finally:
        brokers("down", "--cluster", name)


@pytest.mark.broker
@pytest.mark.cluster
@pytest.mark.timeout(1500)
@pytest.mark.parametrize("name", CLUSTERS)
def test_every_guarantee_passes_on_the_cluster(name: str, cluster_url: str, tmp_path: Path) -> None:
    report = tmp_path / f"{name}.json"
    b = BROKERS
    command = [
        sys.executable, "-m", "eventwire.cli", "conformance", "run", cluster_url,
        "--json", str(report), "-n", "2",
        "--restart-cmd", f"{b} restart {name} --cluster",
        "--kill-cmd", f"{b} kill {name} --cluster && {b} up {name} --cluster",
        "--node-kill-cmd", f"{FIND_NODE[name]} && {b} kill {name} --node $n >&2 && echo $n",
        "--node-start-cmd", f"{b} up {name} --node {{node}}",
        *idempotency_store(name, tmp_path),
    ]  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, timeout=1400, capture_output=True, text=True)
    assert report.exists(), done.stdout[-4000:] + done.stderr[-4000:]
    (backend,) = json.loads(report.read_text())["backends"].values()
    results = backend["results"]
    assert sorted(results) == IDS
    failed = {gid: r for gid, r in results.items() if r["status"] != "passed"}
    assert failed == {}, done.stdout[-4000:]
    assert done.returncode == 0
