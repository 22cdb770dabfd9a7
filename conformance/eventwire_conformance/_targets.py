"""Naming the backends under test: one short, unique id per URL (the test-id suffix)."""

from __future__ import annotations

import re
from collections.abc import Sequence

__all__ = ["backend_ids", "backend_name"]


def backend_name(url: str) -> str:
    """The backend's own name (``"rabbit"`` for ``amqp://...``), else the URL's scheme.

    Creating the backend does not connect; an unknown scheme falls back to the scheme, and
    the tests of that URL then fail with the reason.
    """
    try:
        from eventwire import create_backend

        return str(create_backend(url).name)
    except Exception:
        return url.split("://", 1)[0] if "://" in url else url


def backend_ids(urls: Sequence[str]) -> dict[str, str]:
    """``{backend id: url}`` in the order given; the id is the backend's name.

    ``["memory://", "amqp://h/"]`` -> ``{"memory": ..., "rabbit": ...}``. Two URLs of the
    same backend get ``-2``, ``-3`` ... suffixes; a URL given twice is kept once.
    """
    out: dict[str, str] = {}
    for url in dict.fromkeys(urls):
        base = re.sub(r"[^a-z0-9_-]+", "-", backend_name(url).lower()).strip("-") or "backend"
        name, n = base, 1
        while name in out:
            n += 1
            name = f"{base}-{n}"
        out[name] = url
    return out
