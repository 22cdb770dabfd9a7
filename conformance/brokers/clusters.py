"""Three-node clusters on loopback for `conformance/brokers/brokers --cluster`.

The brokers script imports this module when a command names ``--cluster`` or ``--node`` and
hands it the script's own module (installers, wire probes, process helpers), so both share
one set of tools. Each node runs in a session of its own, with its own ports and data under
``$EVENTWIRE_BROKERS_DIR/cluster/<name>/node<N>/``. See conformance/brokers/README.md.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

#: The brokers script (set by `main`): installers, probes, process helpers.
core: Any = None

NAMES = ("kafka", "rabbit", "redis", "nats")
NODES = (1, 2, 3)
HOST = "127.0.0.1"
#: The Redis Sentinel service name (the master's name in the sentinels and in the URL).
REDIS_SERVICE = "mymaster"
#: Quorum of sentinels that must agree the master is down before a failover.
SENTINEL_QUORUM = 2
NATS_CLUSTER = "eventwire-cluster"

#: Ports of node 1 per cluster: (environment variable, default). Node N uses port + N - 1.
#: The block 19000-19800 keeps clear of the single and secure brokers.
PORTS: dict[str, dict[str, tuple[str, int]]] = {
    "kafka": {
        "port": ("EVENTWIRE_CLUSTER_KAFKA_PORT", 19092),
        "controller": ("EVENTWIRE_CLUSTER_KAFKA_CONTROLLER_PORT", 19192),
    },
    "rabbit": {
        "port": ("EVENTWIRE_CLUSTER_RABBIT_PORT", 19672),
        "dist": ("EVENTWIRE_CLUSTER_RABBIT_DIST_PORT", 19772),
        "management": ("EVENTWIRE_CLUSTER_RABBIT_MANAGEMENT_PORT", 19872),
    },
    "redis": {
        "port": ("EVENTWIRE_CLUSTER_REDIS_PORT", 19379),
        "sentinel": ("EVENTWIRE_CLUSTER_REDIS_SENTINEL_PORT", 19479),
    },
    "nats": {
        "port": ("EVENTWIRE_CLUSTER_NATS_PORT", 19222),
        "route": ("EVENTWIRE_CLUSTER_NATS_ROUTE_PORT", 19322),
        "monitor": ("EVENTWIRE_CLUSTER_NATS_MONITOR_PORT", 19422),
    },
}
#: Seconds `up` waits until every node answers and has joined (EVENTWIRE_BROKERS_TIMEOUT).
TIMEOUT = {"kafka": 180.0, "rabbit": 180.0, "redis": 60.0, "nats": 60.0}
#: Substrings of /proc/<pid>/cmdline per process kind, so a recycled pid is never signalled.
MARKERS = {
    "kafka": "kafka.Kafka",
    "rabbit": "rabbitmq-server",
    "redis": "redis-server",
    "sentinel": "sentinel",  # redis-server --sentinel retitles itself "... [sentinel]"
    "nats": "nats-server",
}


class UsageError(Exception):
    """Bad command-line input (exit code 2)."""


# --------------------------------------------------------------------------- layout


def cluster_home(name: str) -> Path:
    return Path(core.brokers_dir()) / "cluster" / name


def node_home(name: str, node: int) -> Path:
    return cluster_home(name) / f"node{node}"


def processes(name: str) -> tuple[str, ...]:
    """The processes of one node: a Redis node is a data server and a sentinel."""
    return ("redis", "sentinel") if name == "redis" else (name,)


def pid_path(name: str, node: int, kind: str) -> Path:
    return node_home(name, node) / f"{kind}.pid"


def log_path(name: str, node: int, kind: str) -> Path:
    return node_home(name, node) / f"{kind}.log"


def configured_ports(name: str) -> dict[int, dict[str, int]]:
    """Ports of every node from the environment: node N gets node 1's port + N - 1."""
    first = {key: core._env_int(env, default) for key, (env, default) in PORTS[name].items()}
    return {n: {key: port + n - 1 for key, port in first.items()} for n in NODES}


def state_path(name: str) -> Path:
    return cluster_home(name) / "state.json"


def read_state(name: str) -> dict[str, Any]:
    try:
        state: dict[str, Any] = json.loads(state_path(name).read_text())
    except (OSError, ValueError):
        return {}
    return state


def active_ports(name: str) -> dict[int, dict[str, int]]:
    """The ports the cluster was started with while any node runs, else the configured ones."""
    saved = read_state(name).get("ports")
    if saved and any(node_pids(name, n) for n in NODES):
        return {int(n): {k: int(v) for k, v in p.items()} for n, p in saved.items()}
    return configured_ports(name)


def pid_of(name: str, node: int, kind: str) -> int | None:
    try:
        pid = int(pid_path(name, node, kind).read_text().strip())
    except (OSError, ValueError):
        return None
    cmd = core._cmdline(pid)
    return pid if cmd is not None and MARKERS[kind] in cmd else None


def node_pids(name: str, node: int) -> dict[str, int]:
    """The live processes of a node, by kind."""
    found = {kind: pid_of(name, node, kind) for kind in processes(name)}
    return {kind: pid for kind, pid in found.items() if pid}


def node_running(name: str, node: int) -> bool:
    return len(node_pids(name, node)) == len(processes(name))


def node_exited(name: str, node: int) -> bool:
    """A process this script started for the node is gone (or a zombie). Unlike
    `node_running`, this does not look for the marker: between fork and exec a new process
    still shows this script's command line."""
    for kind in processes(name):
        try:
            pid = int(pid_path(name, node, kind).read_text().strip())
        except (OSError, ValueError):
            continue
        if core._cmdline(pid) is None:
            return True
    return False


