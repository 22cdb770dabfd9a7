"""`Outage`: one warning per outage, a doubling back-off with a cap, the recovery logged."""

from __future__ import annotations

import pytest
from eventwire.backendkit import Outage


def test_an_outage_is_one_warning_a_capped_back_off_and_a_recovery(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    outage = Outage(
        "redis read of orders/g",
        lambda t: t.replace("hunter2", "***"),
        first=0.1,
        cap=0.5,
        clock=lambda: now[0],
    )
    assert not outage.failing
    delays = [outage.failed(ConnectionError("auth hunter2")) for _ in range(5)]
    assert delays == [0.1, 0.2, 0.4, 0.5, 0.5] and outage.failing
    now[0] = 3.0
    outage.ok()
    outage.ok()
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == [
        "eventwire: redis read of orders/g failed (ConnectionError: auth ***); retrying",
        "eventwire: redis read of orders/g works again after 3.0s",
    ]
    assert outage.failed(OSError("x")) == 0.1  # a new outage starts over
