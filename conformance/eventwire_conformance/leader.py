"""``python -m eventwire_conformance.leader URL CHANNEL``: the cluster node leading a channel.

For G23's ``--node-kill-cmd``, which must find the node to kill. Prints:

- NATS: the Raft leader of the channel's stream, as its ``server_name``;
- Kafka: the broker id leading the most partitions of the topic;
- RabbitMQ: the node (Erlang node name) leading the most quorum queues of the channel's
  groups (their shards), from the management plugin's HTTP API: ``--management URL``, by
  default port 15672 of each node of the AMQP URL, with the AMQP URL's user and password;
- Redis Sentinel: the master the sentinels name, as ``host:port`` (one master holds every
  channel).

A tie goes to the lowest id or name. Exit 2 with a one-line error for another scheme, a
channel that does not exist or a cluster that cannot say.
"""

from __future__ import annotations

import asyncio
import base64
import json
import sys
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

from eventwire import create_backend
from eventwire.errors import EventwireError

__all__ = ["leader", "main"]

#: The management plugin's default port on each RabbitMQ node.
MANAGEMENT_PORT = 15672
SUPPORTED = "nats://, kafka://, amqp:// and redis+sentinel://"


async def leader(url: str, channel: str, management: str | None = None) -> str:
    """The name of the node leading `channel` on the cluster at `url` (`management`: the
    RabbitMQ management API's base URL)."""
    backend = create_backend(url)
    name = type(backend).__module__.split(".")[0]
    settings: Any = getattr(backend, "settings", None)
    if name == "eventwire_rabbit":
        return await asyncio.to_thread(_rabbit_leader, settings, channel, management)
    if name == "eventwire_redis" and settings.sentinels:
        return await _sentinel_master(settings)
    if name not in ("eventwire_nats", "eventwire_kafka"):
        raise ValueError(f"cannot find a channel's leader on {url.split('://')[0]}:// "
                         f"(only {SUPPORTED})")  # fmt: skip
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
        return str(_most(leaders))
    finally:
        await backend.close()


def _most(leaders: Counter[Any]) -> Any:
    """The node leading the most, the lowest one on a tie."""
    top = max(leaders.values())
    return min(node for node, n in leaders.items() if n == top)


def _rabbit_leader(settings: Any, channel: str, management: str | None) -> str:
    """The node leading the most quorum queues named ``CHANNEL:GROUP:SHARD``: the shards
    every publish to the channel is routed to and every member consumes from."""
    bases = (
        [management] if management else [f"http://{h}:{MANAGEMENT_PORT}" for h, _ in settings.nodes]
    )
    queues = _management_get(bases, f"/api/queues/{quote(settings.vhost, safe='')}"
                             "?columns=name,type,leader", settings)  # fmt: skip
    leaders = Counter(
        str(q["leader"])
        for q in queues
        if q.get("type") == "quorum" and str(q.get("name", "")).startswith(channel + ":")
        and q.get("leader")
    )  # fmt: skip
    if not leaders:
        raise ValueError(f"RabbitMQ has no quorum queue of channel {channel!r} with a leader")
    return str(_most(leaders))


def _management_get(bases: Iterable[str], path: str, settings: Any) -> Any:
    """GET `path` from the first management API of `bases` that answers."""
    password = "guest" if settings.password is None else settings.password
    token = base64.b64encode(f"{settings.username or 'guest'}:{password}".encode()).decode()
    problems = []
    for base in bases:
        request = urllib.request.Request(
            base.rstrip("/") + path, headers={"Authorization": f"Basic {token}"}
        )
        try:
            with urllib.request.urlopen(request, timeout=5.0) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            problems.append(f"{base}: HTTP {exc.code} {exc.reason}")
        except (OSError, ValueError) as exc:
            problems.append(f"{base}: {exc}")
    raise ValueError(
        "no RabbitMQ management API answered (enable the rabbitmq_management plugin or give "
        "--management http://HOST:PORT): " + "; ".join(problems)
    )


async def _sentinel_master(settings: Any) -> str:
    from redis.asyncio.sentinel import Sentinel

    sentinel = Sentinel(list(settings.sentinels), socket_timeout=2.0)  # type: ignore[no-untyped-call]
    try:
        host, port = await sentinel.discover_master(settings.service)
    except Exception as exc:  # redis-py's MasterNotFoundError and connection errors
        where = ",".join(f"{host}:{port}" for host, port in settings.sentinels)
        raise ValueError(
            f"no sentinel of {where} names a master for {settings.service!r} ({type(exc).__name__})"
        ) from exc
    finally:
        for client in sentinel.sentinels:
            await client.aclose()
    return f"{host}:{port}"


USAGE = "usage: python -m eventwire_conformance.leader URL CHANNEL [--management URL]"


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    management = None
    if "--management" in args[:-1]:
        at = args.index("--management")
        management = args.pop(at + 1)
        del args[at]
    if len(args) != 2 or "--management" in args:
        print(USAGE, file=sys.stderr)
        return 2
    try:
        print(asyncio.run(leader(args[0], args[1], management)))
    except (ValueError, EventwireError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