def url(name: str, ports: dict[int, dict[str, int]]) -> str:
    """The multi-host URL a backend takes for the whole cluster."""
    if name == "redis":
        hosts = ",".join(f"{HOST}:{ports[n]['sentinel']}" for n in NODES)
        return f"redis+sentinel://{hosts}/{REDIS_SERVICE}"
    hosts = ",".join(f"{HOST}:{ports[n]['port']}" for n in NODES)
    return {
        "kafka": f"kafka://{hosts}",
        "rabbit": f"amqp://guest:guest@{hosts}/",
        "nats": f"nats://{hosts}",
    }[name]


# --------------------------------------------------------------------------- processes


def spawn(
    name: str, node: int, kind: str, argv: list[str], env: dict[str, str] | None = None
) -> int:
    home = node_home(name, node)
    with open(log_path(name, node, kind), "ab") as log:
        log.write(f"\n===== {time.strftime('%F %T')} brokers: starting {kind} =====\n".encode())
        log.flush()
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=str(home),
            start_new_session=True,
        )
    pid_path(name, node, kind).write_text(f"{proc.pid}\n")
    return proc.pid


def log_tail(name: str, node: int, lines: int = 30) -> str:
    chunks = []
    for path in sorted(node_home(name, node).glob("*.log")):
        tail = path.read_text(errors="replace").splitlines()[-lines:]
        chunks.append(f"--- last {len(tail)} lines of {path} ---\n" + "\n".join(tail))
    return "\n".join(chunks) or f"(no log in {node_home(name, node)})"


# --------------------------------------------------------------------------- wire helpers


def redis_call(port: int, *args: str, timeout: float = 2.0) -> Any:
    """One RESP command; returns the decoded reply (errors raise ConnectionError)."""
    with socket.create_connection((HOST, port), timeout=timeout) as sock:
        sock.sendall(core._resp(*args))
        return _resp_reply(sock)


def _resp_reply(sock: socket.socket) -> Any:
    line = core._recv_line(sock)
    kind, rest = line[:1], line[1:]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        raise ConnectionError(rest.decode(errors="replace"))
    if kind == b":":
        return int(rest)
    if kind == b"$":
        size = int(rest)
        return None if size < 0 else core._recv_exact(sock, size + 2)[:-2].decode(errors="replace")
    if kind == b"*":
        size = int(rest)
        return None if size < 0 else [_resp_reply(sock) for _ in range(size)]
    raise ConnectionError(f"unexpected RESP reply {line[:60]!r}")


def redis_info(port: int, section: str) -> dict[str, str]:
    text = redis_call(port, "INFO", section)
    pairs = (row.split(":", 1) for row in text.splitlines() if ":" in row)
    return {key: value.strip() for key, value in pairs}


def http_json(port: int, path: str, timeout: float = 2.0) -> Any:
    with urllib.request.urlopen(f"http://{HOST}:{port}{path}", timeout=timeout) as resp:
        return json.loads(resp.read() or b"{}")


def _kafka_request(port: int, key: int, version: int, body: bytes, flexible: bool) -> bytes:
    """One Kafka request; returns the response body (after the response header)."""
    client_id = b"eventwire-brokers"
    header = struct.pack(">hhih", key, version, 1, len(client_id)) + client_id
    if flexible:
        header += b"\x00"
    message = header + body
    with socket.create_connection((HOST, port), timeout=3.0) as sock:
        sock.sendall(struct.pack(">i", len(message)) + message)
        (size,) = struct.unpack(">i", core._recv_exact(sock, 4))
        data: bytes = core._recv_exact(sock, size)
    return data[core._skip_tags(data, 4) :] if flexible else data[4:]


def _kafka_string(data: bytes, pos: int) -> tuple[str, int]:
    (n,) = struct.unpack_from(">h", data, pos)
    pos += 2
    if n < 0:
        return "", pos
    return data[pos : pos + n].decode(errors="replace"), pos + n


@dataclass
class Partition:
    """One partition in a Metadata answer."""

    leader: int
    replicas: list[int]
    isr: list[int]


def kafka_metadata(port: int) -> tuple[list[int], dict[tuple[str, int], Partition]]:
    """Metadata v1 for every topic: the broker ids, and (topic, partition) -> its partition."""
    data = _kafka_request(port, 3, 1, struct.pack(">i", -1), flexible=False)
    pos = 0
    (count,) = struct.unpack_from(">i", data, pos)
    pos += 4
    brokers = []
    for _ in range(count):
        (node_id,) = struct.unpack_from(">i", data, pos)
        _host, pos = _kafka_string(data, pos + 4)
        _rack, pos = _kafka_string(data, pos + 4)
        brokers.append(node_id)
    pos += 4  # controller id: KRaft names a random live broker here, not the active controller
    (count,) = struct.unpack_from(">i", data, pos)
    pos += 4
    partitions: dict[tuple[str, int], Partition] = {}
    for _ in range(count):
        topic, pos = _kafka_string(data, pos + 2)
        pos += 1  # is_internal
        (nparts,) = struct.unpack_from(">i", data, pos)
        pos += 4
        for _ in range(nparts):
            _err, index, leader, nreplicas = struct.unpack_from(">hiii", data, pos)
            replicas = list(struct.unpack_from(f">{nreplicas}i", data, pos + 14))
            pos += 14 + 4 * nreplicas
            (nisr,) = struct.unpack_from(">i", data, pos)
            isr = list(struct.unpack_from(f">{nisr}i", data, pos + 4))
            pos += 4 + 4 * nisr
            partitions[(topic, index)] = Partition(leader, replicas, isr)
    return sorted(brokers), partitions


