"""How a gateway runs: its settings, checked once."""

from __future__ import annotations

import dataclasses

from eventwire.errors import ConfigurationError

__all__ = ["GatewaySettings"]


@dataclasses.dataclass(frozen=True)
class GatewaySettings:
    """How a gateway runs.

    - ``token``: the bearer token of every mutating endpoint (required unless ``read_only``);
    - ``read_only``: no ingress, no replay (those endpoints answer ``403``);
    - ``max_body_bytes``: larger request bodies get ``413``;
    - ``scan_limit``: dead letters read per channel at most (counts and filters use them);
    - ``source``: the CloudEvents source of events posted without one;
    - ``retry_after``: seconds in ``Retry-After`` of a ``503`` (and between reconnects).
    """

    token: str | None = None
    read_only: bool = False
    max_body_bytes: int = 1024 * 1024
    scan_limit: int = 1000
    source: str = "eventwire-gateway"
    retry_after: int = 5

    def __post_init__(self) -> None:
        if self.token is None and not self.read_only:
            raise ConfigurationError(
                "the gateway needs a bearer token for its mutating endpoints: give "
                "--token-file FILE or set $EVENTWIRE_GATEWAY_TOKEN (or run --read-only)"
            )
        for name in ("max_body_bytes", "scan_limit", "retry_after"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigurationError(f"{name} must be an int >= 1, got {value!r}")
