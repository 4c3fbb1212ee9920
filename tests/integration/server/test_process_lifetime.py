"""No process outlives the server, whatever signal ends it (real processes, real signals).

``python -m server`` (1 worker, and ``--workers 2``) with raw data: the fallback computes in a
thread, so the only descendants are the forked workers (no compute process, no resource
tracker); then SIGKILL or SIGTERM of the server, and every process that descended from it must
be gone within a few seconds."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from devstack import processes
from devstack.embedded_redis import EmbeddedRedis
from devstack.server_process import ServerProcess
from server.config import ServerConfig
from tests.integration.devstack._support import command_line

pytestmark = pytest.mark.integration

_GONE_WITHIN_S = 5.0


def _started_tree(server: ServerProcess, workers: int) -> set[int]:
    """Every descendant of the server, once it serves with its fallback loaded."""
    server.wait_serving()
    server.probe()
    deadline = time.monotonic() + 60
    expected = 0 if workers == 1 else workers
    while len(processes.descendants(server.pid)) < expected:
        assert time.monotonic() < deadline, "the forked workers did not start"
        time.sleep(0.1)
    return processes.descendants(server.pid)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_no_process_outlives_the_server(
    redis_server: EmbeddedRedis, data_dir: Path, workers: int, sig: signal.Signals
) -> None:
    config = ServerConfig(
        redis_port=redis_server.port, data_dir=data_dir, port=0, workers=workers,
        grace_period_s=0.5,
    )  # fmt: skip
    with ServerProcess(config) as server:
        tree = _started_tree(server, workers)
        # No helper process: one worker is the server alone; N workers are N forks.
        assert len(tree) == (0 if workers == 1 else workers), {
            pid: command_line(pid) for pid in tree
        }
        os.kill(server.pid, sig)
        started = time.monotonic()
        left = processes.wait_gone(tree | {server.pid}, timeout_s=_GONE_WITHIN_S)
        elapsed = time.monotonic() - started
        assert left == set(), {pid: command_line(pid) for pid in left}
        print(f"{sig.name} workers={workers}: {len(tree)} descendants gone in {elapsed:.2f} s")
        if sig == signal.SIGTERM:
            assert server.wait_exit(timeout_s=_GONE_WITHIN_S) == 0