def kafka_quorum_leader(port: int) -> int:
    """DescribeQuorum v0 on the metadata log: the node id of the active controller."""
    topic = b"__cluster_metadata"
    body = b"\x02" + bytes([len(topic) + 1]) + topic + b"\x02" + struct.pack(">i", 0)
    body += b"\x00\x00\x00"  # partition tags, topic tags, request tags
    data = _kafka_request(port, 55, 0, body, flexible=True)
    (error,) = struct.unpack_from(">h", data, 0)
    pos = 2
    _ntopics, pos = core._uvarint(data, pos)
    _name, pos = core._compact_str(data, pos)
    _nparts, pos = core._uvarint(data, pos)
    _index, perror, leader = struct.unpack_from(">ihi", data, pos)
    if error or perror:
        raise ConnectionError(f"DescribeQuorum error {error or perror}")
    if leader < 0:
        raise ConnectionError("the controller quorum has no leader yet")
    return int(leader)


# --------------------------------------------------------------------------- the clusters


@dataclass
class NodeView:
    """What `status` prints for one node."""

    ok: bool
    what: str
    role: str = ""


@dataclass
class ClusterView:
    """Every node's view and whether the cluster as a whole is formed."""

    nodes: dict[int, NodeView] = field(default_factory=dict)
    formed: bool = False
    detail: str = ""


class Cluster:
    """One broker's three-node cluster: how to launch a node and how to inspect them all."""

    name = ""

    def __init__(self, ports: dict[int, dict[str, int]]) -> None:
        self.ports = ports

    def prepare(self) -> None:
        """Shared setup before any node starts (storage ids, cookies, jars)."""

    def launch(self, node: int) -> None:
        raise NotImplementedError

    def launch_order(self, nodes: list[int]) -> list[list[int]]:
        """Waves of nodes to start; each wave must answer before the next starts."""
        return [nodes]

    def probe_node(self, node: int) -> NodeView:
        raise NotImplementedError

    def view(self, running: list[int]) -> ClusterView:
        """Probe every running node and say whether they form one cluster."""
        raise NotImplementedError

    def node_answers(self, node: int) -> bool:
        try:
            return self.probe_node(node).ok
        except (OSError, ValueError, struct.error, IndexError, KeyError, TypeError):
            return False


def _safe(probe: Callable[[], NodeView]) -> NodeView:
    try:
        return probe()
    except (OSError, ValueError, struct.error, IndexError, KeyError, TypeError) as exc:
        return NodeView(False, f"not answering ({type(exc).__name__}: {exc})")


# ------------------------------------------------------------------------------------ NATS


class NatsCluster(Cluster):
    name = "nats"

    def launch(self, node: int) -> None:
        home = node_home("nats", node)
        (home / "data").mkdir(parents=True, exist_ok=True)
        ports = self.ports[node]
        routes = ", ".join(
            f"nats-route://{HOST}:{self.ports[n]['route']}" for n in NODES if n != node
        )
        conf = home / "nats.conf"
        conf.write_text(
            f"""\
# written by conformance/brokers/brokers --cluster on every start
server_name: {self.server_name(node)}
listen: {HOST}:{ports["port"]}
http: {HOST}:{ports["monitor"]}
max_payload: 8MB
jetstream {{ store_dir: "{home / "data"}", max_memory_store: 256MB, max_file_store: 4GB }}
cluster {{
  name: {NATS_CLUSTER}
  listen: {HOST}:{ports["route"]}
  routes: [{routes}]
}}
"""
        )
        spawn("nats", node, "nats", [shutil.which("nats-server") or "nats-server", "-c", str(conf)])

    @staticmethod
    def server_name(node: int) -> str:
        return f"eventwire-c{node}"

    def probe_node(self, node: int) -> NodeView:
        """Client port, routes, and /healthz: ok only once this server's JetStream streams and
        consumers are current (a restarted node has caught up)."""
        ports = self.ports[node]
        what = core.probe_nats(ports["port"])
        routes = http_json(ports["monitor"], "/routez").get("num_routes", 0)
        meta = http_json(ports["monitor"], "/jsz").get("meta_cluster") or {}
        leader = meta.get("leader") or ""
        try:
            health = http_json(ports["monitor"], "/healthz").get("status", "?")
        except urllib.error.HTTPError as exc:  # 503 while catching up
            health = json.loads(exc.read() or b"{}").get("error", f"HTTP {exc.code}")
        role = "meta leader" if leader == self.server_name(node) else ""
        what += f", {routes} routes, meta leader {leader or '-'}, health {health}"
        return NodeView(health == "ok" and bool(leader), what, role)

    def view(self, running: list[int]) -> ClusterView:
        result = ClusterView()
        leaders: set[str] = set()
        joined = True
        for node in running:
            result.nodes[node] = view = _safe(lambda n=node: self.probe_node(n))  # type: ignore[misc]
            if not view.ok:
                joined = False
                continue
            monitor = self.ports[node]["monitor"]
            routes = http_json(monitor, "/routez").get("num_routes", 0)
            meta = http_json(monitor, "/jsz").get("meta_cluster") or {}
            joined &= routes >= len(running) - 1
            leaders.add(meta.get("leader") or "")
        result.formed = joined and len(leaders) == 1 and "" not in leaders
        streams = self.stream_leaders(running)
        for node, view in result.nodes.items():
            led = sorted(s for s, leader in streams.items() if leader == self.server_name(node))
            if led:
                shown = ", ".join(led[:5]) + (f" and {len(led) - 5} more" if len(led) > 5 else "")
                view.role += f"{', ' if view.role else ''}leads stream {shown}"
        return result

    def stream_leaders(self, running: list[int]) -> dict[str, str]:
        """Stream name -> server name of its leader, as the servers that host it report."""
        found: dict[str, str] = {}
        for node in running:
            with contextlib.suppress(OSError, ValueError):
                jsz = http_json(self.ports[node]["monitor"], "/jsz?streams=true")
                for account in jsz.get("account_details") or []:
                    for stream in account.get("stream_detail") or []:
                        leader = (stream.get("cluster") or {}).get("leader")
                        if leader:
                            found[stream.get("name", "?")] = leader
        return found


