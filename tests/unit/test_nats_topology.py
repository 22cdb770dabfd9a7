"""A subscription's JetStream set-up is tried again while the API does not answer in time
(a NATS cluster electing a stream's leader answers late), up to ``publish_timeout``."""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Any

import pytest
from eventwire.backend import SubscriptionSpec
from eventwire_nats import NatsSettings
from eventwire_nats._topology import Topology, durable_name, stream_name
from nats.errors import TimeoutError as NatsTimeout

pytestmark = pytest.mark.anyio

SPEC = SubscriptionSpec("orders", "billing")


class SlowJetStream:
    """The JetStream calls `Topology` makes, on a server where the channel's stream, the
    lease bucket and the group's consumers exist; the first `late` consumer lookups time
    out, as nats-py reports an API request nobody answered in time."""

    def __init__(self, late: int) -> None:
        self.late = late
        self.lookups: list[tuple[str, str]] = []

    async def stream_info(self, name: str) -> Any:
        config = SimpleNamespace(
            subjects=["orders.*"], description="eventwire channel orders shards=2", max_age=5.0
        )
        return SimpleNamespace(config=config)

    async def key_value(self, bucket: str) -> Any:
        return SimpleNamespace(bucket=bucket)

    async def consumer_info(self, stream: str, durable: str) -> Any:
        self.lookups.append((stream, durable))
        if self.late > 0:
            self.late -= 1
            raise NatsTimeout
        return SimpleNamespace(name=durable)


def topology(js: SlowJetStream, publish_timeout: str) -> Topology:
    settings = NatsSettings.parse("nats://127.0.0.1:4222", {"publish_timeout": publish_timeout})
    return Topology(js, settings, replicas=1)


async def test_a_set_up_the_api_answers_late_is_tried_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    js = SlowJetStream(late=3)
    with caplog.at_level(logging.WARNING):
        found, kv = await topology(js, "30").prepare(SPEC)
    assert (found.stream, found.shards, kv.bucket) == (stream_name("orders"), 2, "eventwire_leases")
    assert js.late == 0
    # every shard's consumer was looked up once the API answered
    answered = js.lookups[-2:]
    assert sorted(answered) == [(found.stream, durable_name("billing", s)) for s in (0, 1)]
    retries = [r for r in caplog.records if "retrying" in r.getMessage()]
    assert retries and "billing" in retries[0].getMessage()


async def test_a_set_up_the_api_never_answers_fails_after_publish_timeout() -> None:
    js = SlowJetStream(late=10**6)
    with pytest.raises(NatsTimeout):
        await topology(js, "0.6").prepare(SPEC)
    assert 4 <= len(js.lookups) < 20  # each shard tried again, then given up
