"""docs/clusters.md: its example runs and prints each cluster URL without credentials, and the
backend options it names exist with the defaults it states."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from eventwire.backendkit import BackendSettings
from eventwire_kafka import KafkaSettings
from eventwire_nats import NatsSettings
from eventwire_rabbit._settings import RabbitSettings
from eventwire_redis import RedisSettings

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs/clusters.md").read_text()


def test_the_example_prints_every_cluster_url_without_credentials(tmp_path: Path) -> None:
    (block,) = re.findall(r"```python\n(.*?)```", DOC, re.S)
    script = tmp_path / "example.py"
    script.write_text(block)
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "kafka://10.0.0.1:9092,10.0.0.2:9092,10.0.0.3:9092",
        "amqp://10.0.0.1:5672,10.0.0.2:5672,10.0.0.3:5672/shop",
        "nats://10.0.0.1:4222,10.0.0.2:4222,10.0.0.3:4222",
        "redis+sentinel://10.0.0.1:26379,10.0.0.2:26379,10.0.0.3:26379/mymaster/0",
    ]


def test_the_options_it_names_exist() -> None:
    named: dict[type[BackendSettings], tuple[str, ...]] = {
        KafkaSettings: ("replication_factor", "min_insync_replicas"),
        RabbitSettings: ("quorum_size",),
        NatsSettings: ("replicas",),
        RedisSettings: ("replica_acks", "replica_timeout"),
    }
    for settings, options in named.items():
        for option in options:
            assert f"`{option}`" in DOC, option
            assert option in settings.option_specs(), (settings.__name__, option)