# ----------------------------------------------------------------------------------- Kafka


def _kafka_properties(node: int, ports: dict[int, dict[str, int]], data: Path) -> str:
    voters = ",".join(f"{n}@{HOST}:{ports[n]['controller']}" for n in NODES)
    own = ports[node]
    return f"""\
# written by conformance/brokers/brokers --cluster on every start
process.roles=broker,controller
node.id={node}
controller.quorum.voters={voters}
listeners=PLAINTEXT://{HOST}:{own["port"]},CONTROLLER://{HOST}:{own["controller"]}
advertised.listeners=PLAINTEXT://{HOST}:{own["port"]}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs={data}
auto.create.topics.enable=true
num.partitions=1
default.replication.factor=3
min.insync.replicas=2
unclean.leader.election.enable=false
auto.leader.rebalance.enable=true
leader.imbalance.check.interval.seconds=10
leader.imbalance.per.broker.percentage=0
offsets.topic.replication.factor=3
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=3
transaction.state.log.min.isr=2
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=3
share.coordinator.state.topic.min.isr=2
group.initial.rebalance.delay.ms=0
num.network.threads=2
num.io.threads=2
num.replica.fetchers=1
log.retention.hours=168
"""


class KafkaCluster(Cluster):
    name = "kafka"

    def prepare(self) -> None:
        """One cluster id for the three nodes; every blank node's storage formatted with it
        (in parallel: each format is a JVM start)."""
        ids = cluster_home("kafka") / "cluster-id"
        if not ids.exists():
            cluster_id = ""
            while not cluster_id or cluster_id.startswith("-"):
                cluster_id = base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")
            ids.write_text(cluster_id + "\n")
        core.ensure_kafka_libs()
        if not core.java_bin():
            raise core.BrokerError(
                "kafka: no java found (set JAVA_HOME or install openjdk-17-jre-headless)"
            )
        formats = {}
        for node in NODES:
            props = self.configure(node)
            if (node_home("kafka", node) / "data" / "meta.properties").exists():
                continue
            argv = [*self.jvm(node), "-Xmx256m", "-cp", f"{core.kafka_libs_dir()}/*"]
            argv += ["kafka.tools.StorageTool", "format", f"--cluster-id={ids.read_text().strip()}"]
            with open(node_home("kafka", node) / "format.log", "wb") as out:
                formats[node] = subprocess.Popen(
                    [*argv, "--config", str(props)],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    cwd=str(node_home("kafka", node)),
                )
        for node, proc in formats.items():
            if proc.wait() != 0:
                raise core.BrokerError(
                    f"kafka node {node}: formatting the storage failed (exit {proc.returncode})\n"
                    + log_tail("kafka", node)
                )

    def configure(self, node: int) -> Path:
        """Write the node's server.properties and log4j2.properties; return the former."""
        home = node_home("kafka", node)
        data = home / "data"
        data.mkdir(parents=True, exist_ok=True)
        props = home / "server.properties"
        props.write_text(_kafka_properties(node, self.ports, data))
        (home / "log4j2.properties").write_text(core.KAFKA_LOG4J)
        return props

    def jvm(self, node: int) -> list[str]:
        home = node_home("kafka", node)
        return [
            core.java_bin(),
            "-Djava.awt.headless=true",
            "-Dlog4j2.shutdownHookEnabled=false",
            f"-Dlog4j2.configurationFile={home / 'log4j2.properties'}",
            f"-Dkafka.logs.dir={home}",
        ]

    def launch(self, node: int) -> None:
        heap = os.environ.get("EVENTWIRE_CLUSTER_KAFKA_HEAP", "512m")
        argv = [
            *self.jvm(node),
            f"-Xmx{heap}",
            "-Xms128m",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-XX:InitiatingHeapOccupancyPercent=35",
            "-XX:+ExplicitGCInvokesConcurrent",
            "-XX:+ExitOnOutOfMemoryError",
            "-cp",
            f"{core.kafka_libs_dir()}/*",
            "kafka.Kafka",
            str(self.configure(node)),
        ]
        spawn("kafka", node, "kafka", argv)

    def probe_node(self, node: int) -> NodeView:
        port = self.ports[node]["port"]
        what = core.probe_kafka(port)
        leader = kafka_quorum_leader(port)
        brokers, partitions = kafka_metadata(port)
        led = sum(1 for partition in partitions.values() if partition.leader == node)
        preferred = sum(1 for p in partitions.values() if p.replicas[:1] == [node])
        role = "active controller" if leader == node else ""
        role += f"{', ' if role else ''}leads {led} partitions, preferred leader of {preferred}"
        return NodeView(True, f"{what}, brokers {brokers}", role)

    def view(self, running: list[int]) -> ClusterView:
        result = ClusterView()
        for node in running:
            result.nodes[node] = _safe(lambda n=node: self.probe_node(n))  # type: ignore[misc]
        answering = [n for n in running if result.nodes[n].ok]
        if not answering:
            return result
        brokers, partitions = kafka_metadata(self.ports[answering[0]]["port"])
        leader = kafka_quorum_leader(self.ports[answering[0]]["port"])
        # Joined = registered, and back in the in-sync set of every partition it replicates.
        behind = [
            f"{topic}-{index}"
            for (topic, index), partition in sorted(partitions.items())
            if set(partition.replicas) & set(running) - set(partition.isr)
        ]
        result.formed = (
            len(answering) == len(running) and set(running) <= set(brokers) and not behind
        )
        shown = [
            f"{topic}-{index} on node {partition.leader}"
            for (topic, index), partition in sorted(partitions.items())
            if not topic.startswith("__")
        ]
        # The first replica is the preferred leader; the controller moves leadership back
        # to it once it is in sync (auto.leader.rebalance.enable, every 10 s).
        elsewhere = [p for p in partitions.values() if p.replicas and p.leader != p.replicas[0]]
        result.detail = f"active controller: node {leader}; {len(partitions)} partitions"
        if behind:
            result.detail += f", {len(behind)} with a running replica out of sync"
        result.detail += (
            f", {len(elsewhere)} led by another node than their preferred leader"
            if elsewhere
            else ", each led by its preferred leader"
        )
        if shown:
            more = f" and {len(shown) - 20} more" if len(shown) > 20 else ""
            result.detail += "\n  partition leaders: " + ", ".join(shown[:20]) + more
        return result


