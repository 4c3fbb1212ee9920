"""A real 3-master Redis Cluster on 127.0.0.1, started and stopped by the project itself.

What enters: nothing (or the number of masters, a redis-server binary). What leaves: running
``redis-server --cluster-enabled yes`` processes (snapshots and AOF off, free client and bus
ports), their 16384 slots split evenly (``CLUSTER ADDSLOTSRANGE``), joined by ``CLUSTER MEET``,
``cluster_state:ok`` on every node; their addresses; a clean stop.

Needs Redis 7 (``cluster-port``: the bus port is chosen free, not client port + 10000, which
may be taken or above 65535 for an ephemeral client port). Each server is tied to this process
(Linux parent-death signal): it dies when this process dies, whatever signal ends it.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import redis

from core.lifetime import preexec_die_with_parent
from devstack.embedded_redis import RedisBinaryNotFoundError, find_redis_server, free_port
from online_store.address import RedisAddress

SLOTS = 16384
_START_TIMEOUT_S = 20.0


def find_cluster_redis_server() -> str:
    """A redis-server of version 7 or later (PATH first, then the usual system folders)."""
    candidates = [find_redis_server(), shutil.which("redis-server", path="/usr/local/bin:/usr/bin")]
    for candidate in dict.fromkeys(c for c in candidates if c):
        version = subprocess.run(
            [candidate, "--version"], capture_output=True, text=True, check=False
        ).stdout
        match = re.search(r"v=(\d+)\.", version)
        if match and int(match.group(1)) >= 7:
            return candidate
    raise RedisBinaryNotFoundError(
        "a Redis Cluster needs redis-server 7 or later: apt-get install redis-server"
    )


@dataclass
class ClusterNode:
    """One master: its client port, bus port and process."""

    port: int
    bus_port: int
    workdir: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def client(self) -> redis.Redis:
        client: redis.Redis = RedisAddress("127.0.0.1", self.port).connect(5.0)
        return client


@dataclass
class EmbeddedCluster:
    """``masters`` redis-server processes forming one cluster; a context manager.

    >>> with EmbeddedCluster() as cluster:
    ...     print(cluster.startup_nodes)   # ('127.0.0.1:p1', '127.0.0.1:p2', '127.0.0.1:p3')
    """

    masters: int = 3
    binary: str = ""
    host: str = field(default="127.0.0.1", init=False)
    nodes: list[ClusterNode] = field(default_factory=list, init=False)
    _workdir: tempfile.TemporaryDirectory[str] | None = field(default=None, init=False, repr=False)

    @property
    def startup_nodes(self) -> tuple[str, ...]:
        """``host:port`` of every master (Feast's connection string and the server take these)."""
        return tuple(node.address for node in self.nodes)

    def start(self) -> EmbeddedCluster:
        binary = self.binary = self.binary or find_cluster_redis_server()
        self._workdir = tempfile.TemporaryDirectory(prefix="usdcop-cluster-")
        try:
            for index in range(self.masters):
                workdir = Path(self._workdir.name) / f"node{index}"
                workdir.mkdir()
                node = ClusterNode(port=free_port(), bus_port=free_port(), workdir=workdir)
                self.nodes.append(node)
                self.start_node(node, binary)
            self._wait(lambda: all(_pings(n) for n in self.nodes), "answer PING")
            self._assign_slots()
            self._wait(self._healthy, "reach cluster_state:ok")
        except BaseException:
            self.stop()
            raise
        return self

    def start_node(self, node: ClusterNode, binary: str = "") -> None:
        """Start (or restart, keeping its nodes.conf: identity and slots) one node's process."""
        args = [
            binary or self.binary or find_cluster_redis_server(),
            "--port", str(node.port),
            "--cluster-port", str(node.bus_port),
            "--bind", self.host,
            "--cluster-enabled", "yes",
            "--cluster-config-file", "nodes.conf",
            "--cluster-node-timeout", "2000",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(node.workdir),
            "--daemonize", "no",
            "--loglevel", "warning",
        ]  # fmt: skip
        node.proc = subprocess.Popen(
            args,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=preexec_die_with_parent(signal.SIGKILL),  # noqa: PLW1509 - single-threaded at this point
        )

    def stop_node(self, node: ClusterNode) -> None:
        """Stop one node's process (SIGTERM, then SIGKILL)."""
        if node.proc is not None:
            if node.proc.poll() is None:
                node.proc.terminate()
                try:
                    node.proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    node.proc.kill()
                    node.proc.wait(timeout=5)
            node.proc = None

    def _assign_slots(self) -> None:
        per_node = SLOTS // len(self.nodes)
        for index, node in enumerate(self.nodes):
            first = index * per_node
            last = SLOTS - 1 if index == len(self.nodes) - 1 else first + per_node - 1
            with node.client() as client:
                client.execute_command("CLUSTER", "ADDSLOTSRANGE", first, last)
        with self.nodes[0].client() as client:
            for node in self.nodes[1:]:
                client.execute_command("CLUSTER", "MEET", self.host, node.port, node.bus_port)

    def _healthy(self) -> bool:
        for node in self.nodes:
            try:
                with node.client() as client:
                    info = client.execute_command("CLUSTER", "INFO")
            except redis.RedisError:
                return False
            text = info.decode() if isinstance(info, bytes) else str(info)
            if (
                "cluster_state:ok" not in text
                or f"cluster_known_nodes:{len(self.nodes)}" not in text
            ):
                return False
        return True

    def wait_healthy(self) -> None:
        """Block until every node reports cluster_state:ok (after a node restart)."""
        self._wait(self._healthy, "reach cluster_state:ok")

    def _wait(self, ready: object, what: str) -> None:
        deadline = time.monotonic() + _START_TIMEOUT_S
        while time.monotonic() < deadline:
            for node in self.nodes:
                if node.proc is not None and node.proc.poll() is not None:
                    raise RuntimeError(f"cluster node {node.address} exited at start-up")
            if ready():  # type: ignore[operator]
                return
            time.sleep(0.05)
        raise RuntimeError(f"redis cluster did not {what} within {_START_TIMEOUT_S} s")

    def owner_of(self, key: bytes) -> ClusterNode:
        """The master that owns ``key``'s slot right now (asked of the cluster itself)."""
        with self.nodes[0].client() as client:
            slot = int(client.execute_command("CLUSTER", "KEYSLOT", key))
        return self.owner_of_slot(slot)

    def owner_of_slot(self, slot: int) -> ClusterNode:
        with self.nodes[0].client() as client:
            ranges = client.execute_command("CLUSTER", "SLOTS")
        for start, end, master, *_ in ranges:
            if int(start) <= slot <= int(end):
                port = int(master[1])
                return next(node for node in self.nodes if node.port == port)
        raise LookupError(f"slot {slot} has no owner")

    def node_id(self, node: ClusterNode) -> str:
        with node.client() as client:
            raw = client.execute_command("CLUSTER", "MYID")
        return raw.decode() if isinstance(raw, bytes) else str(raw)

    def stop(self) -> None:
        for node in self.nodes:
            self.stop_node(node)
        self.nodes = []
        if self._workdir is not None:
            self._workdir.cleanup()
            self._workdir = None

    def __enter__(self) -> EmbeddedCluster:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _pings(node: ClusterNode) -> bool:
    try:
        with node.client() as client:
            return bool(client.ping())
    except redis.RedisError:
        return False
