"""`BaseBackend`: the lifecycle, checks and error mapping every backend shares.

A backend subclasses ``BaseBackend[MySettings]``, sets `name`, `binding`, `capabilities`
and `error_map`, and implements `_connect` (and `_close` / `_abort` when it holds a
connection) plus the protocol's primitives ``publish``, ``subscribe`` and ``browse``, which
start with `check_publish` / `check_subscribe` / `check_channel`. The rest is here:

- ``connect()`` is idempotent and runs `_connect` once, on a `ConnectionState`;
  concurrent callers wait for the same attempt; a failed attempt leaves the backend
  ``NEW`` so it can be tried again.
- ``close()`` closes every subscription (`BaseSubscription.close`), then `_close`;
  ``abort()`` aborts every subscription at once, then `_abort`. Both are idempotent.
- `map_errors` turns the client's exceptions into eventwire errors with `error_map`,
  scrubbing the settings' secrets and keeping the cause.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import enum
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, ClassVar, Generic, TypeVar

from eventwire._naming import check_name
from eventwire.backend import Capabilities, SubscriptionSpec, WireMessage
from eventwire.backendkit._aio import retrieve
from eventwire.backendkit._checks import check_messages, check_spec
from eventwire.backendkit._errors import ErrorMap, map_errors, scrub
from eventwire.backendkit._security import describe_permission_failure
from eventwire.backendkit._settings import BackendSettings
from eventwire.backendkit._subscription import BaseSubscription
from eventwire.errors import BackendUnavailableError, BusClosedError, EventwireError

__all__ = ["BaseBackend", "ConnectionState"]

S = TypeVar("S", bound=BackendSettings)
Sub = TypeVar("Sub", bound=BaseSubscription)

#: Errors of the standard library that always mean "the broker is not reachable".
_NETWORK: Mapping[type[BaseException], type[EventwireError]] = {
    ConnectionError: BackendUnavailableError,
    TimeoutError: BackendUnavailableError,
    OSError: BackendUnavailableError,
}


class ConnectionState(enum.Enum):
    """Where a backend is in its life: new → connecting → connected → closing → closed."""

    NEW = "new"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    CLOSING = "closing"
    CLOSED = "closed"


class BaseBackend(abc.ABC, Generic[S]):
    """Base class of a backend built on the kit (see the module docstring)."""

    #: Short backend name ("memory", "sqlite" ...).
    name: str
    #: CloudEvents header naming used on the wire: "kafka", "nats" or "amqp".
    binding: str = "kafka"
    #: What the backend supports; an instance may replace it after connecting (e.g. to
    #: lower ``max_message_bytes`` to the broker's limit).
    capabilities: Capabilities
    #: OpenTelemetry's ``messaging.system`` for this backend, where the semantic conventions'
    #: well-known value differs from `name` (``"rabbitmq"``); ``None``: `name`.
    messaging_system: ClassVar[str | None] = None
    #: Client exception class → eventwire error, for `map_errors` (most specific first is
    #: not needed: the exception's class hierarchy is searched in order). Network errors of
    #: the standard library map to `BackendUnavailableError` unless listed here.
    error_map: ClassVar[ErrorMap] = {}

    def __init__(self, settings: S) -> None:
        self.settings = settings
        self.state = ConnectionState.NEW
        self._subscriptions: list[BaseSubscription] = []
        self._checked: set[str] = set()
        self._connecting: asyncio.Future[None] | None = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url} {self.state.value}>"

    @property
    def url(self) -> str:
        """The broker URL without credentials or options: safe to log and to show."""
        return self.settings.url

    @property
    def subscriptions(self) -> Sequence[BaseSubscription]:
        """The subscriptions started and not closed yet."""
        return tuple(self._subscriptions)

    # -- lifecycle -------------------------------------------------------------------------

    async def connect(self) -> None:
        """Connect once; later calls return at once, concurrent ones wait for the first."""
        if self.state is ConnectionState.CONNECTED:
            return
        if self.state in (ConnectionState.CLOSING, ConnectionState.CLOSED):
            raise BusClosedError(f"the {self.url} backend is closed; create a new backend")
        if self._connecting is not None:
            await asyncio.shield(self._connecting)
            return
        self.state = ConnectionState.CONNECTING
        self._connecting = asyncio.get_running_loop().create_future()
        try:
            with self.map_errors(f"connecting to {self.url}"):
                await self._connect()
        except BaseException as exc:
            if self.state is ConnectionState.CONNECTING:
                self.state = ConnectionState.NEW
            self._connecting.set_exception(exc)
            retrieve(self._connecting)
            self._connecting = None
            raise
        if self.state is ConnectionState.CONNECTING:
            self.state = ConnectionState.CONNECTED
        self._connecting.set_result(None)
        self._connecting = None

    async def close(self) -> None:
        """Close every subscription (their acks are sent), then the connection."""
        if self.state in (ConnectionState.CLOSING, ConnectionState.CLOSED):
            return
        was = self.state
        self.state = ConnectionState.CLOSING
        subscriptions, self._subscriptions = self._subscriptions, []
        try:
            await asyncio.gather(*(s.close() for s in subscriptions))
            if was is not ConnectionState.NEW:
                await self._close()
        finally:
            self.state = ConnectionState.CLOSED

    async def abort(self) -> None:
        """Crash: every subscription stops at once and settles nothing more; then `_abort`."""
        if self.state is ConnectionState.CLOSED:
            return
        was = self.state
        self.state = ConnectionState.CLOSED
        subscriptions, self._subscriptions = self._subscriptions, []
        for subscription in subscriptions:
            subscription.abort_now()
        await asyncio.gather(*(s.abort() for s in subscriptions), return_exceptions=True)
        if was is not ConnectionState.NEW:
            await self._abort()

    @abc.abstractmethod
    async def _connect(self) -> None:
        """Open the connection (bounded in time). Client errors are mapped by `error_map`."""

    async def _close(self) -> None:
        """Close the connection after every subscription closed. Default: nothing."""

    async def _abort(self) -> None:
        """Drop the connection as a crash would. Default: `_close`."""
        await self._close()

    # -- checks ----------------------------------------------------------------------------

    def check_connected(self) -> None:
        """`BusClosedError` unless the backend is connected (the one connection guard)."""
        if self.state is not ConnectionState.CONNECTED:
            if self.state is ConnectionState.NEW or self.state is ConnectionState.CONNECTING:
                raise BusClosedError(
                    f"the {self.url} backend is not connected; call connect() first"
                )
            raise BusClosedError(
                f"the {self.url} backend is closed; create a new backend (or EventBus)"
            )

    def check_channel(self, channel: str) -> None:
        """Connected (`check_connected`), and `ConfigurationError` for a channel name a
        broker would reject (checked once): the guard of every call on one channel."""
        self.check_connected()
        if channel not in self._checked:
            check_name("channel", channel)
            self._checked.add(channel)

    def check_publish(self, channel: str, messages: Sequence[WireMessage]) -> None:
        """Connected, a valid channel, every message within ``capabilities.max_message_bytes``."""
        self.check_channel(channel)
        check_messages(self.name, channel, messages, self.capabilities.max_message_bytes)

    def check_subscribe(self, spec: SubscriptionSpec) -> None:
        """Connected, valid channel and group names, ``max_in_flight >= 1``."""
        self.check_connected()
        check_spec(spec)

    async def started(self, subscription: Sub) -> Sub:
        """Track `subscription` and start it; `subscribe` returns what this returns. Tracked
        first, so a `close` or `abort` of the backend while `start` waits ends it too; a
        `start` that fails (or is cancelled) aborts it and stops tracking it, then the error
        goes on."""
        self.track(subscription)
        try:
            await subscription.start()
        except BaseException:
            self.forget(subscription)
            await subscription.abort()
            raise
        return subscription

    def track(self, subscription: BaseSubscription) -> None:
        """Have `close` and `abort` end `subscription` with the backend."""
        self._subscriptions.append(subscription)

    def forget(self, subscription: BaseSubscription) -> None:
        """Stop tracking `subscription` (it was closed on its own)."""
        with contextlib.suppress(ValueError):
            self._subscriptions.remove(subscription)

    # -- errors ----------------------------------------------------------------------------

    def client_errors(self) -> ErrorMap:
        """The client exceptions `map_errors` maps: `error_map`. A backend whose client
        library is imported only when it connects (so the backend's module loads without
        it) overrides this to import the exception classes here instead."""
        return self.error_map

    def map_errors(
        self,
        action: str,
        *,
        advice: str | None = None,
        into: type[EventwireError] | None = None,
    ) -> _MappedErrors:
        """`eventwire.backendkit.map_errors` with this backend's `error_map` and secrets.

        A broker that refuses the action for lack of permission gets its own message, naming
        the broker (`describe_permission_failure`). Nothing is prepared before a client
        error happens: this wraps every publish."""
        return _MappedErrors(self, action, advice, into)

    def _raise_mapped(
        self,
        exc: Exception,
        action: str,
        advice: str | None,
        into: type[EventwireError] | None,
    ) -> None:
        """Raise the eventwire error `exc` (a client's) becomes (`map_errors`)."""
        secrets = self.settings.secrets()
        problem = describe_permission_failure(exc)
        if problem is not None:
            error = into or BackendUnavailableError
            raise error(
                f"{action} refused by {self.settings.backend} at {self.url}: "
                f"{scrub(problem, secrets)}"
            ) from exc
        mapping = {**_NETWORK, **self.client_errors()}
        with map_errors(action, mapping, secrets=secrets, advice=advice, into=into):
            raise exc


class _MappedErrors:
    """What `BaseBackend.map_errors` returns: a class rather than a generator-based context
    manager, several times cheaper to enter and leave (it wraps every publish)."""

    __slots__ = ("_action", "_advice", "_backend", "_into")

    def __init__(
        self,
        backend: BaseBackend[Any],
        action: str,
        advice: str | None,
        into: type[EventwireError] | None,
    ) -> None:
        self._backend = backend
        self._action = action
        self._advice = advice
        self._into = into

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if isinstance(exc, Exception) and not isinstance(exc, EventwireError):
            self._backend._raise_mapped(exc, self._action, self._advice, self._into)