# ----------------------------------------------------------------------------------- Redis


class RedisCluster(Cluster):
    """Sentinel: one master, two replicas, a sentinel beside each data server."""

    name = "redis"

    def master_port(self) -> int:
        """Where the master is: the running sentinels say; else the master the sentinels
        recorded in their config files (they rewrite it on failover); else node 1."""
        for node in NODES:
            with contextlib.suppress(OSError, ValueError):
                reply = redis_call(
                    self.ports[node]["sentinel"],
                    "SENTINEL",
                    "get-master-addr-by-name",
                    REDIS_SERVICE,
                )
                if reply:
                    return int(reply[1])
        for node in NODES:
            with contextlib.suppress(OSError):
                for row in (node_home("redis", node) / "sentinel.conf").read_text().splitlines():
                    parts = row.split()
                    if parts[:3] == ["sentinel", "monitor", REDIS_SERVICE]:
                        return int(parts[4])
        return self.ports[1]["port"]

    def launch(self, node: int) -> None:
        home = node_home("redis", node)
        (home / "data").mkdir(parents=True, exist_ok=True)
        ports = self.ports[node]
        master = self.master_port()
        server = shutil.which("redis-server") or "redis-server"
        argv = [
            server,
            "--bind", HOST,
            "--port", str(ports["port"]),
            "--protected-mode", "yes",
            "--daemonize", "no",
            "--dir", str(home / "data"),
            "--logfile", str(log_path("redis", node, "redis")),
            "--appendonly", "yes",
            "--appendfsync", "always",
            "--save", "",
            "--maxmemory", os.environ.get("EVENTWIRE_CLUSTER_REDIS_MAXMEMORY", "1gb"),
            "--replica-announce-ip", HOST,
        ]  # fmt: skip
        if master != ports["port"]:
            argv += ["--replicaof", HOST, str(master)]
        spawn("redis", node, "redis", argv)
        conf = home / "sentinel.conf"
        if not conf.exists():
            # The sentinel rewrites this file (current master, known replicas and sentinels).
            conf.write_text(
                f"""\
# written once by conformance/brokers/brokers --cluster; the sentinel keeps it up to date
port {ports["sentinel"]}
bind {HOST}
protected-mode no
daemonize no
dir {home}
sentinel announce-ip {HOST}
sentinel monitor {REDIS_SERVICE} {HOST} {master} {SENTINEL_QUORUM}
sentinel down-after-milliseconds {REDIS_SERVICE} 3000
sentinel failover-timeout {REDIS_SERVICE} 10000
sentinel parallel-syncs {REDIS_SERVICE} 1
"""
            )
        sentinel = [
            server,
            str(conf),
            "--sentinel",
            "--logfile",
            str(log_path("redis", node, "sentinel")),
        ]
        spawn("redis", node, "sentinel", sentinel)

    def probe_node(self, node: int) -> NodeView:
        ports = self.ports[node]
        what = core.probe_redis(ports["port"])
        replication = redis_info(ports["port"], "replication")
        role = replication.get("role", "?")
        if role == "slave":
            link = replication.get("master_link_status", "?")
            what += f", replica of {replication.get('master_port', '?')} (link {link})"
            if link != "up":
                return NodeView(False, what, "replica")
            role = "replica"
        else:
            what += f", {replication.get('connected_slaves', '0')} replicas connected"
        sentinel = redis_call(ports["sentinel"], "SENTINEL", "master", REDIS_SERVICE)
        fields = dict(zip(sentinel[::2], sentinel[1::2], strict=False))
        what += (
            f"; sentinel {ports['sentinel']}: master {fields.get('port', '?')}, "
            f"{fields.get('num-slaves', '?')} replicas, "
            f"{fields.get('num-other-sentinels', '?')} other sentinels"
        )
        return NodeView(True, what, role)

    def view(self, running: list[int]) -> ClusterView:
        result = ClusterView()
        for node in running:
            result.nodes[node] = _safe(lambda n=node: self.probe_node(n))  # type: ignore[misc]
        if not all(result.nodes[n].ok for n in running):
            return result
        master = self.master_port()
        masters = [n for n in running if result.nodes[n].role == "master"]
        seen = []
        for node in running:
            reply = redis_call(self.ports[node]["sentinel"], "SENTINEL", "master", REDIS_SERVICE)
            fields = dict(zip(reply[::2], reply[1::2], strict=False))
            seen.append(
                (
                    int(fields.get("port", 0)),
                    int(fields.get("num-slaves", 0)),
                    int(fields.get("num-other-sentinels", 0)),
                )
            )
        connected = 0
        if masters:
            info = redis_info(self.ports[masters[0]]["port"], "replication")
            connected = int(info.get("connected_slaves", 0))
        result.formed = (
            len(masters) == 1
            and self.ports[masters[0]]["port"] == master
            and connected >= len(running) - 1
            and all(
                port == master and replicas >= len(running) - 1 and others >= len(running) - 1
                for port, replicas, others in seen
            )
        )
        result.detail = f"master (per the sentinels): {HOST}:{master}"
        return result


