"""Saga errors that dead-letter a message at once (no retries)."""

from __future__ import annotations

from eventwire.errors import NonRetryableError

__all__ = ["SagaDeadLetter", "UnknownSagaError"]


class SagaDeadLetter(NonRetryableError):
    """A message that retrying cannot fix: it goes to ``<channel>.dlq`` with its reason."""

    default_reason = "saga-rejected"

    def __init__(self, message: str, reason: str | None = None) -> None:
        super().__init__(message, reason=reason or self.default_reason)


class UnknownSagaError(SagaDeadLetter):
    """A reply names (by correlation id) no saga the orchestrator knows."""

    default_reason = "unknown-saga"
