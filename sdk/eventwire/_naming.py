"""Validation of names that travel to brokers (channels, groups)."""

from __future__ import annotations

import re

from eventwire.errors import ConfigurationError

# The characters every backend accepts in a topic / subject / exchange / stream name:
# Kafka allows [A-Za-z0-9._-] (max 249), NATS subjects forbid spaces, '*' and '>',
# so the common ground is Kafka's alphabet with no empty dot-separated token.
_NAME = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$")
MAX_NAME_LENGTH = 200


def check_name(kind: str, name: str, *, owner: str = "") -> str:
    """Return `name` if every backend accepts it, else raise `ConfigurationError`."""
    where = f" in {owner}" if owner else ""
    if not isinstance(name, str) or not name:
        raise ConfigurationError(f"{kind} name{where} must be a non-empty string, got {name!r}")
    if len(name) > MAX_NAME_LENGTH:
        raise ConfigurationError(
            f"{kind} name {name!r}{where} is {len(name)} characters long; "
            f"use at most {MAX_NAME_LENGTH}"
        )
    if not _NAME.match(name):
        raise ConfigurationError(
            f"{kind} name {name!r}{where} has characters a broker would reject; use letters, "
            "digits, '_', '-' and single dots between words (e.g. 'orders' or 'shop.orders')"
        )
    return name
