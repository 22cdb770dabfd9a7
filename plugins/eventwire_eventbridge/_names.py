"""The names of the rules and queues the backend creates (cheap to import)."""

from __future__ import annotations

import hashlib
import re

__all__ = ["RETENTION_SECONDS", "STORE_GROUP", "resource_name"]

_NAME_CHARS = re.compile(r"[^A-Za-z0-9_-]+")

#: How long every queue the backend creates keeps a message: 14 days, SQS's maximum.
RETENTION_SECONDS = 1_209_600

#: The group name of a dead-letter channel's store queue: not a valid group name (``*``),
#: so no group of the channel ever shares its queue.
STORE_GROUP = "*dead-letters"


def resource_name(prefix: str, channel: str, group: str) -> str:
    """The rule and queue name of `group` on `channel`: readable, unique, within the limits
    of both (rule: 64 characters; queue: 80; letters, digits, ``-`` and ``_``)."""
    digest = hashlib.sha256(f"{channel}\0{group}".encode()).hexdigest()[:10]
    readable = _NAME_CHARS.sub("-", f"{channel}-{group}")[: 64 - len(prefix) - 12]
    return f"{prefix}-{readable}-{digest}"