# -------------------------------------------------------------------------------- RabbitMQ


class RabbitCluster(Cluster):
    """Three disc nodes with one Erlang cookie; blank nodes join node 1 by peer discovery."""

    name = "rabbit"

    def nodename(self, node: int) -> str:
        return f"eventwire-c{node}-{self.ports[node]['port']}@localhost"

    def env(self, node: int) -> dict[str, str]:
        home = node_home("rabbit", node)
        ports = self.ports[node]
        loopback = "-kernel inet_dist_use_interface {127,0,0,1}"
        env = dict(os.environ)
        env.update(
            HOME=str(home / "home"),
            RABBITMQ_NODENAME=self.nodename(node),
            RABBITMQ_NODE_IP_ADDRESS=HOST,
            RABBITMQ_NODE_PORT=str(ports["port"]),
            RABBITMQ_DIST_PORT=str(ports["dist"]),
            ERL_EPMD_ADDRESS=HOST,
            RABBITMQ_MNESIA_BASE=str(home / "mnesia"),
            RABBITMQ_LOG_BASE=str(home / "log"),
            RABBITMQ_LOGS="-",
            RABBITMQ_ENABLED_PLUGINS_FILE=str(home / "enabled_plugins"),
            RABBITMQ_CONFIG_FILE=str(home / "rabbitmq.conf"),
            RABBITMQ_ADVANCED_CONFIG_FILE=str(home / "advanced.config"),
            RABBITMQ_CONF_ENV_FILE=str(home / "rabbitmq-env.conf"),
            RABBITMQ_PID_FILE=str(home / "beam.pid"),
            RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=loopback,
            RABBITMQ_CTL_ERL_ARGS=loopback,
        )
        return env

    def prepare(self) -> None:
        cookie = cluster_home("rabbit") / "erlang.cookie"
        if not cookie.exists():
            cookie.write_text(base64.b32encode(os.urandom(20)).decode().rstrip("="))
        for node in NODES:
            home = node_home("rabbit", node) / "home"
            home.mkdir(parents=True, exist_ok=True)
            target = home / ".erlang.cookie"
            if not target.exists() or target.read_text() != cookie.read_text():
                with contextlib.suppress(FileNotFoundError):
                    target.chmod(0o600)
                target.write_text(cookie.read_text())
                target.chmod(0o400)

    def blank(self, node: int) -> bool:
        return not any((node_home("rabbit", node) / "mnesia").glob("*/cluster_nodes.config"))

    def launch_order(self, nodes: list[int]) -> list[list[int]]:
        # Peer discovery runs only on a blank node: node 1 forms the cluster, the others join it.
        if 1 in nodes and self.blank(1):
            rest = [n for n in nodes if n != 1]
            return [[1], rest] if rest else [[1]]
        return [nodes]

    def launch(self, node: int) -> None:
        home = node_home("rabbit", node)
        for sub in ("home", "mnesia", "log"):
            (home / sub).mkdir(parents=True, exist_ok=True)
        # the management API tells G23 which node leads a channel's queues
        (home / "enabled_plugins").write_text(
            "[rabbitmq_consistent_hash_exchange,rabbitmq_management].\n"
        )
        peers = "".join(
            f"cluster_formation.classic_config.nodes.{n} = {self.nodename(n)}\n" for n in NODES
        )
        (home / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = {HOST}:{self.ports[node]['port']}\n"
            f"management.tcp.ip = {HOST}\n"
            f"management.tcp.port = {self.ports[node]['management']}\n"
            "loopback_users.guest = true\n"
            "disk_free_limit.absolute = 100MB\n"
            "vm_memory_high_watermark.absolute = 1GB\n"
            "cluster_formation.peer_discovery_backend = classic_config\n"
            + peers
            + "cluster_partition_handling = pause_minority\n"
        )
        (home / "rabbitmq-env.conf").write_text(
            "# settings come from conformance/brokers/brokers\n"
        )
        spawn(
            "rabbit", node, "rabbit", [str(core.RABBIT_BIN / "rabbitmq-server")], env=self.env(node)
        )

    def ctl(self, node: int, *args: str, timeout: float = 20.0) -> Any:
        proc = subprocess.run(
            [
                str(core.RABBIT_BIN / "rabbitmqctl"),
                "-n",
                self.nodename(node),
                *args,
                "--formatter",
                "json",
            ],
            env=self.env(node),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if proc.returncode != 0:
            raise ConnectionError(
                f"rabbitmqctl {args[0]}: {(proc.stderr or proc.stdout).strip()[-300:]}"
            )
        return json.loads(proc.stdout or "null")

    def probe_node(self, node: int) -> NodeView:
        what = core.probe_rabbit(self.ports[node]["port"])
        running = self.ctl(node, "cluster_status").get("running_nodes", [])
        return NodeView(True, f"{what}, {len(running)} nodes running in its cluster")

    def view(self, running: list[int]) -> ClusterView:
        result = ClusterView()
        for node in running:
            result.nodes[node] = _safe(lambda n=node: self.probe_node(n))  # type: ignore[misc]
        answering = [n for n in running if result.nodes[n].ok]
        if not answering:
            return result
        status = self.ctl(answering[0], "cluster_status")
        members = set(status.get("running_nodes", []))
        disc = set(status.get("disk_nodes", []))
        result.formed = (
            len(answering) == len(running)
            and {self.nodename(n) for n in running} <= members
            and {self.nodename(n) for n in NODES} <= disc
        )
        queues = self.ctl(answering[0], "list_queues", "name", "type", "leader", "members")
        leaders = {
            str(queue.get("name")): str(queue.get("leader"))
            for queue in queues or []
            if queue.get("type") in ("quorum", "stream")
        }
        for node in answering:
            count = sum(1 for leader in leaders.values() if leader == self.nodename(node))
            result.nodes[node].role = f"leads {count} quorum queues"
        result.detail = f"members: {', '.join(sorted(disc)) or '-'}"
        shown = [f"{queue} on {leader}" for queue, leader in sorted(leaders.items())]
        if shown:
            more = f" and {len(shown) - 20} more" if len(shown) > 20 else ""
            result.detail += "\n  queue leaders: " + ", ".join(shown[:20]) + more
        return result


CLUSTERS: dict[str, type[Cluster]] = {
    "nats": NatsCluster,
    "kafka": KafkaCluster,
    "redis": RedisCluster,
    "rabbit": RabbitCluster,
}


def make(name: str, ports: dict[int, dict[str, int]] | None = None) -> Cluster:
    return CLUSTERS[name](ports or active_ports(name))


# --------------------------------------------------------------------------- commands


def _running(name: str) -> list[int]:
    return [n for n in NODES if node_running(name, n)]


def _timeout(name: str) -> float:
    raw = os.environ.get("EVENTWIRE_BROKERS_TIMEOUT")
    return float(raw) if raw else TIMEOUT[name]


def _print_node(cluster: Cluster, node: int, view: NodeView | None) -> None:
    ports = cluster.ports[node]
    pids = node_pids(cluster.name, node)
    pid = ",".join(str(p) for p in pids.values()) or "-"
    listed = " ".join(f"{k} {v}" for k, v in ports.items())
    state = "stopped" if view is None else ("running" if view.ok else "starting")
    role = f" [{view.role}]" if view and view.role else ""
    what = f"  {view.what}" if view else ""
    print(f"  node{node} {state:<8} pid {pid:<13} {listed}{role}{what}", flush=True)


def _wait_formed(cluster: Cluster, t0: float, launched: list[int]) -> bool:
    """Wait until every running node answers and they form one cluster (a node launched
    here that exits meanwhile ends the wait)."""
    deadline = time.monotonic() + _timeout(cluster.name)
    view = ClusterView()
    running: list[int] = []
    while time.monotonic() < deadline:
        running = _running(cluster.name)
        try:
            view = cluster.view(running)
        except (OSError, ValueError, struct.error, IndexError, KeyError, TypeError) as exc:
            view = ClusterView(detail=f"{type(exc).__name__}: {exc}")
        # A node launched here counts once it runs (just after the fork it does not yet).
        if view.formed and len(view.nodes) == len(running) and set(launched) <= set(running):
            print(
                f"{cluster.name} cluster up: {len(running)} nodes joined in "
                f"{time.monotonic() - t0:.1f} s; {url(cluster.name, cluster.ports)}",
                flush=True,
            )
            for node in NODES:
                _print_node(cluster, node, view.nodes.get(node))
            if view.detail:
                print(f"  {view.detail}", flush=True)
            return True
        gone = [n for n in launched if node_exited(cluster.name, n)]
        if gone:
            print(
                f"{cluster.name} cluster: node {gone[0]} exited before the cluster formed",
                file=sys.stderr,
            )
            print(log_tail(cluster.name, gone[0]), file=sys.stderr)
            return False
        time.sleep(0.5)
    print(
        f"{cluster.name} cluster: not formed after {_timeout(cluster.name):.0f} s "
        f"({len(running)} nodes running; {view.detail or 'not every node answers'}); "
        f"it keeps running, stop it with: brokers down --cluster {cluster.name}",
        file=sys.stderr,
    )
    for node in NODES:
        _print_node(cluster, node, view.nodes.get(node))
        if node in view.nodes and not view.nodes[node].ok:
            print(log_tail(cluster.name, node, 10), file=sys.stderr)
    return False


def up(names: list[str], node: int | None) -> int:
    failures = 0
    for name in names:
        t0 = time.monotonic()
        wanted = [node] if node else list(NODES)
        to_start = [n for n in wanted if not node_running(name, n)]
        ports = active_ports(name) if _running(name) else configured_ports(name)
        cluster = make(name, ports)
        busy = [
            f"node{n} {key} port {port}"
            for n in to_start
            for key, port in ports[n].items()
            if core.port_in_use(port)
        ]
        if busy:
            print(
                f"{name} cluster: cannot start: {', '.join(busy)} on {HOST} already in use by a "
                "process this script did not start. Free the ports or move the cluster with the "
                "EVENTWIRE_CLUSTER_* port variables (see conformance/brokers/README.md).",
                file=sys.stderr,
            )
            failures += 1
            continue
        try:
            if to_start:
                core.Installer().ensure([name])
                cluster_home(name).mkdir(parents=True, exist_ok=True)
                for n in NODES:
                    node_home(name, n).mkdir(parents=True, exist_ok=True)
                cluster.prepare()
                state = {"ports": {str(n): p for n, p in ports.items()}, "started": time.time()}
                state_path(name).write_text(json.dumps(state))
                waves = cluster.launch_order(to_start)
                for index, wave in enumerate(waves):
                    for n in wave:
                        cluster.launch(n)
                    if index < len(waves) - 1:
                        _wait_answering(cluster, wave)
        except core.BrokerError as exc:
            print(str(exc), file=sys.stderr)
            failures += 1
            continue
        if not _wait_formed(cluster, t0, to_start):
            failures += 1
    return 1 if failures else 0


def _wait_answering(cluster: Cluster, nodes: list[int]) -> None:
    deadline = time.monotonic() + _timeout(cluster.name)
    while time.monotonic() < deadline:
        if all(cluster.node_answers(n) for n in nodes):
            return
        dead = [n for n in nodes if node_exited(cluster.name, n)]
        if dead:
            raise core.BrokerError(
                f"{cluster.name} cluster: node {dead[0]} exited\n{log_tail(cluster.name, dead[0])}"
            )
        time.sleep(0.5)
    raise core.BrokerError(f"{cluster.name} cluster: nodes {nodes} not answering in time")


def down(names: list[str], node: int | None) -> int:
    """Stop nodes gracefully. All nodes of a cluster get SIGTERM at once: one by one, the last
    Kafka node would wait for a controller quorum that is already gone."""
    for name in names:
        targets = [node] if node else list(NODES)
        pids = {n: node_pids(name, n) for n in targets}
        for n in targets:
            if not pids[n]:
                print(f"{name} node{n} stopped (was not running)")
            for pid in pids[n].values():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, core.STOP_SIGNAL.get(name, signal.SIGTERM))
        t0 = time.monotonic()
        for n in targets:
            for kind, pid in pids[n].items():
                core.stop_pid("redis" if kind == "sentinel" else name, pid)
                with contextlib.suppress(OSError):
                    pid_path(name, n, kind).unlink()
            if pids[n]:
                print(
                    f"{name} node{n} stopped  pid {','.join(map(str, pids[n].values()))} "
                    f"in {time.monotonic() - t0:.1f} s"
                )
    return 0


