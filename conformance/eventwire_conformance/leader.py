"""``python -m eventwire_conformance.leader URL CHANNEL``: the cluster node leading a channel.

For G23's ``--node-kill-cmd``, which must find the node to kill: prints the node leading the
channel's stream (NATS: the stream's Raft leader, as its ``server_name``) or most of its
partitions (Kafka: the broker id leading the most partitions of the topic, lowest id on a
tie). Exit 2 with a one-line error for another scheme or a channel that does not exist.
"""

from __future__ import annotations

import asyncio
import sys
from collections import Counter

from eventwire import create_backend
from eventwire.errors import EventwireError

__all__ = ["leader", "main"]


async def leader(url: str, channel: str) -> str:
    """The name of the node leading `channel` on the cluster at `url`."""
    backend = create_backend(url)
    name = type(backend).__module__.split(".")[0]
    if name not in ("eventwire_nats", "eventwire_kafka"):
        raise ValueError(f"cannot find a channel's leader on {url.split('://')[0]}:// "
                         "(only nats:// and kafka://)")  # fmt: skip
    await backend.connect()
    try:
        if name == "eventwire_nats":
            from eventwire_nats._topology import stream_name

            info = await backend.js.stream_info(stream_name(channel))  # type: ignore[attr-defined]
            if info.cluster is None or not info.cluster.leader:
                raise ValueError(f"the stream of channel {channel!r} has no leader")
            return str(info.cluster.leader)
        topics = await backend._admin.describe_topics([channel])  # type: ignore[attr-defined]
        leaders = Counter(
            p["leader"] for t in topics if not t["error_code"] for p in t["partitions"]
        )
        if not leaders:
            raise ValueError(f"Kafka has no topic {channel!r}")
        top = max(leaders.values())
        return str(min(node for node, n in leaders.items() if n == top))
    finally:
        await backend.close()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m eventwire_conformance.leader URL CHANNEL", file=sys.stderr)
        return 2
    try:
        print(asyncio.run(leader(args[0], args[1])))
    except (ValueError, EventwireError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
