"""Server processes of a run: the observation servers, the echo floor, Feast's two servers.

What enters: ports, Redis address, data and repo folders. What leaves: running child
processes (their output in log files of the results folder), ready when returned; a server
that fails to start raises with the tail of its log. Each child gets SIGTERM when the run dies
(``core.lifetime``), and the observation servers get their environment from
``ServerConfig.to_env()``.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from core.lifetime import preexec_die_with_parent
from devstack.server_process import server_environment
from server.config import ServerConfig

_READY_TIMEOUT_S = 90.0


class ServerStartError(RuntimeError):
    """A benchmark server did not become ready; the message carries its log tail."""


@dataclass
class ServerProcess:
    """One child server process."""

    name: str
    port: int
    log_path: Path
    proc: subprocess.Popen[bytes]
    command: list[str] = field(default_factory=list)

    def log_tail(self, chars: int = 1500) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise ServerStartError(
                f"{self.name} exited with code {self.proc.returncode} "
                f"({' '.join(self.command)}):\n{self.log_tail()}"
            )

    def stop(self) -> None:
        if self.proc.poll() is None:
            # Feast serve runs gunicorn with worker children: signal the whole group.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)


def start_process(
    name: str,
    *,
    command: list[str],
    port: int,
    env: dict[str, str],
    log_dir: Path,
    cwd: Path | None = None,
) -> ServerProcess:
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env},
            cwd=cwd,
            start_new_session=True,
            # A killed benchmark run must not leave its servers behind.
            preexec_fn=preexec_die_with_parent(),  # noqa: PLW1509 -- only prctl, no locks
        )
    return ServerProcess(name=name, port=port, log_path=log_path, proc=proc, command=command)


def wait_grpc_serving(server: ServerProcess, timeout_s: float = _READY_TIMEOUT_S) -> None:
    """Poll grpc.health.v1 until SERVING (the echo, observation and Feast gRPC servers)."""
    deadline = time.monotonic() + timeout_s
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            server.check_alive()
            try:
                answer = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=1.0)
                if answer.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.1)
    raise ServerStartError(f"{server.name} not SERVING within {timeout_s} s:\n{server.log_tail()}")


def wait_http_ok(
    server: ServerProcess, path: str = "/health", timeout_s: float = _READY_TIMEOUT_S
) -> None:
    """Poll an HTTP GET until 200 (Feast's HTTP feature server)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        server.check_alive()
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=1.0)
        try:
            connection.request("GET", path)
            if connection.getresponse().status == 200:
                return
        except OSError:
            pass
        finally:
            connection.close()
        time.sleep(0.2)
    raise ServerStartError(
        f"{server.name} not answering {path} within {timeout_s} s:\n{server.log_tail()}"
    )


def feast_executable() -> str:
    """The ``feast`` CLI installed beside this interpreter (else on PATH)."""
    beside = Path(sys.executable).parent / "feast"
    if beside.is_file():
        return str(beside)
    found = shutil.which("feast")
    if not found:
        raise ServerStartError("the feast CLI is not installed (pip install 'feast[redis]')")
    return found


def observation_server(
    name: str,
    port: int,
    *,
    redis_host: str,
    redis_port: int,
    cache_ttl_ms: float,
    data_dir: Path,
    log_dir: Path,
    **overrides: Any,
) -> ServerProcess:
    config = ServerConfig(
        redis_host=redis_host,
        redis_port=redis_port,
        bind_address="127.0.0.1",
        port=port,
        cache_ttl_ms=cache_ttl_ms,
        data_dir=data_dir,
        workers=1,
    ).with_overrides(**overrides)
    env = server_environment(config, os.environ)
    return start_process(
        name, command=[sys.executable, "-m", "server"], port=port, env=env, log_dir=log_dir
    )


def echo_server(port: int, log_dir: Path) -> ServerProcess:
    command = [sys.executable, "-m", "benchmarks", "echo-server", "--port", str(port)]
    return start_process("echo", command=command, port=port, env={}, log_dir=log_dir)


def feast_listen(
    port: int, repo_dir: Path, feast_env: dict[str, str], log_dir: Path
) -> ServerProcess:
    # -r: registry refresh period. A long one spares Feast a background refresh mid-run
    # (its default of 5 s would add noise that is not its serving cost).
    command = [
        feast_executable(), "-c", str(repo_dir), "listen",
        "-a", f"127.0.0.1:{port}", "-r", "3600",
    ]  # fmt: skip
    return start_process("feast_listen", command=command, port=port, env=feast_env, log_dir=log_dir)


def feast_serve(
    port: int, repo_dir: Path, feast_env: dict[str, str], log_dir: Path
) -> ServerProcess:
    # One gunicorn worker (as our server runs one process), worker recycling OFF
    # (--max-requests 0: the default 1000 restarts the worker mid-run), no access log,
    # long keep-alive so the load generator's connections are reused.
    command = [
        feast_executable(), "-c", str(repo_dir), "serve",
        "-h", "127.0.0.1", "-p", str(port), "--workers", "1", "--no-access-log",
        "--max-requests", "0", "--max-requests-jitter", "0",
        "--keep-alive-timeout", "600", "-r", "3600",
    ]  # fmt: skip
    return start_process("feast_serve", command=command, port=port, env=feast_env, log_dir=log_dir)
