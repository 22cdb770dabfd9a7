"""The reference system on real brokers: each service its own process.

100 orders, a share of them declined (over the limit, or by the injected failure rate) and
compensated; the payment service is killed (SIGKILL) mid-flow and restarted on the same
ledger file; every order must end, each as the decline rule predicts, none charged twice.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from decimal import Decimal
from pathlib import Path

import pytest
from eventwire import EventBus

from docs.examples.order_processing._logic import Ledger, Payments
from docs.examples.order_processing.observer import Observer, wait_for
from docs.examples.order_processing.system import MODES, Mode, make_order
from tests.examples._turns import one_run_at_a_time

ROOT = Path(__file__).resolve().parents[2]
URLS = {
    "redis": ("EVENTWIRE_REDIS_URL", "redis://127.0.0.1:6379/0"),
    "nats": ("EVENTWIRE_NATS_URL", "nats://127.0.0.1:4222"),
    "kafka": ("EVENTWIRE_KAFKA_URL", "kafka://127.0.0.1:9092"),
    "rabbit": ("EVENTWIRE_RABBIT_URL", "amqp://guest:guest@127.0.0.1:5672/"),
}
ORDERS = 100
LIMIT = Decimal(500)
FAILURE_RATE = 0.15
SERVICES = ("inventory", "payment", "shipping", "order")


def _url(name: str) -> str:
    variable, default = URLS[name]
    return os.environ.get(variable) or default


class Service:
    def __init__(self, mode: Mode, name: str, url: str, tmp: Path, seed: str) -> None:
        self.args = [
            sys.executable,
            "-m",
            f"docs.examples.order_processing.{mode}.{name}",
            "--url",
            url,
            "--db",
            str(tmp / f"{name}.db"),
            "--saga-db",
            str(tmp / "sagas.db"),
            "--limit",
            str(LIMIT),
            "--failure-rate",
            str(FAILURE_RATE),
            "--seed",
            seed,
            "--log-level",
            "WARNING",
        ]
        self.name, self.log = name, tmp / f"{name}.log"
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> None:
        log = self.log.open("a")
        self.proc = subprocess.Popen(
            self.args, cwd=ROOT, stdout=subprocess.PIPE, stderr=log, text=True
        )
        assert self.proc.stdout is not None
        deadline = time.monotonic() + 60
        line = ""
        while time.monotonic() < deadline and self.proc.poll() is None:
            line = self.proc.stdout.readline()
            if line.startswith("ready"):
                return
        raise AssertionError(f"{self.name} did not start: {self.log.read_text()[-3000:]}")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()


@pytest.mark.broker
@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("broker", sorted(URLS))
def test_hundred_orders_with_declines_and_a_payment_crash(
    broker: str, mode: Mode, tmp_path: Path
) -> None:
    url = _url(broker)
    with one_run_at_a_time(url):
        run_hundred_orders(url, mode, tmp_path)


def run_hundred_orders(url: str, mode: Mode, tmp_path: Path) -> None:
    """The scenario on the broker at `url` (the services inherit this process's environment)."""
    seed = uuid.uuid4().hex[:8]
    prefix = f"o{seed}"
    orders = [
        make_order(n, "900.00" if n % 10 == 0 else "40.00", prefix=prefix) for n in range(ORDERS)
    ]
    rule = Payments(limit=LIMIT, failure_rate=FAILURE_RATE, seed=seed)
    declined = {o.order_id for o in orders if rule.decline_reason(o.order_id, o.total)}
    ids = {o.order_id for o in orders}
    services = {name: Service(mode, name, url, tmp_path, seed) for name in SERVICES}

    async def main() -> None:
        seen = Observer(url, group=f"observer-{seed}")
        client = EventBus(url, source="order")  # the order service's front door
        async with seen.bus, client:
            for service in services.values():  # in a thread: the observer keeps consuming
                await asyncio.to_thread(service.start)
            for i, order in enumerate(orders):
                await client.publish(order, correlation_id=order.order_id)
                if i == ORDERS // 3:
                    await asyncio.to_thread(services["payment"].kill)
                    await asyncio.sleep(1.0)
                    await asyncio.to_thread(services["payment"].start)
            await wait_for(lambda: seen.finished(ids), timeout=180, what="every order ended")
            await wait_for(
                lambda: declined <= seen.released,
                timeout=30,
                what="stock of every declined order released",
            )
        # the channels outlive a run: look only at this run's orders
        assert set(seen.cancelled) & ids == declined
        assert seen.completed & ids == ids - declined
        charged_twice = {o for o, p in seen.payment_ids.items() if len(p) > 1 and o in ids}
        assert not charged_twice
        ledger = Payments(Ledger(str(tmp_path / "payment.db")))
        assert all(ledger.charges(o) == (0 if o in declined else 1) for o in ids)

    try:
        # kept: a helper of sync tests (here and on EventBridge) that stops subprocesses
        asyncio.run(main())
    finally:
        for service in services.values():
            service.stop()
