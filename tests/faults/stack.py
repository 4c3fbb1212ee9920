"""The processes a fault run works on: one redis-server, fresh pipeline data, server processes.

What enters: a scratch folder and ``ServerConfig`` overrides. What leaves: ``FaultStack`` with
the Redis (its pid, SIGSTOP/SIGCONT/SIGKILL, restart with the materialized rows put back) and
``start_server`` -> a SERVING ``python -m server`` child (``devstack.server_process``: pid,
RSS, open fds, signals), its log in the results folder. Everything is stopped when the ``with``
block ends, and every child dies with this process (``core.lifetime``).
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis as redis_py

from benchmarks.data import prepare_data
from devstack.embedded_redis import EmbeddedRedis
from devstack.server_process import ServerProcess
from server.config import ServerConfig


@dataclass
class FaultStack:
    redis: EmbeddedRedis
    data_dir: Path
    log_dir: Path
    redis_pid: int = 0
    snapshot: dict[bytes, dict[bytes, bytes]] = field(default_factory=dict)
    servers: list[ServerProcess] = field(default_factory=list)

    def client(self) -> redis_py.Redis:
        client: redis_py.Redis = self.redis.address.connect(10.0)
        return client

    def read_redis_pid(self) -> None:
        with contextlib.closing(self.client()) as client:
            info: dict[str, Any] = client.info("server")  # type: ignore[assignment]
            self.redis_pid = int(info["process_id"])

    def take_snapshot(self) -> None:
        """Every hash as the pipeline left it, to put back after a restart."""
        with contextlib.closing(self.client()) as client:
            keys: list[bytes] = client.keys("*")  # type: ignore[assignment]
            self.snapshot = {key: client.hgetall(key) for key in keys}  # type: ignore[misc,arg-type]

    def rematerialize(self) -> None:
        """Put the snapshot back (what the feed's re-materialization writes)."""
        with contextlib.closing(self.client()) as client:
            for key, mapping in self.snapshot.items():
                client.hset(key, mapping=mapping)  # type: ignore[arg-type]

    def restart_redis(self) -> None:
        """Start Redis again on its port after it was killed (it comes back empty)."""
        self.redis.restart()
        self.read_redis_pid()

    def start_server(self, name: str, **overrides: Any) -> ServerProcess:
        """A ``python -m server`` on this stack's Redis and data, SERVING, its log in
        ``log_dir/<name>.log``."""
        config = ServerConfig(
            redis_host=self.redis.host,
            redis_port=self.redis.port,
            data_dir=self.data_dir,
            port=0,
        ).with_overrides(**overrides)
        server = ServerProcess(config, name=name, log_path=self.log_dir / f"{name}.log")
        self.servers.append(server.start())
        server.wait_serving(timeout_s=90.0)
        return server


@contextlib.contextmanager
def fault_stack(workdir: Path) -> Iterator[FaultStack]:
    log_dir = workdir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    with EmbeddedRedis() as server:
        with (log_dir / "pipeline.log").open("w") as log, contextlib.redirect_stdout(log):
            data = prepare_data(workdir / "scratch", server)
        stack = FaultStack(redis=server, data_dir=data.data_dir, log_dir=log_dir)
        stack.take_snapshot()
        stack.read_redis_pid()
        try:
            yield stack
        finally:
            for child in stack.servers:
                child.stop()
            with contextlib.suppress(ProcessLookupError):
                os.kill(stack.redis_pid, signal.SIGCONT)  # a stopped Redis must be able to stop
