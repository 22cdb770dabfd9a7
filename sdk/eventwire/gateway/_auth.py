"""The bearer token that guards every mutating endpoint.

It comes from a file (``--token-file``) or an environment variable, never from the command
line (where ``ps`` would show it). It is compared in constant time and never written to a log
or an error message.
"""

from __future__ import annotations

import hmac
import os
from pathlib import Path

from starlette.requests import Request

from eventwire.errors import ConfigurationError
from eventwire.gateway._problems import Problem

__all__ = ["TOKEN_ENV", "check_token", "load_token"]

#: The environment variable read when no token file is given.
TOKEN_ENV = "EVENTWIRE_GATEWAY_TOKEN"
MIN_LENGTH = 16
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="eventwire"'}


def load_token(file: str | os.PathLike[str] | None = None) -> str | None:
    """The token from `file` (surrounding whitespace removed), else from ``$TOKEN_ENV``.

    `ConfigurationError` when the file cannot be read or the token is shorter than 16
    characters; ``None`` when neither is set.
    """
    if file is not None:
        try:
            token = Path(file).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigurationError(
                f"cannot read the token file {file}: {type(exc).__name__}"
            ) from None
        where = f"the token file {file}"
    else:
        value = os.environ.get(TOKEN_ENV)
        if value is None:
            return None
        token = value.strip()
        where = f"${TOKEN_ENV}"
    if len(token) < MIN_LENGTH:
        raise ConfigurationError(
            f"{where} holds a token of {len(token)} characters; use at least {MIN_LENGTH} "
            "(e.g. the output of 'openssl rand -hex 32')"
        )
    return token


def check_token(request: Request, token: str) -> None:
    """Raise a 401 `Problem` unless the request carries ``Authorization: Bearer <token>``."""
    header = request.headers.get("authorization")
    if header is None:
        raise Problem(
            401,
            "unauthorized",
            "this endpoint needs 'Authorization: Bearer <token>'",
            headers=_CHALLENGE,
        )
    scheme, _, given = header.partition(" ")
    # compare_digest on bytes: constant time for any input, also non-ASCII text
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        given.strip().encode("utf-8", "surrogateescape"), token.encode("utf-8")
    ):
        raise Problem(
            401,
            "unauthorized",
            "the bearer token is not valid",
            headers={
                **_CHALLENGE,
                "WWW-Authenticate": 'Bearer realm="eventwire", error="invalid_token"',
            },
        )
