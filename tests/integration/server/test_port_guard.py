"""One server per port: a second `python -m server` on a port a live instance serves exits 1 with
one line naming the port (`--workers N` included), while the first one's own workers still share
the port; the claim dies with its holder, even on SIGKILL (no stale lock)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from devstack import processes
from devstack.embedded_redis import EmbeddedRedis, free_port
from devstack.server_process import ServerProcess, server_environment
from server.config import ServerConfig

pytestmark = pytest.mark.integration


def _config(redis_server: EmbeddedRedis, data_dir: Path, port: int, **more: object) -> ServerConfig:
    return ServerConfig(
        redis_port=redis_server.port, data_dir=data_dir, port=port, grace_period_s=0.5
    ).with_overrides(**more)


def _second_instance(config: ServerConfig, *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "server", *flags],
        env=server_environment(config, os.environ),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.timeout(120)
def test_a_second_instance_on_a_served_port_is_refused(
    redis_server: EmbeddedRedis, tmp_path: Path
) -> None:
    port = free_port()
    first = _config(redis_server, tmp_path / "data", port, workers=2, symbols=("USDCOP",))
    with ServerProcess(first) as server:
        server.wait_serving()
        workers = processes.descendants(server.pid)
        # Its own two workers share the port.
        assert len(processes.listening_pids(port, among=workers)) == 2

        for flags in (["--workers", "2", "--symbols", "USDMXN"], ["--workers", "1"]):
            second = _second_instance(first, *flags)
            assert second.returncode == 1, second.stderr
            lines = second.stderr.strip().splitlines()
            assert len(lines) == 1, second.stderr
            assert lines[0].endswith(
                f"ERROR server: cannot start: port {port} is already served by another "
                f"observation server instance (refusing to share 127.0.0.1:{port} with it)"
            ), second.stderr
        # Still the first instance's, and only its workers listen.
        assert processes.listening_pids(port) == processes.listening_pids(port, among=workers)
        server.wait_serving(timeout_s=5)  # SERVING, and its own workers are the listeners

        # SIGKILL of the whole first instance: the kernel drops its claim with it.
        for pid in [server.pid, *workers]:
            os.kill(pid, signal.SIGKILL)
        processes.wait_gone([server.pid, *workers], timeout_s=10)
    with ServerProcess(first.with_overrides(workers=1)) as again:
        again.wait_serving()


@pytest.mark.timeout(60)
def test_a_port_some_other_program_accepts_on_is_refused(
    redis_server: EmbeddedRedis, tmp_path: Path
) -> None:
    import socket

    with socket.socket() as other:
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)  # would let us share it
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        second = _second_instance(_config(redis_server, tmp_path / "data", port, workers=2))
    assert second.returncode == 1
    lines = second.stderr.strip().splitlines()
    assert len(lines) == 1, second.stderr
    assert lines[0].endswith(
        f"ERROR server: cannot start: port {port} is already served by another process "
        f"(something accepts connections on 127.0.0.1:{port})"
    ), second.stderr