def kill(names: list[str], node: int | None) -> int:
    for name in names:
        targets = [node] if node else list(NODES)
        missing = [n for n in targets if not node_pids(name, n)]
        if missing:
            print(
                f"{name} cluster: node {missing[0]} is not running; nothing to kill. Start it "
                f"with: brokers up {name} --node {missing[0]}",
                file=sys.stderr,
            )
            return 1
        for n in targets:
            pids = node_pids(name, n)
            for kind, pid in pids.items():
                core.kill_tree(pid)
                with contextlib.suppress(OSError):
                    pid_path(name, n, kind).unlink()
            print(
                f"{name} node{n} killed   pid {','.join(map(str, pids.values()))} "
                f"(SIGKILL; start it again with: brokers up {name} --node {n})"
            )
    return 0


def status(names: list[str]) -> int:
    all_up = True
    print(f"brokers dir: {core.brokers_dir()}")
    for name in names:
        running = _running(name)
        cluster = make(name)
        try:
            view = cluster.view(running) if running else ClusterView()
        except (OSError, ValueError, struct.error, IndexError, KeyError, TypeError) as exc:
            view = ClusterView(detail=f"{type(exc).__name__}: {exc}")
        if not running:
            state = "stopped"
        elif len(running) == len(NODES) and view.formed:
            state = "running"
        else:
            state = "degraded"
        all_up &= state == "running"
        print(f"{name} cluster {state}: {url(name, cluster.ports)}")
        for n in NODES:
            _print_node(cluster, n, view.nodes.get(n) if n in running else None)
        if view.detail:
            print(f"  {view.detail}")
    return 0 if all_up else 3


