"""The memory backend's options: ``memory://[name][?partitions=N]``."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from eventwire.backendkit import BackendSettings, Location, option
from eventwire.errors import InvalidURLError
from eventwire.urls import redact_url

from eventwire_memory._broker import DEFAULT_BROKER, DEFAULT_PARTITIONS

__all__ = ["MemorySettings"]

_BROKER_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


@dataclasses.dataclass(frozen=True, kw_only=True)
class MemorySettings(BackendSettings):
    """Settings of ``memory://`` (the broker named ``"default"``) or ``memory://name``."""

    backend = "memory"
    schemes = ("memory",)

    #: The in-process broker this URL names.
    broker: str = DEFAULT_BROKER
    partitions: int = option(
        DEFAULT_PARTITIONS,
        "partitions of each channel the backend creates (the most members of one group "
        "that work at once); a channel keeps the count it was created with",
        minimum=1,
    )

    @classmethod
    def from_location(cls, location: Location) -> dict[str, Any]:
        name = location.hosts[0] if len(location.hosts) == 1 else DEFAULT_BROKER
        if (
            len(location.hosts) > 1
            or location.username is not None
            or not _BROKER_NAME.match(name)
            or location.path not in ("", "/")
        ):
            raise InvalidURLError(
                f"{redact_url(location.raw)!r} is not a valid memory:// URL; write memory:// "
                "for the default broker or memory://name (letters, digits, '_', '-', '.') for "
                "a separate one"
            )
        url = "memory://" if name == DEFAULT_BROKER else f"memory://{name}"
        return {"broker": name, "url": url}
