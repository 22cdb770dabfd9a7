"""Hook specifications: the extension seams of eventwire.

Plugins are found through the entry-point group ``eventwire``; the built-in backends are
registered there exactly like third-party ones. Implement a hook with::

    from eventwire import hookimpl

    @hookimpl
    def eventwire_make_backend(url, scheme, options):
        ...

Each docstring below is the contract of its hook. A plugin that implements a hook not listed
here is rejected when plugins load (a misspelt hook name is an error, not a silent no-op), and
so is a function named ``eventwire_*`` without ``@hookimpl`` (a forgotten decorator).
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping, Sequence
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from eventwire.asyncapi import AsyncAPIProtocol
    from eventwire.backend import Backend, BackendInfo
    from eventwire.delivery import Disposition, Failure
    from eventwire.envelope import Envelope
    from eventwire.events import Message
    from eventwire.idempotency import IdempotencyStore

hookspec = pluggy.HookspecMarker("eventwire")

# -------------------------------------------------------------------------
# backends
# -------------------------------------------------------------------------


@hookspec
def eventwire_backend_info() -> BackendInfo | Sequence[BackendInfo]:
    """Describe the backend(s) this plugin provides.

    Return a `eventwire.backend.BackendInfo` (or several): the backend's name, the URL
    schemes it serves, a one-line description, its declared capabilities and its header
    binding. The union of all schemes is the list of available schemes; it is what
    ``eventwire backends`` prints and what an unknown scheme's error message lists.

    Must be cheap: it must not import the broker's client library.
    """


@hookspec(firstresult=True)
def eventwire_make_backend(url: str, scheme: str, options: Mapping[str, Any]) -> Backend | None:
    """Create the backend for `url`, or return ``None`` if `scheme` is not yours.

    :param url: the full URL as given by the user (it may contain credentials: never log it,
        never put it in an error message; expose only a redacted form as ``Backend.url``).
    :param scheme: the URL's scheme, lower-cased (``"kafka"``, ``"memory"`` ...).
    :param options: keyword options given to ``EventBus(..., backend_options=...)``.
        Raise `eventwire.errors.ConfigurationError` for an option you do not know.

    The first plugin that returns a backend wins. Import the broker client library here,
    lazily, never at module import time. Do not connect yet: ``Backend.connect`` does that.
    """


@hookspec(firstresult=True)
def eventwire_make_idempotency_store(url: str, scheme: str) -> IdempotencyStore | None:
    """Create the idempotency store `url` names, or return ``None`` if `scheme` is not yours.

    Called for ``EventBus(..., idempotency_store="redis://...")`` (a URL instead of a store
    object). The same rules as `eventwire_make_backend`: `url` may hold credentials (never
    log it), import the client library here, lazily, and do not connect yet. The store must
    make claims atomic across processes (see `eventwire.idempotency`).
    """


# -------------------------------------------------------------------------
# publishing
# -------------------------------------------------------------------------


@hookspec
def eventwire_enrich_headers(
    event: Message, envelope: Envelope, headers: MutableMapping[str, str]
) -> None:
    """Add or change user headers of an event about to be published.

    Called once per published event, before it is encoded. `headers` starts as the
    envelope's user headers (those given to ``publish(..., headers=...)``); mutate it in
    place. CloudEvents attributes cannot be changed here. Use it for tracing context,
    tenant ids, and similar cross-cutting data. Must not block: it runs on the publish path.
    """


# -------------------------------------------------------------------------
# consuming
# -------------------------------------------------------------------------


@hookspec(firstresult=True)
def eventwire_consume_error(failure: Failure) -> Disposition | None:
    """Decide what happens to a delivery whose handler raised.

    :param failure: the `eventwire.delivery.Failure`: the exception, the attempt number,
        the retry policy, the envelope, the channel and the group.

    Return a `eventwire.delivery.Disposition` — ``Disposition.retry(delay)``,
    ``Disposition.dead_letter(reason)`` or ``Disposition.ack()`` (drop the failure on
    purpose) — or ``None`` to let the next plugin (and finally the subscription's
    `RetryPolicy`) decide. The first non-``None`` answer wins. A retry beyond the policy's
    ``max_attempts`` is allowed: the plugin then owns the bound.
    """


# -------------------------------------------------------------------------
# contracts
# -------------------------------------------------------------------------


@hookspec(firstresult=True)
def eventwire_asyncapi_protocol(backend: Backend) -> AsyncAPIProtocol | None:
    """How `backend` appears in an AsyncAPI document, or ``None`` if it is not yours.

    Return an `eventwire.asyncapi.AsyncAPIProtocol`: the server ``protocol`` (decide it from
    ``backend.url``'s scheme when TLS changes it: ``amqps``, ``rediss``), an optional server
    description, and the channel, message and receive-operation bindings of the protocol
    (none for a protocol AsyncAPI has no bindings for). The first answer wins; with none, the
    server protocol is ``backend.name`` and there are no bindings. Must not connect.
    """


@hookspec
def eventwire_asyncapi_document(document: MutableMapping[str, Any], bus: Any) -> None:
    """Post-process an AsyncAPI 3.0 document generated for `bus`, in place.

    Called after the document is built and before it is validated and written, so a plugin
    can add servers' security schemes, x- extensions, bindings of its protocol, or
    descriptions. The result must remain a valid AsyncAPI 3.0 document.
    """
