"""Backend URLs: parsing and credential redaction."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from eventwire.errors import InvalidURLError

__all__ = ["redact_url", "url_scheme"]

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*$")


def url_scheme(url: str) -> str:
    """The lower-cased scheme of `url`; `InvalidURLError` for a malformed URL."""
    if not isinstance(url, str) or "://" not in url:
        raise InvalidURLError(
            f"{redact_url(url)!r} is not a backend URL; write scheme://host[:port][/path], "
            "e.g. 'memory://', 'kafka://localhost:9092' or 'redis://localhost:6379/0'"
        )
    scheme = url.split("://", 1)[0]
    if not _SCHEME.match(scheme):
        raise InvalidURLError(f"{redact_url(url)!r} has an invalid scheme {scheme!r}")
    try:
        netloc = urlsplit(url).netloc.rsplit("@", 1)[-1]
        for host in netloc.split(","):  # Kafka and NATS take comma-separated host lists
            _ = urlsplit(f"//{host}").port  # validates each numeric port
    except ValueError as exc:
        raise InvalidURLError(f"{redact_url(url)!r} is malformed: {exc}") from None
    return scheme.lower()


def redact_url(url: object) -> str:
    """`url` without user, password, token or query string: safe for logs and reports."""
    text = str(url)
    if "://" not in text:
        return text.split("@")[-1]
    try:
        parts = urlsplit(text)
    except ValueError:
        scheme, rest = text.split("://", 1)
        return f"{scheme}://{rest.rsplit('@', 1)[-1].split('?', 1)[0]}"
    hosts = ",".join(h.rsplit("@", 1)[-1] for h in parts.netloc.split(","))
    return f"{parts.scheme}://{hosts}{parts.path}"
