"""Every draw eventwire makes from a Hypothesis strategy ignores what other threads do to the
global `random`: Hypothesis would otherwise blame the strategy ("Do not use the `random`
module inside strategies") for a broker client's or any other thread's draws."""

from __future__ import annotations

import random
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from eventwire.contracts._sample import sample, search
from eventwire.contracts._strategies import minimal
from hypothesis import strategies as st
from hypothesis.errors import HypothesisDeprecationWarning


@pytest.fixture
def busy_random() -> Iterator[list[warnings.WarningMessage]]:
    """Another thread draws from the global `random` all the time, and threads switch every
    microsecond, so that it draws during nearly every draw of a strategy; the warnings."""
    stop = threading.Event()

    def draw() -> None:
        while not stop.is_set():
            random.random()

    drawer = threading.Thread(target=draw, daemon=True)
    interval = sys.getswitchinterval()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sys.setswitchinterval(1e-6)
        drawer.start()
        try:
            yield caught
        finally:
            stop.set()
            drawer.join()
            sys.setswitchinterval(interval)


def _schema(i: int) -> dict[str, Any]:  # a new schema each time: `minimal` remembers them
    properties = {f"f{i}": {"type": "string"}, "n": {"type": "integer", "minimum": i}}
    return {"type": "object", "properties": properties, "required": list(properties)}


@pytest.mark.parametrize(
    "draw",
    [
        lambda i: minimal(_schema(i)),
        lambda i: sample(st.integers(i, i + 1000), 5),
        lambda i: search(st.integers(), lambda n: n > i),
    ],
    ids=["minimal", "sample", "search"],
)
def test_no_strategy_is_blamed_for_another_threads_draws(
    busy_random: list[warnings.WarningMessage], draw: Callable[[int], Any]
) -> None:
    for i in range(20):
        draw(i)
    blamed = [w for w in busy_random if issubclass(w.category, HypothesisDeprecationWarning)]
    assert blamed == [], [str(w.message) for w in blamed]
