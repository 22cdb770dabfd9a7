"""BaseBackend's lifecycle, checks and error mapping; BaseSubscription's shutdown contract.

A small backend built on the kit records what the kit calls and when; the memory backend
(the kit's first user) is covered by tests/memory.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence
from typing import Any

import pytest
from eventwire.backend import Inbound, SubscriptionSpec, WireMessage
from eventwire.backendkit import (
    BackendSettings,
    BaseBackend,
    BaseSubscription,
    ConnectionState,
    ErrorMap,
    SubscriptionState,
    cancel_and_wait,
    first_oversized,
    map_errors,
    message_size,
    option,
    scrub,
)
from eventwire.errors import (
    BackendUnavailableError,
    BusClosedError,
    ConfigurationError,
    EventwireError,
    MessageTooLargeError,
    PublishError,
)

pytestmark = pytest.mark.anyio


class ClientError(Exception):
    """An exception of a made-up client library."""


class ClientTimeout(ClientError):
    pass


@dataclasses.dataclass(frozen=True, kw_only=True)
class FakeSettings(BackendSettings):
    backend = "fake"
    schemes = ("fake",)
    password: str | None = option(None, "password", secret=True)


class FakeSubscription(BaseSubscription):
    def __init__(
        self,
        spec: SubscriptionSpec,
        log: list[str],
        gate: asyncio.Event | None = None,
        refusal: Exception | None = None,
    ) -> None:
        async def handler(inbound: Inbound) -> None:
            raise RuntimeError("handler bug")

        super().__init__(spec, handler)
        self.log = log
        self.spawn(self._forever(), "fetch")
        self.started = False
        self._gate, self._refusal = gate, refusal

    async def start(self) -> None:
        if self._gate is not None:
            await self._gate.wait()  # e.g. a group join under way
        if self._refusal is not None:
            raise self._refusal
        self.started = True

    async def _forever(self) -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.log.append(f"{self.spec.group}:task-cancelled")
            raise

    async def _stop_fetching(self) -> None:
        self.log.append(f"{self.spec.group}:stop")

    async def _flush(self) -> None:
        self.log.append(f"{self.spec.group}:flush")

    async def _release(self) -> None:
        self.log.append(f"{self.spec.group}:release")

    def _drop(self) -> None:
        self.log.append(f"{self.spec.group}:drop")


class FakeBackend(BaseBackend[FakeSettings]):
    name = "fake"
    error_map = {ClientError: PublishError, ClientTimeout: BackendUnavailableError}

    def __init__(self, url: str = "fake://", fail: int = 0) -> None:
        super().__init__(FakeSettings.parse(url))
        from eventwire.backend import Capabilities

        self.capabilities = Capabilities(max_message_bytes=100)
        self.log: list[str] = []
        self.fail = fail
        self.gate: asyncio.Event | None = None
        self.refusal: Exception | None = None

    async def _connect(self) -> None:
        self.log.append("connect")
        await asyncio.sleep(0)
        if self.fail:
            self.fail -= 1
            raise ClientTimeout(f"no answer (password {self.settings.password})")

    async def _close(self) -> None:
        self.log.append("close")

    async def _abort(self) -> None:
        self.log.append("abort")

    async def publish(self, channel: str, messages: Sequence[WireMessage]) -> None:
        self.check_publish(channel, messages)

    async def subscribe(self, spec: SubscriptionSpec, handler: Any) -> FakeSubscription:
        self.check_subscribe(spec)
        return await self.started(FakeSubscription(spec, self.log, self.gate, self.refusal))


async def test_connect_is_idempotent_and_concurrent_callers_share_one_attempt() -> None:
    backend = FakeBackend()
    assert backend.state.name == ConnectionState.NEW.name
    await asyncio.gather(backend.connect(), backend.connect(), backend.connect())
    await backend.connect()
    assert backend.log == ["connect"] and backend.state.name == ConnectionState.CONNECTED.name


async def test_a_failed_connect_is_mapped_scrubbed_keeps_its_cause_and_can_be_retried() -> None:
    backend = FakeBackend("fake://?password=hunter2", fail=1)
    with pytest.raises(BackendUnavailableError) as caught:
        await backend.connect()
    text = str(caught.value)
    assert text.startswith("connecting to fake:// failed: ClientTimeout: no answer (password ***)")
    assert "hunter2" not in text and "check that the broker runs" in text
    assert isinstance(caught.value.__cause__, ClientTimeout)
    assert backend.state.name == ConnectionState.NEW.name
    await backend.connect()
    assert backend.state.name == ConnectionState.CONNECTED.name


async def test_client_errors_can_be_imported_when_they_are_first_needed() -> None:
    class LazyBackend(FakeBackend):
        def client_errors(self) -> dict[type[BaseException], type[EventwireError]]:
            return {KeyError: ConfigurationError}  # as if imported from the client here

    with pytest.raises(ConfigurationError) as caught, LazyBackend().map_errors("declare"):
        raise KeyError("no such stream")
    assert isinstance(caught.value.__cause__, KeyError)
    with pytest.raises(ClientError), LazyBackend().map_errors("declare"):
        raise ClientError("not in this backend's map")


async def test_the_connection_guard_says_what_to_do() -> None:
    backend = FakeBackend()
    with pytest.raises(BusClosedError, match="not connected; call connect"):
        await backend.publish("orders", [])
    with pytest.raises(BusClosedError, match="not connected; call connect"):
        backend.check_channel("orders")  # the guard of browse, delete_group, purge...
    await backend.connect()
    backend.check_channel("orders")
    with pytest.raises(ConfigurationError):
        backend.check_channel("bad channel name")
    await backend.close()
    with pytest.raises(BusClosedError, match="is closed; create a new backend"):
        await backend.publish("orders", [])
    with pytest.raises(BusClosedError, match="is closed"):
        await backend.connect()


async def test_publish_checks_the_channel_and_the_one_size_formula() -> None:
    backend = FakeBackend()
    await backend.connect()
    with pytest.raises(ConfigurationError, match="channel name 'bad name'"):
        await backend.publish("bad name", [])
    fits = WireMessage(b"x" * 90, {"ab": "cd"}, "key456")  # 90 + 4 + 6 = 100
    assert message_size(fits) == 100
    await backend.publish("orders", [fits])
    over = WireMessage(b"x" * 90, {"ab": "cd"}, "key4567")
    with pytest.raises(MessageTooLargeError, match=r"message 1 .* is 101 bytes .* limit of 100"):
        await backend.publish("orders", [fits, over])
    assert message_size(WireMessage("é".encode(), {"é": "é"}, "é")) == 8  # UTF-8 bytes


def test_first_oversized_counts_utf8_bytes_and_the_overhead() -> None:
    fits = WireMessage(b"x" * 90, {}, "é" * 5)  # 90 + 10 bytes: exactly the limit
    over = WireMessage(b"x" * 90, {"a": "é"}, "é" * 4)  # 90 + 1 + 2 + 8 = 101 bytes, 96 chars
    assert first_oversized([fits], 100) is None
    assert first_oversized([fits, over, fits], 100) == (1, 101)
    assert first_oversized([fits], 100, overhead=1) == (0, 101)
    assert first_oversized([WireMessage(b"x" * 101, {}, None)], 100) == (0, 101)


async def test_subscribe_checks_the_spec() -> None:
    backend = FakeBackend()
    await backend.connect()
    with pytest.raises(ConfigurationError, match="group name"):
        await backend.subscribe(SubscriptionSpec("orders", "a b"), None)
    with pytest.raises(ConfigurationError, match="max_in_flight=0"):
        await backend.subscribe(SubscriptionSpec("orders", "g", max_in_flight=0), None)


async def test_subscribe_returns_a_started_subscription_tracked_by_the_backend() -> None:
    backend = FakeBackend()
    await backend.connect()
    sub = await backend.subscribe(SubscriptionSpec("orders", "g"), None)
    assert sub.started and backend.subscriptions == (sub,)


async def test_a_start_that_fails_aborts_the_subscription_and_forgets_it() -> None:
    backend = FakeBackend()
    await backend.connect()
    backend.refusal = ClientError("group join refused")
    with pytest.raises(ClientError, match="group join refused"):
        await backend.subscribe(SubscriptionSpec("orders", "g"), None)
    assert backend.subscriptions == ()
    assert backend.log[1:2] == ["g:drop"]  # aborted: nothing flushed, released or stopped
    assert not any(entry.endswith(("flush", "release", "stop")) for entry in backend.log)


async def test_closing_the_backend_while_a_start_waits_ends_that_subscription() -> None:
    backend = FakeBackend()
    await backend.connect()
    backend.gate = asyncio.Event()
    subscribing = asyncio.create_task(backend.subscribe(SubscriptionSpec("orders", "g"), None))
    await asyncio.sleep(0.01)
    (sub,) = backend.subscriptions
    await backend.close()
    assert sub.state.name == SubscriptionState.CLOSED.name and "g:release" in backend.log
    backend.gate.set()
    await subscribing


async def test_close_is_stop_then_cancel_then_flush_then_release_then_disconnect() -> None:
    backend = FakeBackend()
    await backend.connect()
    sub = await backend.subscribe(SubscriptionSpec("orders", "g"), None)
    await sub.stop()
    assert sub.state.name == SubscriptionState.STOPPED.name and sub.accepting and not sub.running
    await backend.close()
    await backend.close()
    assert backend.log == [
        "connect",
        "g:stop",
        "g:task-cancelled",
        "g:flush",
        "g:release",
        "close",
    ]
    assert sub.state.name == SubscriptionState.CLOSED.name and not sub.accepting
    assert backend.state.name == ConnectionState.CLOSED.name and backend.subscriptions == ()
    await sub.abort()  # a no-op after close
    assert sub.state.name == SubscriptionState.CLOSED.name and backend.log[-1] == "close"


async def test_abort_drops_every_subscription_before_any_await_and_sends_nothing() -> None:
    backend = FakeBackend()
    await backend.connect()
    for group in ("a", "b"):
        await backend.subscribe(SubscriptionSpec("orders", group), None)
    await asyncio.sleep(0)  # the fetch tasks start
    await backend.abort()
    await backend.abort()
    assert backend.log[1:3] == ["a:drop", "b:drop"]  # both, before either task ended
    assert sorted(backend.log[3:5]) == ["a:task-cancelled", "b:task-cancelled"]
    assert backend.log[5:] == ["abort"]
    assert not any(entry.endswith(("flush", "release", "stop")) for entry in backend.log)


async def test_close_logs_broker_trouble_instead_of_raising(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Failing(FakeSubscription):
        async def _flush(self) -> None:
            raise ConnectionError("redis://u:hunter2@h gone")

    sub = Failing(SubscriptionSpec("orders", "g"), [])
    await sub.close()
    assert sub.state.name == SubscriptionState.CLOSED.name
    assert "flush while closing (ConnectionError)" in caplog.text
    assert "hunter2" not in caplog.text


async def test_deliver_is_the_one_place_a_handler_exception_is_caught(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sub = FakeSubscription(SubscriptionSpec("orders", "g"), [])
    assert await sub.deliver(object()) is False  # type: ignore[arg-type]
    assert "raised on a delivery; it stays unsettled" in caplog.text
    taken: list[object] = []

    async def handler(inbound: Inbound) -> None:
        taken.append(inbound)

    sub._handler = handler
    assert await sub.deliver("delivery") is True  # type: ignore[arg-type]
    assert taken == ["delivery"]
    await sub.abort()


def test_map_errors_maps_by_class_hierarchy_and_keeps_the_cause() -> None:
    mapping: ErrorMap = {ClientError: PublishError, ClientTimeout: BackendUnavailableError}
    with pytest.raises(BackendUnavailableError) as caught, map_errors("x", mapping):
        raise ClientTimeout("slow")
    assert caught.value.__cause__ is not None
    with (
        pytest.raises(
            PublishError, match=r"^publish to 'orders' failed: ClientError: x; the events"
        ),
        map_errors("publish to 'orders'", mapping),
    ):
        raise ClientError("x")


def test_map_errors_lets_its_own_errors_cancellation_and_unknown_exceptions_through() -> None:
    mapping: ErrorMap = {ClientError: PublishError}
    for exc in (EventwireError("mine"), KeyError("k"), asyncio.CancelledError()):
        with pytest.raises(type(exc)) as caught, map_errors("x", mapping):
            raise exc
        assert caught.value is exc


def test_map_errors_into_and_advice() -> None:
    unavailable: ErrorMap = {OSError: BackendUnavailableError}
    with (
        pytest.raises(PublishError, match=r"^publish failed: OSError: down; retry later$"),
        map_errors("publish", unavailable, into=PublishError, advice="retry later"),
    ):
        raise OSError("down")
    too_large: ErrorMap = {ValueError: MessageTooLargeError}
    with (
        pytest.raises(MessageTooLargeError),  # already a PublishError: kept
        map_errors("publish", too_large, into=PublishError),
    ):
        raise ValueError("big")
    # A client error the map does not name (outside the library's documented classes)
    # still fails the publish as a PublishError, keeping the cause.
    with (
        pytest.raises(PublishError, match=r"^publish failed: KeyError: 'pool'") as caught,
        map_errors("publish", too_large, into=PublishError),
    ):
        raise KeyError("pool")
    assert isinstance(caught.value.__cause__, KeyError)


def test_scrub_removes_secrets_and_any_url_user_info() -> None:
    text = "auth s3cret failed for nats://alice:pw@host:4222 and amqp://tok@h/v"
    assert scrub(text, ["s3cret", ""]) == (
        "auth *** failed for nats://***@host:4222 and amqp://***@h/v"
    )


def test_lazy_exports_import_a_name_on_first_use_only() -> None:
    import sys
    import types

    from eventwire.backendkit import lazy_exports

    package = types.ModuleType("eventwire_lazy_demo")
    sys.modules[package.__name__] = package
    try:
        getter = lazy_exports(package.__name__, {"dedent": "textwrap"})
        import textwrap

        assert getter("dedent") is textwrap.dedent
        assert package.dedent is textwrap.dedent  # cached: later lookups skip the getter
        with pytest.raises(AttributeError, match="has no attribute 'indent'"):
            getter("indent")
    finally:
        del sys.modules[package.__name__]


def test_plugins_load_their_client_library_only_when_used() -> None:
    import subprocess
    import sys

    code = (
        "import sys, eventwire_kafka, eventwire_rabbit; "
        "assert 'aiokafka' not in sys.modules and 'aiormq' not in sys.modules, 'eager'; "
        "eventwire_kafka.KafkaBackend; eventwire_rabbit.RabbitInbound; "
        "assert 'aiokafka' in sys.modules and 'aiormq' in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


async def test_a_task_that_swallows_a_cancellation_is_cancelled_again() -> None:
    sub = FakeSubscription(SubscriptionSpec("orders", "g"), [])
    swallowed: list[int] = []

    async def stubborn() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:  # as a client reading a reply may do
            swallowed.append(1)
        await asyncio.Event().wait()  # only a second cancellation ends it

    task = sub.spawn(stubborn(), "stubborn")
    await asyncio.sleep(0)
    await sub.cancel_tasks(patience=2)
    assert task.cancelled() and swallowed == [1]
    await sub.abort()


async def test_cancel_and_wait_says_how_many_tasks_outlived_their_patience() -> None:
    release = asyncio.Event()

    async def deaf() -> None:
        while not release.is_set():
            try:
                await asyncio.sleep(1)
            except asyncio.CancelledError:
                continue  # swallows every cancellation until released

    quick = asyncio.create_task(asyncio.Event().wait())
    stuck = asyncio.create_task(deaf())
    await asyncio.sleep(0)
    assert await cancel_and_wait([quick, stuck], patience=0.5) == 1
    assert quick.cancelled() and not stuck.done()
    release.set()
    assert await cancel_and_wait([stuck], patience=2) == 0
