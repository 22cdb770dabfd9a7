"""The reference system on EventBridge + SQS (a local moto_server of the test's own): rules
route OrderPlaced to the inventory, payment and shipping groups' queues (choreography).

The same scenario as on the other brokers (`run_hundred_orders`): 100 orders, declines and
compensations, the payment service SIGKILLed mid-flow and restarted; its unsettled
messages come back once their visibility timeout (5 s here) has passed.

A run costs about 3,000 API calls, each a round trip through the AWS SDK and the emulator
(about 10 ms of CPU for both): per delivery one ReceiveMessage and one DeleteMessageBatch,
per event one PutEvents. Members long-poll for 20 s (SQS's longest wait), which returns as
soon as a message arrives: with 1 s polls, about 300 more calls were empty polls.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.backends._moto import CREDENTIALS, bus_url, moto_server
from tests.examples.test_order_processing_brokers import run_hundred_orders


@pytest.mark.slow
def test_hundred_orders_by_choreography_on_eventbridge(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in CREDENTIALS.items():  # the services inherit them
        monkeypatch.setenv(name, value)
    with moto_server(tmp_path / "moto.log") as endpoint:
        run_hundred_orders(
            bus_url(endpoint, extra="&visibility_timeout=5s", wait_time="20s"),
            "choreography",
            tmp_path,
        )
