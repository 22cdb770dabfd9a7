"""Runs of the order services on one broker take turns, however its URL is spelt."""

from __future__ import annotations

import threading

from tests.examples._turns import lock_file, one_run_at_a_time


def test_one_broker_has_one_lock_however_its_url_is_spelt() -> None:
    same = {
        lock_file(url)
        for url in (
            "redis://localhost:6379",
            "redis://127.0.0.1:6379/0",
            "redis://user:secret@127.0.0.1:6379/3",
        )
    }
    assert len(same) == 1
    others = {lock_file(u) for u in ("redis://127.0.0.1:6380/0", "nats://127.0.0.1:6379")}
    assert same.isdisjoint(others) and len(others) == 2


def test_a_second_run_on_the_broker_waits_for_the_first() -> None:
    entered = threading.Event()

    def second() -> None:
        with one_run_at_a_time("redis://127.0.0.1:6379/0"):
            entered.set()

    with one_run_at_a_time("redis://localhost:6379"):
        waiting = threading.Thread(target=second)
        waiting.start()
        assert not entered.wait(0.3)  # held by the first run
    assert entered.wait(10)
    waiting.join(10)
