"""The eventwire rows: only the public `EventBus` API, on whatever backend the URL names.

Guarantees stay on: the pipeline acks after the handler returns, ``idempotent=True`` uses an
in-memory idempotency store (``"memory://"``, the same on every backend, so the rows compare
the brokers rather than the stores), and every payload is validated by its pydantic model on
both sides (`EventBus.publish` serializes and revalidates; the consumer decodes into the model).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from importlib.metadata import version

from eventwire import BatchPolicy, Event, EventBus

from eventwire_conformance.bench.model import BenchConfig, PayloadFactory, Tracker

__all__ = ["BatchRunner", "BenchEvent", "EventwireRunner", "channel_model"]

SOURCE = "eventwire-bench"
#: The batch row's policy (the example of the batch API's documentation).
BATCH_SIZE = 500
BATCH_WAIT = 0.05


class BenchEvent(Event, type="BenchEvent"):
    """The benchmark payload (each run's channels get a subclass that names the channel)."""

    seq: int
    key: str
    sent_ns: int
    pad: str


def channel_model(channel: str) -> type[BenchEvent]:
    """`BenchEvent` declared on `channel`, keyed by ``key``."""

    class ChannelBenchEvent(BenchEvent, channel=channel, key="key", type="BenchEvent"):
        pass

    return ChannelBenchEvent


class EventwireRunner:
    """Publishes with one long-lived bus; each consumer is a fresh bus with one subscription."""

    kind = "eventwire"

    def __init__(self, config: BenchConfig, payloads: PayloadFactory) -> None:
        self._config = config
        self._payloads = payloads
        # Fails here, before anything runs, for an unknown scheme or a broken plugin.
        self._publisher = EventBus(config.url, source=SOURCE, close_timeout=5.0)
        backend = self._publisher.backend.name
        self.label = (
            f"eventwire {version('eventwire')} ({backend} backend): ack after handling, "
            f"idempotent=True (in-memory store), pydantic validation, "
            f"concurrency={config.concurrency}, max_in_flight=default"
        )
        self._models: dict[str, type[BenchEvent]] = {}

    @property
    def backend_name(self) -> str:
        return self._publisher.backend.name

    def _model(self, channel: str) -> type[BenchEvent]:
        model = self._models.get(channel)
        if model is None:
            model = self._models[channel] = channel_model(channel)
        return model

    async def start(self) -> None:
        await self._publisher.start()

    async def close(self) -> None:
        await self._publisher.close()

    async def prepare(self, channel: str, group: str, figure: str) -> None:
        """Before a drain, create the group through the API: start a member and stop it."""
        if figure != "drain":
            return
        async with self._consumer_bus(channel, group, None):
            pass

    async def publish_one(self, channel: str, seq: int) -> None:
        await self._publisher.publish(self._model(channel)(**self._payloads.fields(seq)))

    async def publish_batch(self, channel: str, seqs: Sequence[int]) -> None:
        model = self._model(channel)
        fields = self._payloads.fields
        await self._publisher.publish_many([model(**fields(seq)) for seq in seqs])

    @asynccontextmanager
    async def consume(self, channel: str, group: str, tracker: Tracker) -> AsyncIterator[None]:
        async with self._consumer_bus(channel, group, tracker):
            yield

    def _new_bus(self) -> EventBus:
        """A consumer's bus: the in-memory idempotency store on every backend (so the rows
        compare the brokers, not the stores; a backend's own store is its default)."""
        return EventBus(
            self._config.url, source=SOURCE, close_timeout=5.0, idempotency_store="memory://"
        )

    def _consumer_bus(self, channel: str, group: str, tracker: Tracker | None) -> EventBus:
        bus = self._new_bus()

        @bus.subscribe(
            self._model(channel),
            group=group,
            concurrency=self._config.concurrency,
            idempotent=True,
            from_beginning=True,
        )
        async def on_event(event: BenchEvent) -> None:
            if tracker is not None:
                tracker.hit(event.seq, event.sent_ns)

        return bus


class BatchRunner(EventwireRunner):
    """The batch API: the same bus, the handler takes a list (`BatchPolicy`); consume only.

    Same guarantees as the eventwire row (ack after handling, idempotent, validated); the
    publish figures would repeat the eventwire row, so it only runs the consuming ones.
    """

    kind = "eventwire_batch"
    figures = ("e2e", "drain")

    def __init__(self, config: BenchConfig, payloads: PayloadFactory) -> None:
        super().__init__(config, payloads)
        self.label = (
            f"the same bus with a batch handler (BatchPolicy(max_size={BATCH_SIZE}, "
            f"max_wait={BATCH_WAIT})): ack after handling, idempotent=True (in-memory store), "
            "pydantic validation"
        )

    def _consumer_bus(self, channel: str, group: str, tracker: Tracker | None) -> EventBus:
        bus = self._new_bus()

        @bus.subscribe(
            self._model(channel),
            group=group,
            idempotent=True,
            from_beginning=True,
            batch=BatchPolicy(max_size=BATCH_SIZE, max_wait=BATCH_WAIT),
        )
        async def on_events(events: list[BenchEvent]) -> None:
            if tracker is not None:
                hit = tracker.hit
                for event in events:
                    hit(event.seq, event.sent_ns)

        return bus
