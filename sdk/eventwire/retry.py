"""`RetryPolicy`: bounded attempts with exponential backoff and jitter."""

from __future__ import annotations

import dataclasses
import math

from eventwire._random import uniform
from eventwire.errors import ConfigurationError

__all__ = ["RetryPolicy"]


@dataclasses.dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how far apart a failing handler is tried.

    ``max_attempts`` counts every try, the first included (1 = no retry). The wait before
    attempt ``n + 1`` is ``backoff * multiplier ** (n - 1)``, capped at ``max_backoff``, then
    spread by ±``jitter`` (a fraction). Retries happen in place, so later events with the
    same key wait: key order is kept.
    """

    max_attempts: int = 5
    backoff: float = 0.2
    max_backoff: float = 10.0
    multiplier: float = 2.0
    jitter: float = 0.1

    def __post_init__(self) -> None:
        problems = []
        if isinstance(self.max_attempts, bool) or not isinstance(self.max_attempts, int):
            problems.append(f"max_attempts must be an int, got {self.max_attempts!r}")
        elif self.max_attempts < 1:
            problems.append(f"max_attempts must be >= 1 (1 = no retry), got {self.max_attempts}")
        for name in ("backoff", "max_backoff", "multiplier", "jitter"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                problems.append(f"{name} must be a number, got {value!r}")
            elif not math.isfinite(value) or value < 0:
                problems.append(f"{name} must be a finite number >= 0, got {value}")
        if not problems:
            if self.multiplier < 1:
                problems.append(f"multiplier must be >= 1, got {self.multiplier}")
            if self.jitter > 1:
                problems.append(f"jitter is a fraction between 0 and 1, got {self.jitter}")
            if self.max_backoff < self.backoff:
                problems.append(
                    f"max_backoff ({self.max_backoff}) must be >= backoff ({self.backoff})"
                )
        if problems:
            raise ConfigurationError("invalid RetryPolicy: " + "; ".join(problems))

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        base = min(self.max_backoff, self.backoff * self.multiplier ** max(0, attempt - 1))
        if self.jitter:
            base *= 1 + uniform(-self.jitter, self.jitter)
        return max(0.0, base)

    def should_retry(self, attempt: int) -> bool:
        """Whether a failure of attempt number `attempt` may be tried again."""
        return attempt < self.max_attempts
