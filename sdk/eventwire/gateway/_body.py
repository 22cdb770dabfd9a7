"""Reading a request body with a size limit (``413`` past it)."""

from __future__ import annotations

from starlette.requests import Request

from eventwire.gateway._problems import Problem

__all__ = ["read_body"]


def _too_large(limit: int) -> Problem:
    return Problem(
        413,
        "body-too-large",
        f"the request body is larger than this gateway's limit of {limit} bytes; send a "
        "smaller event (a reference to the data instead of the data)",
    )


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refusing more than `limit` bytes before reading them all."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)
