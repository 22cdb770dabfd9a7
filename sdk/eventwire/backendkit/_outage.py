"""`Outage`: a loop's view of a failing broker call — log once, back off, log the recovery."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

__all__ = ["Outage"]

log = logging.getLogger("eventwire.backendkit")


class Outage:
    """One kind of call a background loop retries (a read, an ack flush, a heartbeat).

    `failed` logs the first failure as a warning (later ones at debug level, so a long outage
    is one line, not thousands) and returns how long to wait before the next try: doubling
    from `first` up to `cap`. `ok` logs the recovery once, with how long it took.

    :param what: what fails, for the log (``"redis read of orders/billing"``).
    :param scrub: removes secrets from the error text (``settings.scrub``).
    """

    def __init__(
        self,
        what: str,
        scrub: Callable[[str], str] = str,
        *,
        first: float = 0.05,
        cap: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.what = what
        self.failures = 0
        self._scrub = scrub
        self._first = first
        self._cap = cap
        self._clock = clock
        self._since: float | None = None

    @property
    def failing(self) -> bool:
        """Whether the last try failed."""
        return self._since is not None

    def failed(self, exc: BaseException, *, traceback: bool = False) -> float:
        """Record a failure; the seconds to wait before the next try. With `traceback`, the
        first failure's warning carries it (for errors of a class the caller did not
        expect)."""
        text = self._scrub(f"{type(exc).__name__}: {exc}")
        if self._since is None:
            self._since = self._clock()
            log.warning(
                "eventwire: %s failed (%s); retrying",
                self.what,
                text,
                exc_info=exc if traceback else None,
            )
        else:
            log.debug("eventwire: %s still failing (%s)", self.what, text)
        self.failures += 1
        return float(min(self._cap, self._first * 2 ** min(self.failures - 1, 20)))

    def ok(self) -> None:
        """Record a success; logs the recovery if the call was failing."""
        if self._since is not None:
            log.warning(
                "eventwire: %s works again after %.1fs", self.what, self._clock() - self._since
            )
            self._since = None
            self.failures = 0
