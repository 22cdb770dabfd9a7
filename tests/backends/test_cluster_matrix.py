"""The whole conformance suite on the project's three-node clusters, G23 included.

Each test wipes its cluster (``conformance/brokers/brokers wipe --cluster NAME``: stopped,
data deleted) and starts it blank with ``brokers up --cluster NAME`` (on the cluster ports,
apart from the single brokers), runs G01-G23 with the cluster's restart, crash
and node-kill commands, and stops the cluster. G23's kill command SIGKILLs the node that
``python -m eventwire_conformance.leader`` names for the channel (NATS: its stream's leader;
Kafka: the broker leading most of its partitions; RabbitMQ: the node leading most of its
groups' shard queues, asked through the management API; Redis: the master the sentinels name)
and prints its number for the start command.

Marked ``cluster``: ``make test-clusters`` runs all four. ``make test`` runs the NATS
cluster, the one that starts in about a second, without G22 (``cluster_ci``): with every
node of nats-server 2.9.10 SIGKILLed at once, G22 failed in two of ten or so CI runs. The
cause of its order failures is fixed (redeliveries are handed out in stream order); a rarer
failure, one confirmed event in the stream but counted acked by its consumer although no
member received it, is the server's after all three nodes died at once (docs/clusters.md).
So ``make test`` runs G22 on the single broker only.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.backends._base import ROOT, run_matrix
from tests.backends.test_conformance_matrix import idempotency_store

BROKERS = "conformance/brokers/brokers"
LEADER = f"{sys.executable} -m eventwire_conformance.leader {{url}} {{channel}}"


def _first_port(variable: str, default: int) -> int:
    """Node 1's port of a cluster (conformance/brokers/clusters.py: node N has port + N - 1)."""
    return int(os.environ.get(variable) or default)


def find_node(name: str) -> str:
    """Shell code that sets ``n`` to the number of the node leading ``{channel}``."""
    if name == "rabbit":  # eventwire-c<N>-<port>@localhost
        management = _first_port("EVENTWIRE_CLUSTER_RABBIT_MANAGEMENT_PORT", 19872)
        return (
            f"n=$({LEADER} --management http://127.0.0.1:{management} "
            "| sed -E 's/^eventwire-c([0-9]+)-.*/\\1/')"
        )
    if name == "redis":  # the master's host:port
        first = _first_port("EVENTWIRE_CLUSTER_REDIS_PORT", 19379)
        return f"n=$(( $({LEADER} | grep -o '[0-9]*$') - {first} + 1 ))"
    return f"n=$({LEADER} | grep -o '[0-9]*$')"  # NATS: eventwire-c<N>; Kafka: <N>


CLUSTERS = ["nats", "kafka", "redis", "rabbit"]


def brokers(*args: str, timeout: float = 600) -> str:
    done = subprocess.run(
        [BROKERS, *args], cwd=ROOT, timeout=timeout, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


@pytest.fixture
def cluster_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A blank cluster: what earlier runs left (thousands of partitions or queues) slows
    every start of the nodes, which G16 and G22 bound."""
    name = request.node.callspec.params["name"]
    brokers("wipe", "--cluster", name)
    out = brokers("up", "--cluster", name)
    urls = [word for word in out.split() if "://" in word]
    assert urls, out
    try:
        yield urls[-1]
    finally:
        brokers("down", "--cluster", name)


def cluster_options(name: str, tmp_path: Path, *, crash: bool = True) -> list[str]:
    """The conformance run's commands for cluster `name` (the whole-cluster kill of G22 only
    with `crash`) and its idempotency store."""
    b = BROKERS
    kill = ["--kill-cmd", f"{b} kill {name} --cluster && {b} up {name} --cluster"]
    return [
        "--restart-cmd", f"{b} restart {name} --cluster",
        *(kill if crash else []),
        "--node-kill-cmd", f"{find_node(name)} && {b} kill {name} --node $n >&2 && echo $n",
        "--node-start-cmd", f"{b} up {name} --node {{node}}",
        *idempotency_store(name, tmp_path),
    ]  # fmt: skip


@pytest.mark.broker
@pytest.mark.cluster
@pytest.mark.timeout(1500)
@pytest.mark.parametrize("name", CLUSTERS)
def test_every_guarantee_passes_on_the_cluster(name: str, cluster_url: str, tmp_path: Path) -> None:
    run_matrix(cluster_url, tmp_path, *cluster_options(name, tmp_path), timeout=1400)


@pytest.mark.broker
@pytest.mark.cluster
@pytest.mark.cluster_ci
@pytest.mark.timeout(1500)
@pytest.mark.parametrize("name", ["nats"])
def test_every_guarantee_but_a_whole_cluster_crash_passes_on_the_nats_cluster(
    name: str, cluster_url: str, tmp_path: Path
) -> None:
    options = cluster_options(name, tmp_path, crash=False)
    run_matrix(cluster_url, tmp_path, *options, timeout=1400, unsupported=("G22",))
