"""Drawing values from Hypothesis strategies outside a test: a sample, or a search; and the
guard every such draw runs under (`unblamed_random`).

Both are deterministic (``derandomize``) and keep nothing in Hypothesis' example database.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from eventwire.errors import ConfigurationError

if TYPE_CHECKING:
    from hypothesis import settings as Settings

__all__ = ["sample", "search", "unblamed_random"]

T = TypeVar("T")


def _settings(max_examples: int, *, shrink: bool = False) -> Settings:
    try:
        from hypothesis import HealthCheck, Phase, settings
    except ImportError:
        raise ConfigurationError(
            "generated messages need Hypothesis; install it with pip install 'eventwire[contract]'"
        ) from None
    return settings(
        max_examples=max_examples,
        database=None,
        derandomize=True,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.explicit, Phase.generate, *([Phase.shrink] if shrink else [])],
    )


@contextlib.contextmanager
def unblamed_random() -> Iterator[None]:
    """Around every draw from a strategy: Hypothesis compares the global `random` state
    before and after each draw and reports a change as the strategy's use of `random`. The
    bus's loop and its broker client (aiokafka shuffles partitions on every fetch), or any
    other thread of the process, draw from that state meanwhile: not the strategies'
    doing, so that report is not shown."""
    from hypothesis.errors import HypothesisDeprecationWarning

    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore",
            message="Do not use the `random` module inside strategies",
            category=HypothesisDeprecationWarning,
        )
        yield


def sample(strategy: Any, count: int) -> list[Any]:
    """Up to `count` values drawn from `strategy` (fewer if it has fewer distinct ones)."""
    from hypothesis import given

    found: list[Any] = []
    if count <= 0:
        return found

    @_settings(count)
    @given(strategy)
    def draw(value: Any) -> None:
        if len(found) < count:
            found.append(value)

    with unblamed_random():
        draw()
    return found


def search(strategy: Any, predicate: Callable[[Any], bool], tries: int = 300) -> Any:
    """A small value of `strategy` for which `predicate` holds (shrunk), or ``None``."""
    from hypothesis import find
    from hypothesis.errors import NoSuchExample, Unsatisfiable

    try:
        with unblamed_random():
            return find(strategy, predicate, settings=_settings(tries, shrink=True))
    except (NoSuchExample, Unsatisfiable):
        return None
