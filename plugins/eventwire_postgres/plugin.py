"""The ``postgres`` entry point of the ``eventwire`` plugin group: ``postgresql://`` and
``postgres://`` idempotency stores (no backend)."""

from __future__ import annotations

from eventwire import IdempotencyStore, hookimpl

__all__ = ["eventwire_make_idempotency_store"]

SCHEMES = ("postgresql", "postgres")


@hookimpl
def eventwire_make_idempotency_store(url: str, scheme: str) -> IdempotencyStore | None:
    """``postgresql://user@host:5432/db``: a `PostgresIdempotencyStore`."""
    if scheme not in SCHEMES:
        return None
    import asyncpg  # noqa: F401  (a missing client names the extra now, not on first claim)

    from eventwire_postgres._store import PostgresIdempotencyStore

    return PostgresIdempotencyStore(url)
