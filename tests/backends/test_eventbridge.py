"""The EventBridge backend against a local AWS endpoint (moto_server, from the dev extra).

The module starts its own moto_server on a free loopback port, so it needs no broker step;
the credentials are dummies (moto accepts any, the AWS SDK needs some to sign).
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from eventwire.backend import Inbound, SubscriptionSpec, WireMessage
from eventwire.errors import (
    ConfigurationError,
    InvalidURLError,
    MessageTooLargeError,
    PublishError,
)
from eventwire_eventbridge import EventBridgeBackend
from eventwire_eventbridge._backend import MAX_BATCH_ENTRIES, _batches
from eventwire_eventbridge._envelope import entry_size, to_entry
from eventwire_eventbridge._info import MAX_ENTRY_BYTES

pytestmark = pytest.mark.anyio

REGION = "us-east-1"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    """A moto_server of this module on a free port."""
    moto = Path(sys.prefix) / "bin" / "moto_server"
    assert moto.exists(), "moto_server is missing: pip install -e '.[dev]' (moto[server])"
    port = _free_port()
    proc = subprocess.Popen(
        [str(moto), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{url}/moto-api/", timeout=1):
                    break
            except OSError:
                assert proc.poll() is None, "moto_server exited"
                assert time.monotonic() < deadline, "moto_server did not answer in 30 s"
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def _url(endpoint: str, bus: str = "default", extra: str = "") -> str:
    return f"eventbridge://{bus}?region={REGION}&endpoint={endpoint}&wait_time=1s{extra}"


def _client(endpoint: str, service: str) -> Any:
    return boto3.client(
        service,
        region_name=REGION,
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def _raw_queue(endpoint: str, channel: str) -> tuple[Any, str]:
    """A queue of the test's own fed by a rule on `channel`: what EventBridge routed."""
    events, sqs = _client(endpoint, "events"), _client(endpoint, "sqs")
    name = f"raw-{uuid.uuid4().hex[:12]}"
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    events.put_rule(Name=name, EventPattern=json.dumps({"detail": {"channel": [channel]}}))
    events.put_targets(Rule=name, Targets=[{"Id": "q", "Arn": arn}])
    return sqs, url


def _channel() -> str:
    return f"eb.test.{uuid.uuid4().hex[:10]}"


async def _collect(backend: EventBridgeBackend, channel: str, want: int) -> list[Inbound]:
    got: list[Inbound] = []

    async def handler(inbound: Inbound) -> None:
        got.append(inbound)
        await inbound.ack()

    subscription = await backend.subscribe(SubscriptionSpec(channel, "g"), handler)
    try:
        for _ in range(200):
            if len(got) >= want:
                break
            await asyncio.sleep(0.05)
    finally:
        await subscription.close()
    return got


def test_round_trip_and_envelope_mapping(endpoint: str) -> None:
    channel = _channel()
    headers = {
        "ce_id": "evt-1",
        "ce_source": "/orders",
        "ce_type": "OrderPlaced",
        "ce_time": "2026-05-01T12:00:00.250Z",
        "x-custom": "yes",
    }
    sqs, raw_url = _raw_queue(endpoint, channel)

    async def main() -> list[Inbound]:
        backend = EventBridgeBackend(_url(endpoint))
        await backend.connect()
        try:
            subscription = asyncio.create_task(_collect(backend, channel, 2))
            await asyncio.sleep(0.5)  # the group's rule exists before the publish
            await backend.publish(
                channel,
                [WireMessage(b'{"order": 7}', headers, "order-7"), WireMessage(b"\xff\x00", {})],
            )
            return await subscription
        finally:
            await backend.close()

    got = asyncio.run(main())
    messages = {inbound.message.body: inbound for inbound in got}
    assert messages[b'{"order": 7}'].message == WireMessage(b'{"order": 7}', headers, "order-7")
    assert messages[b"\xff\x00"].message == WireMessage(b"\xff\x00", {}, None)
    assert all(inbound.delivery_count == 1 for inbound in got)

    raw = sqs.receive_message(QueueUrl=raw_url, MaxNumberOfMessages=10, WaitTimeSeconds=2)
    events = {json.loads(m["Body"])["detail-type"]: json.loads(m["Body"]) for m in raw["Messages"]}
    placed = events["OrderPlaced"]
    assert placed["source"] == "/orders"
    assert placed["time"] == "2026-05-01T12:00:00Z"  # EventBridge keeps whole seconds
    assert placed["detail"]["headers"]["ce_id"] == "evt-1"
    assert placed["detail"]["data"] == '{"order": 7}'
    assert events["eventwire.message"]["source"] == "eventwire"


