"""The EventBridge backend against a local AWS endpoint (moto_server, from the dev extra).

The module starts its own moto_server on a free loopback port, so it needs no broker step;
the credentials are dummies (moto accepts any, the AWS SDK needs some to sign).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from aiobotocore.awsrequest import AioAWSResponse
from eventwire import Event, EventBus
from eventwire.backend import Inbound, SubscriptionSpec, WireMessage
from eventwire.contracts import generate_asyncapi, validate_document
from eventwire.errors import (
    ConfigurationError,
    InvalidURLError,
    MessageTooLargeError,
    PublishError,
    UnsupportedOperationError,
)
from eventwire_eventbridge import CAPABILITIES, EventBridgeBackend
from eventwire_eventbridge._backend import MAX_BATCH_ENTRIES, resource_name
from eventwire_eventbridge._batcher import PutBatcher
from eventwire_eventbridge._clients import REQUEST_ATTEMPTS
from eventwire_eventbridge._envelope import entry_size, to_entry
from eventwire_eventbridge._info import MAX_ENTRY_BYTES
from eventwire_eventbridge._names import STORE_GROUP

from tests.backends._moto import CREDENTIALS, REGION, bus_url, moto_server

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A moto_server of this module on a free port."""
    with moto_server(tmp_path_factory.mktemp("moto") / "moto.log") as url:
        yield url


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)


def _url(endpoint: str, bus: str = "default", extra: str = "") -> str:
    return bus_url(endpoint, bus, extra)


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


async def _collect(
    backend: EventBridgeBackend, channel: str, want: int, publish: Any = None
) -> list[Inbound]:
    """Subscribe group ``g``, await `publish` (once the group's rule exists), and collect
    `want` deliveries (acking each), for 30 s at most."""
    got: list[Inbound] = []

    async def handler(inbound: Inbound) -> None:
        got.append(inbound)
        await inbound.ack()

    subscription = await backend.subscribe(SubscriptionSpec(channel, "g"), handler)
    try:
        if publish is not None:
            await publish
        for _ in range(600):
            if len(got) >= want:
                break
            await asyncio.sleep(0.05)
    finally:
        await subscription.close()
    return got


async def test_round_trip_and_envelope_mapping(endpoint: str) -> None:
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
            sent = backend.publish(
                channel,
                [WireMessage(b'{"order": 7}', headers, "order-7"), WireMessage(b"\xff\x00", {})],
            )
            return await _collect(backend, channel, 2, sent)
        finally:
            await backend.close()

    got = await main()
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


async def _counts_across_a_close(
    url: str, before: float = 0.0, after: float = 0.0
) -> tuple[int, int]:
    """A member receives one message and leaves it unsettled; `before` seconds later it
    closes, and `after` seconds after that another member of the group collects it. The
    delivery counts of the two receives."""
    channel = _channel()
    backend = EventBridgeBackend(url)
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
        await asyncio.sleep(before)
        await subscription.close()
        await asyncio.sleep(after)
        again = await _collect(backend, channel, 1)
        return first[0].delivery_count, again[0].delivery_count
    finally:
        await backend.close()


async def test_unsettled_message_comes_back_after_close(endpoint: str) -> None:
    assert await _counts_across_a_close(_url(endpoint)) == (1, 2)


async def test_a_long_poll_under_way_at_close_takes_nothing_from_the_next_member(
    endpoint: str,
) -> None:
    """Closing right after a delivery finds the member in its next long poll (3 s here).
    Abandoned, that poll would still take the message made visible again by the close
    (moto looks again every second), hide it for ``visibility_timeout`` and count a
    receive: a member subscribing a little later would get it only after 5 s, with
    delivery count 3 (an over-count that sends events to the dead-letter queue early)."""
    url = bus_url(endpoint, "default", "&visibility_timeout=5s", wait_time="3s")
    assert await _counts_across_a_close(url, before=0.2, after=1.5) == (1, 2)


