"""`sql_name`: the one check of a name the PostgreSQL stores write into their SQL text (a
table, a table prefix): letters, digits and ``_``, not too long, so nothing else reaches
the statement."""

from __future__ import annotations

import re

from eventwire.errors import ConfigurationError

__all__ = ["LONGEST", "sql_name"]

#: PostgreSQL's longest identifier (``NAMEDATALEN - 1``).
LONGEST = 63
_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def sql_name(value: str, what: str, longest: int = LONGEST) -> str:
    """`value` if it is a plain SQL name of at most `longest` characters; else a
    `ConfigurationError` naming `what` it is."""
    if not (_PLAIN.fullmatch(value) and len(value) <= longest):
        raise ConfigurationError(
            f"{what} must be a plain SQL name of at most {longest} characters "
            f"(letters, digits, _), got {value!r}"
        )
    return value