def test_unsettled_message_comes_back_after_close(endpoint: str) -> None:
    channel = _channel()

    async def main() -> tuple[int, int]:
        backend = EventBridgeBackend(_url(endpoint))
        await backend.connect()
        try:
            first: list[Inbound] = []

            async def keep(inbound: Inbound) -> None:
                first.append(inbound)  # never acked

            subscription = await backend.subscribe(SubscriptionSpec(channel, "g"), keep)
            await backend.publish(channel, [WireMessage(b"once", {})])
            for _ in range(200):
                if first:
                    break
                await asyncio.sleep(0.05)
            await subscription.close()
            again = await _collect(backend, channel, 1)
            return first[0].delivery_count, again[0].delivery_count
        finally:
            await backend.close()

    assert asyncio.run(main()) == (1, 2)


def test_lag_of_a_stopped_group_counts_what_was_published_since(endpoint: str) -> None:
    """The group handles 3 events and stops; 7 more are published: its queue holds 7."""
    from tests.observability.test_lag import stopped_group_lag

    assert asyncio.run(stopped_group_lag(_url(endpoint))) == 7


def test_missing_credentials(
    endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))

    async def main() -> None:
        await EventBridgeBackend(_url(endpoint)).connect()

    with pytest.raises(ConfigurationError) as info:
        asyncio.run(main())
    message = str(info.value)
    assert "NoCredentialsError" in message
    assert "AWS_ACCESS_KEY_ID" in message and "\n" not in message


def test_bus_that_does_not_exist(endpoint: str) -> None:
    async def main() -> None:
        await EventBridgeBackend(_url(endpoint, bus="no-such-bus")).connect()

    with pytest.raises(ConfigurationError, match="the event bus 'no-such-bus' does not exist"):
        asyncio.run(main())


def test_credentials_in_the_url_are_refused() -> None:
    with pytest.raises(InvalidURLError) as info:
        EventBridgeBackend("eventbridge://AKIA:s3cret@default?region=us-east-1")
    assert "s3cret" not in str(info.value)
    assert "AWS chain" in str(info.value)


async def test_payload_over_the_entry_limit_sends_nothing(endpoint: str) -> None:
    channel = _channel()
    sqs, raw_url = _raw_queue(endpoint, channel)
    # Under the kit's limit by its formula, but JSON escaping doubles every quote.
    quoted = b'"' * (150 * 1024)

    backend = EventBridgeBackend(_url(endpoint))
    await backend.connect()
    try:
        with pytest.raises(MessageTooLargeError, match="at most 262144 bytes"):
            await backend.publish(channel, [WireMessage(b"small", {}), WireMessage(quoted, {})])
        with pytest.raises(MessageTooLargeError):
            await backend.publish(channel, [WireMessage(b"x" * MAX_ENTRY_BYTES, {})])
    finally:
        await backend.close()
    raw = sqs.receive_message(QueueUrl=raw_url, WaitTimeSeconds=1)
    assert raw.get("Messages", []) == []


def test_partial_put_events_failure_is_an_error(endpoint: str) -> None:
    channel = _channel()
    good = to_entry("default", channel, WireMessage(b"ok", {}))
    malformed = dict(good, Detail="not json")

    async def main() -> None:
        backend = EventBridgeBackend(_url(endpoint))
        await backend.connect()
        try:
            await backend._put(channel, [malformed, good])
        finally:
            await backend.close()

    with pytest.raises(PublishError) as info:
        asyncio.run(main())
    assert "refused 1 of 2 entries (MalformedDetail" in str(info.value)


def test_batches_keep_to_the_put_events_limits() -> None:
    small = [to_entry("b", "c", WireMessage(b"x", {})) for _ in range(25)]
    assert [len(b) for b in _batches(small)] == [MAX_BATCH_ENTRIES, MAX_BATCH_ENTRIES, 5]
    big = [to_entry("b", "c", WireMessage(b"y" * (100 * 1024), {})) for _ in range(5)]
    batches = _batches(big)
    assert [len(b) for b in batches] == [2, 2, 1]
    assert all(sum(entry_size(e) for e in b) <= MAX_ENTRY_BYTES for b in batches)