async def test_a_member_receives_no_more_than_max_in_flight(endpoint: str) -> None:
    """SQS counts every receive and cannot take one back, so a member receives only as many
    messages as its handler has room for (``max_in_flight`` unsettled): when it closes,
    the ones it never received reach the next member as first deliveries."""
    channel = _channel()
    backend = EventBridgeBackend(_url(endpoint))
    await backend.connect()
    try:
        kept: list[Inbound] = []

        async def keep(inbound: Inbound) -> None:
            kept.append(inbound)  # never acked: the window stays full

        spec = SubscriptionSpec(channel, "g", max_in_flight=2)
        subscription = await backend.subscribe(spec, keep)
        await backend.publish(channel, [WireMessage(b"%d" % i, {}) for i in range(6)])
        for _ in range(200):
            if len(kept) >= 2:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.5)  # time to receive more, if it would
        assert len(kept) == 2
        await subscription.close()
        again = await _collect(backend, channel, 6)
    finally:
        await backend.close()
    counts = sorted(inbound.delivery_count for inbound in again)
    assert counts == [1, 1, 1, 1, 2, 2]


async def test_lag_of_a_stopped_group_counts_what_was_published_since(endpoint: str) -> None:
    """The group handles 3 events and stops; 7 more are published: its queue holds 7."""
    from tests.observability.test_lag import stopped_group_lag

    assert await stopped_group_lag(_url(endpoint)) == 7


async def test_missing_credentials(
    endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))

    async def main() -> None:
        await EventBridgeBackend(_url(endpoint)).connect()

    with pytest.raises(ConfigurationError) as info:
        await main()
    message = str(info.value)
    assert "NoCredentialsError" in message
    assert "AWS_ACCESS_KEY_ID" in message and "\n" not in message


async def test_bus_that_does_not_exist(endpoint: str) -> None:
    async def main() -> None:
        await EventBridgeBackend(_url(endpoint, bus="no-such-bus")).connect()

    with pytest.raises(ConfigurationError, match="the event bus 'no-such-bus' does not exist"):
        await main()


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


async def test_partial_put_events_failure_is_an_error(endpoint: str) -> None:
    """The emulator refuses one entry of a request: the publish names it, the other stays
    sent. The request is changed at the one boundary the SDK offers (its ``before-send``
    event, after signing): no publish can build a malformed entry itself."""
    channel = _channel()
    sqs, raw_url = _raw_queue(endpoint, channel)

    def corrupt_first(request: Any, **_: Any) -> None:
        # Same length (the request is signed, its Content-Length set): "{" becomes "x".
        body = bytes(request.body)
        start = body.index(b'\\"channel\\"') - 1
        request.body = body[:start] + b"x" + body[start + 1 :]

    async def main() -> None:
        backend = EventBridgeBackend(_url(endpoint))
        await backend.connect()
        try:
            backend.events.meta.events.register("before-send.events.PutEvents", corrupt_first)
            await backend.publish(channel, [WireMessage(b"lost", {}), WireMessage(b"ok", {})])
        finally:
            await backend.close()

    with pytest.raises(PublishError) as info:
        await main()
    message = str(info.value)
    assert "EventBridge refused 1 of 2 entries (MalformedDetail" in message
    assert "the others were sent" in message and "\n" not in message
    raw = sqs.receive_message(QueueUrl=raw_url, MaxNumberOfMessages=10, WaitTimeSeconds=2)
    assert [json.loads(m["Body"])["detail"]["data"] for m in raw["Messages"]] == ["ok"]


