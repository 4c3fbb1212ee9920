"""The observation server as a child process (``python -m server``), for the quick start and
the tests.

What enters: a ``ServerConfig``; the child gets exactly that configuration through
``ServerConfig.to_env()`` (every server variable of the parent's environment is replaced, so
nothing leaks in). What leaves: a running server that answers ``grpc.health.v1`` with SERVING
*from this child* (a server of someone else that already holds the port does not count), a probe
that asks it for a real observation per symbol, a watch that reports the child's death, and a
clean stop (SIGTERM: the server finishes in-flight calls, then exits).

The child dies with the thread that started it (parent-death SIGTERM, ``core.lifetime``), so a
SIGKILLed quick start leaves no server behind; start it from the main thread.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from usdcop.observation.v1 import observation_pb2, observation_pb2_grpc

from core.lifetime import preexec_die_with_parent
from devstack import processes
from devstack.embedded_redis import free_port
from server.config import ServerConfig

_STOP_TIMEOUT_S = 10.0
_SERVER_ENV = frozenset(f.metadata["env"] for f in dataclasses.fields(ServerConfig))


class ServerStartError(RuntimeError):
    """The server exited, did not report SERVING in time, or failed its probe."""


def server_environment(config: ServerConfig, base: Mapping[str, str]) -> dict[str, str]:
    """``base`` without any server variable, plus ``config.to_env()``: the child's environment
    (``ServerConfig.from_env`` of it gives back ``config``)."""
    return {
        **{key: value for key, value in base.items() if key not in _SERVER_ENV},
        **config.to_env(),
    }


class ServerProcess:
    """``python -m server`` with the given configuration.

    >>> with ServerProcess(ServerConfig(port=0, symbols=("USDCOP",))) as server:
    ...     server.wait_serving()
    ...     server.probe()
    """

    def __init__(
        self,
        config: ServerConfig,
        *,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        if config.port == 0:
            config = config.with_overrides(port=free_port())
        # The child may run in another folder: the data folder must not depend on the cwd.
        self.config = config.with_overrides(data_dir=Path(config.data_dir).resolve())
        self.port = self.config.port
        host = self.config.bind_address
        self.target = f"{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{self.port}"
        self.metrics_url = (
            f"http://{self.target.rsplit(':', 1)[0]}:{self.config.metrics_port}/metrics"
            if self.config.metrics_port
            else None
        )
        """Where the server serves Prometheus metrics (None: metrics off)."""
        self._env = server_environment(self.config, os.environ if environ is None else environ)
        self._proc: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()

    def start(self) -> ServerProcess:
        """Start the child (its output goes to this process's stdout/stderr)."""
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "server"],
            env=self._env,
            preexec_fn=preexec_die_with_parent(),  # noqa: PLW1509 -- only prctl, no locks
        )
        return self

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise RuntimeError("the server process was not started")
        return self._proc.pid

    def wait_serving(self, timeout_s: float = 60.0) -> None:
        """Poll grpc.health.v1 until SERVING from this child; ServerStartError if it exits
        (e.g. another process holds the port) or times out."""
        deadline = time.monotonic() + timeout_s
        with grpc.insecure_channel(self.target) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while time.monotonic() < deadline:
                self._raise_if_exited()
                try:
                    reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=1.0)
                    if reply.status == health_pb2.HealthCheckResponse.SERVING and self._listens():
                        return
                except grpc.RpcError:
                    pass  # not listening yet
                time.sleep(0.1)
        raise ServerStartError(f"server on {self.target} not SERVING after {timeout_s:g} s")

    def _raise_if_exited(self) -> None:
        if self._proc is None or self._proc.poll() is not None:
            raise ServerStartError(f"server exited with code {self.returncode}")

    def _listens(self) -> bool:
        """True when the port's listener is this child (or one of its workers)."""
        if not processes.supported():
            return True  # nothing to check with; the child-exit check still applies
        ours = {self.pid} | processes.descendants(self.pid)
        return bool(processes.listening_pids(self.port, among=ours))

    def probe(self, symbols: Iterable[str] | None = None, timeout_s: float = 10.0) -> None:
        """One real GetObservation per symbol (default: the configured ones);
        ServerStartError naming the first symbol that does not answer OK."""
        with grpc.insecure_channel(self.target) as channel:
            stub = observation_pb2_grpc.ObservationServiceStub(channel)
            for symbol in self.config.symbols if symbols is None else symbols:
                try:
                    stub.GetObservation(
                        observation_pb2.GetObservationRequest(symbol=symbol), timeout=timeout_s
                    )
                except grpc.RpcError as error:
                    code = error.code().name if isinstance(error, grpc.Call) else "UNKNOWN"
                    detail = error.details() if isinstance(error, grpc.Call) else str(error)
                    raise ServerStartError(
                        f"probe GetObservation({symbol}) on {self.target} failed: {code}: {detail}"
                    ) from None
        self._raise_if_exited()

    def watch(self, on_exit: Callable[[int], None]) -> None:
        """Call ``on_exit(returncode)`` from a daemon thread if the child exits before
        ``stop()`` (a crash, a kill, a failed bind)."""
        proc = self._proc
        if proc is None:
            raise RuntimeError("the server process was not started")

        def wait() -> None:
            code = proc.wait()
            if not self._stopping.is_set():
                on_exit(code)

        threading.Thread(target=wait, name="server-watch", daemon=True).start()

    @property
    def returncode(self) -> int | None:
        return None if self._proc is None else self._proc.poll()

    def wait_exit(self, timeout_s: float) -> int | None:
        """The exit code once the process has ended (all its threads), None after ``timeout_s``.

        A process whose main thread has ended can still be running other threads; only the
        kernel's wait tells that it is gone."""
        if self._proc is None:
            return None
        try:
            return self._proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return None

    def stop(self) -> None:
        """SIGTERM, wait for the graceful shutdown, SIGKILL if it hangs."""
        self._stopping.set()
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
