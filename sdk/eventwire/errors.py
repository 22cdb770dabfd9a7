"""The one exception hierarchy of eventwire.

Every error says what was wrong and what to do about it. Backends translate their client
library's exceptions into these at the boundary, so callers never need a broker's client
installed to catch them.
"""

from __future__ import annotations

__all__ = [
    "BackendUnavailableError",
    "BusClosedError",
    "ConfigurationError",
    "ContractError",
    "DecodeError",
    "EventDefinitionError",
    "EventValidationError",
    "EventwireError",
    "InvalidURLError",
    "MessageTooLargeError",
    "NonRetryableError",
    "PublishError",
    "UnknownBackendError",
    "UnsupportedOperationError",
]


class EventwireError(Exception):
    """Base class of every error eventwire raises on purpose."""


class ConfigurationError(EventwireError, ValueError):
    """An option, policy or subscription was configured in a way that cannot work."""


class EventDefinitionError(ConfigurationError, TypeError):
    """An `Event` or `Command` class declares something invalid (raised at class definition)."""


class InvalidURLError(ConfigurationError):
    """A backend URL could not be parsed."""


class UnknownBackendError(ConfigurationError):
    """No installed backend plugin serves the URL's scheme."""


class EventValidationError(EventwireError, ValueError):
    """Event data does not satisfy its model or contract; nothing was sent."""


class DecodeError(EventwireError, ValueError):
    """Bytes received from a broker are not a decodable eventwire message."""


class ContractError(EventwireError):
    """A contract document is missing, malformed or inconsistent."""


class BusClosedError(EventwireError, RuntimeError):
    """The bus was used after `close()` (or before it was started)."""


class BackendUnavailableError(EventwireError, ConnectionError):
    """The broker could not be reached or refused the connection."""


class PublishError(EventwireError):
    """The broker did not confirm a publish; the event may not have been stored."""


class MessageTooLargeError(PublishError, ValueError):
    """The encoded event is larger than the backend accepts; nothing was sent."""


class UnsupportedOperationError(EventwireError, NotImplementedError):
    """The backend in use cannot do what was asked (an optional ability it lacks)."""


class NonRetryableError(EventwireError):
    """Raise from a handler when retrying cannot help: the event is dead-lettered at once.

    ``reason`` becomes the dead letter's reason (default ``"rejected"``).
    """

    def __init__(self, message: str, *, reason: str = "rejected") -> None:
        super().__init__(message)
        self.reason = reason