class _Body:
    """The raw body of a reply the SDK reads (aiobotocore awaits ``read``)."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    async def read(self) -> bytes:
        return self._data


def _reply(request: Any, status: int, body: dict[str, Any]) -> AioAWSResponse:
    headers = {"Content-Type": "application/x-amz-json-1.1", "x-amzn-RequestId": "test"}
    return AioAWSResponse(request.url, status, headers, _Body(json.dumps(body).encode()))


THROTTLED = {"__type": "ThrottlingException", "message": "Rate exceeded"}


async def test_throttling_is_retried_a_bounded_number_of_times_then_a_clear_error(
    endpoint: str,
) -> None:
    """PutEvents answers ThrottlingException: the SDK's standard retries (3 attempts), then
    one clear error. The throttled replies come from the SDK's ``before-send`` event (moto
    cannot throttle); everything around them is the real client."""
    channel = _channel()
    attempts: list[int] = []

    def throttle(request: Any, **_: Any) -> AioAWSResponse:
        attempts.append(1)
        return _reply(request, 400, THROTTLED)

    async def main() -> None:
        backend = EventBridgeBackend(_url(endpoint))
        await backend.connect()
        try:
            backend.events.meta.events.register("before-send.events.PutEvents", throttle)
            await backend.publish(channel, [WireMessage(b"x", {})])
        finally:
            await backend.close()

    with pytest.raises(PublishError) as info:
        await main()
    message = str(info.value)
    assert len(attempts) == REQUEST_ATTEMPTS
    assert "throttled PutEvents (ThrottlingException) through 3 attempts" in message
    assert "raise the quota" in message and "\n" not in message


async def test_a_throttled_publish_that_recovers_is_delivered(endpoint: str) -> None:
    channel = _channel()
    attempts: list[int] = []

    def throttle_twice(request: Any, **_: Any) -> AioAWSResponse | None:
        attempts.append(1)
        return _reply(request, 400, THROTTLED) if len(attempts) <= 2 else None

    async def main() -> list[Inbound]:
        backend = EventBridgeBackend(_url(endpoint))
        await backend.connect()
        try:
            backend.events.meta.events.register("before-send.events.PutEvents", throttle_twice)
            sent = backend.publish(channel, [WireMessage(b"late", {})])
            return await _collect(backend, channel, 1, sent)
        finally:
            await backend.close()

    got = await main()
    assert [inbound.message.body for inbound in got] == [b"late"]
    assert len(attempts) == 3


async def test_throttled_entries_are_sent_again_then_a_clear_error(endpoint: str) -> None:
    """EventBridge takes the request but fails an entry with ThrottlingException (its
    FailedEntryCount): the backend sends that entry again, 4 times at most."""
    channel = _channel()
    attempts: list[int] = []

    def fail_entries(request: Any, **_: Any) -> AioAWSResponse:
        attempts.append(len(json.loads(request.body)["Entries"]))
        failed = {"ErrorCode": "ThrottlingException", "ErrorMessage": "Rate exceeded"}
        return _reply(request, 200, {"FailedEntryCount": 1, "Entries": [failed]})

    async def main() -> None:
        backend = EventBridgeBackend(_url(endpoint))
        await backend.connect()
        try:
            backend.events.meta.events.register("before-send.events.PutEvents", fail_entries)
            await backend.publish(channel, [WireMessage(b"x", {})])
        finally:
            await backend.close()

    with pytest.raises(PublishError) as info:
        await main()
    assert attempts == [1, 1, 1, 1]
    assert "refused 1 of 1 entries (ThrottlingException: Rate exceeded)" in str(info.value)


async def test_unknown_region(endpoint: str) -> None:
    async def main() -> None:
        url = f"eventbridge://default?region=eu-west-9&endpoint={endpoint}"
        await EventBridgeBackend(url).connect()

    with pytest.raises(ConfigurationError) as info:
        await main()
    message = str(info.value)
    assert "unknown AWS region 'eu-west-9'" in message and "eu-west-1" in message
    assert "\n" not in message


async def test_no_region_at_all(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))

    async def main() -> None:
        await EventBridgeBackend("eventbridge://default").connect()

    with pytest.raises(ConfigurationError, match="give a region"):
        await main()


async def test_concurrent_publishes_share_requests_within_the_put_events_limits() -> None:
    sent: list[list[dict[str, object]]] = []

    async def send(batch: list[dict[str, object]]) -> list[str | None]:
        sent.append(batch)
        await asyncio.sleep(0)
        return [None] * len(batch)

    def entries(n: int, size: int) -> list[tuple[dict[str, object], int]]:
        made = [to_entry("b", "c", WireMessage(b"y" * size, {})) for _ in range(n)]
        return [(entry, entry_size(entry)) for entry in made]

    async def main() -> None:
        batcher = PutBatcher(
            send, max_entries=MAX_BATCH_ENTRIES, max_bytes=MAX_ENTRY_BYTES, parallel=2
        )
        results = await asyncio.gather(*(batcher.put(entries(1, 1)) for _ in range(25)))
        assert results == [[None]] * 25
        assert [len(b) for b in sent] == [10, 10, 5]
        sent.clear()
        await batcher.put(entries(5, 100 * 1024))
        assert [len(b) for b in sent] == [2, 2, 1]
        assert all(sum(entry_size(e) for e in b) <= MAX_ENTRY_BYTES for b in sent)

    await main()


class Shipped(Event, channel="shipping", key="order_id"):
    order_id: str


def test_asyncapi_describes_the_bus_the_rules_and_the_sqs_queues() -> None:
    bus = EventBus("eventbridge://orders-bus?region=eu-west-1&visibility_timeout=20s")
    bus.declare(Shipped)

    @bus.subscribe(Shipped, group="billing")
    async def handle(event: Shipped) -> None: ...

    document = generate_asyncapi(bus)
    assert validate_document(document) == []  # the official AsyncAPI 3.0 schema
    (server,) = document["servers"].values()
    assert server["protocol"] == "eventbridge"
    assert server["host"] == "events.eu-west-1.amazonaws.com"
    assert server["x-eventbridge"] == {"eventBusName": "orders-bus", "region": "eu-west-1"}
    channel = document["channels"]["shipping"]
    assert channel["x-eventbridge-rule"] == {"eventPattern": {"detail": {"channel": ["shipping"]}}}
    receive = document["operations"]["receive_shipping_billing"]
    sqs = receive["bindings"]["sqs"]
    assert sqs["bindingVersion"] == "0.2.0"
    group_queue, store = sqs["queues"]
    assert group_queue["name"] == resource_name("eventwire", "shipping", "billing")
    assert group_queue["visibilityTimeout"] == 20 and group_queue["fifoQueue"] is False
    assert store["name"] == resource_name("eventwire", "shipping.dlq", STORE_GROUP)
    assert "x-eventbridge" in document["components"]["messages"]["Shipped"]


def test_asyncapi_of_other_backends_gets_no_eventbridge_details() -> None:
    bus = EventBus("memory://")
    bus.declare(Shipped)
    found = json.dumps(generate_asyncapi(bus))
    assert "eventbridge" not in found and '"sqs"' not in found


async def test_dead_letter_channels_are_kept_listed_and_purged(endpoint: str) -> None:
    """A dead-letter channel's store keeps what was published to it, lists it as often as
    asked (nothing consumed), purges it; an ordinary channel cannot be listed."""
    channel = _channel()
    dlq = f"{channel}.dlq"

    async def main() -> tuple[list[bytes], list[bytes], int, list[WireMessage]]:
        backend = EventBridgeBackend(_url(endpoint))
        await backend.connect()
        try:
            await backend.publish(dlq, [WireMessage(f"dead-{i}".encode(), {}) for i in range(12)])
            first: list[WireMessage] = []
            for _ in range(100):  # routed to the store by the emulator, soon after
                first = await backend.browse(dlq)
                if len(first) == 12:
                    break
            second = await backend.browse(dlq)
            with pytest.raises(UnsupportedOperationError, match="only dead-letter channels"):
                await backend.browse(channel)
            purged = await backend.purge_channel(dlq)
            return (
                sorted(m.body for m in first),
                sorted(m.body for m in second),
                purged,
                await backend.browse(dlq),
            )
        finally:
            await backend.delete_channel(dlq)
            await backend.close()

    first, second, purged, after = await main()
    expected = sorted(f"dead-{i}".encode() for i in range(12))
    assert first == expected and second == expected
    assert purged == 12 and after == []


@pytest.mark.parametrize(
    ("endpoint", "emulator"),
    [
        (None, False),
        ("https://events.eu-west-1.amazonaws.com", False),
        ("https://vpce-0a1b-x.sqs.us-east-1.vpce.amazonaws.com", False),
        ("https://events.cn-north-1.amazonaws.com.cn", False),
        ("http://127.0.0.1:4599", True),
        ("http://localstack:4566", True),
        ("https://amazonaws.com.example.org", True),
    ],
)
def test_g04_is_declared_unsupported_on_an_emulator_endpoint_only(
    endpoint: str | None, emulator: bool
) -> None:
    extra = f"&endpoint={endpoint}" if endpoint else ""
    backend = EventBridgeBackend(f"eventbridge://default?region=us-east-1{extra}")
    unsupported = backend.capabilities.unsupported
    assert ("G04" in unsupported) is emulator
    assert set(unsupported) - {"G04"} == set(CAPABILITIES.unsupported)
    if emulator:
        assert "moto issue 519" in unsupported["G04"]


@pytest.fixture
def launcher() -> Any:
    """conformance/brokers/moto_server.py, imported (it patches nothing until it runs)."""
    import importlib.util

    path = Path(__file__).resolve().parents[2] / "conformance" / "brokers" / "moto_server.py"
    spec = importlib.util.spec_from_file_location("moto_launcher", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_moto_launcher_keeps_the_retention_answer(launcher: Any) -> None:
    """conformance/brokers/moto_server.py replaces moto's retention check (nine passes over
    the queue per received message) by one that must answer the same."""
    from moto.core.utils import unix_time_millis
    from moto.sqs.models import SQSBackend

    sqs = SQSBackend(REGION, "123456789012")
    sqs.create_queue("kept", MessageRetentionPeriod="60")
    message: Any = sqs.send_message("kept", "body")
    now = unix_time_millis()
    for age in (0, 30_000, 59_000, 61_000, 3_600_000):
        message.sent_timestamp = int(now - age)
        original = SQSBackend.is_message_valid_based_on_retention_period(sqs, "kept", message)
        assert launcher.retained(sqs, "kept", message) is original
        assert original is (age < 60_000)


def test_the_moto_launcher_reads_the_same_clock(launcher: Any) -> None:
    from datetime import datetime

    from moto.core import utils

    assert abs(launcher.unix_time_millis() - utils.unix_time_millis()) < 1000
    moment = datetime(2026, 1, 2, 3, 4, 5, 678000)
    assert launcher.unix_time(moment) == utils.unix_time(moment)


def test_the_moto_launcher_deletes_as_moto_does(launcher: Any) -> None:
    from moto.sqs.exceptions import ReceiptHandleIsInvalid
    from moto.sqs.models import Queue, SQSBackend

    def scenario(delete: Any) -> list[Any]:
        sqs = SQSBackend(REGION, "123456789012")
        queue = sqs.create_queue("q", VisibilityTimeout="0")
        for body in ("a", "b", "c"):
            sqs.send_message("q", body)
        first = sqs.receive_message("q", 10, 0, 0)
        second = sqs.receive_message("q", 10, 0, 0)  # new handles; the old ones still delete
        outcome: list[Any] = []
        for handle in (first[0].receipt_handle, second[1].receipt_handle, "nonsense"):
            try:
                delete(queue, handle)
                outcome.append(sorted(m.body for m in queue._messages))
            except ReceiptHandleIsInvalid:
                outcome.append("invalid")
        delete(queue, first[0].receipt_handle)  # deleted already: nothing
        outcome.append(sorted(m.body for m in queue._messages))
        return outcome

    expected = scenario(Queue.delete_message)
    assert expected == [["b", "c"], ["c"], "invalid", ["c"]]
    assert scenario(launcher.delete_message) == expected


class _Interleaved(list[Any]):
    """A queue's message list that, once, runs `meanwhile` in another thread in the middle
    of a pass over it, and gives it 0.5 s: what two SQS calls at once do in moto_server's
    threads, made certain."""

    def __init__(self, items: list[Any], meanwhile: Any) -> None:
        super().__init__(items)
        self.meanwhile = meanwhile
        self.threads: list[Any] = []

    def __iter__(self) -> Iterator[Any]:
        for i, item in enumerate(list.__iter__(self)):
            yield item
            if i == 0 and not self.threads:
                import threading

                self.threads.append(threading.Thread(target=self.meanwhile))
                self.threads[0].start()
                self.threads[0].join(0.5)


def _delete_while_another_call_runs(delete: Any) -> list[str]:
    """Delete ``a`` while, in the middle of it, another thread deletes ``b`` and sends
    ``d``; the bodies left in the queue."""
    from moto.sqs.models import SQSBackend

    sqs = SQSBackend(REGION, "123456789012")
    queue = sqs.create_queue("q")
    for body in ("a", "b", "c"):
        sqs.send_message("q", body)
    received = {m.body: m.receipt_handle for m in sqs.receive_message("q", 10, 0, 300)}

    def meanwhile() -> None:
        delete(queue, received["b"])
        sqs.send_message("q", "d")

    interleaved = _Interleaved(queue._messages, meanwhile)
    queue._messages = interleaved
    delete(queue, received["a"])
    for thread in interleaved.threads:
        thread.join()
    return sorted(m.body for m in queue._messages)


def test_the_moto_launcher_deletes_and_sends_safely_at_the_same_time(launcher: Any) -> None:
    """A member's parallel ``DeleteMessageBatch`` calls meet EventBridge routing new events
    to the queue: every deleted message stays deleted and every sent one stays queued."""
    from moto.sqs.models import Queue

    assert _delete_while_another_call_runs(launcher.delete_message) == ["c", "d"]
    # moto's own assigns the list without the lock: "b" comes back and "d" is lost.
    assert _delete_while_another_call_runs(Queue.delete_message) == ["b", "c"]
