"""Error mapping at the backend boundary: client exceptions in, eventwire errors out.

One context manager, `map_errors`, wraps every call into a client library (httpx's
``map_httpcore_exceptions`` is the model). An exception listed in the mapping (matched along
its class hierarchy, most specific first) becomes the mapped `eventwire.errors.EventwireError`
with a message that says what failed, why (secrets scrubbed) and what to do, and keeps the
original as ``__cause__`` (``raise ... from exc``). Eventwire's own errors, cancellation and
exceptions the mapping does not name pass through unchanged.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable, Iterator, Mapping

from eventwire.errors import (
    BackendUnavailableError,
    EventwireError,
    MessageTooLargeError,
    PublishError,
)

__all__ = ["ErrorMap", "map_errors", "scrub"]

#: Client exception class → the eventwire error it becomes.
ErrorMap = Mapping[type[BaseException], type[EventwireError]]

_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]*@")

_ADVICE: Mapping[type[EventwireError], str] = {
    BackendUnavailableError: "check that the broker runs and is reachable, and the URL",
    MessageTooLargeError: "publish a reference to the data instead of the data itself",
    PublishError: "the events may not have been stored; publish them again "
    "(consumers deduplicate by event id)",
}


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` without credentials: each secret becomes ``***``, as does any URL's user info."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return _USERINFO.sub(r"\g<scheme>***@", text)


def _advice(error: type[EventwireError]) -> str:
    for klass in error.__mro__:
        if klass in _ADVICE:
            return _ADVICE[klass]
    return ""


@contextlib.contextmanager
def map_errors(
    action: str,
    mapping: ErrorMap,
    *,
    secrets: Iterable[str] = (),
    advice: str | None = None,
    into: type[EventwireError] | None = None,
) -> Iterator[None]:
    """Turn the client exceptions named in `mapping` into eventwire errors, keeping the cause.

    :param action: what was being done, for the message (``"publish to 'orders'"``).
    :param mapping: client exception class → eventwire error class.
    :param secrets: texts scrubbed from the message (passwords, tokens).
    :param advice: what the user should do; default: the advice for the error class.
    :param into: raise this class for every mapped exception whose mapped class is not
        already a subclass of it (``into=PublishError`` around a publish: an unreachable
        broker there is a failed publish), and for every exception `mapping` does not name
        (a client library's error outside its documented classes): whatever the client
        raises, a publish fails with a `PublishError`. Without it those pass through as
        they are.

    The message reads ``"<action> failed: <ExcType>: <scrubbed text>; <advice>"``.
    """
    try:
        yield
    except EventwireError:
        raise
    except Exception as exc:
        target = next((mapping[k] for k in type(exc).__mro__ if k in mapping), None)
        if target is None:
            if into is None:
                raise
            target = into
        elif into is not None and not issubclass(target, into):
            target = into
        detail = scrub(str(exc), secrets) or "no detail given"
        hint = advice if advice is not None else _advice(target)
        message = f"{action} failed: {type(exc).__name__}: {detail}"
        raise target(f"{message}; {hint}" if hint else message) from exc
