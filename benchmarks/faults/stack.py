"""The processes a fault run works on: one redis-server, fresh pipeline data, server processes.

What enters: a scratch folder and ``ServerConfig`` overrides. What leaves: ``FaultStack`` with
the Redis (its pid, SIGSTOP/SIGCONT/SIGKILL, restart with the materialized rows put back) and
``start_server`` -> a ``python -m server`` child (pid, RSS, open fds, SIGTERM), its log in the
results folder. Everything is stopped when the ``with`` block ends, and every child dies with
this process (``core.lifetime``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import redis as redis_py
from grpc_health.v1 import health_pb2, health_pb2_grpc

from benchmarks.data import prepare_data
from core.lifetime import preexec_die_with_parent
from devstack.embedded_redis import EmbeddedRedis, free_port
from devstack.server_process import server_environment
from server.config import ServerConfig


@dataclass
class ServerChild:
    """One ``python -m server`` process."""

    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def open_fds(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def wait_serving(self, timeout_s: float = 90.0) -> None:
        deadline = time.monotonic() + timeout_s
        with grpc.insecure_channel(self.target) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"server exited: {self.log_path.read_text()[-1500:]}")
                with contextlib.suppress(grpc.RpcError):
                    reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=1.0)
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                time.sleep(0.1)
        raise RuntimeError(f"server not SERVING after {timeout_s} s")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@dataclass
class FaultStack:
    redis: EmbeddedRedis
    data_dir: Path
    log_dir: Path
    redis_pid: int = 0
    snapshot: dict[bytes, dict[bytes, bytes]] = field(default_factory=dict)
    servers: list[ServerChild] = field(default_factory=list)

    def client(self) -> redis_py.Redis:
        return redis_py.Redis(host=self.redis.host, port=self.redis.port)

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

    def start_server(self, name: str, **overrides: Any) -> ServerChild:
        port = free_port()
        config = ServerConfig(
            redis_host=self.redis.host,
            redis_port=self.redis.port,
            data_dir=self.data_dir,
            port=port,
        ).with_overrides(**overrides)
        log_path = self.log_dir / f"{name}.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "server"],
                env=server_environment(config, os.environ),
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=preexec_die_with_parent(),  # noqa: PLW1509 -- only prctl, no locks
            )
        child = ServerChild(proc, port, log_path)
        self.servers.append(child)
        child.wait_serving()
        return child


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
