"""The observation server as a child process (``python -m server``), for the quick start.

What enters: the Redis address, the data folder and a port. What leaves: a running server that
answers ``grpc.health.v1`` with SERVING, and a clean stop (SIGTERM: the server finishes in-flight
calls, then exits). The server gets its settings through the environment variables
``server.config`` documents (FEAST_REDIS_*, USDCOP_DATA_DIR, USDCOP_PORT).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from pipeline.settings import RedisAddress

_STOP_TIMEOUT_S = 10.0


class ServerStartError(RuntimeError):
    """The server exited or did not report SERVING in time."""


class ServerProcess:
    """``python -m server`` with the quick start's settings.

    >>> with ServerProcess(redis, data_dir, port=50051) as server:
    ...     server.wait_serving()
    """

    def __init__(
        self,
        redis: RedisAddress,
        data_dir: Path,
        port: int,
        *,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.port = port
        self.target = f"127.0.0.1:{port}"
        base = dict(os.environ if environ is None else environ)
        self._env = {
            **base,
            **redis.feast_env(),
            "USDCOP_DATA_DIR": str(Path(data_dir).resolve()),
            "USDCOP_PORT": str(port),
            "USDCOP_BIND_ADDRESS": "127.0.0.1",
        }
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ServerProcess:
        """Start the child (its output goes to this process's stdout/stderr)."""
        self._proc = subprocess.Popen([sys.executable, "-m", "server"], env=self._env)
        return self

    def wait_serving(self, timeout_s: float = 60.0) -> None:
        """Poll grpc.health.v1 until SERVING; ServerStartError if it exits or times out."""
        deadline = time.monotonic() + timeout_s
        with grpc.insecure_channel(self.target) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while time.monotonic() < deadline:
                if self._proc is None or self._proc.poll() is not None:
                    raise ServerStartError(f"server exited with code {self.returncode}")
                try:
                    reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=1.0)
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                except grpc.RpcError:
                    pass  # not listening yet
                time.sleep(0.2)
        raise ServerStartError(f"server on {self.target} not SERVING after {timeout_s:g} s")

    @property
    def returncode(self) -> int | None:
        return None if self._proc is None else self._proc.poll()

    def stop(self) -> None:
        """SIGTERM, wait for the graceful shutdown, SIGKILL if it hangs."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=_STOP_TIMEOUT_S)
        self._proc = None

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
