"""The sqlite backend's options: ``sqlite:///path/to/file.db[?option=value&...]``."""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from eventwire.backendkit import BackendSettings, ByteSize, Location, Seconds, option
from eventwire.errors import InvalidURLError

from eventwire_sqlite._info import MAX_MESSAGE_BYTES

__all__ = ["SqliteSettings"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class SqliteSettings(BackendSettings):
    """Settings of ``sqlite:///absolute/path.db`` or ``sqlite://relative/path.db``."""

    backend = "sqlite"
    schemes = ("sqlite",)

    #: The database file.
    path: str = ""
    shards: int = option(
        8,
        "shards of each channel the backend creates: the most members of one group that "
        "work at once. Fixed when the channel is first used",
        minimum=1,
        maximum=1024,
    )
    retention: Seconds | None = option(
        7 * 24 * 3600.0,
        "how long events are kept, in seconds (`none`: for ever); older ones are deleted "
        "by publishers now and then",
        default_doc="7 days",
        minimum=1,
    )
    lease_ttl: Seconds = option(
        2.0,
        "a member that stops renewing its shard leases this long loses them: how fast a "
        "crashed process's events come back",
        minimum=0.2,
    )
    poll_interval: Seconds = option(
        0.05,
        "how often an idle member looks for events written by other processes (events of "
        "the same process wake it at once)",
        minimum=0.001,
        below="lease_ttl",
    )
    fetch_count: int = option(
        200, "events one read takes (at most the subscription's max_in_flight)", minimum=1
    )
    busy_timeout: Seconds = option(
        10.0,
        "how long a write waits for another process's write to end before it fails "
        "(`PublishError` for a publish)",
        minimum=0.1,
    )
    synchronous: Literal["full", "normal"] = option(
        "full",
        "`full`: a confirmed publish survives a power loss; `normal`: it survives a crash of "
        "the process, but a power loss may lose the last ones (faster)",
    )
    max_message_bytes: ByteSize = option(
        MAX_MESSAGE_BYTES, "largest event (body, key and headers)", minimum=1024
    )

    @classmethod
    def from_location(cls, location: Location) -> dict[str, Any]:
        # sqlite:///abs/path.db -> "/abs/path.db"; sqlite://rel/path.db -> "rel/path.db"
        host = ",".join(location.hosts)
        path = host + location.path if host else location.path
        if location.username or location.password or not path.strip("/") or path == "/":
            raise InvalidURLError(
                f"{location.raw.split('?', 1)[0]!r} names no database file; write "
                "sqlite:///absolute/path/events.db (three slashes) or "
                "sqlite://relative/path/events.db"
            )
        if path.startswith("/:memory:") or path == ":memory:":
            raise InvalidURLError(
                "an in-memory SQLite database cannot be shared or survive a restart; use "
                "memory:// for an in-process broker, or name a file"
            )
        return {"path": path, "url": f"sqlite://{path}"}
