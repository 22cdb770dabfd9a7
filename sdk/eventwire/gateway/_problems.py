"""Problem details (RFC 9457): every error response of the gateway, in one shape."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

from starlette.responses import JSONResponse

__all__ = ["PROBLEM_JSON", "Problem", "problem_response"]

PROBLEM_JSON = "application/problem+json"
_TYPE = "https://eventwire.dev/problems/"


class Problem(Exception):
    """An error the client can act on: a status, a short title and what was wrong.

    ``kind`` names the problem type (``invalid-payload``, ``unknown-event-type``...);
    ``errors`` lists each violation (``{"path": ..., "message": ...}``).
    """

    def __init__(
        self,
        status: int,
        kind: str,
        detail: str,
        *,
        errors: Sequence[Mapping[str, str]] = (),
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.kind = kind
        self.detail = detail
        self.errors = list(errors)
        self.headers = dict(headers or {})

    def body(self, instance: str) -> dict[str, Any]:
        """The problem-details object."""
        out: dict[str, Any] = {
            "type": _TYPE + self.kind,
            "title": HTTPStatus(self.status).phrase,
            "status": self.status,
            "detail": self.detail,
            "instance": instance,
        }
        if self.errors:
            out["errors"] = self.errors
        return out


def problem_response(problem: Problem, instance: str) -> JSONResponse:
    """The HTTP response for `problem` (``application/problem+json``)."""
    return JSONResponse(
        problem.body(instance),
        status_code=problem.status,
        headers=problem.headers,
        media_type=PROBLEM_JSON,
    )
