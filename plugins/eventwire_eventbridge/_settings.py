"""The EventBridge backend's options: ``eventbridge://BUS?region=...&endpoint=...``.

Credentials never come from the URL: the AWS SDK's standard chain (environment variables,
shared config and credentials files, container and instance roles) supplies them.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from eventwire.backendkit import BackendSettings, Location, Seconds, option
from eventwire.errors import InvalidURLError
from eventwire.urls import redact_url

__all__ = ["EventBridgeSettings"]

# Event bus names: 1-256 of letters, digits, . - _ (a partner bus has a / too).
_BUS_NAME = re.compile(r"^[A-Za-z0-9._/-]{1,256}$")


@dataclasses.dataclass(frozen=True, kw_only=True)
class EventBridgeSettings(BackendSettings):
    """Settings of ``eventbridge://BUS_NAME`` (``default`` is the account's default bus)."""

    backend = "eventbridge"
    schemes = ("eventbridge",)

    #: The event bus the URL names.
    bus: str = "default"
    region: str | None = option(
        None, "AWS region", default_doc="from the AWS chain (AWS_REGION, ~/.aws/config)"
    )
    endpoint: str | None = option(
        None,
        "endpoint of both APIs, e.g. a local emulator's http://127.0.0.1:4599",
        default_doc="from the region (AWS's own endpoints)",
    )
    prefix: str = option("eventwire", "prefix of the rule and queue names the backend creates")
    visibility_timeout: Seconds = option(
        30.0,
        "how long a received message stays hidden from other members before SQS "
        "delivers it again (a crashed member's messages come back after this)",
        minimum=1.0,
        maximum=43200.0,
    )
    wait_time: Seconds = option(
        1.0, "long-poll wait of one ReceiveMessage call", minimum=0.0, maximum=20.0
    )
    connect_timeout: Seconds = option(10.0, "timeout of one connection attempt", minimum=0.1)

    @classmethod
    def from_location(cls, location: Location) -> dict[str, Any]:
        bus = location.hosts[0] if len(location.hosts) == 1 else ""
        if (
            location.username is not None
            or location.password is not None
            or not _BUS_NAME.match(bus)
            or location.path not in ("", "/")
        ):
            raise InvalidURLError(
                f"{redact_url(location.raw)!r} is not a valid eventbridge:// URL; write "
                "eventbridge://BUS_NAME?region=REGION (credentials come from the AWS chain, "
                "never from the URL)"
            )
        return {"bus": bus, "url": f"eventbridge://{bus}"}
