"""The one launcher of server child processes: ``python -m server`` for the quick start, the
tests, the fault suite and the benchmarks (and, through ``ServerProcess.command``, the
benchmarks' other servers: the echo floor, Feast's two servers).

What enters: a ``ServerConfig`` (the child gets exactly that configuration through
``ServerConfig.to_env()``: every server variable of the parent's environment is replaced, so
nothing leaks in; port 0 picks a free port), and where its output goes: a log file
(``log_path``: stdout and stderr), or this process's stdout/stderr (stderr passes through a
reader that keeps its last lines). What leaves: a running server that answers
``grpc.health.v1`` with SERVING *from this child* (a server of someone else that already holds
the port does not count), or ``ServerStartError`` with one line (the child's exit code and its
last line on stderr, or the timeout); a probe that asks it for a real observation per symbol; a
watch that reports the child's death; its pid, resident memory and open files; a clean stop
(SIGTERM: the server finishes in-flight calls; SIGKILL when it has not exited within the bound).

The child dies with the thread that started it (parent-death SIGTERM, ``core.lifetime``), so a
SIGKILLed run leaves no server behind; start it from the main thread.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import http.client
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from usdcop.observation.v1 import observation_pb2, observation_pb2_grpc

from core.lifetime import preexec_die_with_parent
from devstack import processes
from devstack.embedded_redis import free_port
from server.config import ServerConfig

STOP_TIMEOUT_S = 10.0
"""How long ``stop`` waits after SIGTERM before SIGKILL."""
_STDERR_LINES = 200
_SERVER_ENV = frozenset(f.metadata["env"] for f in dataclasses.fields(ServerConfig))


class ServerStartError(RuntimeError):
    """The server exited, did not report SERVING in time, or failed its probe (one line)."""


def server_environment(config: ServerConfig, base: Mapping[str, str]) -> dict[str, str]:
    """``base`` without any server variable, plus ``config.to_env()``: the child's environment
    (``ServerConfig.from_env`` of it gives back ``config``)."""
    return {
        **{key: value for key, value in base.items() if key not in _SERVER_ENV},
        **config.to_env(),
    }


class _StderrTail:
    """Reads the child's stderr line by line: passes each to this process's stderr (when
    ``echo``) and keeps the last ones."""

    def __init__(self, stream: IO[bytes], *, echo: bool) -> None:
        self.lines: collections.deque[str] = collections.deque(maxlen=_STDERR_LINES)
        self._stream = stream
        self._echo = echo
        self._thread = threading.Thread(target=self._read, name="server-stderr", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        with self._stream:
            for raw in self._stream:
                line = raw.decode(errors="replace").rstrip("\n")
                self.lines.append(line)
                if self._echo:
                    with contextlib.suppress(ValueError, OSError):  # stderr closed meanwhile
                        print(line, file=sys.stderr, flush=True)

    def join(self, timeout_s: float) -> None:
        self._thread.join(timeout_s)


class ServerProcess:
    """``python -m server`` with the given configuration.

    >>> with ServerProcess(ServerConfig(port=0, symbols=("USDCOP",))) as server:
    ...     server.wait_serving()
    ...     server.probe()

    ``log_path``: the child's stdout and stderr go to that file (else to this process's, stderr
    read through ``_StderrTail``; ``echo_stderr=False`` keeps it off this process's stderr).
    ``process_group``: the child leads a session of its own and is stopped as a group (a server
    that forks workers which do not die with it, e.g. gunicorn's).
    """

    def __init__(  # noqa: PLR0913 - the launcher's keyword-only options
        self,
        config: ServerConfig,
        *,
        environ: Mapping[str, str] | None = None,
        name: str = "server",
        log_path: Path | None = None,
        echo_stderr: bool = True,
        process_group: bool = False,
    ) -> None:
        if config.port == 0:
            config = config.with_overrides(port=free_port())
        # The child may run in another folder: the data folder must not depend on the cwd.
        self.config: ServerConfig | None = config.with_overrides(
            data_dir=Path(config.data_dir).resolve()
        )
        host = config.bind_address
        self._setup(
            name,
            [sys.executable, "-m", "server"],
            env=server_environment(self.config, os.environ if environ is None else environ),
            host="127.0.0.1" if host in ("0.0.0.0", "::") else host,
            port=config.port,
            log_path=log_path,
            echo_stderr=echo_stderr,
            process_group=process_group,
        )
        self.metrics_url = (
            f"http://{self.host}:{config.metrics_port}/metrics" if config.metrics_port else None
        )
        """Where the server serves Prometheus metrics (None: metrics off)."""

    @classmethod
    def command(  # noqa: PLR0913 - the launcher's keyword-only options
        cls,
        name: str,
        argv: Sequence[str],
        *,
        port: int,
        env: Mapping[str, str],
        log_path: Path,
        process_group: bool = False,
    ) -> ServerProcess:
        """Another server program (``argv``) on ``127.0.0.1:port``, ``env`` over this
        process's environment; no ``ServerConfig``, so no ``probe``."""
        server = cls.__new__(cls)
        server.config = None
        server.metrics_url = None
        server._setup(
            name,
            list(argv),
            env={**os.environ, **env},
            host="127.0.0.1",
            port=port,
            log_path=log_path,
            echo_stderr=False,
            process_group=process_group,
        )
        return server

    def _setup(  # noqa: PLR0913 - what both constructors pass, keyword-only
        self,
        name: str,
        argv: list[str],
        *,
        env: dict[str, str],
        host: str,
        port: int,
        log_path: Path | None,
        echo_stderr: bool,
        process_group: bool,
    ) -> None:
        self.name = name
        self.argv = argv
        self.host = host
        self.port = port
        self.target = f"{host}:{port}"
        self.log_path = log_path
        self._env = env
        self._echo_stderr = echo_stderr
        self._process_group = process_group
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr: _StderrTail | None = None
        self._stopping = threading.Event()

    # -- start ------------------------------------------------------------------------------
    def start(self) -> ServerProcess:
        """Start the child."""
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            with self.log_path.open("wb") as log:
                self._proc = self._spawn(stdout=log, stderr=subprocess.STDOUT)
        else:
            self._proc = self._spawn(stdout=None, stderr=subprocess.PIPE)
            assert self._proc.stderr is not None
            self._stderr = _StderrTail(self._proc.stderr, echo=self._echo_stderr)
        return self

    def _spawn(self, *, stdout: IO[bytes] | None, stderr: int) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            self.argv,
            env=self._env,
            stdout=stdout,
            stderr=stderr,
            start_new_session=self._process_group,
            preexec_fn=preexec_die_with_parent(),  # noqa: PLW1509 -- only prctl, no locks
        )

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise RuntimeError(f"{self.name} was not started")
        return self._proc.pid

    # -- readiness --------------------------------------------------------------------------
    def wait_serving(self, timeout_s: float = 60.0, *, poll_s: float | None = None) -> None:
        """Poll grpc.health.v1 until SERVING from this child; ServerStartError if it exits
        (e.g. another process holds the port) or times out.

        ``poll_s``: poll every ``poll_s`` and retry a refused connection (the port not bound
        yet) after ``poll_s`` too (``benchmarks.footprint`` times the start with 5 ms). None:
        every 0.1 s, on gRPC's default reconnect backoff (1 s after the first refusal), which
        the quick start's probe right after SERVING has always had."""
        deadline = time.monotonic() + timeout_s
        options = (
            []
            if poll_s is None
            else [
                ("grpc.initial_reconnect_backoff_ms", max(1, int(poll_s * 1000))),
                ("grpc.max_reconnect_backoff_ms", max(1, int(poll_s * 1000))),
            ]
        )
        sleep_s = 0.1 if poll_s is None else poll_s
        with grpc.insecure_channel(self.target, options=options) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while time.monotonic() < deadline:
                self._raise_if_exited()
                try:
                    reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=1.0)
                    if reply.status == health_pb2.HealthCheckResponse.SERVING and self._listens():
                        return
                except grpc.RpcError:
                    pass  # not listening yet
                time.sleep(sleep_s)
        raise ServerStartError(f"{self.name} on {self.target} not SERVING after {timeout_s:g} s")

    def wait_http_ok(self, path: str = "/health", timeout_s: float = 90.0) -> None:
        """Poll an HTTP GET until 200 (Feast's HTTP feature server); ServerStartError as
        ``wait_serving``."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self._raise_if_exited()
            connection = http.client.HTTPConnection(self.host, self.port, timeout=1.0)
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
            f"{self.name} on {self.target} not answering {path} after {timeout_s:g} s"
        )

    def _raise_if_exited(self) -> None:
        if self._proc is None or self._proc.poll() is not None:
            last = self.last_error_line()
            raise ServerStartError(
                f"{self.name} exited with code {self.returncode}" + (f": {last}" if last else "")
            )

    def _listens(self) -> bool:
        """True when the port's listener is this child (or one of its workers)."""
        if self.config is None or not processes.supported():
            return True  # nothing to check with; the child-exit check still applies
        ours = {self.pid} | processes.descendants(self.pid)
        return bool(processes.listening_pids(self.port, among=ours))

    def probe(self, symbols: Iterable[str] | None = None, timeout_s: float = 10.0) -> None:
        """One real GetObservation per symbol (default: the configured ones), each answering
        OK within ``timeout_s``; ServerStartError naming the first symbol that does not.

        UNAVAILABLE is retried within that bound, as any client retries it: right after
        SERVING a read that misses its Redis bound on a busy machine needs the fallback, whose
        first rows may still be loading ("the compute fallback is still loading")."""
        if self.config is None:
            raise RuntimeError(f"{self.name} is not an observation server")
        with grpc.insecure_channel(self.target) as channel:
            stub = observation_pb2_grpc.ObservationServiceStub(channel)
            for symbol in self.config.symbols if symbols is None else symbols:
                self._probe_one(stub, symbol, timeout_s)
        self._raise_if_exited()

    def _probe_one(
        self, stub: observation_pb2_grpc.ObservationServiceStub, symbol: str, timeout_s: float
    ) -> None:
        deadline = time.monotonic() + timeout_s
        request = observation_pb2.GetObservationRequest(symbol=symbol)
        while True:
            remaining = deadline - time.monotonic()
            try:
                stub.GetObservation(request, timeout=max(remaining, 0.001))
                return
            except grpc.RpcError as error:
                code = error.code() if isinstance(error, grpc.Call) else None
                if code == grpc.StatusCode.UNAVAILABLE and deadline - time.monotonic() > 0.1:
                    self._raise_if_exited()
                    time.sleep(0.05)
                    continue
                name = code.name if code is not None else "UNKNOWN"
                detail = error.details() if isinstance(error, grpc.Call) else str(error)
                raise ServerStartError(
                    f"probe GetObservation({symbol}) on {self.target} failed: {name}: {detail}"
                ) from None

    # -- what the child said, what it holds -------------------------------------------------
    def stderr_lines(self) -> list[str]:
        """The child's last lines on stderr (its log file's, with ``log_path``); once it has
        exited, all of them up to the last."""
        if self._stderr is not None:
            if self.returncode is not None:
                self._stderr.join(5.0)
            return list(self._stderr.lines)
        if self.log_path is not None:
            try:
                text = self.log_path.read_text(errors="replace")
            except OSError:
                return []
            return text.splitlines()[-_STDERR_LINES:]
        return []

    def last_error_line(self) -> str:
        """The child's last non-empty line on stderr ('' when none)."""
        lines = [line.strip() for line in self.stderr_lines() if line.strip()]
        return lines[-1] if lines else ""

    def rss_mb(self) -> float:
        """``VmRSS`` of the server process itself."""
        return _rss_mb(self.pid)

    def rss_tree_mb(self) -> list[float]:
        """``VmRSS`` of the server's processes: itself first, then its descendants (workers)."""
        return [_rss_mb(pid) for pid in [self.pid, *sorted(processes.descendants(self.pid))]]

    def open_fds(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    # -- life and death ---------------------------------------------------------------------
    def watch(self, on_exit: Callable[[int], None]) -> None:
        """Call ``on_exit(returncode)`` from a daemon thread if the child exits before
        ``stop()`` (a crash, a kill, a failed bind)."""
        proc = self._proc
        if proc is None:
            raise RuntimeError(f"{self.name} was not started")

        def wait() -> None:
            code = proc.wait()
            if not self._stopping.is_set():
                on_exit(code)

        threading.Thread(target=wait, name="server-watch", daemon=True).start()

    @property
    def returncode(self) -> int | None:
        return None if self._proc is None else self._proc.poll()

    def send_signal(self, signum: int) -> None:
        """A real signal to the child (SIGTERM, SIGSTOP, ...)."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signum)

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

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """SIGTERM, wait ``timeout_s`` for the graceful shutdown, SIGKILL if it hangs."""
        self._stopping.set()
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            self._signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                proc.wait(timeout=STOP_TIMEOUT_S)
        if self._stderr is not None:
            self._stderr.join(5.0)

    def _signal(self, signum: int) -> None:
        assert self._proc is not None
        with contextlib.suppress(ProcessLookupError):
            if self._process_group:
                os.killpg(self._proc.pid, signum)
            else:
                self._proc.send_signal(signum)

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _rss_mb(pid: int) -> float:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0  # gone meanwhile
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0
