"""The whole conformance suite on every real broker: every guarantee must pass.

Kafka and RabbitMQ cannot hold an idempotency store, so they run with a shared one (Kafka:
PostgreSQL, RabbitMQ: an SQLite file), as their users would; Redis and NATS use their own.

G16 restarts the shared broker and G22 kills it (SIGKILL) and starts it again, which would
disturb other tests using it, so these tests are marked ``restart``: ``make test`` runs them
after the parallel run, one at a time.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from tests.backends._base import run_matrix

BROKERS = "conformance/brokers/brokers"
TARGETS = {
    "kafka": os.environ.get("EVENTWIRE_KAFKA_URL", "kafka://127.0.0.1:9092"),
    "rabbit": os.environ.get("EVENTWIRE_RABBIT_URL", "amqp://guest:guest@127.0.0.1:5672/"),
    "redis": os.environ.get("EVENTWIRE_REDIS_URL", "redis://127.0.0.1:6379/0"),
    "nats": os.environ.get("EVENTWIRE_NATS_URL", "nats://127.0.0.1:4222"),
}
POSTGRES = os.environ.get(
    "EVENTWIRE_POSTGRES_URL", "postgresql://eventwire@127.0.0.1:5433/postgres"
)


def idempotency_store(name: str, tmp_path: Path) -> list[str]:
    """The ``--idempotency-store`` option a backend without a store of its own runs with."""
    if name == "kafka":
        return ["--idempotency-store", POSTGRES]
    if name == "rabbit":
        return ["--idempotency-store", f"sqlite://{tmp_path / 'ids.db'}"]
    return []


@pytest.mark.broker
@pytest.mark.restart
@pytest.mark.timeout(960)  # the whole suite with a restart and a crash; the run's own limit: 900 s
@pytest.mark.parametrize("name", sorted(TARGETS))
def test_every_guarantee_passes_on_the_real_broker(name: str, tmp_path: Path) -> None:
    crash = f"{BROKERS} kill {name} && {BROKERS} up {name}"
    backend = run_matrix(
        TARGETS[name], tmp_path,
        "--restart-cmd", f"{BROKERS} restart {name}",  # relative: the run's cwd is the root
        "--kill-cmd", crash,
        *idempotency_store(name, tmp_path),
        timeout=900,
        unsupported=["G23"],  # a single broker: no cluster node to fail
    )  # fmt: skip
    assert "guest" not in backend["url"]


def test_every_guarantee_passes_on_a_sqlite_file(tmp_path: Path) -> None:
    """The embedded durable backend needs no broker: its G16 "restart" and G22 "crash" are a
    process that holds the file's write lock mid-transaction being SIGKILLed, and the file
    opened again (``python -m eventwire_sqlite.outage``)."""
    database = tmp_path / "conformance.db"
    outage = f"{sys.executable} -m eventwire_sqlite.outage {database}"
    run_matrix(
        f"sqlite://{database}?busy_timeout=1&lease_ttl=1", tmp_path,
        "--restart-cmd", outage, "--kill-cmd", outage,
        timeout=600,
        unsupported=["G23"],  # one file on one host: no cluster node to fail
    )  # fmt: skip