def restart(names: list[str], node: int | None) -> int:
    stopped = [n for n in names if not _running(n)]
    if stopped:
        print(
            f"{stopped[0]} cluster is not running; nothing to restart. "
            f"Start it with: brokers up --cluster {stopped[0]}",
            file=sys.stderr,
        )
        return 1
    keep = {n: active_ports(n) for n in names}
    down(names, node)
    for name in names:  # restart keeps the ports the cluster was started with
        for key, (env, _default) in PORTS[name].items():
            os.environ[env] = str(keep[name][1][key])
    return up(names, node)


def wipe(names: list[str]) -> int:
    """Stop the nodes that run and delete the clusters' data: the next `up` starts blank
    clusters (Kafka: a new cluster id and freshly formatted storage)."""
    for name in names:
        if _running(name):
            down([name], None)
        home = cluster_home(name)
        if home.exists():
            shutil.rmtree(home)
            print(f"{name} cluster wiped: {home} deleted")
        else:
            print(f"{name} cluster wiped (had no data)")
    return 0


def parse(args: list[str]) -> tuple[list[str], int | None]:
    """Names and the --node number from the arguments (without --cluster)."""
    node: int | None = None
    names: list[str] = []
    rest = list(args)
    while rest:
        arg = rest.pop(0)
        if arg == "--node" or arg.startswith("--node="):
            raw = arg.split("=", 1)[1] if "=" in arg else (rest.pop(0) if rest else "")
            if raw not in {str(n) for n in NODES}:
                raise UsageError(f"--node takes a node number, 1 to {len(NODES)}; got {raw!r}")
            node = int(raw)
        elif arg in NAMES:
            if arg not in names:
                names.append(arg)
        else:
            raise UsageError(
                f"unknown cluster name: {arg}\nvalid names with --cluster: {' '.join(NAMES)}"
            )
    if node is not None and len(names) != 1:
        raise UsageError("--node needs exactly one cluster name, e.g. brokers kill kafka --node 2")
    return [n for n in NAMES if n in names] or list(NAMES), node


def main(brokers: ModuleType, command: str, args: list[str]) -> int:
    global core
    core = brokers
    try:
        names, node = parse(args)
        if command in ("restart", "kill", "wipe") and not (set(args) & set(NAMES)):
            raise UsageError(f"{command} --cluster needs a cluster name: {' '.join(NAMES)}")
        if command == "wipe" and node is not None:
            raise UsageError("wipe deletes whole clusters; drop --node")
        if command == "status" and node is not None:
            raise UsageError("status shows every node; drop --node")
    except UsageError as exc:
        print(exc, file=sys.stderr)
        return 2
    try:
        if command == "status":
            return status(names)
        with core.locked():
            if command == "up":
                return up(names, node)
            if command == "down":
                return down(names, node)
            if command == "kill":
                return kill(names, node)
            if command == "wipe":
                return wipe(names)
            return restart(names, node)
    except core.BrokerError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
