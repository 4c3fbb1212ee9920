"""Server processes of a run: the observation servers, the echo floor, Feast's two servers.

What enters: ports, Redis address, data and repo folders. What leaves: started
``devstack.server_process.ServerProcess`` children (their output in log files of the results
folder), to be waited on (``wait_serving``, ``wait_http_ok``): a server that fails to start
raises ``ServerStartError`` with its one line. Each child dies with the run
(``core.lifetime``); the observation servers get their environment from
``ServerConfig.to_env()``.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

from devstack.server_process import ServerProcess, ServerStartError
from server.config import ServerConfig

READY_TIMEOUT_S = 90.0


def feast_executable() -> str:
    """The ``feast`` CLI installed beside this interpreter (else on PATH)."""
    beside = Path(sys.executable).parent / "feast"
    if beside.is_file():
        return str(beside)
    found = shutil.which("feast")
    if not found:
        raise ServerStartError("the feast CLI is not installed (pip install 'feast[redis]')")
    return found


def observation_server(  # noqa: PLR0913 - a server's settings, keyword-only
    name: str,
    port: int,
    *,
    log_name: str | None = None,
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
    # Each child leads its own session (as the Feast servers): a Ctrl-C of the run reaches the
    # run only, which stops them.
    return ServerProcess(
        config, name=name, log_path=log_dir / f"{log_name or name}.log", process_group=True
    ).start()


def echo_server(port: int, log_dir: Path, log_name: str = "echo") -> ServerProcess:
    command = [sys.executable, "-m", "benchmarks", "echo-server", "--port", str(port)]
    return ServerProcess.command(
        "echo", command, port=port, env={}, log_path=log_dir / f"{log_name}.log",
        process_group=True,
    ).start()  # fmt: skip


def feast_listen(
    port: int, repo_dir: Path, feast_env: dict[str, str], log_dir: Path,
    log_name: str = "feast_listen",
) -> ServerProcess:  # fmt: skip
    # -r: registry refresh period. A long one spares Feast a background refresh mid-run
    # (its default of 5 s would add noise that is not its serving cost).
    command = [
        feast_executable(), "-c", str(repo_dir), "listen",
        "-a", f"127.0.0.1:{port}", "-r", "3600",
    ]  # fmt: skip
    return ServerProcess.command(
        "feast_listen", command, port=port, env=feast_env,
        log_path=log_dir / f"{log_name}.log", process_group=True,
    ).start()  # fmt: skip


def feast_serve(
    port: int, repo_dir: Path, feast_env: dict[str, str], log_dir: Path,
    log_name: str = "feast_serve",
) -> ServerProcess:  # fmt: skip
    # One gunicorn worker (as our server runs one process), worker recycling OFF
    # (--max-requests 0: the default 1000 restarts the worker mid-run), no access log,
    # long keep-alive so the load generator's connections are reused.
    command = [
        feast_executable(), "-c", str(repo_dir), "serve",
        "-h", "127.0.0.1", "-p", str(port), "--workers", "1", "--no-access-log",
        "--max-requests", "0", "--max-requests-jitter", "0",
        "--keep-alive-timeout", "600", "-r", "3600",
    ]  # fmt: skip
    # gunicorn's worker children: the whole group is stopped.
    return ServerProcess.command(
        "feast_serve", command, port=port, env=feast_env,
        log_path=log_dir / f"{log_name}.log", process_group=True,
    ).start()  # fmt: skip
